//! Loading a manifest: TOML syntax, then the schema, then the rules, each
//! error turned into `file:line:column: key.path: found …; allowed: …`.
//!
//! The text is parsed once into `toml`'s spanned document (`DeTable`); the
//! schema is deserialized from it through `serde_path_to_error`, which gives
//! the key path, while `toml` gives the byte span. Rule problems come back from
//! [`Manifest::validate`] with key paths only; they are located by walking the
//! same spanned document, falling back to the nearest enclosing table that is
//! written in the file when the key itself is absent.

use std::ops::Range;
use std::path::Path;

use serde_path_to_error::Segment as PathSegment;
use toml::de::{DeTable, Deserializer};
use toml::Spanned;

use crate::error::{Located, ManifestError};
use crate::invalid::{did_you_mean, index, join, quote, quote_all, segments, Invalid, Segment};
use crate::manifest::Manifest;
use crate::role::Role;
use crate::validate::PASSWD_HINT;

/// Reads and parses the manifest at `path`; errors name `path` as given.
/// `[roles.NAME]` sections are not checked: see [`load_with`].
pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
    load_with(path, &[])
}

/// [`load`], checking each `[roles.NAME]` section that one of `roles` reads
/// (`mote_roles::ALL` in mote's programs).
pub fn load_with(path: &Path, roles: &[&dyn Role]) -> Result<Manifest, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_with(&text, path, roles)
}

/// Parses and validates a manifest; `origin` is the file name errors show.
/// `[roles.NAME]` sections are not checked: see [`parse_with`].
pub fn parse(text: &str, origin: &Path) -> Result<Manifest, ManifestError> {
    parse_with(text, origin, &[])
}

/// [`parse`], checking each `[roles.NAME]` section that one of `roles`
/// reads, with the same file, line, column and key path as every other
/// problem.
pub fn parse_with(
    text: &str,
    origin: &Path,
    roles: &[&dyn Role],
) -> Result<Manifest, ManifestError> {
    let root = DeTable::parse(text).map_err(|err| ManifestError::Syntax {
        path: origin.to_owned(),
        problem: Box::new(syntax(text, &err)),
    })?;
    let manifest: Manifest = serde_path_to_error::deserialize(Deserializer::from(root.clone()))
        .map_err(|err| ManifestError::Schema {
            path: origin.to_owned(),
            problem: Box::new(schema(text, &err)),
        })?;
    if let Err(problems) = manifest.validate_with(roles) {
        let mut problems: Vec<Located> = problems
            .into_iter()
            .map(|mut problem| {
                problem.path = as_written(&root, problem.path);
                let (line, column) = position(text, locate(&root, &problem.path));
                Located {
                    line,
                    column,
                    problem,
                }
            })
            .collect();
        problems.sort_by_key(|p| (p.line, p.column));
        return Err(ManifestError::Invalid {
            path: origin.to_owned(),
            problems,
        });
    }
    Ok(manifest)
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

fn located(text: &str, span: Range<usize>, problem: Invalid) -> Located {
    let (line, column) = position(text, span.start);
    Located {
        line,
        column,
        problem,
    }
}

/// `packages.install[1]` reads `packages[1]` when the manifest gives
/// `packages` as the short list form, so the path names what the user wrote.
fn as_written(root: &Spanned<DeTable<'_>>, path: String) -> String {
    let short_form = root
        .get_ref()
        .iter()
        .any(|(k, v)| k.get_ref() == "packages" && v.get_ref().as_array().is_some());
    match path.strip_prefix("packages.install") {
        Some(rest) if short_form => format!("packages{rest}"),
        _ => path,
    }
}

/// Byte offset of the value at `path`, or of the deepest table or array on
/// the way to it that the document has.
fn locate(root: &Spanned<DeTable<'_>>, path: &str) -> usize {
    let mut at = root.span().start;
    let mut table = Some(root.get_ref());
    let mut array: Option<&toml::de::DeArray<'_>> = None;
    for segment in segments(path) {
        let next = match (&segment, table, array) {
            (Segment::Key(key), Some(t), _) => {
                t.iter().find(|(k, _)| k.get_ref() == key).map(|(_, v)| v)
            }
            (Segment::Index(i), _, Some(a)) => a.get(*i),
            _ => None,
        };
        let Some(value) = next else { break };
        at = value.span().start;
        table = value.get_ref().as_table();
        array = value.get_ref().as_array();
    }
    at
}

// ---- TOML syntax errors -------------------------------------------------------

/// `toml` says "what, expected a, b": found is what stands at the span,
/// allowed is the expected list.
fn syntax(text: &str, err: &toml::de::Error) -> Located {
    let span = err.span().unwrap_or(0..0);
    let message = err.message();
    let (mut what, expected) = message.split_once(", expected ").unwrap_or((message, ""));
    let at = describe_at(text, &span);
    // A bare word or nothing where a value belongs: toml guesses a string or a boolean.
    let value_expected = matches!(what, "string values must be quoted" | "invalid boolean");
    if value_expected && at.starts_with("the end of") {
        what = "no value";
    }
    let found = format!("{at} ({what})");
    let allowed = if value_expected {
        "a value: a quoted string, a number, true or false, an array or a table".to_owned()
    } else if !expected.is_empty() {
        expected
            .split(", ")
            .map(
                |item| match item.strip_prefix('`').and_then(|i| i.strip_suffix('`')) {
                    Some(literal) => quote(literal),
                    None => item.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join(", ")
    } else if what == "duplicate key" {
        "each key once in a table".to_owned()
    } else {
        "TOML (https://toml.io)".to_owned()
    };
    let path = syntax_path(text, span.start);
    located(text, span, Invalid::new(path, found, allowed))
}

/// What stands in the text at `span`: the text itself, or the end of the line or file.
fn describe_at(text: &str, span: &Range<usize>) -> String {
    match text.get(span.clone()) {
        Some(s) if !s.is_empty() => {
            let first_line = s.lines().next().unwrap_or(s);
            let short: String = first_line.chars().take(40).collect();
            quote(&short)
        }
        _ => match text.get(span.start..).and_then(|rest| rest.chars().next()) {
            None => "the end of the file".into(),
            Some('\n' | '\r') => "the end of the line".into(),
            Some(c) => quote(&c.to_string()),
        },
    }
}

/// The key path being written at `offset`, read from the text as far as it
/// can be: the last `[table]` or `[[array]]` header before it, then the key on
/// the line, if the line has one.
fn syntax_path(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text
        .get(..offset)
        .and_then(|b| b.rfind('\n'))
        .map_or(0, |i| i + 1);
    let normalize = |header: &str| {
        header
            .split('.')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(".")
    };
    let mut table = String::new();
    let mut arrays: Vec<(String, usize)> = Vec::new();
    for line in text.get(..line_start).unwrap_or("").lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix("[[").and_then(|l| l.split_once("]]")) {
            let name = normalize(header.0);
            let count = match arrays.iter_mut().find(|(n, _)| *n == name) {
                Some((_, count)) => {
                    *count += 1;
                    *count
                }
                None => {
                    arrays.push((name.clone(), 0));
                    0
                }
            };
            table = index(&name, count);
        } else if let Some(header) = line.strip_prefix('[').and_then(|l| l.split_once(']')) {
            table = normalize(header.0);
        }
    }
    let line = text
        .get(line_start..)
        .and_then(|rest| rest.lines().next())
        .unwrap_or("");
    if let Some(header) = line.trim_start().strip_prefix('[') {
        let header = header.trim_start_matches('[');
        let header = header.split_once(']').map_or(header, |(h, _)| h);
        return normalize(header);
    }
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() => {
            let key = normalize(key);
            if table.is_empty() {
                key
            } else {
                format!("{table}.{key}")
            }
        }
        _ => table,
    }
}

// ---- schema errors ------------------------------------------------------------

/// A serde path (`sites`, 0, `root`) as a key path (`sites[0].root`).
pub(crate) fn serde_path(segments: &serde_path_to_error::Path) -> String {
    let mut path = String::new();
    for segment in segments {
        path = match segment {
            PathSegment::Seq { index: i } => index(&path, *i),
            PathSegment::Map { key } => join(&path, key),
            PathSegment::Enum { variant } => join(&path, variant),
            PathSegment::Unknown => join(&path, "?"),
        };
    }
    path
}

fn schema(text: &str, err: &serde_path_to_error::Error<toml::de::Error>) -> Located {
    let path = serde_path(err.path());
    let inner = err.inner();
    let span = inner.span().unwrap_or(0..0);
    let at = text.get(span.clone()).unwrap_or("");
    located(text, span, reshape(path, inner.message(), at))
}

/// The words between backquotes in a serde message: "expected `a` or `b`".
fn backquoted(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// A list of names from serde ("expected one of `a`, `b`") with a suggestion for `word`.
fn choices(word: &str, expected: &str, none: &str) -> (String, Option<String>) {
    let names = backquoted(expected);
    if names.is_empty() {
        return (none.to_owned(), None);
    }
    let hint =
        did_you_mean(word, names.iter().copied()).map(|n| format!("did you mean {}?", quote(n)));
    (quote_all(names), hint)
}

/// Turns serde's messages into found/allowed form.
pub(crate) fn reshape(mut path: String, message: &str, at: &str) -> Invalid {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (key, expected) = rest.split_once('`').unwrap_or((rest, ""));
        if segments(&path).last() != Some(&Segment::Key(key.to_owned())) {
            path = join(&path, key);
        }
        let (allowed, hint) = choices(key, expected, "no keys here");
        let problem = Invalid::new(path, format!("unknown key {}", quote(key)), allowed);
        return with_hint(problem, hint);
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (word, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let (allowed, hint) = choices(word, expected, "nothing");
        return with_hint(Invalid::new(path, quote(word), allowed), hint);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = rest.trim_end_matches('`');
        let path = join(&path, key);
        let (allowed, hint) = required(key);
        return Invalid::new(path, "nothing", allowed).hint(hint);
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let allowed = expectation(&path, expected);
        return Invalid::new(path, kind(found), allowed);
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let allowed = expectation(&path, expected);
        return Invalid::new(path, value(found), allowed);
    }
    if let Some(rest) = message.strip_prefix("invalid length ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let allowed = expectation(&path, expected);
        return Invalid::new(path, format!("{found} items"), allowed);
    }
    let found = at
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(60)
        .collect::<String>();
    let found = if found.is_empty() {
        "this value".to_owned()
    } else {
        found
    };
    Invalid::new(path, found, message.to_owned())
}

fn with_hint(problem: Invalid, hint: Option<String>) -> Invalid {
    match hint {
        Some(hint) => problem.hint(hint),
        None => problem,
    }
}

/// serde's `Unexpected` with TOML's words: `integer 5`, `string "x"`, `a table`.
fn kind(unexpected: &str) -> String {
    match unexpected {
        "sequence" => "an array".into(),
        "map" => "a table".into(),
        other => {
            let plain = other.replace('`', "");
            let plain = plain.strip_suffix(" as i128").unwrap_or(&plain);
            plain.strip_suffix(" as u128").unwrap_or(plain).to_owned()
        }
    }
}

/// serde's `Unexpected` without its type word when it has a value: `5`, `"x"`.
fn value(unexpected: &str) -> String {
    let plain = kind(unexpected);
    for word in [
        "string ",
        "integer ",
        "floating point ",
        "boolean ",
        "character ",
    ] {
        if let Some(v) = plain.strip_prefix(word) {
            return v.to_owned();
        }
    }
    plain
}

/// serde's "expected …" in TOML's words, for the value at `path`.
fn expectation(path: &str, expected: &str) -> String {
    let range = |lo: i128, hi: i128| format!("an integer from {lo} to {hi}");
    match expected {
        "u16" if path.ends_with(".port") => "a port from 1 to 65535".into(),
        "u8" => range(0, u8::MAX.into()),
        "u16" => range(0, u16::MAX.into()),
        "u32" => range(0, u32::MAX.into()),
        "u64" => range(0, u64::MAX.into()),
        "i8" => range(i8::MIN.into(), i8::MAX.into()),
        "i16" => range(i16::MIN.into(), i16::MAX.into()),
        "i32" => range(i32::MIN.into(), i32::MAX.into()),
        "i64" => range(i64::MIN.into(), i64::MAX.into()),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        "" => "a different value".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other => other.to_owned(),
    }
}

/// What a required key holds, and a hint to add it.
fn required(key: &str) -> (String, String) {
    let allowed = match key {
        "image" => "an [image] table with name = \"…\"",
        "system" => "a [system] table with hostname and admin_password_hash",
        "name" => "a name, such as \"web\"",
        "hostname" => "a host name, such as \"web01\"",
        "argv" => "a list: a program's absolute path, then its arguments",
        "source" => "a host path relative to the manifest, or \"bin:NAME\"",
        "destination" => "an absolute path in the image, such as \"/usr/bin/hello\"",
        "port" => "a port from 1 to 65535",
        _ => "a value",
    };
    let hint = match key {
        "system" => {
            format!("add [system] with hostname = \"…\"; for the credential, {PASSWD_HINT}")
        }
        _ => format!("{} is required here", quote(key)),
    };
    (allowed.to_owned(), hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(position(text, 0), (1, 1));
        assert_eq!(position(text, 6), (2, 1));
        assert_eq!(position(text, 10), (2, 4));
        assert_eq!(position(text, 8), (2, 2)); // inside 'é': moved back to its start
        assert_eq!(position(text, 999), (3, 1));
    }

    #[test]
    fn syntax_paths_follow_headers() {
        let text = "[image]\nname = 'x'\n[[files]]\nsource = 'a'\n[[files]]\n source = \n";
        let offset = text.rfind("= \n").unwrap() + 2;
        assert_eq!(syntax_path(text, offset), "files[1].source");
        assert_eq!(syntax_path(text, 3), "image");
        assert_eq!(syntax_path("x = ", 4), "x");
    }

    #[test]
    fn unreadable_file_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.toml");
        let err = load(&path).unwrap_err();
        assert!(matches!(err, ManifestError::Read { .. }));
        assert_eq!(
            err.to_string(),
            format!("cannot read the manifest {}", path.display())
        );
    }
}

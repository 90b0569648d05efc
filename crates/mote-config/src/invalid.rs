//! One validation problem, and the key paths that say where it is.
//!
//! A key path is written the way a TOML reader thinks of it: `services.web.after[0]`,
//! with keys that are not bare TOML keys in double quotes
//! (`network.interfaces."eth0/1"`). [`segments`] reads such a path back, so the
//! loader can find the key in the source text.

use std::fmt;

/// A value that breaks a rule: where it is, what it is, and what would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Key path, such as `services.web.after[0]`.
    pub path: String,
    /// What was found, ready to print: `"sometimes"`, `nothing`, `cycle a -> b -> a`.
    pub found: String,
    /// What is allowed, ready to print: `"always", "on-failure", "never"`.
    pub allowed: String,
    /// What to do about it, when there is more to say than `allowed`.
    pub hint: Option<String>,
}

impl Invalid {
    /// A problem at `path`.
    pub fn new(
        path: impl Into<String>,
        found: impl Into<String>,
        allowed: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            found: found.into(),
            allowed: allowed.into(),
            hint: None,
        }
    }

    /// The same problem with a hint.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// `services.web.restart: found "sometimes"; allowed: "always", "on-failure", "never"`,
/// then the hint, if any, on an indented line of its own.
impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(top level)"
        } else {
            &self.path
        };
        write!(f, "{path}: found {}; allowed: {}", self.found, self.allowed)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

/// A string as it is shown in `found`: double quoted, escaped.
pub(crate) fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// A list of words as shown in `allowed`: `"a", "b", "c"`.
pub(crate) fn quote_all<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    let quoted: Vec<String> = words.into_iter().map(|w| quote(w.as_ref())).collect();
    quoted.join(", ")
}

/// The closest of `candidates` to `word`, when it is close enough to be a typo.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|&(distance, _)| distance <= limit)
        .min()
        .map(|(_, c)| c)
}

/// `parent.key`, quoting `key` when it is not a bare TOML key.
pub(crate) fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let key = if bare { key.to_owned() } else { quote(key) };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
pub(crate) fn index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Reads a key path written by [`join`] and [`index`] back into its steps.
/// Anything it cannot read ends the path there.
pub(crate) fn segments(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut chars = path.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '.' => {
                chars.next();
            }
            '[' => {
                chars.next();
                let digits: String = chars.by_ref().take_while(|&c| c != ']').collect();
                match digits.parse() {
                    Ok(i) => out.push(Segment::Index(i)),
                    Err(_) => break,
                }
            }
            '"' => {
                chars.next();
                let mut key = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => key.extend(chars.next()),
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => key.push(c),
                    }
                }
                if !closed {
                    break;
                }
                out.push(Segment::Key(key));
            }
            _ => {
                let mut key = String::new();
                while let Some(&c) = chars.peek() {
                    if c == '.' || c == '[' {
                        break;
                    }
                    key.push(c);
                    chars.next();
                }
                out.push(Segment::Key(key));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip() {
        let path = index(&join(&join("network", "interfaces"), "eth0/1.x"), 3);
        assert_eq!(path, r#"network.interfaces."eth0/1.x"[3]"#);
        assert_eq!(
            segments(&path),
            vec![
                Segment::Key("network".into()),
                Segment::Key("interfaces".into()),
                Segment::Key("eth0/1.x".into()),
                Segment::Index(3),
            ]
        );
        assert_eq!(
            segments("services.web.after[0]"),
            vec![
                Segment::Key("services".into()),
                Segment::Key("web".into()),
                Segment::Key("after".into()),
                Segment::Index(0),
            ]
        );
    }

    #[test]
    fn display_puts_the_hint_on_its_own_line() {
        let problem = Invalid::new("system.timezone", quote("CET"), quote("UTC"))
            .hint("only UTC zone data is bundled today");
        assert_eq!(
            problem.to_string(),
            "system.timezone: found \"CET\"; allowed: \"UTC\"\n  hint: only UTC zone data is bundled today"
        );
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let keys = ["argv", "restart", "after"];
        assert_eq!(did_you_mean("restat", keys), Some("restart"));
        assert_eq!(did_you_mean("environment", keys), None);
    }
}

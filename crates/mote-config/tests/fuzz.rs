//! Property tests of the manifest loader (issue 9: fuzz targets, run bounded
//! in the suite and longer by `cargo xtask fuzz`).
//!
//! Inputs: arbitrary bytes, text made of TOML's punctuation and the schema's
//! own keys, and mutated copies of `examples/*.toml` and of the fixtures.
//! Properties: [`parse`] never panics; every error it returns names at least
//! one problem, each at a line and column inside the text (the column may be
//! one past a line's end, where something is missing), and prints as
//! `file:line:column: key.path: found …; allowed: …`; a manifest that loads
//! has settings that pass [`mote_config::NodeSettings::validate`] and
//! survive a JSON round trip.
//!
//! `MOTE_FUZZ_CASES` sets the cases per property and round (default
//! [`CASES`]); `MOTE_FUZZ_UNTIL` (Unix seconds) keeps running rounds until
//! then.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mote_config::{parse, ManifestError, NodeSettings};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Cases per property in the suite: under a second each in release mode.
const CASES: u32 = 10_000;

/// How far inputs got: loaded, or stopped at syntax, schema or rules.
static OUTCOMES: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
const STAGES: [&str; 4] = ["loaded", "syntax", "schema", "rules"];

/// Runs `test` on values of `strategy`: `MOTE_FUZZ_CASES` cases (default
/// `CASES`), then more rounds while the clock is before `MOTE_FUZZ_UNTIL`.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let number = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = number("MOTE_FUZZ_CASES").map_or(CASES, |n| n.clamp(1, u32::MAX.into()) as u32);
    let until = number("MOTE_FUZZ_UNTIL").unwrap_or(0);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let started = std::time::Instant::now();
    let mut rounds = 0u64;
    loop {
        // A runner per round: each starts from a new random seed.
        if let Err(e) = TestRunner::new(config.clone()).run(&strategy, &test) {
            panic!("{name}: {e}");
        }
        rounds += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if now >= until {
            break;
        }
    }
    // The counters are shared by the tests running at once: a rough view.
    let seen: Vec<String> = STAGES
        .iter()
        .zip(&OUTCOMES)
        .map(|(stage, n)| format!("{stage} {}", n.load(Ordering::Relaxed)))
        .collect();
    eprintln!(
        "fuzz {name}: {} cases in {:.1} s (all manifest tests so far: {})",
        rounds * u64::from(cases),
        started.elapsed().as_secs_f64(),
        seen.join(", ")
    );
}

/// The manifests mutations start from: the examples and the fixtures.
fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dirs = [
        root.join("../../examples"),
        root.join("tests/fixtures/succeeds"),
        root.join("tests/fixtures/fails"),
    ];
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap_or_else(|e| panic!("{}: {e}", d.display())))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("seed is readable"))
        .collect();
    assert!(texts.len() > 10, "too few seeds: {files:?}");
    texts
}

/// Pieces a mutation inserts: TOML punctuation, the schema's keys and
/// values of the kinds it parses, and things parsers trip on.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    "'''",
    "\"\"\"",
    ",",
    ".",
    "{",
    "}",
    "#",
    "\n",
    "\r\n",
    " ",
    "\t",
    "\\",
    "\\u00e9",
    "\\U0010FFFF",
    "é",
    "\u{0}",
    "\u{feff}",
    "\u{202e}",
    "𝄞",
    "image",
    "name",
    "outputs",
    "kernel",
    "drivers",
    "modules",
    "path",
    "package",
    "system",
    "hostname",
    "timezone",
    "admin_password_hash",
    "network",
    "interfaces",
    "eth0",
    "ipv4",
    "ipv6",
    "gateway4",
    "gateway6",
    "dns",
    "mtu",
    "firewall",
    "inbound",
    "rules",
    "port",
    "protocol",
    "source",
    "action",
    "enabled",
    "services",
    "argv",
    "environment",
    "user",
    "restart",
    "after",
    "ports",
    "stop_timeout_secs",
    "capabilities",
    "first_boot",
    "timeout_secs",
    "management",
    "packages",
    "roles",
    "web",
    "sites",
    "bindings",
    "files",
    "destination",
    "mode",
    "owner",
    "dhcp",
    "static",
    "slaac",
    "none",
    "tcp",
    "udp",
    "allow",
    "deny",
    "always",
    "on-failure",
    "never",
    "nobody",
    "root",
    "\"0755\"",
    "\"bin:x\"",
    "\"/usr/bin/x\"",
    "\"10.0.0.5/24\"",
    "\"10.0.0.1\"",
    "\"::1\"",
    "\"fe80::1/64\"",
    "\"0.0.0.0/0\"",
    "0",
    "1",
    "-1",
    "65535",
    "65536",
    "4294967296",
    "99999999999999999999",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "0x10",
    "0o7",
    "0b1",
    "1_000",
    "1.5",
    "true",
    "false",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "[]",
    "{}",
    "[{}]",
    "\"\"",
    "''",
];

#[derive(Debug, Clone)]
enum Edit {
    /// Delete `len` characters at `at` (a fraction of the length).
    Delete { at: f64, len: usize },
    /// Insert a token at `at`.
    Insert { at: f64, token: usize },
    /// Replace one character at `at` with `c`.
    Replace { at: f64, c: char },
    /// Copy `len` characters from `from` to `at`.
    Copy { from: f64, at: f64, len: usize },
    /// Cut the text at `at`.
    Truncate { at: f64 },
    /// Give the key on line `line` (a fraction of the count) the value token `token`.
    Value { line: f64, token: usize },
    /// Delete line `line`, or repeat it.
    Line { line: f64, repeat: bool },
}

/// Where the values start in [`TOKENS`]: a [`Edit::Value`] takes one of these.
fn values() -> std::ops::Range<usize> {
    let first = TOKENS
        .iter()
        .position(|t| *t == "dhcp")
        .expect("values in TOKENS");
    first..TOKENS.len()
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0.0..1.0f64;
    prop_oneof![
        1 => (at.clone(), 1..20usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        4 => (at.clone(), 0..TOKENS.len()).prop_map(|(at, token)| Edit::Insert { at, token }),
        2 => (at.clone(), any::<char>()).prop_map(|(at, c)| Edit::Replace { at, c }),
        1 => (at.clone(), at.clone(), 1..80usize).prop_map(|(from, at, len)| Edit::Copy { from, at, len }),
        1 => at.clone().prop_map(|at| Edit::Truncate { at }),
        6 => (at.clone(), values()).prop_map(|(line, token)| Edit::Value { line, token }),
        2 => (at, any::<bool>()).prop_map(|(line, repeat)| Edit::Line { line, repeat }),
    ]
}

/// Applies `edits` to `text`, character by character.
fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let pos = |f: f64, n: usize| ((f * n as f64) as usize).min(n);
    for e in edits {
        let n = chars.len();
        match e {
            Edit::Delete { at, len } => {
                let at = pos(*at, n);
                chars.drain(at..(at + len).min(n));
            }
            Edit::Insert { at, token } => {
                let at = pos(*at, n);
                chars.splice(at..at, TOKENS[*token].chars());
            }
            Edit::Replace { at, c } => {
                if n > 0 {
                    chars[pos(*at, n - 1)] = *c;
                }
            }
            Edit::Copy { from, at, len } => {
                let from = pos(*from, n);
                let piece: Vec<char> = chars[from..(from + len).min(n)].to_vec();
                let at = pos(*at, n);
                chars.splice(at..at, piece);
            }
            Edit::Truncate { at } => chars.truncate(pos(*at, n)),
            Edit::Value { line, token } => {
                let text: String = chars.iter().collect();
                let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
                let i = pos(*line, lines.len() - 1);
                if let Some((key, _)) = lines[i].split_once('=') {
                    lines[i] = format!("{key}= {}", TOKENS[*token]);
                }
                chars = lines.join("\n").chars().collect();
            }
            Edit::Line { line, repeat } => {
                let text: String = chars.iter().collect();
                let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
                let i = pos(*line, lines.len() - 1);
                if *repeat {
                    lines.insert(i, lines[i].clone());
                } else {
                    lines.remove(i);
                }
                chars = lines.join("\n").chars().collect();
            }
        }
    }
    chars.into_iter().collect()
}

/// Text made of tokens: more often TOML-shaped than arbitrary bytes.
fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(0..TOKENS.len(), 0..120)
        .prop_map(|ts| ts.into_iter().map(|t| TOKENS[t]).collect())
}

/// The properties every outcome of [`parse`] must have.
fn check(text: &str) -> Result<(), TestCaseError> {
    let origin = Path::new("fuzz.toml");
    let outcome = parse(text, origin);
    let stage = match &outcome {
        Ok(_) => 0,
        Err(ManifestError::Syntax { .. } | ManifestError::Read { .. }) => 1,
        Err(ManifestError::Schema { .. }) => 2,
        Err(ManifestError::Invalid { .. }) => 3,
    };
    OUTCOMES[stage].fetch_add(1, Ordering::Relaxed);
    let err = match outcome {
        Ok(manifest) => {
            let settings = manifest.settings();
            let problems = settings.validate().err().unwrap_or_default();
            prop_assert!(
                problems.is_empty(),
                "a manifest that loads has settings that do not validate: {problems:?}"
            );
            let json = serde_json::to_string(&settings).expect("settings serialize");
            let back: NodeSettings = serde_json::from_str(&json)
                .map_err(|e| TestCaseError::fail(format!("{json}: {e}")))?;
            prop_assert_eq!(back, settings, "settings change in a JSON round trip");
            return Ok(());
        }
        Err(err) => err,
    };
    prop_assert!(
        !matches!(err, ManifestError::Read { .. }),
        "parse never reads a file"
    );
    let problems = err.problems();
    prop_assert!(!problems.is_empty(), "an error with no problem: {err:?}");
    // The text's lines as an editor counts them: a last line after a final
    // newline exists (it is where "the end of the file" is).
    let lines: Vec<&str> = text.split('\n').collect();
    let shown = err.to_string();
    for p in problems {
        prop_assert!(
            (1..=lines.len()).contains(&p.line),
            "line {} outside 1..={} in {shown:?}",
            p.line,
            lines.len()
        );
        let width = lines[p.line - 1].chars().count();
        prop_assert!(
            (1..=width + 1).contains(&p.column),
            "column {} outside 1..={} of line {} in {shown:?}",
            p.column,
            width + 1,
            p.line
        );
        let prefix = format!("fuzz.toml:{}:{}: ", p.line, p.column);
        prop_assert!(
            shown.contains(&prefix),
            "{prefix:?} is not in the message {shown:?}"
        );
        prop_assert!(
            !p.problem.found.is_empty() && !p.problem.allowed.is_empty(),
            "a problem without found or allowed: {:?}",
            p.problem
        );
    }
    Ok(())
}

#[test]
fn arbitrary_bytes_never_panic_and_errors_are_located() {
    fuzz(
        "manifest: arbitrary bytes",
        prop::collection::vec(any::<u8>(), 0..400),
        |bytes| check(&String::from_utf8_lossy(&bytes)),
    );
}

#[test]
fn token_soup_never_panics_and_errors_are_located() {
    fuzz("manifest: token soup", token_soup(), |text| check(&text));
}

#[test]
fn mutated_examples_never_panic_and_errors_are_located() {
    let seeds = seeds();
    let strategy = (0..seeds.len(), prop::collection::vec(edit(), 1..4));
    fuzz("manifest: mutated examples", strategy, |(seed, edits)| {
        check(&mutate(&seeds[seed], &edits))
    });
}

#[test]
fn the_seeds_themselves_hold_the_properties() {
    for text in seeds() {
        check(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}

//! Data-driven manifest tests.
//!
//! - `fixtures/succeeds/*.toml` must load.
//! - `fixtures/fails/NAME.toml` must fail with exactly the message in `NAME.err`
//!   (the file is named `NAME.toml` in the message; a trailing newline in
//!   `NAME.err` is ignored).
//!
//! `MOTE_BLESS=1 cargo test -p mote-config --test fixtures` rewrites the `.err`
//! files from the current messages; read the diff before committing it.

use std::fs;
use std::path::{Path, PathBuf};

use mote_config::{parse, ManifestError, Port, Protocol};

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn name(path: &Path) -> &Path {
    Path::new(path.file_name().expect("fixture has a file name"))
}

fn load(path: &Path) -> Result<mote_config::Manifest, ManifestError> {
    let text = fs::read_to_string(path).expect("fixture is readable");
    parse(&text, name(path))
}

/// Expected and actual, line by line: `  same`, `- expected`, `+ actual`.
fn diff(expected: &str, actual: &str) -> String {
    let (want, got): (Vec<&str>, Vec<&str>) =
        (expected.lines().collect(), actual.lines().collect());
    let mut out = String::new();
    for i in 0..want.len().max(got.len()) {
        match (want.get(i), got.get(i)) {
            (Some(w), Some(g)) if w == g => out += &format!("  {w}\n"),
            (w, g) => {
                if let Some(w) = w {
                    out += &format!("- {w}\n");
                }
                if let Some(g) = g {
                    out += &format!("+ {g}\n");
                }
            }
        }
    }
    out
}

#[test]
fn succeeding_manifests_load() {
    let mut failures = Vec::new();
    for path in fixtures("succeeds") {
        if let Err(err) = load(&path) {
            failures.push(format!("{} should load, but:\n{err}\n", path.display()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn failing_manifests_fail_with_their_message() {
    let bless = std::env::var_os("MOTE_BLESS").is_some();
    let mut failures = Vec::new();
    let mut count = 0;
    for path in fixtures("fails") {
        count += 1;
        let err_path = path.with_extension("err");
        let actual = match load(&path) {
            Ok(_) => {
                failures.push(format!("{} should fail, but it loads\n", path.display()));
                continue;
            }
            Err(err) => err.to_string(),
        };
        if bless {
            fs::write(&err_path, format!("{actual}\n")).expect("write .err");
            continue;
        }
        let Ok(expected) = fs::read_to_string(&err_path) else {
            failures.push(format!(
                "{} has no {}; it fails with:\n{actual}\n",
                path.display(),
                name(&err_path).display()
            ));
            continue;
        };
        let expected = expected.strip_suffix('\n').unwrap_or(&expected);
        if expected != actual {
            failures.push(format!(
                "{}: the message differs (- expected, + actual):\n{}",
                path.display(),
                diff(expected, &actual)
            ));
        }
    }
    assert!(count >= 15, "only {count} failing fixtures");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_err_file_has_its_manifest() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fails");
    for entry in fs::read_dir(&dir).expect("fails dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "err") {
            assert!(
                path.with_extension("toml").exists(),
                "{} has no manifest",
                path.display()
            );
        }
    }
}

#[test]
fn hello_reads_as_written() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/succeeds");
    let manifest = mote_config::load(&dir.join("hello.toml")).expect("hello loads");
    assert_eq!(manifest.image.name, "hello");
    assert_eq!(manifest.kernel.drivers, ["virtio"]);
    assert_eq!(manifest.files[0].source, "bin:mote-hello");
    assert_eq!(manifest.files[0].owner, "0:0");
    assert_eq!(
        mote_config::parse_mode(manifest.files[0].mode.as_deref().unwrap()),
        Ok(0o755)
    );
    assert_eq!(manifest.first_boot[0].timeout_secs, 60);
    assert!(mote_config::password::verify(
        &manifest.system.admin_password_hash,
        "mote-fixtures"
    ));

    let settings = manifest.settings();
    settings
        .validate()
        .expect("the node part is valid on its own");
    assert_eq!(settings.system.timezone, "UTC");
    assert_eq!(settings.service_order(), ["hello"]);
    assert_eq!(
        settings.open_ports(),
        [
            Port {
                number: 5986,
                protocol: Protocol::Tcp
            },
            Port {
                number: 8080,
                protocol: Protocol::Tcp
            }
        ]
    );
    let hello = &settings.services["hello"];
    assert_eq!(mote_config::parse_user(&hello.user), Ok((65534, 65534)));
    assert_eq!(hello.stop_timeout_secs, 5);
}

#[test]
fn services_start_in_dependency_order() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/succeeds");
    let manifest = mote_config::load(&dir.join("service-order.toml")).expect("loads");
    assert_eq!(
        manifest.settings().service_order(),
        ["audit", "db", "cache", "web"]
    );
}

#[test]
fn settings_survive_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/succeeds");
    let manifest = mote_config::load(&dir.join("full.toml")).expect("loads");
    let settings = manifest.settings();
    let json = serde_json::to_string_pretty(&settings).expect("serializes");
    let back: mote_config::NodeSettings = serde_json::from_str(&json).expect("deserializes");
    assert_eq!(back, settings);
}

#[test]
fn validation_errors_list_problems_in_source_order() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fails");
    let err = load(&dir.join("several-problems.toml")).unwrap_err();
    let lines: Vec<usize> = err.problems().iter().map(|p| p.line).collect();
    assert!(lines.len() > 3, "{err}");
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

/// Every complete manifest in `docs/manifest.md` (a ```toml block with both
/// `[image]` and `[system]`) loads, so the reference cannot drift from the schema.
#[test]
fn manifests_in_the_reference_load() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/manifest.md");
    let text = fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
    let mut blocks = 0;
    for (i, block) in text.split("```toml\n").skip(1).enumerate() {
        let block = block.split("```").next().unwrap_or("");
        let has = |table: &str| block.lines().any(|line| line.trim() == table);
        if !(has("[image]") && has("[system]")) {
            continue;
        }
        blocks += 1;
        if let Err(err) = parse(block, Path::new(&format!("manifest.md block {}", i + 1))) {
            panic!("a manifest in {} does not load:\n{err}", doc.display());
        }
    }
    assert!(
        blocks >= 2,
        "expected the minimal and the complete example, found {blocks}"
    );
}

#[test]
fn a_role_section_survives_the_settings_round_trip() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/succeeds/web.toml");
    let settings = load(&path).unwrap().settings();
    assert_eq!(settings.packages, ["web"]);
    assert_eq!(settings.roles["web"]["sites"][0]["root"], "/srv/www");
    let back: mote_config::NodeSettings =
        serde_json::from_str(&serde_json::to_string(&settings).unwrap()).unwrap();
    assert_eq!(back, settings);
}

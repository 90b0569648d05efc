//! The `mote` command as a user runs it: exit codes, error messages, `--json`.

use std::path::Path;
use std::process::{Command, Output};

fn mote(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .env(
            "MOTE_STATE_DIR",
            std::env::temp_dir().join("mote-cli-test-state"),
        )
        .output()
        .expect("mote runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_accepts_the_hello_example_and_says_what_it_opens() {
    let out = mote(&["check", "examples/hello.toml", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["valid"], true);
    assert_eq!(report["image"], "hello");
    assert_eq!(
        report["open_ports"],
        serde_json::json!(["5986/tcp", "8080/tcp"])
    );
}

#[test]
fn a_bad_manifest_exits_3_naming_file_line_column_key_found_and_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let hello = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.toml"),
    )
    .unwrap();
    std::fs::write(
        &path,
        hello.replace(
            "user = \"nobody\"",
            "user = \"nobody\"\nrestart = \"sometimes\"",
        ),
    )
    .unwrap();
    let out = mote(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("bad.toml:"), "{err}");
    assert!(err.contains("services.hello.restart"), "{err}");
    assert!(err.contains("found \"sometimes\""), "{err}");
    assert!(err.contains("\"on-failure\""), "{err}");
}

#[test]
fn a_manifest_without_a_credential_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("open.toml");
    std::fs::write(
        &path,
        "[image]\nname = \"open\"\n[system]\nhostname = \"open\"\n",
    )
    .unwrap();
    let out = mote(&[
        "build",
        path.to_str().unwrap(),
        "-o",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("mote passwd"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !dir.path().join("out").exists(),
        "nothing may be built from an invalid manifest"
    );
}

#[test]
fn passwd_makes_an_argon2id_hash_that_verifies() {
    let out = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(["passwd", "--json"])
        .env("MOTE_PASSWORD", "correct horse")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hash = v["admin_password_hash"].as_str().unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert!(mote_config::password::verify(hash, "correct horse"));
    assert!(!mote_config::password::verify(hash, "wrong"));
}

#[test]
fn stopping_an_unknown_node_is_a_clear_error() {
    let out = mote(&["stop", "no-such-node"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no-such-node"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn list_and_doctor_speak_json() {
    let list = mote(&["list", "--json"]);
    assert!(list.status.success());
    assert!(serde_json::from_slice::<serde_json::Value>(&list.stdout)
        .unwrap()
        .is_array());
    let doctor = mote(&["doctor", "--json"]);
    assert!(doctor.status.success(), "{}", text(&doctor.stderr));
    let checks: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert!(
        checks
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"].as_str().unwrap_or("").contains("qemu")),
        "{checks}"
    );
}

/// `mote … | head -1` once panicked ("failed printing to stdout: Broken
/// pipe", exit 101): a reader that goes away ends the output quietly.
#[test]
fn a_closed_stdout_is_no_panic() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(["check", "examples/hello.toml", "--json"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mote runs");
    drop(child.stdout.take()); // the reader is gone before mote writes
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}

/// `mote run examples/helo.toml` (a typo) once said "cannot name the node
/// after its image directory" and then "vmlinuz is missing".
#[test]
fn running_a_missing_file_says_it_does_not_exist() {
    for args in [
        &["run", "examples/helo.toml"][..],
        &["run", "examples/helo.toml", "--name", "x"],
    ] {
        let out = mote(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("examples/helo.toml does not exist"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("vmlinuz"), "{err}");
    }
}

#[test]
fn forwards_on_a_tap_or_bridge_are_refused_with_what_to_do() {
    for net in ["tap", "tap=tap0", "bridge=br0"] {
        let out = mote(&[
            "run",
            "--net",
            net,
            "--forward",
            "8080:8080",
            "examples/hello.toml",
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(
            err.contains("--forward works only with --net user"),
            "{err}"
        );
        assert!(err.contains("its own address"), "{err}");
    }
    let out = mote(&["run", "--net", "slirp", "examples/hello.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("bridge=NAME"),
        "{}",
        text(&out.stderr)
    );
}

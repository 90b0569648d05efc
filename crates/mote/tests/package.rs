//! `mote key generate` and `mote package build|sign|verify` end to end, on
//! temporary directories, as a user runs them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs mote in the repository root with its own config dir.
fn mote(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(args)
        .current_dir(repo())
        .env("MOTE_CONFIG_DIR", config)
        .env_remove("MOTE_BIN_DIR")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("mote runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// A bin dir whose `mote-hello` is `program`'s bytes (a small static ELF
/// stands in for the real one, which this test does not build).
fn bin_dir(dir: &Path, program: &[u8]) -> PathBuf {
    let bins = dir.join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    std::fs::write(bins.join("mote-hello"), program).unwrap();
    bins
}

fn static_elf() -> Vec<u8> {
    mote_kernel::testing::executable_elf(None)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A temp dir with a key pair `keys/me.key` and the hello example built
/// into `hello.mpkg`.
fn built() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys/me.key");
    let made = json(&mote(
        dir.path(),
        &["key", "generate", "-o", s(&key), "--json"],
    ));
    assert_eq!(made["key_id"].as_str().unwrap().len(), 16, "{made}");
    let bins = bin_dir(dir.path(), &static_elf());
    let package = dir.path().join("hello.mpkg");
    let out = mote(
        dir.path(),
        &[
            "package",
            "build",
            "examples/hello",
            "-o",
            s(&package),
            "--bin-dir",
            s(&bins),
            "--json",
        ],
    );
    let report = json(&out);
    assert_eq!(report["name"], "hello");
    assert_eq!(report["version"], "0.1.0");
    assert_eq!(report["files"], serde_json::json!(["/usr/bin/hello"]));
    assert_eq!(report["open_ports"], serde_json::json!(["8080/tcp"]));
    (dir, key, package)
}

#[test]
fn key_build_sign_verify_end_to_end() {
    let (dir, key, package) = built();
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the secret key must be private");
    assert!(std::fs::read_to_string(dir.path().join("keys/me.key.pub"))
        .unwrap()
        .starts_with("untrusted comment: minisign public key"));

    // Reproducible: the same directory gives the same bytes.
    let first = std::fs::read(&package).unwrap();
    let again = dir.path().join("again.mpkg");
    let bins = dir.path().join("bins");
    json(&mote(
        dir.path(),
        &[
            "package",
            "build",
            "examples/hello",
            "-o",
            s(&again),
            "--bin-dir",
            s(&bins),
            "--json",
        ],
    ));
    assert!(first == std::fs::read(&again).unwrap(), "two builds differ");

    let signed = json(&mote(
        dir.path(),
        &["package", "sign", s(&package), "--key", s(&key), "--json"],
    ));
    let signature = PathBuf::from(signed["signature"].as_str().unwrap());
    assert_eq!(signature, dir.path().join("hello.mpkg.minisig"));

    let public = dir.path().join("keys/me.key.pub");
    let verified = json(&mote(
        dir.path(),
        &[
            "package",
            "verify",
            s(&package),
            "--key",
            s(&public),
            "--json",
        ],
    ));
    assert_eq!(verified["key_id"], signed["key_id"]);
    assert_eq!(verified["name"], "hello");
    assert!(
        verified["trusted_comment"]
            .as_str()
            .unwrap()
            .ends_with("package:hello 0.1.0"),
        "{verified}"
    );

    // Human output names the key and the package.
    let out = mote(
        dir.path(),
        &["package", "verify", s(&package), "--key", s(&public)],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("good signature by key"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn verify_refuses_tampered_untrusted_and_unsigned_packages_with_exit_3() {
    let (dir, key, package) = built();
    let public = dir.path().join("keys/me.key.pub");
    json(&mote(
        dir.path(),
        &["package", "sign", s(&package), "--key", s(&key), "--json"],
    ));
    let verify = |public: &Path| {
        mote(
            dir.path(),
            &["package", "verify", s(&package), "--key", s(public)],
        )
    };
    let refused = |out: Output, words: &str| {
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains("refused") && err.contains(words), "{err}");
    };

    let other = dir.path().join("other.key");
    json(&mote(
        dir.path(),
        &["key", "generate", "-o", s(&other), "--json"],
    ));
    refused(
        verify(&dir.path().join("other.key.pub")),
        "which is not trusted",
    );

    let mut bytes = std::fs::read(&package).unwrap();
    let original = bytes.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&package, &bytes).unwrap();
    refused(verify(&public), "changed after signing");

    std::fs::write(&package, &original).unwrap();
    std::fs::remove_file(dir.path().join("hello.mpkg.minisig")).unwrap();
    refused(verify(&public), "unsigned");
}

#[test]
fn verify_without_key_trusts_the_keys_in_the_config_dir() {
    let (dir, key, package) = built();
    json(&mote(
        dir.path(),
        &["package", "sign", s(&package), "--key", s(&key), "--json"],
    ));
    let out = mote(dir.path(), &["package", "verify", s(&package)]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no trusted keys"),
        "{}",
        text(&out.stderr)
    );

    let trusted = dir.path().join("trusted-keys");
    std::fs::create_dir(&trusted).unwrap();
    std::fs::copy(dir.path().join("keys/me.key.pub"), trusted.join("me.pub")).unwrap();
    let verified = json(&mote(
        dir.path(),
        &["package", "verify", s(&package), "--json"],
    ));
    assert_eq!(
        PathBuf::from(verified["trusted_key"].as_str().unwrap()),
        trusted.join("me.pub")
    );
}

#[test]
fn a_dynamically_linked_binary_is_refused_naming_it_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    // Debian's /bin/sh is dynamically linked.
    let bins = bin_dir(dir.path(), &std::fs::read("/bin/sh").unwrap());
    let out = mote(
        dir.path(),
        &[
            "package",
            "build",
            "examples/hello",
            "-o",
            s(&dir.path().join("x.mpkg")),
            "--bin-dir",
            s(&bins),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("mote-hello: dynamically linked"), "{err}");
    assert!(err.contains("crt-static"), "{err}");
    assert!(!dir.path().join("x.mpkg").exists());
}

#[test]
fn key_generate_keeps_an_existing_key_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("me.key");
    json(&mote(
        dir.path(),
        &["key", "generate", "-o", s(&key), "--json"],
    ));
    let first = std::fs::read(&key).unwrap();
    let out = mote(dir.path(), &["key", "generate", "-o", s(&key)]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&key).unwrap(), first);
    json(&mote(
        dir.path(),
        &["key", "generate", "-o", s(&key), "--force", "--json"],
    ));
    assert_ne!(std::fs::read(&key).unwrap(), first);
}

#[test]
fn help_teaches_the_steps() {
    let dir = tempfile::tempdir().unwrap();
    let out = mote(dir.path(), &["package", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for words in [
        "mote key generate",
        "mote package build",
        "mote package sign",
        "mote package verify",
    ] {
        assert!(help.contains(words), "{words} missing from:\n{help}");
    }
}

//! `mote key generate` and `mote package build|sign|verify` end to end, on
//! temporary directories, as a user runs them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod repo_server;

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

/// `mote check` (which reads what `mote build` reads) takes a package by
/// name from a repository served over HTTP and over HTTPS by nginx; HTTPS
/// is checked against the system's trust store, so the test CA works only
/// once `SSL_CERT_FILE` names it; a package replaced on the server is
/// refused by the signed index's digest.
#[test]
fn a_repository_over_http_and_https_serves_mote_check_and_build() {
    let (dir, key, package) = built();
    json(&mote(
        dir.path(),
        &["package", "sign", s(&package), "--key", s(&key), "--json"],
    ));
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    for ext in ["", ".minisig"] {
        std::fs::copy(
            format!("{}{ext}", package.display()),
            repo.join(format!("hello-0.1.0.mpkg{ext}")),
        )
        .unwrap();
    }
    json(&mote(
        dir.path(),
        &["package", "index", s(&repo), "--key", s(&key), "--json"],
    ));
    let server = repo_server::serve(&dir.path().join("nginx"), &repo);
    let check = |url: &str, ca: Option<&Path>| {
        let manifest = dir.path().join("node.toml");
        std::fs::write(
            &manifest,
            format!(
                "[image]\nname = \"node\"\n[system]\nhostname = \"node\"\n\
                 admin_password_hash = \"$argon2id$v=19$m=19456,t=2,p=1$qDlJD2EWEYpHBgW7IRYtSQ$\
                 ie0U/szP31ImnGwG1wpP/BLQ4dOzA6Y78z93v5sOdwU\"\n[packages]\n\
                 install = [\"hello\"]\nrepositories = [\"{url}\"]\n\
                 trusted_keys = [\"keys/me.key.pub\"]\n"
            ),
        )
        .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_mote"));
        command
            .args(["check", s(&manifest), "--json"])
            .env("MOTE_CONFIG_DIR", dir.path())
            .env_remove("SSL_CERT_DIR");
        match ca {
            Some(ca) => command.env("SSL_CERT_FILE", ca),
            None => command.env_remove("SSL_CERT_FILE"),
        };
        command.output().unwrap()
    };

    for url in [server.http.clone(), format!("{}/", server.https)] {
        let checked = json(&check(&url, Some(&server.ca)));
        assert_eq!(checked["packages"], serde_json::json!(["hello"]), "{url}");
        assert!(
            checked["open_ports"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!("8080/tcp")),
            "{url}: the package's manifest came over the wire: {checked}"
        );
    }

    // Without the test CA, the server's certificate is refused.
    let out = check(&server.https, None);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&server.https) && err.to_lowercase().contains("certificate"),
        "{err}"
    );

    // A missing repository names the URL and the status.
    let out = check(&format!("{}/nowhere", server.http), None);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("/nowhere/index.json"), "{err}");

    // A package replaced on the server: its digest no longer matches the
    // signed index.
    std::fs::write(repo.join("hello-0.1.0.mpkg"), b"replaced").unwrap();
    let out = check(&server.http, None);
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("signed index says"), "{err}");
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

//! Interoperability with the real minisign tool (Debian's `minisign`): it
//! verifies our signatures, and we verify signatures made with its keys.
//! Needs `minisign` on PATH (`apt-get install minisign`; `cargo xtask test`
//! installs it); fails with that message when it is missing.

use std::path::Path;
use std::process::{Command, Output};

fn minisign(args: &[&str], dir: &Path) -> Output {
    Command::new("minisign")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("minisign is needed for this test: apt-get install minisign ({e})")
        })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const ARCHIVE: &[u8] = b"a package's bytes, or any bytes: minisign signs files";

#[test]
fn minisign_verifies_our_signature_and_refuses_a_changed_byte() {
    let dir = tempfile::tempdir().unwrap();
    let keys = mote_package::generate_key().unwrap();
    let secret = mote_package::SecretKey::parse(&keys.secret, "ours.key", None).unwrap();
    let signature = mote_package::sign(ARCHIVE, &secret, "package:hello 0.1.0").unwrap();
    std::fs::write(dir.path().join("ours.key.pub"), &keys.public).unwrap();
    std::fs::write(dir.path().join("hello.mpkg"), ARCHIVE).unwrap();
    std::fs::write(dir.path().join("hello.mpkg.minisig"), &signature).unwrap();

    let out = minisign(
        &["-V", "-p", "ours.key.pub", "-m", "hello.mpkg"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(said.contains("package:hello 0.1.0"), "{said}");

    let mut changed = ARCHIVE.to_vec();
    changed[0] ^= 1;
    std::fs::write(dir.path().join("hello.mpkg"), &changed).unwrap();
    let out = minisign(
        &["-V", "-p", "ours.key.pub", "-m", "hello.mpkg"],
        dir.path(),
    );
    assert!(!out.status.success(), "minisign accepted a changed byte");
}

#[test]
fn we_verify_a_signature_made_by_minisign_and_sign_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = minisign(
        &["-G", "-W", "-f", "-p", "theirs.pub", "-s", "theirs.key"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(dir.path().join("app.mpkg"), ARCHIVE).unwrap();
    let out = minisign(
        &[
            "-S",
            "-s",
            "theirs.key",
            "-m",
            "app.mpkg",
            "-t",
            "built by minisign",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let public = mote_package::PublicKey::parse(&read("theirs.pub"), "theirs.pub").unwrap();
    let signer = mote_package::verify(
        ARCHIVE,
        Some(&read("app.mpkg.minisig")),
        std::slice::from_ref(&public),
    )
    .unwrap();
    assert_eq!(signer.key_id, public.key_id());
    assert_eq!(signer.trusted_comment, "built by minisign");
    // minisign 0.11 prints the id without leading zeros; the number is the same.
    let their_id = read("theirs.pub")
        .lines()
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .map(|id| u64::from_str_radix(id, 16).unwrap());
    assert_eq!(their_id, u64::from_str_radix(&public.key_id(), 16).ok());

    // Their secret key signs with our code, and their tool accepts it.
    let secret = mote_package::SecretKey::parse(&read("theirs.key"), "theirs.key", None).unwrap();
    let ours = mote_package::sign(ARCHIVE, &secret, "package:app 1.0.0").unwrap();
    std::fs::write(dir.path().join("app.mpkg.minisig"), ours).unwrap();
    let out = minisign(&["-V", "-p", "theirs.pub", "-m", "app.mpkg"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
}

//! Building and opening archives, and what opening refuses.

use super::*;
use mote_kernel::testing::executable_elf;

const MANIFEST: &str = "name = \"hello\"\nversion = \"0.1.0\"\ndescription = \"hi\"\n\
    [[files]]\nsource = \"bin:hello\"\ndestination = \"/usr/bin/hello\"\nmode = \"0755\"\n\
    [[files]]\nsource = \"index.html\"\ndestination = \"/srv/www/index.html\"\nowner = \"33:33\"\nmode = \"0640\"\n\
    [[files]]\nsource = \"link\"\ndestination = \"/usr/bin/hi\"\nmode = \"0777\"\n";

/// A package dir with a static "binary" in a bin dir, a page and a link.
fn fixture() -> (tempfile::TempDir, BuildOptions) {
    let dir = tempfile::tempdir().unwrap();
    let bins = dir.path().join("bins");
    fs::create_dir(&bins).unwrap();
    fs::write(bins.join("hello"), executable_elf(None)).unwrap();
    let pkg = dir.path().join("pkg");
    fs::create_dir(&pkg).unwrap();
    fs::write(pkg.join(MANIFEST_FILE), MANIFEST).unwrap();
    fs::write(pkg.join("index.html"), "<h1>hi</h1>\n").unwrap();
    std::os::unix::fs::symlink("hello", pkg.join("link")).unwrap();
    let options = BuildOptions {
        bin_dir: Some(bins),
        mtime: 0,
    };
    (dir, options)
}

fn pkg_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("pkg")
}

#[test]
fn two_builds_are_byte_identical_whatever_the_host_times_and_modes() {
    let (dir, options) = fixture();
    let first = build(&pkg_dir(&dir), &options).unwrap();
    // Touch and chmod the source: neither reaches the archive.
    let page = pkg_dir(&dir).join("index.html");
    fs::write(&page, "<h1>hi</h1>\n").unwrap();
    fs::set_permissions(&page, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let second = build(&pkg_dir(&dir), &options).unwrap();
    assert_eq!(first, second);
    let other_time = BuildOptions {
        mtime: 1_700_000_000,
        ..options
    };
    assert_ne!(first, build(&pkg_dir(&dir), &other_time).unwrap());
}

#[test]
fn a_built_package_opens_with_its_files_modes_owners_and_link() {
    let (dir, options) = fixture();
    let package = open(&build(&pkg_dir(&dir), &options).unwrap()).unwrap();
    assert_eq!(package.manifest.id(), "hello 0.1.0");
    let got: Vec<(&str, u32, u32)> = package
        .files
        .iter()
        .map(|f| (f.destination.as_str(), f.mode, f.uid))
        .collect();
    assert_eq!(
        got,
        [
            ("/srv/www/index.html", 0o640, 33),
            ("/usr/bin/hello", 0o755, 0),
            ("/usr/bin/hi", 0o777, 0)
        ]
    );
    assert_eq!(package.files[2].content, Content::Symlink("hello".into()));
    assert_eq!(package.sha256.len(), 64);
}

#[test]
fn long_paths_survive_the_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!("/usr/share/{}/{}", "d".repeat(90), "f".repeat(120));
    fs::write(
        dir.path().join(MANIFEST_FILE),
        format!(
            "name = \"long\"\nversion = \"1.0.0\"\ndescription = \"\"\n\
             [[files]]\nsource = \"f\"\ndestination = \"{long}\"\nmode = \"0644\"\n"
        ),
    )
    .unwrap();
    fs::write(dir.path().join("f"), "x").unwrap();
    let package = open(&build(dir.path(), &BuildOptions::default()).unwrap()).unwrap();
    assert_eq!(package.files[0].destination, long);
}

#[test]
fn a_dynamically_linked_binary_is_refused_at_build() {
    let (dir, options) = fixture();
    let bins = options.bin_dir.clone().unwrap();
    fs::write(
        bins.join("hello"),
        executable_elf(Some("/lib64/ld-linux-x86-64.so.2")),
    )
    .unwrap();
    let err = build(&pkg_dir(&dir), &options).unwrap_err().to_string();
    assert!(
        err.contains("dynamically linked (it asks for /lib64/ld-linux-x86-64.so.2)"),
        "{err}"
    );
    assert!(err.contains("crt-static"), "{err}");
}

#[test]
fn a_bin_source_without_a_bin_dir_says_how_to_give_one() {
    let (dir, _) = fixture();
    let err = build(&pkg_dir(&dir), &BuildOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bin:hello") && err.contains("--bin-dir"),
        "{err}"
    );
}

#[test]
fn an_escaping_source_link_is_refused_at_build() {
    let (dir, options) = fixture();
    let link = pkg_dir(&dir).join("link");
    fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../../../etc/shadow", &link).unwrap();
    let err = build(&pkg_dir(&dir), &options).unwrap_err();
    assert!(matches!(err, BuildError::EscapingLink { .. }), "{err}");
}

#[test]
fn links_are_judged_lexically_inside_files() {
    assert!(link_stays_inside("files/usr/bin/hi", "hello"));
    assert!(link_stays_inside("files/usr/bin/hi", "../lib/x"));
    assert!(link_stays_inside("files/usr/bin/hi", "../../etc/x"));
    assert!(!link_stays_inside("files/usr/bin/hi", "../../../etc/x"));
    assert!(!link_stays_inside("files/usr/bin/hi", "/etc/shadow"));
    assert!(!link_stays_inside("files/hi", ".."));
    assert!(!link_stays_inside("files/hi", ""));
}

/// A hand-made archive: `package.toml` then raw entries (name bytes
/// written straight into the header, as an attacker would).
fn raw_archive(manifest: &str, entries: &[(&str, tar::EntryType, &[u8], &str)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(manifest.len() as u64);
    h.set_mode(0o644);
    tar.append_data(&mut h, MANIFEST_FILE, manifest.as_bytes())
        .unwrap();
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        tar.append(&h, *data).unwrap();
    }
    zstd::stream::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap()
}

const ONE_FILE: &str = "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"\"\n\
    [[files]]\nsource = \"x\"\ndestination = \"/etc/a\"\nmode = \"0644\"\n";

#[test]
fn traversal_absolute_and_outside_paths_are_refused() {
    let regular = tar::EntryType::Regular;
    for name in [
        "files/../../etc/passwd",
        "/etc/passwd",
        "etc/passwd",
        "files/./a",
        "files//a",
    ] {
        let bytes = raw_archive(
            ONE_FILE,
            &[
                ("files/etc/a", regular, b"a", ""),
                (name, regular, b"x", ""),
            ],
        );
        let err = open(&bytes).unwrap_err();
        assert!(matches!(err, OpenError::UnsafePath { .. }), "{name}: {err}");
    }
}

#[test]
fn escaping_links_and_other_entry_types_are_refused() {
    let manifest = ONE_FILE.replace("/etc/a", "/etc/link");
    let bytes = raw_archive(
        &manifest,
        &[("files/etc/link", tar::EntryType::Symlink, b"", "../../..")],
    );
    assert!(matches!(
        open(&bytes).unwrap_err(),
        OpenError::EscapingLink { .. }
    ));
    let bytes = raw_archive(
        &manifest,
        &[(
            "files/etc/link",
            tar::EntryType::Symlink,
            b"",
            "/etc/shadow",
        )],
    );
    assert!(matches!(
        open(&bytes).unwrap_err(),
        OpenError::EscapingLink { .. }
    ));
    let bytes = raw_archive(
        &manifest,
        &[("files/etc/link", tar::EntryType::Link, b"", "files/etc/a")],
    );
    assert!(matches!(
        open(&bytes).unwrap_err(),
        OpenError::UnsupportedEntry { .. }
    ));
    let bytes = raw_archive(
        &manifest,
        &[("files/etc/link", tar::EntryType::Directory, b"", "")],
    );
    assert!(matches!(
        open(&bytes).unwrap_err(),
        OpenError::UnsupportedEntry { .. }
    ));
}

#[test]
fn the_archive_must_match_package_toml() {
    let regular = tar::EntryType::Regular;
    let ok = raw_archive(ONE_FILE, &[("files/etc/a", regular, b"a", "")]);
    open(&ok).unwrap();
    let missing = raw_archive(ONE_FILE, &[]);
    assert!(matches!(
        open(&missing).unwrap_err(),
        OpenError::Missing { .. }
    ));
    let extra = raw_archive(
        ONE_FILE,
        &[
            ("files/etc/a", regular, b"a", ""),
            ("files/etc/b", regular, b"b", ""),
        ],
    );
    assert!(matches!(
        open(&extra).unwrap_err(),
        OpenError::Undeclared { .. }
    ));
    let twice = raw_archive(
        ONE_FILE,
        &[
            ("files/etc/a", regular, b"a", ""),
            ("files/etc/a", regular, b"b", ""),
        ],
    );
    assert!(matches!(
        open(&twice).unwrap_err(),
        OpenError::Duplicate { .. }
    ));
    let mode = raw_archive(
        &ONE_FILE.replace("0644", "0755"),
        &[("files/etc/a", regular, b"a", "")],
    );
    let err = open(&mode).unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry \"files/etc/a\": mode 0644 differs from package.toml's 0755"
    );
    let dynamic = raw_archive(
        ONE_FILE,
        &[(
            "files/etc/a",
            regular,
            &executable_elf(Some("/lib/ld.so")),
            "",
        )],
    );
    assert!(matches!(
        open(&dynamic).unwrap_err(),
        OpenError::NotStatic { .. }
    ));
}

#[test]
fn what_is_not_a_package_says_so() {
    assert!(matches!(
        open(b"PK\x03\x04 a zip").unwrap_err(),
        OpenError::NotAnArchive(_)
    ));
    let no_manifest = {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        tar.append_data(&mut h, "files/a", &b"a"[..]).unwrap();
        zstd::stream::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap()
    };
    assert!(matches!(
        open(&no_manifest).unwrap_err(),
        OpenError::NoManifest { .. }
    ));
}

#[test]
fn too_many_entries_are_refused() {
    let names: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("files/{i}")).collect();
    let entries: Vec<(&str, tar::EntryType, &[u8], &str)> = names
        .iter()
        .map(|n| (n.as_str(), tar::EntryType::Regular, &b""[..], ""))
        .collect();
    let err = open(&raw_archive(ONE_FILE, &entries)).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::TooLarge {
                what: "the number of entries",
                ..
            }
        ),
        "{err}"
    );
}

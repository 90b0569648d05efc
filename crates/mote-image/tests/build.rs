//! `build` against a fake kernel, fake modules and fake static binaries.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mote_image::{build, BuildInputs, BuildReport, ImageBuildError};
use mote_kernel::testing::{executable_elf, module_elf};
use mote_kernel::ResolvedKernel;

const VERSION: &str = "6.1.0-test";

const MANIFEST: &str = r#"
[image]
name = "hello"

[kernel]
drivers = ["virtio"]

[system]
hostname = "hello"
admin_password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"

[network.interfaces.eth0]
ipv4 = "dhcp"

[[files]]
source = "bin:mote-hello"
destination = "/usr/bin/hello"
mode = "0755"

[[files]]
source = "site"
destination = "/var/www"
owner = "33:33"

[services.hello]
argv = ["/usr/bin/hello", "--port", "8080"]
user = "nobody"
ports = [8080]
"#;

/// A manifest directory, a bin dir and a kernel, all fake.
struct Fixture {
    dir: tempfile::TempDir,
    kernel: ResolvedKernel,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |path: &str, bytes: &[u8], mode: u32| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("bin/mote-init", &executable_elf(None), 0o755);
        write("bin/moted", &executable_elf(None), 0o755);
        write("bin/mote-hello", &executable_elf(None), 0o700);
        write(
            "bin/dynamic",
            &executable_elf(Some("/lib64/ld-linux-x86-64.so.2")),
            0o755,
        );
        write("m/site/index.html", b"<h1>hi</h1>\n", 0o644);
        write("m/site/css/a.css", b"h1{}", 0o600);
        std::os::unix::fs::symlink("index.html", root.join("m/site/home.html")).unwrap();

        let modules = format!("kernel/lib/modules/{VERSION}");
        write(
            &format!("{modules}/modules.builtin"),
            b"kernel/drivers/acpi/button.ko\nkernel/drivers/block/virtio_blk.ko\n",
            0o644,
        );
        for (path, deps) in [
            ("kernel/drivers/virtio/virtio.ko", &[][..]),
            ("kernel/drivers/virtio/virtio_ring.ko", &[][..]),
            (
                "kernel/drivers/virtio/virtio_pci.ko",
                &["virtio_ring", "virtio"][..],
            ),
            (
                "kernel/drivers/virtio/virtio_mmio.ko",
                &["virtio_ring", "virtio"][..],
            ),
            (
                "kernel/drivers/net/virtio_net.ko",
                &["virtio_ring", "virtio"][..],
            ),
            (
                "kernel/drivers/char/virtio_console.ko",
                &["virtio_ring", "virtio"][..],
            ),
            (
                "kernel/drivers/char/hw_random/virtio-rng.ko",
                &["virtio_ring", "virtio"][..],
            ),
            ("kernel/drivers/input/evdev.ko", &[][..]),
            ("kernel/net/netfilter/nfnetlink.ko", &[][..]),
            ("kernel/net/netfilter/nf_tables.ko", &["nfnetlink"][..]),
            (
                "kernel/net/netfilter/nft_ct.ko",
                &["nf_tables", "nf_conntrack"][..],
            ),
        ] {
            let name = Path::new(path)
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .replace('-', "_");
            write(
                &format!("{modules}/{path}"),
                &module_elf(&name, deps),
                0o644,
            );
        }
        let conntrack = zstd::encode_all(&module_elf("nf_conntrack", &[])[..], 3).unwrap();
        write(
            &format!("{modules}/kernel/net/netfilter/nf_conntrack.ko.zst"),
            &conntrack,
            0o644,
        );
        write("kernel/vmlinuz", b"not really a kernel", 0o644);
        write("m/hello.toml", MANIFEST.as_bytes(), 0o644);

        let kernel = ResolvedKernel {
            version: VERSION.into(),
            package: Some("linux-image-test 1.0".into()),
            vmlinuz: root.join("kernel/vmlinuz"),
            modules_dir: root.join(modules),
            from_cache: true,
        };
        Self { dir, kernel }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    fn build_text(&self, text: &str, out: &str) -> Result<BuildReport, ImageBuildError> {
        let manifest: mote_config::Manifest = toml::from_str(text).unwrap();
        let manifest_path = self.path("m/hello.toml");
        let bin_dir = self.path("bin");
        let inputs = BuildInputs {
            manifest: &manifest,
            manifest_path: &manifest_path,
            manifest_text: text,
            bin_dir: &bin_dir,
            kernel: &self.kernel,
        };
        build(&inputs, &self.path(out), &mut |_| {})
    }

    fn build(&self, out: &str) -> BuildReport {
        self.build_text(MANIFEST, out)
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// One archive entry as read back.
#[derive(Debug)]
struct Entry {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u32,
    rdev: (u32, u32),
    data: Vec<u8>,
}

/// Reads a newc archive up to its trailer.
fn read_cpio(bytes: &[u8]) -> BTreeMap<String, Entry> {
    let mut entries = BTreeMap::new();
    let mut at = 0;
    loop {
        assert_eq!(&bytes[at..at + 6], b"070701");
        let field = |i: usize| {
            u32::from_str_radix(
                std::str::from_utf8(&bytes[at + 6 + i * 8..at + 14 + i * 8]).unwrap(),
                16,
            )
            .unwrap()
        };
        let (size, namesize) = (field(6) as usize, field(11) as usize);
        let name = String::from_utf8(bytes[at + 110..at + 110 + namesize - 1].to_vec()).unwrap();
        let data_at = (at + 110 + namesize).next_multiple_of(4);
        let entry = Entry {
            ino: field(0),
            mode: field(1),
            uid: field(2),
            gid: field(3),
            mtime: field(5),
            rdev: (field(9), field(10)),
            data: bytes[data_at..data_at + size].to_vec(),
        };
        at = (data_at + size).next_multiple_of(4);
        if name == "TRAILER!!!" {
            assert_eq!(at, bytes.len());
            return entries;
        }
        assert!(entries.insert(name, entry).is_none());
    }
}

/// The two zstd frames of an initrd.img, decompressed and read.
fn segments(initrd: &[u8]) -> (usize, BTreeMap<String, Entry>, BTreeMap<String, Entry>) {
    let first = zstd::zstd_safe::find_frame_compressed_size(initrd).unwrap();
    let second = zstd::zstd_safe::find_frame_compressed_size(&initrd[first..]).unwrap();
    assert_eq!(first + second, initrd.len(), "exactly two zstd frames");
    let userland = zstd::decode_all(&initrd[..first]).unwrap();
    let modules = zstd::decode_all(&initrd[first..]).unwrap();
    (first, read_cpio(&userland), read_cpio(&modules))
}

#[test]
fn image_layout_and_report() {
    let fixture = Fixture::new();
    let report = fixture.build("out");
    let out = fixture.path("out");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["build.json", "cmdline", "initrd.img", "vmlinuz"],
        "no temporary files left"
    );
    assert_eq!(
        std::fs::read(out.join("vmlinuz")).unwrap(),
        b"not really a kernel"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("cmdline")).unwrap(),
        "console=ttyS0 quiet panic=-1\n"
    );

    let initrd = std::fs::read(out.join("initrd.img")).unwrap();
    let (first, userland, modules) = segments(&initrd);

    // The userland.
    for dir in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "state",
        "etc",
        "etc/mote",
        "usr/bin",
        "var",
        "lib/modules/6.1.0-test",
    ] {
        assert_eq!(
            userland[dir].mode & 0o170000,
            0o040000,
            "{dir} is a directory"
        );
    }
    assert_eq!(userland["tmp"].mode, 0o041777);
    let console = &userland["dev/console"];
    assert_eq!((console.mode, console.rdev), (0o020600, (5, 1)));
    assert_eq!(userland["init"].mode, 0o100755);
    assert_eq!(userland["init"].data, executable_elf(None));
    // [management] is on by default: the agent goes in.
    assert_eq!(userland["usr/bin/moted"].mode, 0o100755);
    assert_eq!(userland["usr/bin/moted"].data, executable_elf(None));
    let settings: mote_config::NodeSettings =
        serde_json::from_slice(&userland["etc/mote/settings.json"].data).unwrap();
    let manifest: mote_config::Manifest = toml::from_str(MANIFEST).unwrap();
    assert_eq!(settings, manifest.settings());
    let passwd = String::from_utf8(userland["etc/passwd"].data.clone()).unwrap();
    assert!(
        passwd.starts_with("root:x:0:0:") && passwd.contains("\nnobody:x:65534:65534:"),
        "{passwd}"
    );
    assert!(String::from_utf8_lossy(&userland["etc/group"].data).contains("nobody:x:65534:"));
    assert_eq!(userland["etc/hostname"].data, b"hello\n");

    // [[files]]: bin: resolution with the manifest's mode, a directory with its owner.
    assert_eq!(userland["usr/bin/hello"].mode, 0o100755);
    assert_eq!(userland["var/www"].mode & 0o170000, 0o040000);
    let index = &userland["var/www/index.html"];
    assert_eq!(
        (index.uid, index.gid, index.mode, index.data.as_slice()),
        (33, 33, 0o100644, &b"<h1>hi</h1>\n"[..])
    );
    assert_eq!(userland["var/www/css/a.css"].mode, 0o100600);
    assert_eq!(
        (
            userland["var/www/home.html"].mode,
            userland["var/www/home.html"].data.as_slice()
        ),
        (0o120777, &b"index.html"[..])
    );
    assert!(userland.values().all(|e| e.mtime == 0));
    assert!(userland
        .keys()
        .all(|name| !name.starts_with("lib/modules/6.1.0-test/")));

    // The modules, in load order, decompressed, in the second segment only.
    let list = String::from_utf8(userland["etc/mote/modules"].data.clone()).unwrap();
    let lines: Vec<&str> = list.lines().collect();
    let position = |name: &str| {
        lines
            .iter()
            .position(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not in {list}"))
    };
    assert!(position("/virtio.ko") < position("/virtio_pci.ko"));
    assert!(position("/virtio_ring.ko") < position("/virtio_net.ko"));
    assert!(position("/nfnetlink.ko") < position("/nf_tables.ko"));
    assert!(position("/nf_conntrack.ko") < position("/nft_ct.ko"));
    assert!(
        !list.contains("button") && !list.contains("virtio_blk"),
        "built-ins are not loaded: {list}"
    );
    assert!(list.contains("kernel/drivers/char/hw_random/virtio-rng.ko\n"));
    for line in &lines {
        let entry = &modules[&format!("lib/modules/6.1.0-test/{line}")];
        assert_eq!(entry.mode, 0o100644);
    }
    assert_eq!(
        modules["lib/modules/6.1.0-test/kernel/net/netfilter/nf_conntrack.ko"].data,
        module_elf("nf_conntrack", &[])
    );
    assert!(!modules.contains_key("lib") && !modules.contains_key("lib/modules/6.1.0-test"));
    assert!(modules.contains_key("lib/modules/6.1.0-test/kernel/net/netfilter"));
    let mut inodes: Vec<u32> = userland
        .values()
        .chain(modules.values())
        .map(|e| e.ino)
        .collect();
    inodes.sort_unstable();
    assert_eq!(
        inodes,
        (1..=inodes.len() as u32).collect::<Vec<_>>(),
        "inodes numbered 1, 2, 3… across both segments"
    );

    // The report, also in build.json.
    assert_eq!(report.modules.len(), lines.len());
    assert_eq!(
        report.modules.last().map(String::as_str),
        Some("evdev"),
        "NODE_MODULES come after the drivers"
    );
    assert_eq!(report.kernel.version, VERSION);
    assert_eq!(
        report.kernel.package.as_deref(),
        Some("linux-image-test 1.0")
    );
    assert!(report.packages.is_empty());
    assert_eq!(report.manifest.sha256.len(), 64);
    let sizes = report.sizes;
    assert_eq!(sizes.kernel, 19);
    assert_eq!(sizes.initramfs, initrd.len() as u64);
    assert_eq!(sizes.userland_compressed, first as u64);
    assert_eq!(
        sizes.userland_compressed + sizes.modules_compressed,
        sizes.initramfs
    );
    let userland_raw = zstd::decode_all(&initrd[..first]).unwrap();
    assert_eq!(sizes.userland_uncompressed, userland_raw.len() as u64);
    let files: Vec<(&str, &str)> = report
        .files
        .iter()
        .map(|f| (f.destination.as_str(), f.mode.as_str()))
        .collect();
    assert!(
        files.contains(&("/init", "0755")) && files.contains(&("/usr/bin/hello", "0755")),
        "{files:?}"
    );
    assert!(files.contains(&("/var/www/css/a.css", "0600")), "{files:?}");
    let on_disk: BuildReport =
        serde_json::from_slice(&std::fs::read(out.join("build.json")).unwrap()).unwrap();
    assert_eq!(on_disk, report);
}

#[test]
fn same_inputs_same_bytes() {
    let fixture = Fixture::new();
    let mut first = fixture.build("a");
    let mut second = fixture.build("b");
    for file in ["initrd.img", "vmlinuz", "cmdline"] {
        let a = std::fs::read(fixture.path("a").join(file)).unwrap();
        let b = std::fs::read(fixture.path("b").join(file)).unwrap();
        assert!(a == b, "{file} differs between two builds");
    }
    // Building again over an existing image replaces it in place.
    let third = fixture.build("a");
    assert_eq!(
        std::fs::read(fixture.path("a/initrd.img")).unwrap(),
        std::fs::read(fixture.path("b/initrd.img")).unwrap()
    );
    assert_eq!(third.sizes, first.sizes);
    first.build_ms = 0;
    second.build_ms = 0;
    assert_eq!(first, second, "only build_ms may differ");
}

fn with_files(files: &str) -> String {
    let base = MANIFEST.split("[services.hello]").next().unwrap();
    format!("{base}{files}")
}

fn error(fixture: &Fixture, text: &str) -> String {
    let err = fixture.build_text(text, "out").unwrap_err();
    assert!(
        !fixture.path("out/initrd.img").exists(),
        "nothing written on error"
    );
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    message
}

#[test]
fn dynamically_linked_files_are_refused() {
    let fixture = Fixture::new();
    let message = error(
        &fixture,
        &with_files("[[files]]\nsource = \"bin:dynamic\"\ndestination = \"/usr/bin/dyn\"\n"),
    );
    assert!(
        message.contains(&format!(
            "{}: dynamically linked",
            fixture.path("bin/dynamic").display()
        )),
        "{message}"
    );
    assert!(
        message.contains("RUSTFLAGS='-C target-feature=+crt-static'"),
        "{message}"
    );
}

#[test]
fn missing_binaries_say_how_to_build_them() {
    let fixture = Fixture::new();
    let message = error(
        &fixture,
        &with_files("[[files]]\nsource = \"bin:nothing\"\ndestination = \"/usr/bin/x\"\n"),
    );
    assert!(
        message.contains("bin:nothing") && message.contains("cargo build --release"),
        "{message}"
    );

    std::fs::remove_file(fixture.path("bin/mote-init")).unwrap();
    let message = error(&fixture, MANIFEST);
    assert!(
        message.contains(&format!(
            "{} not found",
            fixture.path("bin/mote-init").display()
        )),
        "{message}"
    );
    assert!(message.contains("cargo build --release"), "{message}");
}

#[test]
fn management_needs_moted_unless_disabled() {
    let fixture = Fixture::new();
    std::fs::remove_file(fixture.path("bin/moted")).unwrap();
    let message = error(&fixture, MANIFEST);
    assert!(
        message.contains(&format!(
            "{} not found",
            fixture.path("bin/moted").display()
        )) && message.contains("cargo build --release"),
        "{message}"
    );
    let without = format!("{MANIFEST}\n[management]\nenabled = false\n");
    fixture
        .build_text(&without, "out")
        .expect("no moted needed when management is off");
}

#[test]
fn destinations_of_mote_and_duplicates_are_refused() {
    let fixture = Fixture::new();
    for destination in [
        "/init",
        "/etc/mote/settings.json",
        "/etc/mote",
        "/etc/passwd",
        "/lib/modules/x",
    ] {
        let text = with_files(&format!(
            "[[files]]\nsource = \"site/index.html\"\ndestination = \"{destination}\"\n"
        ));
        let message = error(&fixture, &text);
        assert!(
            message.starts_with(&format!("[[files]] {destination}: "))
                && message.ends_with("choose another destination"),
            "{message}"
        );
    }
    let text = with_files(
        "[[files]]\nsource = \"site/index.html\"\ndestination = \"/var/www/index.html\"\n",
    );
    let message = error(&fixture, &text);
    assert_eq!(
        message,
        "[[files]] /var/www/index.html: already in the image from [[files]] source \"site\""
    );
    let message = error(
        &fixture,
        &with_files("[[files]]\nsource = \"site\"\ndestination = \"var/www\"\n"),
    );
    assert!(message.contains("must be an absolute path"), "{message}");
    let message = error(
        &fixture,
        &with_files("[[files]]\nsource = \"nope\"\ndestination = \"/x\"\n"),
    );
    assert!(
        message.contains("[[files]] /x: source") && message.contains("m/nope cannot be read"),
        "{message}"
    );
}

#[test]
fn a_trailing_slash_keeps_the_source_name() {
    let fixture = Fixture::new();
    let report = fixture
        .build_text(&with_files("[[files]]\nsource = \"site/index.html\"\ndestination = \"/srv/\"\nmode = \"0640\"\n"), "out")
        .unwrap();
    assert!(report
        .files
        .iter()
        .any(|f| f.destination == "/srv/index.html" && f.mode == "0640"));
}

#[test]
fn services_need_their_program() {
    let fixture = Fixture::new();
    let text = MANIFEST.replace("argv = [\"/usr/bin/hello\"", "argv = [\"/usr/bin/missing\"");
    let message = error(&fixture, &text);
    assert_eq!(message, "services.hello.argv: /usr/bin/missing is not an executable file in the image; copy it in with [[files]] (mode \"0755\")");
}

#[test]
fn unknown_drivers_name_the_kernel_and_the_nearest() {
    let fixture = Fixture::new();
    let message = error(
        &fixture,
        &MANIFEST.replace("drivers = [\"virtio\"]", "drivers = [\"virtio_nett\"]"),
    );
    assert!(
        message.starts_with(&format!(
            "kernel modules in {}",
            fixture.kernel.modules_dir.display()
        )),
        "{message}"
    );
    assert!(
        message.contains("module `virtio_nett` is not in this kernel (did you mean virtio_net"),
        "{message}"
    );
}

#[test]
fn the_web_package_installs_mote_web_a_default_site_and_page() {
    let fixture = Fixture::new();
    let text = format!("packages = [\"web\"]\n{MANIFEST}");
    // No signed roles beside the binaries: refused, saying how to make them.
    let message = error(&fixture, &text);
    assert!(
        message.contains("no signed package") && message.contains("mote package roles"),
        "{message}"
    );
    // Packed unsigned for development, but mote-web is not built.
    let unsigned = format!("[packages]\ninstall = [\"web\"]\nallow_unsigned = true\n{MANIFEST}");
    let message = error(&fixture, &unsigned);
    assert!(
        message.starts_with("packages: web: reading ")
            && message.contains(&fixture.path("bin/mote-web").display().to_string())
            && message.contains("cargo build --release"),
        "{message}"
    );
    std::fs::write(fixture.path("bin/mote-web"), executable_elf(None)).unwrap();
    std::fs::set_permissions(
        fixture.path("bin/mote-web"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let report = fixture.build_text(&unsigned, "out0").unwrap();
    assert!(matches!(
        report.packages[0].origin,
        mote_image::Origin::Unsigned { .. }
    ));

    // The build's signed roles (`mote package roles`): taken, and the node
    // trusts their key.
    let keys = mote_package::generate_key().unwrap();
    let secret = mote_package::SecretKey::parse(&keys.secret, "k", None).unwrap();
    let bin = fixture.path("bin");
    let packed =
        mote_image::roles::pack_all(&bin, &secret, &keys.public, &bin.join("roles")).unwrap();
    assert_eq!(packed[0].name, "web");
    let report = fixture.build_text(&text, "out").unwrap();
    assert_eq!(report.packages.len(), 1);
    assert_eq!(report.packages[0].name, "web");
    assert!(
        matches!(&report.packages[0].origin, mote_image::Origin::Role { key_id, .. } if *key_id == keys.key_id),
        "{:?}",
        report.packages[0].origin
    );
    let initrd = std::fs::read(fixture.path("out/initrd.img")).unwrap();
    let (_, userland, _) = segments(&initrd);
    assert_eq!(
        userland[&format!("etc/mote/trust/{}.pub", keys.key_id)].data,
        keys.public.as_bytes()
    );

    let initrd = std::fs::read(fixture.path("out/initrd.img")).unwrap();
    let (_, userland, _) = segments(&initrd);
    assert_eq!(userland["usr/bin/mote-web"].mode, 0o100755);
    let page = String::from_utf8_lossy(&userland["srv/www/index.html"].data).into_owned();
    assert!(page.contains("mote web"), "{page}");
    let passwd = String::from_utf8_lossy(&userland["etc/passwd"].data).into_owned();
    assert!(passwd.contains("\nwww-data:x:33:33:"), "{passwd}");
    let settings: serde_json::Value =
        serde_json::from_slice(&userland["etc/mote/settings.json"].data).unwrap();
    assert_eq!(settings["packages"], serde_json::json!(["web"]));
    let record =
        String::from_utf8_lossy(&userland["usr/lib/mote/packages/web.toml"].data).into_owned();
    let record = mote_package::PackageManifest::parse(&record, Path::new("web.toml")).unwrap();
    assert_eq!(record.services["web"].capabilities, ["net_bind_service"]);
    let site = &settings["roles"]["web"]["sites"][0];
    assert_eq!(site["name"], "default");
    assert_eq!(site["root"], "/srv/www");
    assert_eq!(site["bindings"][0]["port"], 80);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture.path("out/build.json")).unwrap()).unwrap();
    assert_eq!(json["packages"][0]["name"], "web");
    assert_eq!(json["packages"][0]["origin"]["kind"], "role");

    // A role package changed after signing: refused.
    let original = std::fs::read(&packed[0].file).unwrap();
    let mut changed = original.clone();
    let middle = changed.len() / 2;
    changed[middle] ^= 1;
    std::fs::write(&packed[0].file, &changed).unwrap();
    std::fs::remove_dir_all(fixture.path("out")).unwrap();
    let message = error(&fixture, &text);
    assert!(message.contains("signed index says"), "{message}");
    std::fs::write(&packed[0].file, &original).unwrap();

    // The user's page and roles.web win.
    let text = format!(
        "packages = [\"web\"]\n{}[[files]]\nsource = \"site/\"\ndestination = \"/srv/www/\"\n\
         [[roles.web.sites]]\nname = \"mine\"\nroot = \"/srv/www/site\"\n\
         bindings = [{{ scheme = \"http\", port = 8080 }}]\n",
        with_files("")
    );
    fixture.build_text(&text, "out2").unwrap();
    let initrd = std::fs::read(fixture.path("out2/initrd.img")).unwrap();
    let (_, userland, _) = segments(&initrd);
    let settings: serde_json::Value =
        serde_json::from_slice(&userland["etc/mote/settings.json"].data).unwrap();
    assert_eq!(settings["roles"]["web"]["sites"][0]["name"], "mine");
    assert!(userland.contains_key("srv/www/site/index.html"));
}

/// A package of one's own: `./app.mpkg` with its signature, trusted by
/// `[packages] trusted_keys`; refused unsigned, tampered, untrusted or
/// with a missing dependency, unless `allow_unsigned`; a section with no
/// package reading it is refused.
#[test]
fn a_signed_package_file_is_installed_offline_and_trust_is_enforced() {
    let fixture = Fixture::new();
    let pkg = fixture.path("app");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(
        pkg.join("package.toml"),
        "name = \"app\"\nversion = \"1.2.0\"\ndescription = \"an app\"\n\
         [[files]]\nsource = \"app.conf\"\ndestination = \"/etc/app.conf\"\nmode = \"0640\"\n\
         [[users]]\nname = \"app\"\nuid = 900\n\
         [services.app]\nargv = [\"/usr/bin/hello\"]\nuser = \"900:900\"\nports = [9000]\n",
    )
    .unwrap();
    std::fs::write(pkg.join("app.conf"), "port = 9000\n").unwrap();
    let archive = mote_package::build(&pkg, &Default::default()).unwrap();
    let keys = mote_package::generate_key().unwrap();
    let secret = mote_package::SecretKey::parse(&keys.secret, "k", None).unwrap();
    let m = fixture.path("m");
    std::fs::write(m.join("app.mpkg"), &archive).unwrap();
    std::fs::write(m.join("me.pub"), &keys.public).unwrap();
    let manifest = |extra: &str| {
        format!(
            "[packages]\ninstall = [\"./app.mpkg\"]\ntrusted_keys = [\"me.pub\"]\n{extra}{MANIFEST}"
        )
    };

    let message = error(&fixture, &manifest(""));
    assert!(
        message.starts_with("packages: ./app.mpkg: the package is not signed"),
        "{message}"
    );
    let signature = mote_package::sign(&archive, &secret, "app").unwrap();
    std::fs::write(m.join("app.mpkg.minisig"), &signature).unwrap();
    let report = fixture.build_text(&manifest(""), "ok").unwrap();
    assert_eq!(report.packages[0].name, "app");
    assert!(
        matches!(&report.packages[0].origin, mote_image::Origin::Signed { key_id, .. } if *key_id == keys.key_id)
    );
    let initrd = std::fs::read(fixture.path("ok/initrd.img")).unwrap();
    let (_, userland, _) = segments(&initrd);
    assert_eq!(userland["etc/app.conf"].data, b"port = 9000\n");
    assert_eq!(userland["etc/app.conf"].mode, 0o100640);
    let passwd = String::from_utf8_lossy(&userland["etc/passwd"].data).into_owned();
    assert!(passwd.contains("\napp:x:900:900:"), "{passwd}");
    assert!(userland.contains_key(&format!("etc/mote/trust/{}.pub", keys.key_id)));
    assert!(!userland.contains_key("etc/mote/trust/allow-unsigned"));
    let settings: serde_json::Value =
        serde_json::from_slice(&userland["etc/mote/settings.json"].data).unwrap();
    assert_eq!(settings["packages"], serde_json::json!(["app"]));

    // One byte changed: tampered.
    let mut tampered = archive.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    std::fs::write(m.join("app.mpkg"), &tampered).unwrap();
    let message = error(&fixture, &manifest(""));
    assert!(
        message.contains("./app.mpkg") && message.contains("tampered"),
        "{message}"
    );
    std::fs::write(m.join("app.mpkg"), &archive).unwrap();

    // Signed by a key nobody trusts.
    let other = mote_package::generate_key().unwrap();
    std::fs::write(m.join("me.pub"), &other.public).unwrap();
    let message = error(&fixture, &manifest(""));
    assert!(message.contains("trusted_keys does not list"), "{message}");
    // ... which allow_unsigned lets in, and the image says so.
    let report = fixture
        .build_text(&manifest("allow_unsigned = true\n"), "out3")
        .unwrap();
    assert!(matches!(
        report.packages[0].origin,
        mote_image::Origin::Unsigned { .. }
    ));
    let initrd = std::fs::read(fixture.path("out3/initrd.img")).unwrap();
    let (_, userland, _) = segments(&initrd);
    assert!(userland.contains_key("etc/mote/trust/allow-unsigned"));

    // A dependency that is not there names both packages.
    std::fs::write(
        pkg.join("package.toml"),
        "name = \"app\"\nversion = \"1.2.0\"\ndescription = \"an app\"\n\
         [dependencies]\ndb = \"^2\"\n",
    )
    .unwrap();
    std::fs::write(
        m.join("app.mpkg"),
        mote_package::build(&pkg, &Default::default()).unwrap(),
    )
    .unwrap();
    let message = error(&fixture, &manifest("allow_unsigned = true\n"));
    assert!(
        message.contains("app 1.2.0") && message.contains("db"),
        "{message}"
    );

    // From a repository whose index a trusted key signed; refused when the
    // index is signed by another key or a file was replaced.
    std::fs::write(
        pkg.join("package.toml"),
        "name = \"app\"\nversion = \"1.3.0\"\ndescription = \"an app\"\n",
    )
    .unwrap();
    let repo = m.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("app-1.3.0.mpkg"),
        mote_package::build(&pkg, &Default::default()).unwrap(),
    )
    .unwrap();
    let index = mote_package::repository::Index::of_directory(&repo)
        .unwrap()
        .to_json();
    std::fs::write(repo.join("index.json"), &index).unwrap();
    let sign_index = |key: &mote_package::SecretKey| {
        let sig = mote_package::sign(index.as_bytes(), key, "index").unwrap();
        std::fs::write(repo.join("index.json.minisig"), sig).unwrap();
    };
    std::fs::write(m.join("me.pub"), &keys.public).unwrap();
    sign_index(&secret);
    let from_repo = format!(
        "[packages]\ninstall = [\"app\"]\nrepositories = [\"repo\"]\ntrusted_keys = [\"me.pub\"]\n{MANIFEST}"
    );
    let report = fixture.build_text(&from_repo, "out4").unwrap();
    assert_eq!(report.packages[0].version, "1.3.0");
    assert!(
        matches!(&report.packages[0].origin, mote_image::Origin::Repository { repository, .. } if repository == "repo")
    );
    let stranger = mote_package::SecretKey::parse(&other.secret, "o", None).unwrap();
    sign_index(&stranger);
    let message = error(&fixture, &from_repo);
    assert!(
        message.contains("repository repo") && message.contains("not trusted"),
        "{message}"
    );
    sign_index(&secret);
    std::fs::write(repo.join("app-1.3.0.mpkg"), b"replaced").unwrap();
    let message = error(&fixture, &from_repo);
    assert!(message.contains("signed index says"), "{message}");

    // A section no installed package reads.
    let message = error(&fixture, &format!("{MANIFEST}[roles.nothing]\nx = 1\n"));
    assert!(message.contains("roles.nothing"), "{message}");
}

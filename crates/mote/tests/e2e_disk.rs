//! Disk images end to end: `examples/hello.toml` built with every output
//! twice gives byte-identical files; `qemu-img` checks the qcow2 and the
//! VHDX and reads their formats and sizes; the qcow2, enlarged as a user
//! enlarges a cloud volume, boots under OVMF and serves through a forward,
//! its state partition grown to the disk; a host name set over the API is
//! the one the page shows after a power-off and a boot of the same disk;
//! the VHDX and the fixed VHD boot and serve too.
//!
//! Needs what `e2e_hello.rs` needs, plus OVMF, qemu-img and Debian's
//! systemd-boot stub (`cargo xtask test` installs them). Skipped only when
//! `MOTE_SKIP_VM=1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod vm;
use vm::*;

const FORMATS: &str = "uki,raw,qcow2,vhdx,vhd";
const FILES: [&str; 5] = [
    "hello.efi",
    "hello.raw",
    "hello.qcow2",
    "hello.vhdx",
    "hello.vhd",
];

fn build(st: &Path, out: &str) -> PathBuf {
    let dir = st.join(out);
    let built = mote(st)
        .args(["build", "examples/hello.toml", "--format", FORMATS, "-o"])
        .arg(&dir)
        .output()
        .expect("mote build runs");
    assert!(
        built.status.success(),
        "mote build --format {FORMATS} failed: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    dir
}

fn qemu_img(args: &[&str], file: &Path) -> String {
    let out = Command::new("qemu-img")
        .args(args)
        .arg(file)
        .output()
        .expect("qemu-img runs (apt-get install qemu-utils)");
    assert!(
        out.status.success(),
        "qemu-img {args:?} {}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `mote image inspect --json DISK`: the disk as read from the host.
fn inspect(st: &Path, disk: &Path) -> serde_json::Value {
    let out = mote(st)
        .args(["image", "inspect", "--json"])
        .arg(disk)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mote image inspect {}: {}",
        disk.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn state_bytes(st: &Path, name: &str) -> u64 {
    let perf = remote(st, name, &["perf"]);
    perf["disks"]
        .as_array()
        .and_then(|d| {
            d.iter()
                .find(|d| d["path"].as_str().is_some_and(|p| p.starts_with("/state")))
        })
        .and_then(|d| d["total_bytes"].as_u64())
        .unwrap_or_else(|| panic!("no /state in the node's disks: {perf}"))
}

#[test]
fn disks_are_reproducible_valid_and_boot_under_uefi_keeping_their_state() {
    if !prerequisites(&["mote-init", "moted", "mote-hello"]) {
        return;
    }
    assert!(
        Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd").exists()
            || Path::new("/usr/share/OVMF/OVMF_CODE.fd").exists(),
        "OVMF is missing: run `cargo xtask test` (installs it) or apt-get install ovmf"
    );
    let state = tempfile::tempdir().expect("temp dir");
    let st = state.path();

    // Reproducible: two builds, the same bytes in every output.
    let a = build(st, "a");
    let b = build(st, "b");
    for file in FILES {
        let (x, y) = (std::fs::read(a.join(file)), std::fs::read(b.join(file)));
        assert!(
            x.as_ref().ok() == y.as_ref().ok() && x.is_ok(),
            "{file} differs between two builds of the same manifest"
        );
    }

    // qemu-img: valid, the right format, the disk's size.
    let raw_size = std::fs::metadata(a.join("hello.raw")).unwrap().len();
    assert!(
        raw_size <= 64 << 20,
        "the disk is {raw_size} bytes, over 64 MiB"
    );
    for (file, format) in [("hello.qcow2", "qcow2"), ("hello.vhdx", "vhdx")] {
        qemu_img(&["check"], &a.join(file));
        let info: serde_json::Value =
            serde_json::from_str(&qemu_img(&["info", "--output=json"], &a.join(file))).unwrap();
        assert_eq!(info["format"], format, "{info}");
        assert_eq!(info["virtual-size"].as_u64(), Some(raw_size), "{info}");
    }
    let vhd = std::fs::read(a.join("hello.vhd")).unwrap();
    assert_eq!(vhd.len() as u64, raw_size + 512);
    assert_eq!(&vhd[vhd.len() - 512..][..8], b"conectix", "VHD footer");

    // Inspected without booting: what the disk will boot with.
    for file in [
        "hello.qcow2",
        "hello.vhdx",
        "hello.vhd",
        "hello.raw",
        "hello.efi",
    ] {
        let seen = inspect(st, &a.join(file));
        assert_eq!(seen["settings"]["system"]["hostname"], "hello", "{file}");
        assert_eq!(seen["uki"]["signed"], false, "{file}");
        assert!(seen["uki"]["cmdline"]
            .as_str()
            .unwrap()
            .contains("console=ttyS0"));
        if file != "hello.efi" {
            let names: Vec<&str> = seen["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["ESP", "mote-state"], "{file}");
        }
    }

    // The qcow2, enlarged to 256 MiB, boots under UEFI and serves; PID 1
    // grew the state partition to the new size.
    let qcow2 = a.join("hello.qcow2");
    let resized = Command::new("qemu-img")
        .args(["resize", "-q"])
        .arg(&qcow2)
        .arg("256M")
        .status()
        .unwrap();
    assert!(resized.success(), "qemu-img resize");
    let http = free_port();
    let name = "e2e-disk";
    let node = boot(st, &qcow2, name, &[(http, 8080)]);
    let body = wait_for("hello on the disk", Duration::from_secs(30), || {
        get(http, "/", "3").ok()
    });
    assert!(body.contains("hello from hello"), "{body}");
    let grown = state_bytes(st, name);
    assert!(
        grown > 180 << 20,
        "the state file system is {grown} bytes on a 256 MiB disk: not grown"
    );

    // A setting changed over the API is what the node serves after a
    // power-off and a boot of the same disk.
    remote(st, name, &["settings", "set", "system.hostname", "web02"]);
    stop(st, name, node);
    // Read from the host, off the disk itself: the state partition now
    // reaches the enlarged disk's end.
    let on_disk = inspect(st, &qcow2);
    let partition = on_disk["partitions"][1]["size"].as_u64().unwrap_or(0);
    assert!(
        partition > 200 << 20,
        "the state partition is {partition} bytes on a 256 MiB disk: {on_disk}"
    );
    let node = boot(st, &qcow2, name, &[(http, 8080)]);
    let body = wait_for("hello after the reboot", Duration::from_secs(30), || {
        get(http, "/", "3").ok()
    });
    assert!(body.contains("hello from web02"), "{body}");
    assert_eq!(state_bytes(st, name), grown, "the state size changed again");
    let console = stop(st, name, node);
    // The console names the driver that took the adapter (virtio-net-pci
    // on this machine).
    assert!(
        console.contains("mote: eth0: driver virtio_net, MAC 52:54:"),
        "no driver line on the console:\n{console}"
    );

    // The VHDX and the fixed VHD (Hyper-V's and Azure's formats) boot too,
    // each after an offline edit of its host name: the page shows it.
    for file in ["hello.vhdx", "hello.vhd"] {
        let disk = a.join(file);
        let hostname = format!("edited-{}", &file[6..]);
        let refused = mote(st)
            .args(["image", "edit", "--set", "system.hostname=-bad-"])
            .arg(&disk)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && said.contains("system.hostname"),
            "{said}"
        );
        // mote's own files are not taken (settings change with --set).
        let refused = mote(st)
            .args(["image", "edit", "--add-file"])
            .arg(format!(
                "{}:/etc/mote/settings.json",
                root().join("examples/hello.toml").display()
            ))
            .arg(&disk)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && said.contains("/etc/mote holds"),
            "{said}"
        );
        // A file added offline too (a new directory on the node).
        let motd = st.join(format!("motd-{file}"));
        std::fs::write(&motd, format!("edited offline: {file}\n")).unwrap();
        let edited = mote(st)
            .args(["image", "edit", "--json", "--set"])
            .arg(format!("system.hostname={hostname}"))
            .arg("--add-file")
            .arg(format!("{}:/etc/site/motd", motd.display()))
            .arg(&disk)
            .output()
            .unwrap();
        assert!(
            edited.status.success(),
            "mote image edit {file}: {}",
            String::from_utf8_lossy(&edited.stderr)
        );
        let changes: serde_json::Value = serde_json::from_slice(&edited.stdout).unwrap();
        assert_eq!(changes[0]["old"], "hello", "{changes}");
        assert_eq!(changes[0]["new"], hostname.as_str(), "{changes}");
        assert_eq!(changes[1]["key"], "/etc/site/motd", "{changes}");
        assert_eq!(changes[1]["old"], serde_json::Value::Null, "{changes}");
        if file == "hello.vhdx" {
            qemu_img(&["check"], &disk);
        }
        let port = free_port();
        let name = format!("e2e-disk-{}", &file[6..]);
        let node = boot(st, &disk, &name, &[(port, 8080)]);
        let body = wait_for("hello on the disk", Duration::from_secs(30), || {
            get(port, "/", "3").ok()
        });
        assert!(
            body.contains(&format!("hello from {hostname}")),
            "{file}: {body}"
        );
        // The node reads the added file from its own root.
        let got = mote(st)
            .args(["-n", &name, "files", "get", "/etc/site/motd"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            format!("edited offline: {file}\n"),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
        stop(st, &name, node);
    }
}

/// Debian's OVMF test key: enrolled in the Secure Boot firmware that `mote
/// run --secure-boot` uses; its password is documented as `snakeoil`.
const SNAKEOIL: &str = "/usr/share/ovmf/PkKek-1-snakeoil";

#[test]
fn secure_boot_takes_the_signed_uki_and_refuses_an_unsigned_or_tampered_one() {
    if !prerequisites(&["mote-init", "moted", "mote-hello"]) {
        return;
    }
    let state = tempfile::tempdir().expect("temp dir");
    let st = state.path();
    let key = st.join("snakeoil.key");
    let plain = Command::new("openssl")
        .args(["pkey", "-passin", "pass:snakeoil", "-in"])
        .arg(format!("{SNAKEOIL}.key"))
        .arg("-out")
        .arg(&key)
        .status()
        .expect("openssl runs");
    assert!(
        plain.success(),
        "decrypting {SNAKEOIL}.key (apt-get install ovmf)"
    );
    let manifest = std::fs::read_to_string(root().join("examples/hello.toml"))
        .unwrap()
        .replacen(
            "name = \"hello\"",
            &format!(
                "name = \"hello\"\nsecure_boot = {{ key = \"snakeoil.key\", cert = \"{SNAKEOIL}.pem\" }}"
            ),
            1,
        );
    std::fs::write(st.join("hello.toml"), manifest).unwrap();
    let build = |manifest: &Path, out: &str| {
        let dir = st.join(out);
        let built = mote(st)
            .arg("build")
            .arg(manifest)
            .args(["--format", "uki,raw", "-o"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            built.status.success(),
            "mote build: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        dir
    };
    let signed = build(&st.join("hello.toml"), "signed");
    let again = build(&st.join("hello.toml"), "again");
    assert!(
        std::fs::read(signed.join("hello.efi")).unwrap()
            == std::fs::read(again.join("hello.efi")).unwrap(),
        "a signed UKI differs between two builds"
    );
    let unsigned = build(&root().join("examples/hello.toml"), "unsigned");
    let seen = inspect(st, &signed.join("hello.raw"));
    assert_eq!(seen["uki"]["signed"], true, "{seen}");

    // Signed: the firmware boots it and the node serves.
    let http = free_port();
    let mut cmd = mote(st);
    cmd.args(["run", "--json", "--secure-boot", "--name", "e2e-sb"])
        .arg(signed.join("hello.raw"))
        .args(["--forward", &format!("{http}:8080")]);
    let node = boot_with(cmd, st, "e2e-sb");
    let body = wait_for("hello under Secure Boot", Duration::from_secs(30), || {
        get(http, "/", "3").ok()
    });
    assert!(body.contains("hello from hello"), "{body}");
    stop(st, "e2e-sb", node);

    // Tampered: one byte of the signed UKI's command line changed inside
    // the disk.
    let tampered = st.join("tampered.raw");
    let mut disk = std::fs::read(signed.join("hello.raw")).unwrap();
    let at = disk
        .windows(13)
        .position(|w| w == b"console=ttyS0")
        .expect("the UKI's command line in the disk");
    disk[at + 8] = b'S'; // ttyS0 → tSyS0
    std::fs::write(&tampered, disk).unwrap();

    for (disk, what) in [
        (unsigned.join("hello.raw"), "unsigned"),
        (tampered, "tampered"),
    ] {
        let out = mote(st)
            .args([
                "run",
                "--json",
                "--secure-boot",
                "--timeout",
                "90",
                "--name",
            ])
            .arg(format!("e2e-sb-{what}"))
            .arg(&disk)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "the {what} UKI booted under Secure Boot"
        );
        assert!(
            said.contains("firmware refused") && said.contains("Access Denied"),
            "{what}: {said}"
        );
    }
}

/// A disk for another platform carries that platform's drivers: each
/// bundle's modules are in the image's build report. Debian's cloud kernel
/// (the default) has the virtual platforms' drivers; a bundle it cannot
/// satisfy (`e1000`, `host`: bare metal) is refused with the kernel to use.
#[test]
fn driver_bundles_put_each_platforms_modules_in_the_disk() {
    if !prerequisites(&["mote-init", "moted", "mote-hello"]) {
        return;
    }
    let state = tempfile::tempdir().expect("temp dir");
    let st = state.path();
    let build = |drivers: &str| {
        let manifest = std::fs::read_to_string(root().join("examples/hello.toml"))
            .unwrap()
            .replacen(
                "drivers = [\"virtio\"]",
                &format!("drivers = [{drivers}]"),
                1,
            );
        assert!(
            manifest.contains(drivers),
            "hello.toml's drivers line moved"
        );
        std::fs::write(st.join("hello.toml"), manifest).unwrap();
        mote(st)
            .arg("build")
            .arg(st.join("hello.toml"))
            .args(["--format", "raw", "--json", "-o"])
            .arg(st.join("out"))
            .output()
            .unwrap()
    };
    let out = build("\"virtio\", \"hyperv\", \"vmware\"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let modules: Vec<&str> = report["modules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    for module in [
        "virtio_net",
        "hv_netvsc",
        "hv_storvsc",
        "vmxnet3",
        "vmw_pvscsi",
    ] {
        assert!(
            modules.iter().any(|m| m.replace('-', "_") == module),
            "{module} is not in the image: {modules:?}"
        );
    }
    for bundle in ["e1000", "host"] {
        let out = build(&format!("\"{bundle}\""));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bundle} built on the cloud kernel");
        assert!(
            said.contains(&format!("`{bundle}`")) && said.contains("linux-image-amd64"),
            "{said}"
        );
    }
}

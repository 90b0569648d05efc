//! What the demo and the tests need from the host, and installing it on
//! Debian when it is missing (as root, with apt-get).

use std::process::Command;

use anyhow::{bail, Context};

/// (program, or absolute path of a file, that proves it is there; Debian
/// package that brings it)
pub type Need = (&'static str, &'static str);

/// For `cargo xtask demo`.
pub const DEMO: [Need; 5] = [
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("mkfs.ext4", "e2fsprogs"),
    ("curl", "curl"),
    ("apt-get", "apt"),
    ("dpkg-deb", "dpkg"),
];

/// For `cargo xtask test`: the demo's plus the peers tests talk to.
pub const TEST: &[Need] = &[
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("mkfs.ext4", "e2fsprogs"),
    ("curl", "curl"),
    ("apt-get", "apt"),
    ("dpkg-deb", "dpkg"),
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("dnsmasq", "dnsmasq-base"),
    ("nmap", "nmap"),
    ("cpio", "cpio"),
    ("busybox", "busybox"),
    ("nginx", "nginx-light"),
    ("pip3", "python3-pip"),
    ("kill", "procps"),
    ("minisign", "minisign"),
    ("openssl", "openssl"),
    ("qemu-img", "qemu-utils"),
    ("e2fsck", "e2fsprogs"),
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf"),
    (
        "/usr/lib/systemd/boot/efi/linuxx64.efi.stub",
        "systemd-boot-efi",
    ),
    ("objdump", "binutils"),
    ("osslsigncode", "osslsigncode"),
    ("sgdisk", "gdisk"),
];

fn have(program: &str) -> bool {
    if program.starts_with('/') {
        return std::path::Path::new(program).exists();
    }
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
        || ["/usr/sbin/", "/sbin/"]
            .iter()
            .any(|d| std::path::Path::new(&format!("{d}{program}")).exists())
}

/// Does apt know the default kernel package? A fresh machine may have empty
/// package lists, and then `mote build` cannot fetch its kernel.
fn kernel_resolvable() -> bool {
    Command::new("apt-cache")
        .args(["policy", "linux-image-cloud-amd64"])
        .output()
        .is_ok_and(|o| {
            let text = String::from_utf8_lossy(&o.stdout);
            text.contains("Candidate: ") && !text.contains("Candidate: (none)")
        })
}

/// Install the packages of every missing program, and refresh apt's lists
/// when the kernel package cannot be resolved.
pub fn ensure(needs: &[Need]) -> anyhow::Result<()> {
    let missing: Vec<&str> = needs
        .iter()
        .filter(|(p, _)| !have(p))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        if !kernel_resolvable() && have("apt-get") {
            eprintln!(
                "xtask: apt does not know linux-image-cloud-amd64 yet; running apt-get update…"
            );
            let _ = Command::new("apt-get").args(["update", "-q"]).status();
        }
        return Ok(());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        bail!(
            "missing: {}; install them with: sudo apt-get install {}",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}…", missing.join(" "));
    let update = Command::new("apt-get")
        .args(["update", "-q"])
        .status()
        .context("running apt-get update")?;
    if !update.success() {
        bail!(
            "apt-get update failed; install by hand: apt-get install {}",
            missing.join(" ")
        );
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get install")?;
    if !status.success() {
        bail!("apt-get install {} failed", missing.join(" "));
    }
    Ok(())
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Python tools some tests use, from PyPI (pip is there once `ensure`
/// ran): (program that proves it is there, what pip installs, why).
const PYTHON_TOOLS: [(&str, &str, &str); 2] = [
    (
        "openapi-spec-validator",
        "openapi-spec-validator",
        "checks docs/api/openapi.json",
    ),
    // Pinned: the moted test passes options of this version's CLI.
    (
        "schemathesis",
        SCHEMATHESIS,
        "fuzzes moted's API in crates/moted/tests/schemathesis.rs",
    ),
];

/// The schemathesis the suite runs (`crates/moted/tests/schemathesis.rs`
/// names the same).
pub const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Installs the [`PYTHON_TOOLS`] that are missing.
pub fn ensure_python_tools() -> anyhow::Result<()> {
    for (program, spec, why) in PYTHON_TOOLS {
        if have(program) {
            continue;
        }
        eprintln!("xtask: installing {spec} ({why})…");
        if !pip_install(spec)? {
            // The test that needs it fails and says how to install it.
            eprintln!("xtask: WARNING: pip3 install {spec} failed; the tests that need {program} will fail");
        }
    }
    Ok(())
}

/// `pip3 install SPEC`, again with `--break-system-packages` when Debian's
/// own Python refuses system-wide installs (PEP 668).
fn pip_install(spec: &str) -> anyhow::Result<bool> {
    for extra in [None, Some("--break-system-packages")] {
        let status = Command::new("pip3")
            .args(["install", "-q", "--disable-pip-version-check"])
            .args(extra)
            .arg(spec)
            .status()
            .context("running pip3")?;
        if status.success() {
            return Ok(true);
        }
    }
    Ok(false)
}

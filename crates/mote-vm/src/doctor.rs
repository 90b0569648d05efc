//! Host checks for `mote doctor`: can this machine build and run nodes?

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::accel::{probe_accel, Accel, QEMU};
use crate::{registry, tools};

/// One host check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it is fine.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How to fix it, when it is not fine.
    pub fix: Option<String>,
}

/// Check QEMU, KVM (by running a probe guest), apt-get, mkfs.ext4, what
/// disk images need (qemu-img, the systemd-boot stub, OVMF, osslsigncode), the state
/// directory and the kernel cache (`$MOTE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/mote`, else `~/.cache/mote`; kernels are in its
/// `kernels/`, as mote-kernel keeps them).
pub fn doctor() -> Vec<Check> {
    doctor_with_cache(&default_cache_root())
}

/// [`doctor`] with the kernel cache rooted at `cache_root`.
pub fn doctor_with_cache(cache_root: &Path) -> Vec<Check> {
    vec![
        program_check(QEMU, &["--version"], "apt-get install qemu-system-x86"),
        kvm_check(),
        program_check(
            "apt-get",
            &["--version"],
            "mote build fetches Debian's kernel with apt-get: run it on Debian or Ubuntu, or give it a kernel of your own",
        ),
        program_check("mkfs.ext4", &["-V"], "apt-get install e2fsprogs"),
        program_check(
            "qemu-img",
            &["--version"],
            "disk images (qcow2, vhdx) need it: apt-get install qemu-utils",
        ),
        file_check(
            "systemd-boot stub",
            "/usr/lib/systemd/boot/efi/linuxx64.efi.stub",
            "the UKI and every disk image need it: apt-get install systemd-boot-efi",
        ),
        file_check(
            "OVMF",
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "mote run DISK boots disks with it: apt-get install ovmf",
        ),
        program_check(
            "osslsigncode",
            &["--version"],
            "[image] secure_boot signs with it: apt-get install osslsigncode",
        ),
        state_dir_check(&registry::state_dir()),
        kernel_cache_check(&cache_root.join("kernels")),
    ]
}

fn default_cache_root() -> PathBuf {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("MOTE_CACHE_DIR") {
        return dir;
    }
    if let Some(dir) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
        return dir.join("mote");
    }
    match dirs::home_dir() {
        Some(home) => home.join(".cache").join("mote"),
        None => std::env::temp_dir().join("mote-cache"),
    }
}

fn check(name: &str, ok: bool, detail: String, fix: Option<&str>) -> Check {
    Check {
        name: name.to_string(),
        ok,
        detail,
        fix: if ok { None } else { fix.map(str::to_string) },
    }
}

/// Present, and what its version flag prints first.
fn program_check(program: &str, version_args: &[&str], fix: &str) -> Check {
    let Some(path) = tools::find(program) else {
        return check(program, false, "not found".into(), Some(fix));
    };
    let version = Command::new(&path)
        .args(version_args)
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|out| {
            let text = [out.stdout, out.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "version unknown".into());
    check(
        program,
        true,
        format!("{} ({version})", path.display()),
        None,
    )
}

/// A file a feature needs.
fn file_check(name: &str, path: &str, fix: &str) -> Check {
    let found = Path::new(path).is_file();
    let detail = if found {
        path.to_string()
    } else {
        format!("{path} not found")
    };
    check(name, found, detail, Some(fix))
}

fn kvm_check() -> Check {
    match probe_accel() {
        Accel::Kvm => check("kvm", true, "a test guest runs under KVM".into(), None),
        Accel::Tcg { reason } => check(
            "kvm",
            false,
            format!("{reason}; nodes run under TCG (software emulation, slower)"),
            Some("nothing is needed to run nodes; for KVM, enable (nested) virtualisation on this host"),
        ),
    }
}

fn state_dir_check(dir: &Path) -> Check {
    let name = "state dir";
    let fix = "set MOTE_STATE_DIR to a writable directory with a short path";
    if let Err(e) = std::fs::create_dir_all(dir) {
        return check(
            name,
            false,
            format!("cannot create {}: {e}", dir.display()),
            Some(fix),
        );
    }
    if let Err(e) = tempfile::tempfile_in(dir) {
        return check(
            name,
            false,
            format!("cannot write in {}: {e}", dir.display()),
            Some(fix),
        );
    }
    // The longest socket path a 20-character node name gives.
    let longest = dir.join("nodes").join("x".repeat(20)).join("serial.sock");
    if longest.as_os_str().len() > 107 {
        return check(
            name,
            false,
            format!("{} is too long for unix sockets", dir.display()),
            Some(fix),
        );
    }
    check(name, true, dir.display().to_string(), None)
}

fn kernel_cache_check(kernels: &Path) -> Check {
    let name = "kernel cache";
    let entries = match std::fs::read_dir(kernels) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return check(
                name,
                true,
                format!(
                    "{}: empty (mote build fetches a kernel on first use)",
                    kernels.display()
                ),
                None,
            )
        }
        Err(e) => {
            return check(
                name,
                false,
                format!("cannot read {}: {e}", kernels.display()),
                Some("set MOTE_CACHE_DIR to a readable directory"),
            )
        }
    };
    let mut found: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    found.sort();
    let listed = if found.is_empty() {
        "empty (mote build fetches a kernel on first use)".to_string()
    } else {
        found.join(", ")
    };
    check(name, true, format!("{}: {listed}", kernels.display()), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_cache_lists_kernels_and_skips_partials() {
        let dir = tempfile::tempdir().unwrap();
        let kernels = dir.path().join("kernels");
        let c = kernel_cache_check(&kernels);
        assert!(c.ok && c.detail.contains("empty"), "{c:?}");
        for d in ["linux-image-6.1.0-56-cloud-amd64_6.1.192-2", ".partial-x"] {
            std::fs::create_dir_all(kernels.join(d)).unwrap();
        }
        std::fs::write(kernels.join("resolved.json"), "{}").unwrap();
        let c = kernel_cache_check(&kernels);
        assert!(c.ok, "{c:?}");
        assert!(
            c.detail
                .ends_with(": linux-image-6.1.0-56-cloud-amd64_6.1.192-2"),
            "{c:?}"
        );
    }

    #[test]
    fn missing_programs_say_how_to_install_them() {
        let c = program_check("mote-no-such-program", &["-V"], "apt-get install it");
        assert!(!c.ok);
        assert_eq!(c.fix.as_deref(), Some("apt-get install it"));
        let c = program_check("sh", &["-c", "echo sh 1.0"], "x");
        assert!(c.ok && c.detail.contains("(sh 1.0)"), "{c:?}");
    }

    #[test]
    fn state_dir_must_be_writable_and_short() {
        let dir = tempfile::tempdir().unwrap();
        assert!(state_dir_check(dir.path()).ok);
        let long = dir.path().join("y".repeat(100));
        let c = state_dir_check(&long);
        assert!(!c.ok && c.detail.contains("too long"), "{c:?}");
    }
}

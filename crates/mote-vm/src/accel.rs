//! Is KVM usable? [`probe_accel`] answers by running a guest, because
//! `/dev/kvm` can exist, open, and still hang every guest (nested KVM on some
//! cloud hosts runs real mode and hangs at the switch to protected mode).
//!
//! The probe guest is a 64 KiB firmware image given to QEMU as `-bios` on
//! `-machine pc`. From the reset vector it does what a kernel's early boot
//! does: load a GDT, enter protected mode, build identity page tables, enable
//! PAE, long mode and paging, far-jump into 64-bit code, and there write 0x31
//! to an `isa-debug-exit` port, which makes QEMU exit with status
//! `(0x31 << 1) | 1 = 99`. Any other end, or no end within the time limit
//! (the hang), means KVM is not usable and we fall back to TCG. The probe
//! costs ~0.1 s when KVM works and its time limit (2 s) when it hangs.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The accelerator a node runs under.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// Software emulation, and why.
    Tcg {
        /// Why not KVM.
        reason: String,
    },
}

impl Accel {
    /// The name QEMU's `-accel` takes.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg { .. } => "tcg",
        }
    }
}

/// The QEMU binary mote runs.
pub(crate) const QEMU: &str = "qemu-system-x86_64";

/// How long the probe guest may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The exit status QEMU reports when the probe guest reached 64-bit code.
const PROBE_EXIT: i32 = (0x31 << 1) | 1;

/// The probe's code, assembled for address 0xF0000 (the start of the 64 KiB
/// BIOS image):
/// ```text
/// 00 cli; xor ax,ax; mov ds,ax; mov ax,0xf000; mov ds,ax
/// 0a lgdt [0xb0]                          ; ds:0xb0 = gdt_desc
/// 10 mov eax,cr0; or eax,1; mov cr0,eax   ; protected mode
/// 1a jmp dword 0x08:0xf0022
/// 22 mov ax,0x10; mov ds,ax; mov es,ax; mov ss,ax
/// 2c mov edi,0x1000; xor eax,eax; mov ecx,0xc00; rep stosd  ; clear 12 KiB
/// 3a mov dword [0x1000],0x2003            ; PML4[0] -> PDPT
/// 44 mov dword [0x2000],0x3003            ; PDPT[0] -> PD
/// 4e mov dword [0x3000],0x83              ; PD[0]: 2 MiB page at 0
/// 58 mov eax,cr4; or eax,0x20; mov cr4,eax            ; PAE
/// 61 mov eax,0x1000; mov cr3,eax
/// 69 mov ecx,0xc0000080; rdmsr; or eax,0x100; wrmsr   ; EFER.LME
/// 77 mov eax,cr0; or eax,0x80000000; mov cr0,eax      ; paging
/// 82 jmp 0x18:0xf0089                     ; 64-bit code segment
/// 89 mov al,0x31; out 0xf4,al; hlt; jmp $-1
/// 90 gdt: null, code32 (0x08), data (0x10), code64 (0x18)
/// b0 gdt_desc: limit 0x1f, base 0xf0090
/// ```
const PROBE_CODE: [u8; 0xb6] = [
    0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0xb8, 0x00, 0xf0, 0x8e, 0xd8, 0x66, 0x0f, 0x01, 0x16, 0xb0, 0x00,
    0x0f, 0x20, 0xc0, 0x66, 0x83, 0xc8, 0x01, 0x0f, 0x22, 0xc0, 0x66, 0xea, 0x22, 0x00, 0x0f, 0x00,
    0x08, 0x00, 0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0xbf, 0x00, 0x10, 0x00,
    0x00, 0x31, 0xc0, 0xb9, 0x00, 0x0c, 0x00, 0x00, 0xf3, 0xab, 0xc7, 0x05, 0x00, 0x10, 0x00, 0x00,
    0x03, 0x20, 0x00, 0x00, 0xc7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00, 0xc7, 0x05,
    0x00, 0x30, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00, 0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22,
    0xe0, 0xb8, 0x00, 0x10, 0x00, 0x00, 0x0f, 0x22, 0xd8, 0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32,
    0x0d, 0x00, 0x01, 0x00, 0x00, 0x0f, 0x30, 0x0f, 0x20, 0xc0, 0x0d, 0x00, 0x00, 0x00, 0x80, 0x0f,
    0x22, 0xc0, 0xea, 0x89, 0x00, 0x0f, 0x00, 0x18, 0x00, 0xb0, 0x31, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xaf, 0x00,
    0x1f, 0x00, 0x90, 0x00, 0x0f, 0x00,
];

/// At the reset vector (file offset 0xfff0): `jmp 0xf000:0x0000`.
const RESET_JUMP: [u8; 5] = [0xea, 0x00, 0x00, 0x00, 0xf0];

/// The 64 KiB firmware image: code at the start, the reset jump 16 bytes
/// from the end, `hlt` everywhere else.
fn probe_image() -> Vec<u8> {
    let mut image = vec![0xf4u8; 0x10000];
    image[..PROBE_CODE.len()].copy_from_slice(&PROBE_CODE);
    image[0xfff0..0xfff0 + RESET_JUMP.len()].copy_from_slice(&RESET_JUMP);
    image
}

/// Does KVM run a guest here? Runs the probe guest every time (nothing is
/// cached: a host's KVM can change); answers [`Accel::Tcg`] with the reason
/// when it does not.
pub fn probe_accel() -> Accel {
    match kvm_runs() {
        Ok(()) => Accel::Kvm,
        Err(reason) => Accel::Tcg { reason },
    }
}

/// [`probe_accel`], remembered for the rest of this host boot (keyed by the
/// kernel's `boot_id`) in the state directory: a KVM that hangs costs the
/// 2 s probe once per host boot instead of once per `mote run`. `mote doctor`
/// and an explicit `--accel kvm` always probe afresh.
pub fn probe_accel_cached() -> Accel {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let cache = crate::registry::state_dir().join("accel.json");
    if !boot_id.is_empty() {
        let remembered = std::fs::read(&cache)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .filter(|v| v["boot_id"] == boot_id.trim());
        if let Some(v) = remembered {
            return match v["kvm"].as_bool() {
                Some(true) => Accel::Kvm,
                _ => Accel::Tcg {
                    reason: format!(
                        "{} (probed earlier this host boot)",
                        v["reason"].as_str().unwrap_or("")
                    ),
                },
            };
        }
    }
    let accel = probe_accel();
    let (kvm, reason) = match &accel {
        Accel::Kvm => (true, String::new()),
        Accel::Tcg { reason } => (false, reason.clone()),
    };
    let record = serde_json::json!({ "boot_id": boot_id.trim(), "kvm": kvm, "reason": reason });
    if std::fs::create_dir_all(crate::registry::state_dir()).is_ok() {
        let tmp = cache.with_extension("tmp");
        if std::fs::write(&tmp, record.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &cache);
        }
    }
    accel
}

fn kvm_runs() -> Result<(), String> {
    let kvm = Path::new("/dev/kvm");
    if !kvm.exists() {
        return Err("/dev/kvm does not exist (no hardware virtualisation here)".into());
    }
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(kvm) {
        return Err(format!(
            "cannot open /dev/kvm ({e}): add your user to the kvm group"
        ));
    }
    run_probe_guest("kvm", PROBE_TIMEOUT)
}

/// Run the probe guest under `accel`; `Err` says how it failed.
pub(crate) fn run_probe_guest(accel: &str, timeout: Duration) -> Result<(), String> {
    let mut file = tempfile::Builder::new()
        .prefix("mote-probe-")
        .suffix(".bin")
        .tempfile()
        .map_err(|e| format!("cannot write the probe guest: {e}"))?;
    file.write_all(&probe_image())
        .and_then(|()| file.flush())
        .map_err(|e| format!("cannot write the probe guest: {e}"))?;
    let bios = file
        .path()
        .to_str()
        .ok_or("the temporary directory's path is not UTF-8")?;
    let stderr = tempfile::tempfile().map_err(|e| format!("cannot make a temporary file: {e}"))?;
    let stderr_copy = stderr
        .try_clone()
        .map_err(|e| format!("cannot make a temporary file: {e}"))?;
    let mut child = Command::new(QEMU)
        .args(["-machine", "pc", "-nodefaults", "-no-user-config"])
        .args(["-display", "none", "-serial", "none", "-monitor", "none"])
        .args(["-accel", accel, "-m", "16", "-bios", bios])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot run {QEMU}: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "a test guest under {accel} did not run within {} s (nested KVM hangs on some hosts)",
                    timeout.as_secs_f32()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("cannot wait for {QEMU}: {e}")),
        }
    };
    if status.code() == Some(PROBE_EXIT) {
        return Ok(());
    }
    let said = first_line(stderr_copy);
    Err(format!(
        "a test guest under {accel} failed ({status}): {said}"
    ))
}

fn first_line(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek};
    let mut text = String::new();
    let _ = file.rewind().and_then(|_| file.read_to_string(&mut text));
    text.lines()
        .find(|l| !l.contains("warning:"))
        .or_else(|| text.lines().next())
        .unwrap_or("no message")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_image_layout() {
        let image = probe_image();
        assert_eq!(image.len(), 0x10000);
        assert_eq!(&image[0xfff0..0xfff5], &RESET_JUMP);
        assert_eq!(image[0], 0xfa);
        assert_eq!(PROBE_EXIT, 99);
    }

    /// The probe guest is only trusted if it reaches 64-bit code where
    /// emulation surely works: under TCG.
    #[test]
    fn probe_guest_reaches_long_mode_under_tcg() {
        if std::env::var_os("MOTE_SKIP_VM").is_some_and(|v| v == "1") {
            eprintln!("skipped: MOTE_SKIP_VM=1");
            return;
        }
        if let Err(e) = run_probe_guest("tcg", Duration::from_secs(10)) {
            panic!("the probe guest does not run under TCG: {e} (is {QEMU} installed? apt-get install qemu-system-x86; MOTE_SKIP_VM=1 skips)");
        }
    }

    #[test]
    fn probe_accel_answers_within_its_time_limit() {
        let started = Instant::now();
        let accel = probe_accel();
        assert!(
            started.elapsed() < PROBE_TIMEOUT + Duration::from_secs(2),
            "{accel:?}"
        );
    }
}

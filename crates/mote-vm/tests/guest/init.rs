//! A tiny PID 1 for mote-vm's boot tests, compiled by the test with `rustc -C
//! target-feature=+crt-static` (no crates, so libc calls are declared here).
//!
//! It prints mote's two console lines and then does what the kernel parameter
//! `motetest=MODE` asks (the kernel hands `key=value` parameters it does not know
//! to init as environment variables):
//! - `selfoff` (default): power off a moment after the ready line;
//! - `button`: load `button.ko` and `evdev.ko` from `/`, wait for the ACPI power
//!   button (KEY_POWER) and power off when it is pressed;
//! - `reboot`: reboot a moment after the ready line (the machine must boot again).

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::Duration;

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    fn mount(src: *const i8, target: *const i8, fstype: *const i8, flags: u64, data: *const u8) -> i32;
    fn syscall(number: i64, ...) -> i64;
    fn reboot(cmd: i32) -> i32;
    fn sync();
}

const CLOCK_BOOTTIME: i32 = 7;
const SYS_FINIT_MODULE: i64 = 313;
const RB_POWER_OFF: i32 = 0x4321_fedc;
const RB_AUTOBOOT: i32 = 0x0123_4567u32 as i32;
const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;

fn uptime_ms() -> u64 {
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the Timespec we own.
    unsafe { clock_gettime(CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

fn say(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn mount_fs(fstype: &str, target: &str) {
    let _ = std::fs::create_dir_all(target);
    let (Ok(src), Ok(dst), Ok(kind)) = (CString::new(fstype), CString::new(target), CString::new(fstype)) else {
        return;
    };
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let rc = unsafe { mount(src.as_ptr(), dst.as_ptr(), kind.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        say(&format!("test: mount {fstype} on {target} failed"));
    }
}

fn load_module(path: &str) {
    let Ok(file) = File::open(path) else {
        say(&format!("test: no {path}"));
        return;
    };
    let params = b"\0";
    // SAFETY: finit_module reads the open fd and the NUL-terminated params string.
    let rc = unsafe { syscall(SYS_FINIT_MODULE, file.as_raw_fd() as i64, params.as_ptr(), 0i64) };
    if rc != 0 {
        say(&format!("test: finit_module {path} failed"));
    }
}

fn power_button() -> Option<File> {
    for _ in 0..50 {
        if let Ok(dir) = std::fs::read_dir("/sys/class/input") {
            for entry in dir.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with("event") {
                    continue;
                }
                let label = std::fs::read_to_string(entry.path().join("device/name")).unwrap_or_default();
                if label.trim() == "Power Button" {
                    if let Ok(file) = File::open(format!("/dev/input/{name}")) {
                        return Some(file);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn power(cmd: i32) -> ! {
    // SAFETY: sync and reboot take no pointers; ending the machine is this program's job.
    unsafe {
        sync();
        reboot(cmd);
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn main() {
    say(&format!("mote: init uptime_ms={}", uptime_ms()));
    let mode = std::env::var("motetest").unwrap_or_else(|_| "selfoff".to_string());
    match mode.as_str() {
        "button" => {
            mount_fs("devtmpfs", "/dev");
            mount_fs("sysfs", "/sys");
            load_module("/button.ko");
            load_module("/evdev.ko");
            let Some(mut button) = power_button() else {
                say("test: no power button");
                power(RB_POWER_OFF);
            };
            say(&format!("mote: ready hostname=t addresses= boot_ms={} mode=button", uptime_ms()));
            let mut event = [0u8; 24];
            while button.read_exact(&mut event).is_ok() {
                let kind = u16::from_ne_bytes([event[16], event[17]]);
                let code = u16::from_ne_bytes([event[18], event[19]]);
                let value = i32::from_ne_bytes([event[20], event[21], event[22], event[23]]);
                if kind == EV_KEY && code == KEY_POWER && value == 1 {
                    say("test: power button pressed");
                    power(RB_POWER_OFF);
                }
            }
            say("test: power button read failed");
            power(RB_POWER_OFF);
        }
        "reboot" => {
            say(&format!("mote: ready hostname=t addresses= boot_ms={} mode=reboot", uptime_ms()));
            std::thread::sleep(Duration::from_millis(300));
            say("test: rebooting");
            power(RB_AUTOBOOT);
        }
        _ => {
            say(&format!("mote: ready hostname=t addresses= boot_ms={} mode=selfoff", uptime_ms()));
            std::thread::sleep(Duration::from_millis(500));
            power(RB_POWER_OFF);
        }
    }
}

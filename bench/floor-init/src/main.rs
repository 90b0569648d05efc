//! The boot floor: the least a PID 1 can do. It prints the two lines mote's
//! readiness machinery reads (so `bench/boot` measures it exactly as it
//! measures a mote node) and powers the machine off:
//!
//! ```text
//! mote: init uptime_ms=N
//! mote: ready hostname=floor addresses= boot_ms=N
//! ```
//!
//! N is the kernel's uptime (`CLOCK_BOOTTIME`) in ms when each line is
//! printed. Nothing is mounted: the initramfs holds only `/init` and
//! `/dev/console`, which the kernel opens as our stdin, stdout and stderr.

use std::io::Write;

/// The kernel's uptime in ms (0 if the clock cannot be read).
fn uptime_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1000
        + u64::try_from(ts.tv_nsec).unwrap_or(0) / 1_000_000
}

/// Print one console line; a console that cannot be written is no reason
/// for PID 1 to panic (that would panic the kernel).
fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

fn main() {
    line(&format!("mote: init uptime_ms={}", uptime_ms()));
    line(&format!(
        "mote: ready hostname=floor addresses= boot_ms={}",
        uptime_ms()
    ));
    // SAFETY: sync and reboot take no pointers; powering off is this program's job.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    // Only reached when reboot(2) failed: PID 1 must not exit (the kernel
    // would panic), so say so and wait to be killed.
    line("mote: floor power-off failed");
    loop {
        // SAFETY: pause takes no arguments and only waits for a signal.
        unsafe { libc::pause() };
    }
}

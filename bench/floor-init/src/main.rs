//! The boot floor: the least a PID 1 can do. It reports the kernel's uptime at
//! its start on the console and powers the machine off, so `bench/boot` can
//! compare mote's boot-to-ready against the kernel's own boot-to-init.

fn main() {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let ms = ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000;
    println!("floor: init uptime_ms={ms}");
    // SAFETY: sync and reboot take no pointers; powering off is this program's job.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
}

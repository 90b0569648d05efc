//! The early, synchronous system set-up of PID 1: pseudo filesystems, kernel
//! modules, host name, the boot clock. Each step reports failure as a value:
//! boot goes on without what failed and the node stays reachable.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use rustix::mount::{mount, MountFlags};

use crate::events::Events;

/// Milliseconds since the kernel started (CLOCK_BOOTTIME), for boot figures.
pub fn uptime_ms() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// (source, target, fstype, flags, data) of every pseudo filesystem, in order.
const MOUNTS: &[(&str, &str, &str, u64, &CStr)] = &[
    ("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC, c""),
    ("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC, c""),
    ("devtmpfs", "/dev", "devtmpfs", NOSUID, c"mode=0755"),
    (
        "devpts",
        "/dev/pts",
        "devpts",
        NOSUID_NOEXEC,
        c"gid=5,mode=620,ptmxmode=666",
    ),
    ("tmpfs", "/dev/shm", "tmpfs", NOSUID_NODEV, c"mode=1777"),
    ("tmpfs", "/run", "tmpfs", NOSUID_NODEV, c"mode=0755"),
    ("tmpfs", "/tmp", "tmpfs", NOSUID_NODEV, c"mode=1777"),
    (
        "cgroup2",
        "/sys/fs/cgroup",
        "cgroup2",
        NOSUID_NODEV_NOEXEC,
        c"nsdelegate",
    ),
];
const NOSUID: u64 = MountFlags::NOSUID.bits() as u64;
const NOSUID_NODEV: u64 = NOSUID | MountFlags::NODEV.bits() as u64;
const NOSUID_NOEXEC: u64 = NOSUID | MountFlags::NOEXEC.bits() as u64;
const NOSUID_NODEV_NOEXEC: u64 = NOSUID_NODEV | MountFlags::NOEXEC.bits() as u64;

/// Mount proc, sys, dev, devpts, shm, run, tmp and cgroup2.
pub fn mount_pseudo_filesystems(events: &Events) {
    for &(source, target, fstype, flags, data) in MOUNTS {
        let _ = std::fs::create_dir_all(target);
        let flags = MountFlags::from_bits_truncate(flags as _);
        let data = (!data.is_empty()).then_some(data);
        if let Err(e) = mount(source, target, fstype, flags, data) {
            events.error("init", format!("mount {fstype} on {target}: {e}"));
        }
    }
}

/// Load each module listed (one path per line, relative to
/// `/lib/modules/VERSION`) in order; the image builder wrote them in
/// dependency order. Returns how many loaded.
pub fn load_modules(list: &Path, events: &Events) -> usize {
    let Ok(text) = std::fs::read_to_string(list) else {
        return 0;
    };
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let base = Path::new("/lib/modules").join(release);
    let cmdline = kernel_cmdline();
    let mut loaded = 0;
    for relative in text.lines().filter(|l| !l.is_empty()) {
        let path = base.join(relative);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                events.error("init", format!("module {}: {e}", path.display()));
                continue;
            }
        };
        let params = module_params(&cmdline, &module_name(relative));
        let started = uptime_ms();
        // SAFETY: finit_module reads the open module file and a NUL-terminated
        // parameter string, both alive for the duration of the call.
        let rc =
            unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
        let error = std::io::Error::last_os_error();
        if rc == 0 {
            loaded += 1;
            let ms = uptime_ms().saturating_sub(started);
            events.emit(
                "init",
                crate::events::Level::Debug,
                format!("module {relative}: {ms} ms"),
            );
        } else if error.raw_os_error() != Some(libc::EEXIST) {
            events.error("init", format!("module {relative}: {error}"));
        }
    }
    loaded
}

/// `kernel/drivers/virtio/virtio_mmio.ko` → `virtio_mmio`.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split(".ko").next().unwrap_or(file).replace('-', "_")
}

/// What modprobe would pass: every `MODULE.param=value` word of the kernel
/// command line for this module (the kernel applies such words only to
/// built-in code; QEMU's microvm describes its virtio-mmio devices this way).
fn module_params(cmdline: &str, module: &str) -> CString {
    let params: Vec<&str> = cmdline
        .split_whitespace()
        .filter_map(|word| {
            let (name, rest) = word.split_once('.')?;
            (name.replace('-', "_") == module).then_some(rest)
        })
        .collect();
    CString::new(params.join(" ")).unwrap_or_default()
}

/// The kernel command line (`mote.verbose` there echoes every event).
pub fn kernel_cmdline() -> String {
    std::fs::read_to_string("/proc/cmdline").unwrap_or_default()
}

/// Set the kernel's host name.
pub fn set_hostname(name: &str, events: &Events) {
    if let Err(e) = rustix::system::sethostname(name.as_bytes()) {
        events.error("init", format!("set host name {name:?}: {e}"));
    }
}

/// Make Ctrl-Alt-Del a SIGINT to PID 1 instead of an instant reboot, so it
/// reboots in order.
pub fn disable_ctrl_alt_del() {
    // SAFETY: reboot with RB_DISABLE_CAD only changes a kernel flag.
    unsafe { libc::reboot(libc::RB_DISABLE_CAD) };
}

/// PID 1's hard `RLIMIT_NOFILE`: the most a service can be given.
pub fn open_files_ceiling() -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct on our stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_max
}

/// Raise PID 1's hard `RLIMIT_NOFILE` to the most a service may ask for.
/// Children inherit it, so a service's own limit (set after it has become
/// its user, when it can no longer raise a hard limit) can be anything up
/// to it. PID 1's soft limit stays as it is.
pub fn raise_open_files_ceiling(events: &Events) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct on our stack.
    let result = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            -1
        } else {
            limit.rlim_max = limit.rlim_max.max(mote_config::MAX_OPEN_FILES);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit)
        }
    };
    if result != 0 {
        events.warn(
            "init",
            format!(
                "cannot raise the open-files ceiling: {}; services keep the kernel's",
                std::io::Error::last_os_error()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_parameters_come_from_the_kernel_command_line_as_modprobe_does() {
        let cmdline = "console=ttyS0 virtio_mmio.device=512@0xfeb00e00:12 virtio-mmio.device=512@0xfeb00c00:11 quiet";
        assert_eq!(
            module_name("kernel/drivers/virtio/virtio_mmio.ko"),
            "virtio_mmio"
        );
        let params = module_params(cmdline, "virtio_mmio");
        assert_eq!(
            params.to_str().unwrap(),
            "device=512@0xfeb00e00:12 device=512@0xfeb00c00:11"
        );
        assert_eq!(module_params(cmdline, "virtio_net").to_str().unwrap(), "");
    }
}

//! Starting a node and watching it: [`start`] and [`RunningNode`].

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::accel::{probe_accel, Accel, QEMU};
use crate::config::{AccelChoice, Forward, Machine, Protocol, RunConfig};
use crate::error::VmError;
use crate::net::{mac_address, NetMode};
use crate::qemu::{host_tsc_khz, kernel_cmdline, qemu_args, Boot, LaunchPlan, Netdev};
use crate::ready::{classify, report, ConsoleEvent, LogTail, ReadyReport, POLL};
use crate::registry::{self, RunRecord};
use crate::tap::{self, Backend, TAP_FD};
use crate::{qmp, tools};

/// A node whose QEMU we spawned. Dropping it leaves the node running (it is
/// in the registry; `mote stop NAME` ends it) and stops the console echo.
#[derive(Debug)]
pub struct RunningNode {
    name: String,
    dir: PathBuf,
    child: Child,
    forwards: Vec<Forward>,
    net: NetMode,
    mac: String,
    tap: Option<String>,
    accel: Accel,
    notice: Option<String>,
    serial_log: PathBuf,
    qmp_socket: PathBuf,
    spawned: Instant,
    tail: LogTail,
    init_uptime_ms: Option<u64>,
    echo: Option<Echo>,
}

#[derive(Debug)]
struct Echo {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Unix socket paths are at most this long (`sun_path` is 108 bytes with
/// its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Start a node: check the image, clean a stale record of the same name,
/// pick free ports for forwards with host port 0, choose the accelerator,
/// create the state disk on first use, check or make the tap (see
/// [`NetMode`]), spawn QEMU in its own process group
/// (a terminal's Ctrl-C reaches only the caller, who decides whether to
/// [`RunningNode::powerdown`]), and register the node.
///
/// With [`AccelChoice::Auto`] this runs [`probe_accel`] first (up to 2 s when
/// KVM hangs); [`RunningNode::notice`] then says why the node runs under TCG.
pub fn start(cfg: &RunConfig) -> Result<RunningNode, VmError> {
    registry::validate_name(&cfg.name)?;
    check_sizes(cfg)?;
    let image_dir = absolute(&cfg.image_dir)?;
    let [kernel, initrd, cmdline] = ["vmlinuz", "initrd.img", "cmdline"].map(|f| image_dir.join(f));
    let disk = match &cfg.disk {
        Some(disk) => Some(absolute(disk)?),
        None => None,
    };
    let disk_format = match &disk {
        Some(disk) if !disk.is_file() => return Err(VmError::ImageMissing { path: disk.clone() }),
        Some(disk) => Some(disk_format(disk)?),
        None => None,
    };
    let image_cmdline = if disk.is_some() {
        String::new()
    } else {
        for file in [&kernel, &initrd, &cmdline] {
            if !file.is_file() {
                return Err(VmError::ImageMissing { path: file.clone() });
            }
        }
        std::fs::read_to_string(&cmdline).map_err(|e| VmError::file("read", &cmdline, e))?
    };
    // Firmware boots a disk; microvm has none, so a disk runs on `pc`.
    let machine = if disk.is_some() {
        Machine::Pc
    } else {
        cfg.machine
    };
    let qemu = tools::find(QEMU).ok_or(VmError::ProgramMissing {
        program: QEMU,
        fix: "apt-get install qemu-system-x86",
    })?;

    let dir = absolute(&registry::node_dir(&cfg.name))?;
    // Private: the state disk holds the node's keys.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| VmError::file("create", &dir, e))?;
    if let Some(old) = registry::read_record(&dir) {
        if old.alive() {
            return Err(VmError::AlreadyRunning {
                name: cfg.name.clone(),
                pid: old.pid,
            });
        }
        registry::remove_record(&dir);
    }
    if !cfg.net.forwards() && !cfg.forwards.is_empty() {
        return Err(VmError::ForwardsNeedUserNet {
            net: cfg.net.clone(),
        });
    }
    let forwards = resolve_forwards(&cfg.forwards)?;
    let (accel, notice) = resolve_accel(cfg.accel)?;

    let state_disk = match (&disk, &cfg.state_disk) {
        (Some(disk), _) => disk.clone(),
        (None, Some(path)) => absolute(path)?,
        (None, None) => dir.join("state.img"),
    };
    let firmware = match &disk {
        Some(_) => Some(firmware(&dir, cfg.secure_boot)?),
        None => {
            ensure_state_disk(&state_disk, cfg.state_disk_mib)?;
            None
        }
    };
    let serial_log = match &cfg.log {
        Some(path) => absolute(path)?,
        None => dir.join("serial.log"),
    };
    // A fresh, empty log: readiness is read from its start. The node's
    // serial.log may be a link to an earlier run's log: replace, never follow.
    let default_log = dir.join("serial.log");
    let _ = std::fs::remove_file(&default_log);
    File::create(&serial_log).map_err(|e| VmError::file("create", &serial_log, e))?;
    if serial_log != default_log {
        let _ = std::os::unix::fs::symlink(&serial_log, &default_log);
    }
    let qmp_socket = dir.join("qmp.sock");
    let serial_socket = dir.join("serial.sock");
    for socket in [&qmp_socket, &serial_socket] {
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(VmError::SocketPathTooLong {
                path: socket.clone(),
                max: MAX_SOCKET_PATH,
            });
        }
        let _ = std::fs::remove_file(socket);
    }

    let tsc_khz = match (machine, &accel) {
        (Machine::Microvm, Accel::Tcg { .. }) => host_tsc_khz(),
        _ => None,
    };
    let append = kernel_cmdline(&image_cmdline, &cfg.extra_cmdline, tsc_khz);
    let mac = mac_address(&cfg.name);
    // Last before the spawn: a tap we make lives as long as its fd, and an
    // error from here on drops it.
    let backend = tap::resolve(&cfg.net, &cfg.name)?;
    let net = match &backend {
        Backend::User => Netdev::User(&forwards),
        Backend::OwnedTap { .. } => Netdev::TapFd(TAP_FD),
        Backend::NamedTap { ifname } => Netdev::Tap(ifname),
        Backend::Helper { bridge } => Netdev::Bridge(bridge),
    };
    let boot = match (&firmware, disk_format) {
        (Some((code, vars)), Some(format)) => Boot::Uefi {
            code: utf8(code)?,
            vars: utf8(vars)?,
            disk: utf8(&state_disk)?,
            format,
            secure_boot: cfg.secure_boot,
        },
        _ => Boot::Direct {
            kernel: utf8(&kernel)?,
            initrd: utf8(&initrd)?,
            append: &append,
            state_disk: utf8(&state_disk)?,
        },
    };
    let plan = LaunchPlan {
        name: &cfg.name,
        machine,
        accel: &accel,
        memory_mib: cfg.memory_mib,
        cpus: cfg.cpus,
        boot,
        net,
        mac: &mac,
        serial_socket: utf8(&serial_socket)?,
        serial_log: utf8(&serial_log)?,
        qmp_socket: utf8(&qmp_socket)?,
    };
    let qemu_log = dir.join("qemu.log");
    let log = File::create(&qemu_log).map_err(|e| VmError::file("create", &qemu_log, e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| VmError::file("create", &qemu_log, e))?;
    let spawned = Instant::now();
    let started = SystemTime::now();
    let mut command = Command::new(&qemu);
    command
        .args(qemu_args(&plan))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0);
    if let Backend::OwnedTap { fd, .. } = &backend {
        hand_over_fd(&mut command, fd.as_raw_fd());
    }
    let mut child = command.spawn().map_err(|source| VmError::Spawn {
        program: qemu.display().to_string(),
        source,
    })?;
    let tap = backend.tap().map(str::to_owned);
    // QEMU has its own copy of a tap's fd now; the tap goes when it exits.
    drop(backend);

    let record = RunRecord {
        name: cfg.name.clone(),
        pid: child.id(),
        forwards: forwards.clone(),
        net: cfg.net.clone(),
        mac: mac.clone(),
        tap: tap.clone(),
        image_dir,
        qmp_socket: qmp_socket.clone(),
        serial_socket,
        serial_log: serial_log.clone(),
        state_disk,
        machine,
        accel: accel.as_str().to_string(),
        started_unix_ms: registry::millis_since_epoch(started),
    };
    if let Err(e) = registry::write_record(&dir, &record) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let echo = cfg.console.then(|| echo_console(serial_log.clone()));
    Ok(RunningNode {
        name: cfg.name.clone(),
        dir,
        child,
        forwards,
        net: cfg.net.clone(),
        mac,
        tap,
        accel,
        notice,
        tail: LogTail::new(&serial_log),
        serial_log,
        qmp_socket,
        spawned,
        init_uptime_ms: None,
        echo,
    })
}

impl RunningNode {
    /// Wait for PID 1's ready line. Fails early, with the last console lines,
    /// when QEMU exits or the guest kernel panics, and after `timeout`. A
    /// second call waits for the next ready line (after a guest reboot); the
    /// split's total still counts from the spawn.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<ReadyReport, VmError> {
        let deadline = Instant::now() + timeout;
        loop {
            // Look at the exit first and the console after, so a ready line
            // printed just before QEMU exited is still seen.
            let exited = self.child.try_wait().map_err(|source| VmError::Process {
                action: "wait for",
                pid: self.pid(),
                source,
            })?;
            for line in self.read_console()? {
                match classify(&line) {
                    ConsoleEvent::Init { uptime_ms } => self.init_uptime_ms = uptime_ms,
                    ConsoleEvent::Ready(fields) => {
                        let total = self.spawned.elapsed().as_millis() as u64;
                        return Ok(report(fields, total, self.init_uptime_ms));
                    }
                    ConsoleEvent::Panic => {
                        // Let the panic's own lines arrive.
                        std::thread::sleep(Duration::from_millis(300));
                        let _ = self.read_console();
                        return Err(VmError::KernelPanic {
                            console: self.tail.recent(),
                        });
                    }
                    ConsoleEvent::NoBoot => {
                        let console = self.tail.recent();
                        return Err(VmError::NoBoot {
                            refused: console.contains("Access Denied")
                                || console.contains("Security Violation"),
                            console,
                        });
                    }
                    ConsoleEvent::Other => {}
                }
            }
            if let Some(status) = exited {
                let mut console = self.tail.recent();
                let qemu_said =
                    std::fs::read_to_string(self.dir.join("qemu.log")).unwrap_or_default();
                let qemu_said = qemu_said.trim();
                if !qemu_said.is_empty() {
                    console.push_str("\nQEMU said:\n");
                    console.push_str(qemu_said);
                }
                return Err(VmError::QemuExited { status, console });
            }
            if Instant::now() >= deadline {
                return Err(VmError::ReadyTimeout {
                    waited: timeout,
                    console: self.tail.recent(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    fn read_console(&mut self) -> Result<Vec<String>, VmError> {
        self.tail
            .read_lines()
            .map_err(|e| VmError::file("read", &self.serial_log, e))
    }

    /// Press the guest's ACPI power button (QMP `system_powerdown`); PID 1
    /// then stops its services and powers off. Returns once QEMU took the
    /// command; [`RunningNode::wait_exit`] waits for the power-off.
    pub fn powerdown(&self) -> Result<(), VmError> {
        qmp::system_powerdown(&self.qmp_socket, Duration::from_secs(3)).map_err(|source| {
            VmError::Qmp {
                name: self.name.clone(),
                source,
            }
        })
    }

    /// QEMU's exit status if it has exited (and then the node is
    /// unregistered), or `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, VmError> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.finish();
                Ok(Some(status))
            }
            Ok(None) => Ok(None),
            Err(source) => Err(VmError::Process {
                action: "wait for",
                pid: self.pid(),
                source,
            }),
        }
    }

    /// Wait for QEMU to exit (a guest power-off exits 0) and unregister the
    /// node. After `timeout` the node is left running and registered, and the
    /// error says how to stop it.
    pub fn wait_exit(mut self, timeout: Duration) -> Result<ExitStatus, VmError> {
        let started = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.finish();
                    return Ok(status);
                }
                Ok(None) if started.elapsed() >= timeout => {
                    return Err(VmError::StillRunning {
                        name: self.name.clone(),
                        pid: self.pid(),
                        waited: timeout,
                    })
                }
                Ok(None) => std::thread::sleep(POLL),
                Err(source) => {
                    return Err(VmError::Process {
                        action: "wait for",
                        pid: self.pid(),
                        source,
                    })
                }
            }
        }
    }

    /// Kill QEMU at once (no orderly shutdown in the guest) and unregister
    /// the node.
    pub fn kill(mut self) -> Result<ExitStatus, VmError> {
        let pid = self.pid();
        let err = |action, source| VmError::Process {
            action,
            pid,
            source,
        };
        if self
            .child
            .try_wait()
            .map_err(|e| err("wait for", e))?
            .is_none()
        {
            self.child.kill().map_err(|e| err("kill", e))?;
        }
        let status = self.child.wait().map_err(|e| err("wait for", e))?;
        self.finish();
        Ok(status)
    }

    fn finish(&mut self) {
        self.stop_echo();
        registry::remove_record(&self.dir);
    }

    fn stop_echo(&mut self) {
        if let Some(echo) = self.echo.take() {
            echo.stop.store(true, Ordering::Relaxed);
            let _ = echo.thread.join();
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port forwards, with the host ports really used.
    pub fn forwards(&self) -> &[Forward] {
        &self.forwards
    }

    /// The network the node is on.
    pub fn net(&self) -> &NetMode {
        &self.net
    }

    /// The node's MAC address (see [`crate::mac_address`]).
    pub fn mac(&self) -> &str {
        &self.mac
    }

    /// The host side of the node's tap, on a tap or bridge network (`None`
    /// on the user-mode network, and when QEMU's bridge helper made it).
    pub fn tap(&self) -> Option<&str> {
        self.tap.as_deref()
    }

    /// The serial console log.
    pub fn serial_log(&self) -> &Path {
        &self.serial_log
    }

    /// QEMU's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The accelerator the node runs under.
    pub fn accel(&self) -> &Accel {
        &self.accel
    }

    /// A one-line notice for the user when the node runs under TCG because
    /// KVM is not usable (`None` with KVM, or TCG asked for).
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.stop_echo();
    }
}

/// Give the child `fd` as fd [`TAP_FD`], open across exec.
fn hand_over_fd(command: &mut Command, fd: RawFd) {
    // SAFETY: the closure runs between fork and exec and calls only dup2
    // and fcntl, which are async-signal-safe; it touches no memory of ours.
    unsafe {
        command.pre_exec(move || {
            if fd == TAP_FD {
                // dup2 onto itself keeps FD_CLOEXEC: clear it instead.
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, TAP_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn check_sizes(cfg: &RunConfig) -> Result<(), VmError> {
    let bad = |field: &'static str, value: u32, allowed: &'static str| VmError::InvalidConfig {
        field,
        value: value.to_string(),
        allowed,
    };
    if !(32..=1 << 20).contains(&cfg.memory_mib) {
        return Err(bad("memory_mib", cfg.memory_mib, "32 to 1048576 MiB"));
    }
    if !(1..=255).contains(&cfg.cpus) {
        return Err(bad("cpus", cfg.cpus, "1 to 255"));
    }
    if !(16..=1 << 22).contains(&cfg.state_disk_mib) {
        return Err(bad("state_disk_mib", cfg.state_disk_mib, "16 MiB to 4 TiB"));
    }
    Ok(())
}

fn absolute(path: &Path) -> Result<PathBuf, VmError> {
    std::path::absolute(path).map_err(|e| VmError::file("resolve", path, e))
}

fn utf8(path: &Path) -> Result<&str, VmError> {
    path.to_str().ok_or_else(|| VmError::NonUtf8Path {
        path: path.to_path_buf(),
    })
}

/// Check each forward's host port is free on 127.0.0.1 and pick one for
/// host port 0. The ports are released again before QEMU binds them, so
/// another program could take one in between; QEMU then exits with
/// "Could not set up host forwarding rule", which `wait_ready` reports.
pub(crate) fn resolve_forwards(wanted: &[Forward]) -> Result<Vec<Forward>, VmError> {
    // Bound until all are picked, so two host ports 0 never get the same port.
    let (mut tcp_held, mut udp_held) = (Vec::new(), Vec::new());
    let mut out = Vec::with_capacity(wanted.len());
    for f in wanted {
        let taken = out
            .iter()
            .any(|o: &Forward| f.host != 0 && o.host == f.host && o.protocol == f.protocol);
        if taken {
            return Err(VmError::DuplicatePort {
                port: f.host,
                protocol: f.protocol,
            });
        }
        let addr = (Ipv4Addr::LOCALHOST, f.host);
        let err = |source| VmError::PortInUse {
            port: f.host,
            protocol: f.protocol,
            source,
        };
        let port = match f.protocol {
            Protocol::Tcp => {
                let l = TcpListener::bind(addr).map_err(err)?;
                let port = l.local_addr().map_err(err)?.port();
                tcp_held.push(l);
                port
            }
            Protocol::Udp => {
                let s = UdpSocket::bind(addr).map_err(err)?;
                let port = s.local_addr().map_err(err)?.port();
                udp_held.push(s);
                port
            }
        };
        out.push(Forward { host: port, ..*f });
    }
    drop((tcp_held, udp_held));
    Ok(out)
}

fn resolve_accel(choice: AccelChoice) -> Result<(Accel, Option<String>), VmError> {
    match choice {
        AccelChoice::Tcg => Ok((
            Accel::Tcg {
                reason: "asked for".into(),
            },
            None,
        )),
        AccelChoice::Kvm => match probe_accel() {
            Accel::Kvm => Ok((Accel::Kvm, None)),
            Accel::Tcg { reason } => Err(VmError::KvmUnusable { reason }),
        },
        AccelChoice::Auto => {
            match crate::accel::probe_accel_cached() {
                Accel::Kvm => Ok((Accel::Kvm, None)),
                Accel::Tcg { reason } => {
                    let notice = format!("KVM is not usable ({reason}): running under TCG, software emulation, slower");
                    Ok((Accel::Tcg { reason }, Some(notice)))
                }
            }
        }
    }
}

/// Create the state disk on first use: a raw file of `mib` MiB holding an
/// ext4 filesystem labelled `mote-state`, made with every inode table and
/// the journal written now (no lazy init left for the guest). It is made
/// under a temporary name and renamed, so an interrupted creation leaves no
/// half-made disk, and readable by its owner only (it will hold the node's
/// keys). An existing disk is used as it is.
/// QEMU's block driver for a disk, by its extension.
fn disk_format(disk: &Path) -> Result<&'static str, VmError> {
    match disk.extension().and_then(|e| e.to_str()) {
        Some("raw" | "img") => Ok("raw"),
        Some("qcow2") => Ok("qcow2"),
        Some("vhdx") => Ok("vhdx"),
        Some("vhd") => Ok("vpc"),
        _ => Err(VmError::DiskFormat {
            path: disk.to_path_buf(),
        }),
    }
}

/// Debian's OVMF builds (`ovmf`), newest layout first: (code, variables
/// template).
const FIRMWARE: &[(&str, &str)] = &[
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
];

/// Secure Boot enforced, with Debian's test ("snakeoil") key enrolled in
/// PK, KEK and db: a UKI signed with `PkKek-1-snakeoil.key` boots, any
/// other is refused. Needs the SMM build on q35.
const SECURE_FIRMWARE: &[(&str, &str)] = &[(
    "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
    "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd",
)];

/// The firmware code and the node's own variable store (`efivars.fd`, or
/// `efivars-secure.fd`, in its directory, copied from the template once:
/// like a machine's NVRAM, it keeps boot entries across runs).
fn firmware(dir: &Path, secure_boot: bool) -> Result<(PathBuf, PathBuf), VmError> {
    let (builds, store) = if secure_boot {
        (SECURE_FIRMWARE, "efivars-secure.fd")
    } else {
        (FIRMWARE, "efivars.fd")
    };
    let (code, template) = builds
        .iter()
        .find(|(code, vars)| Path::new(code).is_file() && Path::new(vars).is_file())
        .ok_or_else(|| VmError::FirmwareMissing {
            looked: builds
                .iter()
                .map(|(code, _)| *code)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let vars = dir.join(store);
    if !vars.is_file() {
        std::fs::copy(template, &vars).map_err(|e| VmError::file("create", &vars, e))?;
    }
    Ok((PathBuf::from(code), vars))
}

pub(crate) fn ensure_state_disk(path: &Path, mib: u32) -> Result<(), VmError> {
    if path.exists() {
        return Ok(());
    }
    let mkfs = tools::find("mkfs.ext4").ok_or(VmError::ProgramMissing {
        program: "mkfs.ext4",
        fix: "apt-get install e2fsprogs",
    })?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| VmError::file("create", parent, e))?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let made = (|| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| VmError::file("create", &partial, e))?;
        file.set_len(u64::from(mib) << 20)
            .map_err(|e| VmError::file("size", &partial, e))?;
        drop(file);
        let out = Command::new(&mkfs)
            .args([
                "-q",
                "-F",
                "-L",
                "mote-state",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0",
            ])
            .arg(&partial)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| VmError::Spawn {
                program: mkfs.display().to_string(),
                source,
            })?;
        if !out.status.success() {
            return Err(VmError::Mkfs {
                path: path.to_path_buf(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        std::fs::rename(&partial, path).map_err(|e| VmError::file("rename", &partial, e))
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    made
}

/// Copy what the serial console prints to our stdout until told to stop.
fn echo_console(log: PathBuf) -> Echo {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut offset = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let stopping = flag.load(Ordering::Relaxed);
            let mut wrote = false;
            if let Ok(mut file) = File::open(&log) {
                if file.seek(SeekFrom::Start(offset)).is_ok() {
                    while let Ok(n) = file.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        offset += n as u64;
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(&buf[..n]);
                        wrote = true;
                    }
                }
            }
            if wrote {
                let _ = std::io::stdout().flush();
            }
            if stopping {
                return;
            }
            std::thread::sleep(POLL);
        }
    });
    Echo { stop, thread }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fwd(s: &str) -> Forward {
        s.parse().unwrap()
    }

    #[test]
    fn forwards_get_free_ports_and_busy_ports_are_refused() {
        let got = resolve_forwards(&[fwd("0:80"), fwd("0:443"), fwd("0:53/udp")]).unwrap();
        assert!(got.iter().all(|f| f.host != 0), "{got:?}");
        assert_ne!(got[0].host, got[1].host);
        assert_eq!((got[0].guest, got[2].protocol), (80, Protocol::Udp));

        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = busy.local_addr().unwrap().port();
        let err = resolve_forwards(&[fwd(&format!("{port}:80"))]).unwrap_err();
        assert!(matches!(err, VmError::PortInUse { .. }), "{err:?}");
        assert!(err.to_string().contains(&port.to_string()));

        let err = resolve_forwards(&[fwd("40001:80"), fwd("40001:81")]).unwrap_err();
        assert!(
            matches!(err, VmError::DuplicatePort { port: 40001, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn state_disk_is_ext4_and_made_once() {
        if tools::find("mkfs.ext4").is_none() {
            panic!("mkfs.ext4 not found: apt-get install e2fsprogs");
        }
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("sub/state.img");
        ensure_state_disk(&disk, 16).unwrap();
        let bytes = std::fs::read(&disk).unwrap();
        assert_eq!(bytes.len(), 16 << 20);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&disk).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(&bytes[1080..1082], &[0x53, 0xef], "ext4 magic");
        assert_eq!(&bytes[1024 + 120..1024 + 130], b"mote-state", "label");
        std::fs::write(&disk, b"kept").unwrap();
        ensure_state_disk(&disk, 16).unwrap();
        assert_eq!(std::fs::read(&disk).unwrap(), b"kept");
        assert!(!dir.path().join("sub/state.img.partial").exists());
    }

    #[test]
    fn start_refuses_what_it_cannot_run() {
        crate::registry::tests::with_state_dir(|root| {
            let mut cfg = RunConfig::new("n1", root.join("no-image"));
            let err = start(&cfg).unwrap_err();
            assert!(matches!(err, VmError::ImageMissing { .. }), "{err}");
            assert!(err.to_string().contains("mote build"), "{err}");
            cfg.name = "bad/name".into();
            assert!(matches!(start(&cfg), Err(VmError::BadName { .. })));
            cfg.name = "n1".into();
            cfg.cpus = 0;
            assert!(matches!(
                start(&cfg),
                Err(VmError::InvalidConfig { field: "cpus", .. })
            ));
        });
    }

    #[test]
    fn a_running_name_must_be_stopped_first() {
        crate::registry::tests::with_state_dir(|root| {
            let image = root.join("img");
            std::fs::create_dir_all(&image).unwrap();
            for f in ["vmlinuz", "initrd.img", "cmdline"] {
                std::fs::write(image.join(f), "x").unwrap();
            }
            let dir = registry::node_dir("busy");
            std::fs::create_dir_all(&dir).unwrap();
            let me = std::env::current_exe().unwrap();
            let record = RunRecord {
                name: "busy".into(),
                pid: std::process::id(),
                forwards: vec![],
                net: NetMode::User,
                mac: String::new(),
                tap: None,
                image_dir: image.clone(),
                qmp_socket: me,
                serial_socket: dir.join("serial.sock"),
                serial_log: dir.join("serial.log"),
                state_disk: dir.join("state.img"),
                machine: Machine::Microvm,
                accel: "tcg".into(),
                started_unix_ms: 0,
            };
            registry::write_record(&dir, &record).unwrap();
            let err = start(&RunConfig::new("busy", &image)).unwrap_err();
            if tools::find(QEMU).is_some() {
                assert!(matches!(err, VmError::AlreadyRunning { .. }), "{err}");
                assert!(err.to_string().contains("`mote stop busy` first"), "{err}");
            }
        });
    }
}

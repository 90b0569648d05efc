//! [`VmError`]: everything that can go wrong starting, watching or stopping a
//! node. Each variant carries the input that failed and says what to do.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::config::ForwardError;
use crate::qmp::QmpError;

/// An error from mote-vm's API.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// A node name that cannot be a directory name.
    #[error("node name {name:?} {reason}: use letters, digits, '-', '_' and '.'")]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A size or count out of range.
    #[error("{field} = {value} is out of range: allowed {allowed}")]
    InvalidConfig {
        /// The [`crate::RunConfig`] field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
    /// A file the image directory must have is not there.
    #[error("image file {path} is missing: build the image with `mote build` first")]
    ImageMissing {
        /// The missing file.
        path: PathBuf,
    },
    /// The disk to boot is not a format mote knows by its extension.
    #[error("{path}: not a disk mote boots; give a .raw, .qcow2, .vhdx or .vhd that `mote build --format` wrote")]
    DiskFormat {
        /// The disk.
        path: PathBuf,
    },
    /// No UEFI firmware to boot a disk with.
    #[error("no UEFI firmware (looked for {looked}): apt-get install ovmf")]
    FirmwareMissing {
        /// Where it looked.
        looked: String,
    },
    /// Reading or writing a file failed.
    #[error("cannot {action} {path}")]
    File {
        /// What we were doing: "read", "write", "create", ….
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path QEMU cannot be given (its options are UTF-8 text).
    #[error("path {path} is not UTF-8; QEMU cannot be given it")]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },
    /// A unix socket path longer than the kernel allows.
    #[error(
        "socket path {path} is longer than {max} bytes: set MOTE_STATE_DIR to a shorter directory"
    )]
    SocketPathTooLong {
        /// The socket path.
        path: PathBuf,
        /// The limit.
        max: usize,
    },
    /// The node already runs.
    #[error("node {name} is already running (pid {pid}): `mote stop {name}` first")]
    AlreadyRunning {
        /// The node.
        name: String,
        /// Its QEMU process.
        pid: u32,
    },
    /// No record of this node.
    #[error("no node named {name}: `mote list` shows the nodes")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// A port forward that does not parse.
    #[error(transparent)]
    Forward(#[from] ForwardError),
    /// The same host port forwarded twice.
    #[error("host port {port}/{protocol} is forwarded twice")]
    DuplicatePort {
        /// The port.
        port: u16,
        /// tcp or udp.
        protocol: crate::Protocol,
    },
    /// A host port we cannot bind.
    #[error("host port 127.0.0.1:{port}/{protocol} is not free: pick another, or 0 for any")]
    PortInUse {
        /// The port.
        port: u16,
        /// tcp or udp.
        protocol: crate::Protocol,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// Port forwards asked for on a network that has none.
    #[error(
        "port forwards work only on the user-mode network, not on {net}: reach the node at its \
         own address on the segment, or drop --net to use --forward"
    )]
    ForwardsNeedUserNet {
        /// The network asked for.
        net: crate::NetMode,
    },
    /// The tap or bridge named does not exist.
    #[error("{kind} {name} does not exist: {fix}")]
    NoInterface {
        /// `tap` or `bridge`.
        kind: &'static str,
        /// Its name.
        name: String,
        /// How to make it.
        fix: String,
    },
    /// `--net tap=NAME` names an interface that is not a tap.
    #[error("{name} is not a tap device: pass a tap (`ip tuntap add NAME mode tap`), or --net bridge={name} if it is a bridge")]
    NotATap {
        /// The interface.
        name: String,
    },
    /// The tap mote would make for the node exists already.
    #[error("interface {name} exists already (another run of this node?): remove it, or use it with --net tap={name}")]
    InterfaceExists {
        /// The interface.
        name: String,
    },
    /// Making the node's tap failed.
    #[error(
        "cannot make tap {name}: it needs root or CAP_NET_ADMIN; without them make one with \
         `sudo ip tuntap add {name} mode tap user $USER && sudo ip link set {name} up` and pass --net tap={name}"
    )]
    TapCreate {
        /// The tap.
        name: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `ip link` refused.
    #[error("`{command}` failed: {stderr}")]
    Ip {
        /// The command.
        command: String,
        /// What ip printed.
        stderr: String,
    },
    /// A program we need is not installed.
    #[error("{program} not found: {fix}")]
    ProgramMissing {
        /// The program.
        program: &'static str,
        /// How to install it.
        fix: &'static str,
    },
    /// A program could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `mkfs.ext4` failed on a new state disk.
    #[error("cannot create state disk {path}: mkfs.ext4 said: {stderr}")]
    Mkfs {
        /// The disk.
        path: PathBuf,
        /// What mkfs.ext4 printed.
        stderr: String,
    },
    /// KVM was asked for and does not run a guest.
    #[error("KVM was asked for but does not run a guest ({reason}): use --accel tcg or auto")]
    KvmUnusable {
        /// What the probe found.
        reason: String,
    },
    /// QEMU ended before the ready line.
    #[error("QEMU exited ({status}) before the node was ready; last console lines:\n{console}")]
    QemuExited {
        /// How it ended.
        status: ExitStatus,
        /// The last console lines and QEMU's own messages.
        console: String,
    },
    /// The guest kernel panicked before the ready line.
    #[error("the guest kernel panicked before the node was ready; last console lines:\n{console}")]
    KernelPanic {
        /// The last console lines.
        console: String,
    },
    /// The firmware booted nothing from the disk.
    #[error("{}; last console lines:\n{console}", if *refused {
        "the firmware refused the disk's UKI (Secure Boot: it is unsigned, signed by a key the \
         firmware's db does not hold, or changed after signing); sign it with [image] secure_boot \
         and a key the firmware trusts"
    } else {
        "the firmware found nothing to boot on the disk: give a disk `mote build --format` wrote"
    })]
    NoBoot {
        /// Whether Secure Boot refused a boot loader.
        refused: bool,
        /// The last console lines.
        console: String,
    },
    /// No ready line in time.
    #[error("the node was not ready after {waited:?}; last console lines:\n{console}")]
    ReadyTimeout {
        /// How long we waited.
        waited: Duration,
        /// The last console lines.
        console: String,
    },
    /// QEMU did not exit in time.
    #[error("node {name} (pid {pid}) still runs after {waited:?}: `mote stop {name}` ends it")]
    StillRunning {
        /// The node.
        name: String,
        /// Its QEMU process.
        pid: u32,
        /// How long we waited.
        waited: Duration,
    },
    /// Signalling or waiting for QEMU failed.
    #[error("cannot {action} QEMU (pid {pid})")]
    Process {
        /// "kill", "wait for", ….
        action: &'static str,
        /// The process.
        pid: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Talking to QEMU's monitor failed.
    #[error("QEMU monitor (QMP) of node {name}")]
    Qmp {
        /// The node.
        name: String,
        /// What failed.
        #[source]
        source: QmpError,
    },
}

impl VmError {
    pub(crate) fn file(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::File {
            action,
            path: path.into(),
            source,
        }
    }
}

//! The node registry: which nodes `mote run` started on this host.
//!
//! Each node has a directory `state_dir()/nodes/NAME/` with:
//! - `run.json`: the running QEMU's pid, forwards, image directory, sockets,
//!   serial log and start time, written after QEMU is spawned and removed when
//!   it ends through us;
//! - `qmp.sock`: QEMU's machine protocol socket (see the `qmp` module);
//! - `serial.sock`: the serial console, for attaching later;
//! - `serial.log`: everything the serial console printed in the last run;
//! - `qemu.log`: QEMU's own messages;
//! - `state.img`: the state disk, unless the run named another.
//!
//! A record whose QEMU is gone (killed, host rebooted) is stale: [`list`]
//! shows it as not alive, and [`crate::start`] or [`stop`] cleans it. A pid
//! counts as the node's QEMU only while its command line names the node's
//! QMP socket, so a reused pid is not mistaken for the node.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{Forward, Machine};
use crate::error::VmError;
use crate::net::NetMode;
use crate::qmp;

/// Where mote keeps node state: `$MOTE_STATE_DIR`, else
/// `$XDG_STATE_HOME/mote`, else `~/.local/state/mote` (else a directory under
/// the system's temporary directory, when there is no home).
pub fn state_dir() -> PathBuf {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("MOTE_STATE_DIR") {
        return dir;
    }
    if let Some(dir) = var("XDG_STATE_HOME").filter(|d| d.is_absolute()) {
        return dir.join("mote");
    }
    match dirs::home_dir() {
        Some(home) => home.join(".local").join("state").join("mote"),
        None => std::env::temp_dir().join("mote-state"),
    }
}

/// One node as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeRecord {
    /// The node's name.
    pub name: String,
    /// Its QEMU's pid.
    pub pid: u32,
    /// Whether that QEMU still runs.
    pub alive: bool,
    /// Its port forwards, with the real host ports.
    pub forwards: Vec<Forward>,
    /// Its network: `user`, `tap`, `tap=NAME` or `bridge=NAME`.
    pub net: NetMode,
    /// Its MAC address.
    pub mac: String,
    /// The host side of its tap, on a tap or bridge network.
    pub tap: Option<String>,
    /// The image it booted.
    pub image_dir: PathBuf,
    /// When it was started.
    #[serde(serialize_with = "unix_ms")]
    pub started: SystemTime,
    /// Its serial console log.
    pub serial_log: PathBuf,
    /// Its QMP socket.
    pub qmp_socket: PathBuf,
    /// Its state disk.
    pub state_disk: PathBuf,
    /// The machine type.
    pub machine: Machine,
    /// `kvm` or `tcg`.
    pub accel: String,
}

fn unix_ms<S: serde::Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(millis_since_epoch(*time))
}

pub(crate) fn millis_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How [`stop`] ended a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum StopOutcome {
    /// The guest powered off after the power button.
    PoweredOff {
        /// How long it took.
        waited_ms: u64,
    },
    /// QEMU was killed.
    Killed {
        /// Why it came to that.
        reason: String,
    },
    /// Its QEMU was already gone; the stale record was removed.
    WasNotRunning,
}

impl std::fmt::Display for StopOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PoweredOff { waited_ms } => write!(f, "powered off in {waited_ms} ms"),
            Self::Killed { reason } => write!(f, "killed: {reason}"),
            Self::WasNotRunning => f.write_str("was not running"),
        }
    }
}

/// What `run.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    pub name: String,
    pub pid: u32,
    pub forwards: Vec<Forward>,
    /// Absent from records written before networks had modes.
    #[serde(default)]
    pub net: NetMode,
    #[serde(default)]
    pub mac: String,
    #[serde(default)]
    pub tap: Option<String>,
    pub image_dir: PathBuf,
    pub qmp_socket: PathBuf,
    pub serial_socket: PathBuf,
    pub serial_log: PathBuf,
    pub state_disk: PathBuf,
    pub machine: Machine,
    pub accel: String,
    pub started_unix_ms: u64,
}

impl RunRecord {
    pub(crate) fn alive(&self) -> bool {
        is_alive(self.pid, &self.qmp_socket)
    }

    fn into_node(self) -> NodeRecord {
        NodeRecord {
            alive: self.alive(),
            name: self.name,
            pid: self.pid,
            forwards: self.forwards,
            net: self.net,
            mac: self.mac,
            tap: self.tap,
            image_dir: self.image_dir,
            started: UNIX_EPOCH + Duration::from_millis(self.started_unix_ms),
            serial_log: self.serial_log,
            qmp_socket: self.qmp_socket,
            state_disk: self.state_disk,
            machine: self.machine,
            accel: self.accel,
        }
    }
}

/// A node name must be a plain directory name.
pub(crate) fn validate_name(name: &str) -> Result<(), VmError> {
    let bad = |reason| {
        Err(VmError::BadName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > 63 {
        return bad("is longer than 63 characters");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return bad("starts with '.' or '-'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return bad("has other characters");
    }
    Ok(())
}

pub(crate) fn node_dir(name: &str) -> PathBuf {
    state_dir().join("nodes").join(name)
}

const RECORD: &str = "run.json";

pub(crate) fn read_record(dir: &Path) -> Option<RunRecord> {
    let text = std::fs::read_to_string(dir.join(RECORD)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Write `run.json` atomically (a temporary file renamed over it).
pub(crate) fn write_record(dir: &Path, record: &RunRecord) -> Result<(), VmError> {
    let path = dir.join(RECORD);
    let tmp = dir.join(".run.json.tmp");
    let mut text = serde_json::to_string_pretty(record).unwrap_or_default();
    text.push('\n');
    std::fs::write(&tmp, text).map_err(|e| VmError::file("write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| VmError::file("write", &path, e))
}

/// Forget a run: its record and sockets. The logs and the state disk stay.
pub(crate) fn remove_record(dir: &Path) {
    for file in [RECORD, "qmp.sock", "serial.sock"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
}

/// Is `pid` a live process whose command line names `marker`? Zombies (a
/// QEMU that exited and that its parent has not reaped) are not alive. A
/// process that has only just been exec'd shows an empty command line for a
/// moment; it counts as alive.
pub(crate) fn is_alive(pid: u32, marker: &Path) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        // No /proc to read: ask the kernel whether the pid exists at all.
        // SAFETY: kill with signal 0 only checks that the process exists.
        Err(_) => return unsafe { libc::kill(pid as libc::pid_t, 0) == 0 },
    };
    // "pid (comm) S …": the state follows the last ')'.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    if matches!(state, Some('Z' | 'X' | 'x') | None) {
        return false;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let marker = marker.as_os_str().as_encoded_bytes();
    cmdline.is_empty() || (!marker.is_empty() && cmdline.windows(marker.len()).any(|w| w == marker))
}

/// Every node with a record, alive or not, sorted by name. Unreadable
/// records are left out.
pub fn list() -> Vec<NodeRecord> {
    let Ok(entries) = std::fs::read_dir(state_dir().join("nodes")) else {
        return Vec::new();
    };
    let mut nodes: Vec<NodeRecord> = entries
        .filter_map(Result::ok)
        .filter_map(|e| read_record(&e.path()))
        .map(RunRecord::into_node)
        .collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    nodes
}

/// Stop a node in order: press its ACPI power button over QMP so PID 1 stops
/// its services and flushes the state disk, wait up to `timeout` for QEMU to
/// exit (pressing once more halfway, in case the first press came before the
/// guest listened), then SIGKILL it. A node whose QEMU is already gone has its
/// stale record removed.
pub fn stop(name: &str, timeout: Duration) -> Result<StopOutcome, VmError> {
    validate_name(name)?;
    let dir = node_dir(name);
    let record = read_record(&dir).ok_or_else(|| VmError::NotFound {
        name: name.to_string(),
    })?;
    if !record.alive() {
        remove_record(&dir);
        return Ok(StopOutcome::WasNotRunning);
    }
    let started = Instant::now();
    let reason = match qmp::system_powerdown(&record.qmp_socket, Duration::from_secs(2)) {
        Ok(()) => {
            let mut pressed_again = false;
            loop {
                if !record.alive() {
                    remove_record(&dir);
                    return Ok(StopOutcome::PoweredOff {
                        waited_ms: started.elapsed().as_millis() as u64,
                    });
                }
                if started.elapsed() >= timeout {
                    break format!("it did not power off within {} s", timeout.as_secs_f32());
                }
                if !pressed_again && started.elapsed() >= timeout / 2 {
                    pressed_again = true;
                    let _ = qmp::system_powerdown(&record.qmp_socket, Duration::from_millis(500));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Err(e) => format!("the power button could not be pressed: {e}"),
    };
    kill_and_wait(record.pid, &record.qmp_socket)?;
    remove_record(&dir);
    Ok(StopOutcome::Killed { reason })
}

/// SIGKILL a process that is not our child and wait until it is gone.
fn kill_and_wait(pid: u32, marker: &Path) -> Result<(), VmError> {
    // SAFETY: kill takes no pointers; pid was checked to be the node's QEMU.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } != 0 {
        let source = std::io::Error::last_os_error();
        if source.raw_os_error() != Some(libc::ESRCH) {
            return Err(VmError::Process {
                action: "kill",
                pid,
                source,
            });
        }
    }
    let started = Instant::now();
    while is_alive(pid, marker) && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Tests that set MOTE_STATE_DIR take this lock.
    pub(crate) static ENV: Mutex<()> = Mutex::new(());

    pub(crate) fn with_state_dir<T>(f: impl FnOnce(&Path) -> T) -> T {
        let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("MOTE_STATE_DIR", dir.path());
        let out = f(dir.path());
        std::env::remove_var("MOTE_STATE_DIR");
        out
    }

    fn record(name: &str, pid: u32, qmp: PathBuf) -> RunRecord {
        RunRecord {
            name: name.into(),
            pid,
            forwards: vec!["8080:80".parse().unwrap()],
            net: NetMode::User,
            mac: "52:54:00:00:00:01".into(),
            tap: None,
            image_dir: "/img".into(),
            qmp_socket: qmp,
            serial_socket: "/s/serial.sock".into(),
            serial_log: "/s/serial.log".into(),
            state_disk: "/s/state.img".into(),
            machine: Machine::Microvm,
            accel: "tcg".into(),
            started_unix_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn registry_round_trip() {
        with_state_dir(|root| {
            assert_eq!(state_dir(), root);
            assert!(list().is_empty());
            // Our own process stands in for a live QEMU: its command line
            // names the test binary.
            let me = std::env::current_exe().unwrap();
            let live = record("web01", std::process::id(), me);
            let dead = record("old", u32::MAX / 2, "/nonexistent/qmp.sock".into());
            for r in [&live, &dead] {
                let dir = node_dir(&r.name);
                std::fs::create_dir_all(&dir).unwrap();
                write_record(&dir, r).unwrap();
                assert_eq!(read_record(&dir).as_ref(), Some(r));
            }
            std::fs::create_dir_all(root.join("nodes/junk")).unwrap();
            std::fs::write(root.join("nodes/junk/run.json"), "{").unwrap();

            let nodes = list();
            let names: Vec<_> = nodes.iter().map(|n| (n.name.as_str(), n.alive)).collect();
            assert_eq!(names, vec![("old", false), ("web01", true)]);
            assert_eq!(nodes[1].forwards[0].host, 8080);
            assert_eq!(millis_since_epoch(nodes[1].started), 1_700_000_000_000);
            let json = serde_json::to_value(&nodes[1]).unwrap();
            assert_eq!(json["started"], 1_700_000_000_000u64);

            // Stopping a stale node cleans its record.
            assert_eq!(
                stop("old", Duration::from_secs(1)).unwrap(),
                StopOutcome::WasNotRunning
            );
            assert!(read_record(&node_dir("old")).is_none());
            assert!(matches!(
                stop("old", Duration::from_secs(1)),
                Err(VmError::NotFound { .. })
            ));
        });
    }

    #[test]
    fn records_from_before_network_modes_read_as_user() {
        let mut json = serde_json::to_value(record("old", 1, "/q".into())).unwrap();
        let obj = json.as_object_mut().unwrap();
        for key in ["net", "mac", "tap"] {
            obj.remove(key);
        }
        let old: RunRecord = serde_json::from_value(json).unwrap();
        assert_eq!(
            (old.net, old.mac, old.tap),
            (NetMode::User, String::new(), None)
        );
    }

    #[test]
    fn state_dir_falls_back_to_xdg_then_home() {
        let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
        std::env::remove_var("MOTE_STATE_DIR");
        let saved = std::env::var_os("XDG_STATE_HOME");
        std::env::set_var("XDG_STATE_HOME", "/xdg/state");
        assert_eq!(state_dir(), PathBuf::from("/xdg/state/mote"));
        std::env::set_var("XDG_STATE_HOME", "relative");
        assert!(state_dir().ends_with(".local/state/mote") || state_dir().ends_with("mote-state"));
        match saved {
            Some(v) => std::env::set_var("XDG_STATE_HOME", v),
            None => std::env::remove_var("XDG_STATE_HOME"),
        }
    }

    #[test]
    fn liveness_needs_the_marker_and_no_zombie() {
        let me = std::env::current_exe().unwrap();
        assert!(is_alive(std::process::id(), &me));
        assert!(!is_alive(
            std::process::id(),
            Path::new("/no/such/qmp.sock")
        ));
        assert!(!is_alive(0, &me));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Exited but not reaped: a zombie.
        std::thread::sleep(Duration::from_millis(300));
        assert!(!is_alive(pid, Path::new("true")));
        child.wait().unwrap();
        assert!(!is_alive(pid, Path::new("true")));
    }

    #[test]
    fn names_are_plain_directory_names() {
        for good in ["web01", "a", "node_1.test", "A-b"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "-x", "a/b", "a b", "é", &"x".repeat(64)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stop_outcomes_read_well() {
        assert_eq!(
            StopOutcome::PoweredOff { waited_ms: 812 }.to_string(),
            "powered off in 812 ms"
        );
        let json = serde_json::to_string(&StopOutcome::WasNotRunning).unwrap();
        assert_eq!(json, r#"{"outcome":"was_not_running"}"#);
    }
}

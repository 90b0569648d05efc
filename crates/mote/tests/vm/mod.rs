//! The VM test kit shared by the end-to-end tests: run `mote` with a
//! private state and config directory, boot a node in the foreground (so
//! QEMU's exit code is ours to check), reach it, stop it, and never leave a
//! VM behind when a test fails.
#![allow(dead_code)] // each test binary uses its own part of the kit

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub mod netns;
pub mod scan;

pub fn mote(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mote"));
    with_mote_env(&mut cmd, state);
    cmd
}

/// The private state and config directories, the demo password, and the
/// workspace as the working directory.
pub fn with_mote_env(cmd: &mut Command, state: &Path) {
    cmd.env("MOTE_STATE_DIR", state)
        .env("MOTE_CONFIG_DIR", state.join("config"))
        .env("MOTE_PASSWORD", "mote-demo")
        .current_dir(root());
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn prerequisites(bins_needed: &[&str]) -> bool {
    if std::env::var("MOTE_SKIP_VM").as_deref() == Ok("1") {
        eprintln!("MOTE_SKIP_VM=1: skipping the QEMU end-to-end test");
        return false;
    }
    let qemu = Command::new("qemu-system-x86_64").arg("--version").output();
    assert!(
        qemu.is_ok_and(|o| o.status.success()),
        "qemu-system-x86_64 is missing: run `cargo xtask test` (installs it) or apt-get install qemu-system-x86; \
         set MOTE_SKIP_VM=1 to skip VM tests"
    );
    let bins = std::env::var_os("MOTE_BIN_DIR").map(PathBuf::from);
    assert!(
        bins.as_ref()
            .is_some_and(|b| bins_needed.iter().all(|n| b.join(n).exists())),
        "MOTE_BIN_DIR must name a directory with release {} : run `cargo xtask test`",
        bins_needed.join(", ")
    );
    true
}

/// GET with curl; Ok(body) or Err(curl's complaint).
pub fn get(port: u16, path: &str, max_time: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-f",
            "--max-time",
            max_time,
            &format!("http://127.0.0.1:{port}{path}"),
        ])
        .output()
        .expect("curl runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

pub fn wait_for<T>(what: &str, patience: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {patience:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `mote run` in the foreground as our child, so its exit code is QEMU's.
pub struct Booted {
    child: Option<Child>,
    pub ready: serde_json::Value,
    state: std::path::PathBuf,
    name: String,
}

/// A test that fails midway must not leave its VM running: QEMU lives in
/// its own process group, so killing `mote run` alone would orphan it.
impl Drop for Booted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = mote(&self.state)
                .args(["stop", &self.name, "--timeout", "5"])
                .output();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn boot(state: &Path, image: &Path, name: &str, forwards: &[(u16, u16)]) -> Booted {
    let mut cmd = mote(state);
    cmd.args(["run", "--json", "--name", name]).arg(image);
    for (host, guest) in forwards {
        cmd.args(["--forward", &format!("{host}:{guest}")]);
    }
    boot_with(cmd, state, name)
}

/// Boot with a `mote run --json …` command the caller made (e.g. inside a
/// network namespace).
pub fn boot_with(mut cmd: Command, state: &Path, name: &str) -> Booted {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("mote run starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("mote run prints its ready report");
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        let _ = child.kill();
        panic!(
            "mote run did not report ready ({e}): {line:?}; see the serial log under {}",
            state.display()
        )
    });
    Booted {
        child: Some(child),
        ready,
        state: state.to_path_buf(),
        name: name.to_owned(),
    }
}

pub fn stop(state: &Path, name: &str, booted: Booted) -> String {
    let out = mote(state)
        .args(["stop", name, "--timeout", "30"])
        .output()
        .expect("mote stop runs");
    assert!(
        out.status.success(),
        "mote stop failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut booted = booted;
    let mut child = booted
        .child
        .take()
        .expect("a booted node has its mote run child");
    let status = wait_for("mote run to end", Duration::from_secs(40), || {
        child.try_wait().ok().flatten()
    });
    assert!(
        status.success(),
        "QEMU did not power off cleanly: mote run ended with {status}"
    );
    let log = state.join("nodes").join(name).join("serial.log");
    std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()))
}

/// Power cut: SIGKILL the node's QEMU (no shutdown, no flush), and wait for
/// `mote run` to notice.
pub fn power_cut(booted: Booted) {
    let mut booted = booted;
    let pid = booted.ready["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no QEMU pid in the ready report: {}", booted.ready));
    // SAFETY: kill takes no pointers; the pid is the node's QEMU, which
    // `mote run` (our child) has not reaped yet, so it cannot be reused.
    let killed = unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    assert_eq!(killed, 0, "kill QEMU {pid}");
    let mut child = booted
        .child
        .take()
        .expect("a booted node has its mote run child");
    wait_for("mote run to end", Duration::from_secs(20), || {
        child.try_wait().ok().flatten()
    });
}

/// `mote -n NAME ARGS… --json`, parsed; `None` when it fails (the node or
/// its agent is down).
pub fn try_remote(state: &Path, name: &str, args: &[&str]) -> Option<serde_json::Value> {
    let out = mote(state)
        .args(["-n", name])
        .args(args)
        .arg("--json")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

/// `mote -n NAME ARGS… --json`, parsed.
pub fn remote(state: &Path, name: &str, args: &[&str]) -> serde_json::Value {
    let out = mote(state)
        .args(["-n", name])
        .args(args)
        .arg("--json")
        .output()
        .expect("mote runs");
    assert!(
        out.status.success(),
        "mote -n {name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "mote {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `mote build MANIFEST -o STATE/image`, failing the test with mote's words.
pub fn build_image(state: &Path, manifest: &str) -> PathBuf {
    let image = state.join("image");
    let build = mote(state)
        .args(["build", manifest, "-o"])
        .arg(&image)
        .output()
        .expect("mote build runs");
    assert!(
        build.status.success(),
        "mote build failed: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    image
}

/// The pid of `service` on node `name` (only once ready, if `ready`).
pub fn service_pid(state: &Path, name: &str, service: &str, ready: bool) -> Option<u64> {
    let s = remote(state, name, &["service", "list"]);
    s["services"]
        .as_array()?
        .iter()
        .find(|x| x["name"] == service && (!ready || x["state"] == "ready"))?["pid"]
        .as_u64()
}

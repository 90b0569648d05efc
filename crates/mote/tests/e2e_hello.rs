//! End to end: build examples/hello.toml, boot it under QEMU, and check what
//! the foundation promises — it serves through a forwarded port, the firewall
//! blocks a listening but undeclared port, a killed service is restarted,
//! first-boot commands run once across a reboot, and a power-off is clean
//! (QEMU exits 0).
//!
//! Needs QEMU and the kernel (fetched with apt-get into the cache) and the
//! release node binaries (`MOTE_BIN_DIR`, set by `cargo xtask test`). Skipped
//! only when `MOTE_SKIP_VM=1`.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mote(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mote"));
    cmd.env("MOTE_STATE_DIR", state).current_dir(root());
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn prerequisites() -> bool {
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
        bins.as_ref().is_some_and(|b| b.join("mote-init").exists() && b.join("mote-hello").exists()),
        "MOTE_BIN_DIR must name a directory with release mote-init and mote-hello: run `cargo xtask test`"
    );
    true
}

/// GET with curl; Ok(body) or Err(curl's complaint).
fn get(port: u16, path: &str, max_time: &str) -> Result<String, String> {
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

fn wait_for<T>(what: &str, patience: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
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
struct Booted {
    child: Option<Child>,
    ready: serde_json::Value,
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

fn boot(state: &Path, image: &Path, name: &str, forwards: &[(u16, u16)]) -> Booted {
    let mut cmd = mote(state);
    cmd.args(["run", "--json", "--name", name]).arg(image);
    for (host, guest) in forwards {
        cmd.args(["--forward", &format!("{host}:{guest}")]);
    }
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

fn stop(state: &Path, name: &str, booted: Booted) -> String {
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

#[test]
fn hello_node_serves_is_firewalled_restarts_remembers_first_boot_and_powers_off() {
    if !prerequisites() {
        return;
    }
    let state = tempfile::tempdir().expect("temp dir");
    let image = state.path().join("image");
    let build = mote(state.path())
        .args(["build", "examples/hello.toml", "-o"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "mote build failed: {}",
        String::from_utf8_lossy(&build.stderr)
    );

    let (served, blocked) = (free_port(), free_port());
    let name = "e2e-hello";
    let node = boot(
        state.path(),
        &image,
        name,
        &[(served, 8080), (blocked, 8081)],
    );
    assert_eq!(
        node.ready["hostname"], "hello",
        "ready report: {}",
        node.ready
    );

    // Serving through the forwarded, declared port.
    let body = wait_for("hello to answer", Duration::from_secs(20), || {
        get(served, "/", "2").ok()
    });
    assert_eq!(body, "hello from hello");

    // Listening on 8081 too, but undeclared: the firewall drops it.
    let refused = get(blocked, "/", "3");
    assert!(
        refused.is_err(),
        "port 8081 is not declared but answered: {refused:?}"
    );

    // Killed, and restarted by PID 1 with a new pid.
    let first_pid = get(served, "/pid", "2").expect("pid");
    let _ = get(served, "/kill", "2");
    let second_pid = wait_for("hello to come back", Duration::from_secs(20), || {
        get(served, "/pid", "2").ok().filter(|p| *p != first_pid)
    });
    assert_ne!(first_pid, second_pid);

    let console = stop(state.path(), name, node);
    assert!(
        console.contains("mote: first-boot ran 1/1 commands"),
        "first boot did not run:\n{console}"
    );
    assert!(
        console.contains("restarting in"),
        "no restart was logged:\n{console}"
    );
    assert!(
        console.contains("mote: powering off"),
        "no orderly power-off:\n{console}"
    );

    // Boot again on the same state disk: first boot is remembered.
    let again = boot(state.path(), &image, name, &[(served, 8080)]);
    assert_eq!(
        wait_for("hello after reboot", Duration::from_secs(20), || get(
            served, "/", "2"
        )
        .ok()),
        "hello from hello"
    );
    let console = stop(state.path(), name, again);
    let second_boot = console
        .rsplit("mote: init uptime_ms=")
        .next()
        .unwrap_or_default();
    assert!(
        second_boot.contains("mote: first-boot already done"),
        "first boot ran again:\n{console}"
    );
}

#[test]
fn building_the_same_manifest_twice_gives_identical_images() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for out in ["a", "b"] {
        let build = mote(dir.path())
            .args(["build", "examples/hello.toml", "-o"])
            .arg(dir.path().join(out))
            .output()
            .unwrap();
        assert!(
            build.status.success(),
            "mote build failed: {}",
            String::from_utf8_lossy(&build.stderr)
        );
    }
    for file in ["vmlinuz", "initrd.img", "cmdline"] {
        let a = std::fs::read(dir.path().join("a").join(file)).unwrap();
        let b = std::fs::read(dir.path().join("b").join(file)).unwrap();
        assert!(
            a == b,
            "{file} differs between two builds of the same manifest"
        );
    }
}

//! End to end management: boot examples/hello.toml with `mote run --json`
//! (which forwards the management port and pins the ready line's
//! fingerprint), then through `mote -n NAME …`: restart a service and see a
//! new pid, read its events, open port 8081 with a firewall rule and close it
//! again, change a setting, power off, boot again on the same state disk and
//! find the setting and the audit entries still there.
//!
//! Same prerequisites as `e2e_hello.rs` (QEMU, the kernel, `MOTE_BIN_DIR`
//! with release node binaries, moted included). Skipped only when
//! `MOTE_SKIP_VM=1`.

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
    cmd.env("MOTE_STATE_DIR", state)
        .env("MOTE_CONFIG_DIR", state.join("config"))
        .env("MOTE_PASSWORD", "mote-demo")
        .current_dir(root());
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

/// `mote -n NAME ARGS… --json`, parsed.
fn remote(state: &Path, name: &str, args: &[&str]) -> serde_json::Value {
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

fn hello_pid(state: &Path, name: &str) -> Option<u64> {
    let s = remote(state, name, &["service", "list"]);
    s["services"]
        .as_array()?
        .iter()
        .find(|x| x["name"] == "hello")?["pid"]
        .as_u64()
}

#[test]
fn hello_node_is_managed_over_its_api_across_a_reboot() {
    if !prerequisites() {
        return;
    }
    let state = tempfile::tempdir().expect("temp dir");
    let st = state.path();
    let image = st.join("image");
    let build = mote(st)
        .args(["build", "examples/hello.toml", "-o"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "mote build failed: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let name = "e2e-manage";
    let open = free_port();
    let node = boot(st, &image, name, &[(open, 8081)]);
    let fp = node.ready["fingerprint"]
        .as_str()
        .unwrap_or_else(|| panic!("no fingerprint in the ready report: {}", node.ready))
        .to_owned();
    let nodes = remote_list(st);
    assert!(
        nodes
            .iter()
            .any(|n| n["name"] == name && n["fingerprint"] == fp && n["added_by"] == "run"),
        "mote run did not pin {name}: {nodes:?}"
    );

    // Restart: a new pid.
    let before = hello_pid(st, name).expect("hello has a pid");
    remote(st, name, &["service", "restart", "hello"]);
    let after = wait_for("hello to restart", Duration::from_secs(20), || {
        hello_pid(st, name).filter(|p| *p != before)
    });
    assert_ne!(before, after);
    let ev = remote(st, name, &["events", "--source", "hello"]);
    assert!(!ev["events"].as_array().unwrap().is_empty(), "{ev}");

    // 8081 is blocked, a rule opens it, removing the rule blocks it again.
    assert!(
        get(open, "/", "3").is_err(),
        "8081 answered before the rule"
    );
    remote(st, name, &["firewall", "add", "e2e8081", "--port", "8081"]);
    let body = wait_for("8081 to open", Duration::from_secs(10), || {
        get(open, "/", "2").ok()
    });
    assert_eq!(body, "hello from hello");
    remote(st, name, &["firewall", "remove", "e2e8081"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(get(open, "/", "3").is_err(), "8081 answered after removal");

    // A setting that survives the reboot.
    let v = remote(
        st,
        name,
        &[
            "settings",
            "set",
            "services.hello.environment.E2E_MARK",
            "kept",
        ],
    );
    let version = v["version"].as_u64().unwrap();
    stop(st, name, node);

    let again = boot(st, &image, name, &[(open, 8081)]);
    assert_eq!(
        again.ready["fingerprint"].as_str(),
        Some(fp.as_str()),
        "same state disk, same certificate"
    );
    let got = remote(
        st,
        name,
        &["settings", "get", "services.hello.environment.E2E_MARK"],
    );
    assert_eq!(got["value"], "kept");
    assert!(got["version"].as_u64().unwrap() >= version);
    let audit = remote(st, name, &["audit"]);
    let whats: Vec<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(whats.iter().any(|w| w.contains("firewall")), "{whats:?}");
    assert!(whats.iter().any(|w| w.contains("settings")), "{whats:?}");
    stop(st, name, again);
}

fn remote_list(state: &Path) -> Vec<serde_json::Value> {
    let out = mote(state)
        .args(["node", "list", "--json"])
        .output()
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

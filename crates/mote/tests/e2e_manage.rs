//! End to end management: boot examples/hello.toml with `mote run --json`
//! (which forwards the management port and pins the ready line's
//! fingerprint), then through `mote -n NAME …`: restart a service and see a
//! new pid, read its events, open port 8081 with a firewall rule and close it
//! again; then change the host name, a firewall rule and a service's
//! environment, power off, boot again on the same state disk, and check the
//! effects from the host (the name and greeting served, the port that
//! answers), not only what the API echoes; then a change followed by a power
//! cut (QEMU killed) must be running after the next boot.
//!
//! Same prerequisites as `e2e_hello.rs` (QEMU, the kernel, `MOTE_BIN_DIR`
//! with release node binaries, moted included). Skipped only when
//! `MOTE_SKIP_VM=1`.

use std::path::Path;
use std::time::Duration;

mod vm;
use vm::*;

#[test]
fn hello_node_is_managed_over_its_api_across_a_reboot() {
    if !prerequisites(&["mote-init", "moted", "mote-hello"]) {
        return;
    }
    let state = tempfile::tempdir().expect("temp dir");
    let st = state.path();
    let image = build_image(st, "examples/hello.toml");
    let name = "e2e-manage";
    let (served, open) = (free_port(), free_port());
    let forwards = [(served, 8080), (open, 8081)];
    let node = boot(st, &image, name, &forwards);
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
    let before = service_pid(st, name, "hello", false).expect("hello has a pid");
    remote(st, name, &["service", "restart", "hello"]);
    let after = wait_for("hello to restart", Duration::from_secs(20), || {
        service_pid(st, name, "hello", false).filter(|p| *p != before)
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

    // Changes whose effect a user sees from the host: the host name the
    // node serves, a port its firewall opens, a service's environment.
    remote(st, name, &["settings", "set", "system.hostname", "web01"]);
    remote(st, name, &["firewall", "add", "alt", "--port", "8081"]);
    let v = remote(
        st,
        name,
        &[
            "settings",
            "set",
            "services.hello.environment.GREETING",
            "hi",
        ],
    );
    let version = v["version"].as_u64().unwrap();
    let serves = |port: u16, want: &str| {
        wait_for(
            &format!("{port} to serve {want:?}"),
            Duration::from_secs(20),
            || get(port, "/", "2").ok().filter(|b| b == want),
        )
    };
    serves(served, "hi from web01");
    serves(open, "hi from web01");
    assert_in_sync(st, name, version);
    stop(st, name, node);

    // Power off and on: the node runs what the API reported, not the image.
    let again = boot(st, &image, name, &forwards);
    assert_eq!(
        again.ready["fingerprint"].as_str(),
        Some(fp.as_str()),
        "same state disk, same certificate"
    );
    assert_eq!(again.ready["hostname"], "web01", "{}", again.ready);
    assert_eq!(
        again.ready["settings"].as_str(),
        Some(format!("v{version}").as_str()),
        "the ready line names the stored version: {}",
        again.ready
    );
    serves(served, "hi from web01");
    serves(open, "hi from web01");
    assert_in_sync(st, name, version);
    let audit = remote(st, name, &["audit"]);
    let whats: Vec<String> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(whats.iter().any(|w| w.contains("firewall")), "{whats:?}");
    assert!(whats.iter().any(|w| w.contains("settings")), "{whats:?}");

    // PID 1 gave the service the default open-files limit (a server needs
    // a descriptor per connection; the kernel's 1,024 is too few).
    let hello = service_pid(st, name, "hello", true).expect("hello has a pid");
    let out = mote(st)
        .args(["-n", name, "files", "get", &format!("/proc/{hello}/limits")])
        .output()
        .expect("mote runs");
    let limits = String::from_utf8_lossy(&out.stdout);
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| {
            panic!(
                "no open-files line in /proc/{hello}/limits: {limits}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(
        open_files
            .split_whitespace()
            .filter(|w| *w == "65536")
            .count(),
        2,
        "soft and hard: {open_files}"
    );

    // moted killed: PID 1 restarts it; the node keeps serving what is stored.
    let moted = service_pid(st, name, "moted", true).expect("moted has a pid");
    let _ = mote(st)
        .args(["-n", name, "kill", &moted.to_string(), "--signal", "9"])
        .output();
    let killed = std::time::Instant::now();
    let back = wait_for("moted to come back", Duration::from_secs(30), || {
        try_remote(st, name, &["service", "list"])?["services"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "moted" && s["state"] == "ready")?["pid"]
            .as_u64()
            .filter(|p| *p != moted)
    });
    eprintln!(
        "reliability: moted killed, answering again (pid {back}) after {} ms",
        killed.elapsed().as_millis()
    );
    serves(served, "hi from web01");
    assert_in_sync(st, name, version);

    // Power cut right after a change was answered: it was committed, so the
    // next boot runs it.
    let v = remote(
        st,
        name,
        &[
            "settings",
            "set",
            "services.hello.environment.GREETING",
            "cut",
        ],
    );
    let version = v["version"].as_u64().unwrap();
    power_cut(again);
    let third = boot(st, &image, name, &forwards);
    assert_eq!(
        third.ready["settings"].as_str(),
        Some(format!("v{version}").as_str()),
        "{}",
        third.ready
    );
    serves(served, "cut from web01");
    serves(open, "cut from web01");
    assert_in_sync(st, name, version);
    stop(st, name, third);
}

/// `mote -n NAME settings status`: the node runs stored version `version`.
fn assert_in_sync(state: &Path, name: &str, version: u64) {
    let st = remote(state, name, &["settings", "status"]);
    assert_eq!(st["stored"], version, "{st}");
    assert_eq!(st["applied"]["version"], version, "{st}");
    assert_eq!(st["in_sync"], true, "{st}");
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

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

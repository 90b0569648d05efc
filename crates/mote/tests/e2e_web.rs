//! End to end, the web package: build examples/web.toml, boot it with `mote
//! run --json` forwarding host ports to 80 and 8088, GET `/` serves
//! examples/www/index.html; then add a second site bound to port 8088 with
//! `mote -n NAME settings set roles.web …` and see it answer without a
//! restart (the same `web` pid in `service list`); power off, boot again on
//! the same state disk, and see the added site still answer.
//!
//! Same prerequisites as `e2e_manage.rs` (QEMU, the kernel, `MOTE_BIN_DIR`
//! with release node binaries, mote-web included). Skipped only when
//! `MOTE_SKIP_VM=1`.

use std::time::Duration;

mod vm;
use vm::*;

#[test]
fn web_node_serves_and_takes_a_new_site_without_a_restart() {
    if !prerequisites(&["mote-init", "moted", "mote-web"]) {
        return;
    }
    let state = tempfile::tempdir().expect("temp dir");
    let st = state.path();
    let image = build_image(st, "examples/web.toml");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(image.join("build.json")).unwrap()).unwrap();
    assert_eq!(report["packages"][0]["name"], "web", "{report}");
    assert_eq!(report["packages"][0]["origin"]["kind"], "role", "{report}");

    let name = "e2e-web";
    let (http, extra) = (free_port(), free_port());
    let node = boot(st, &image, name, &[(http, 80), (extra, 8088)]);
    assert!(node.ready["fingerprint"].is_string(), "{}", node.ready);
    let body = wait_for("the default site", Duration::from_secs(30), || {
        get(http, "/", "3").ok()
    });
    assert!(body.contains("Hello from mote-web"), "{body}");
    let system = remote(st, name, &["system"]);
    assert_eq!(system["packages"], serde_json::json!(["web"]), "{system}");
    let before = wait_for("web to be ready", Duration::from_secs(20), || {
        service_pid(st, name, "web", true)
    });
    assert!(
        get(extra, "/", "3").is_err(),
        "8088 answered before its site"
    );

    // The web verb edits roles.web in the node's settings; PID 1 rewrites
    // mote-web's file and signals it.
    remote(
        st,
        name,
        &[
            "web",
            "site",
            "add",
            "extra",
            "--root",
            "/srv/www",
            "--bind",
            "http://*:8088",
        ],
    );
    let body = wait_for("the new site on 8088", Duration::from_secs(20), || {
        get(extra, "/", "2").ok()
    });
    assert!(body.contains("Hello from mote-web"), "{body}");
    assert_eq!(
        service_pid(st, name, "web", true),
        Some(before),
        "reloaded, not restarted"
    );
    assert!(get(http, "/", "3").is_ok(), "the default site went away");
    let sites = remote(st, name, &["web", "site", "list"]);
    let names: Vec<&str> = sites
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["default", "extra"], "{sites}");
    let log = stop(st, name, node);
    assert!(!log.contains("panicked"), "{log}");

    // The site added over the API is there after a power cycle: what the
    // node serves, not what the API echoes.
    let again = boot(st, &image, name, &[(http, 80), (extra, 8088)]);
    let body = wait_for(
        "the added site after a reboot",
        Duration::from_secs(30),
        || get(extra, "/", "2").ok(),
    );
    assert!(body.contains("Hello from mote-web"), "{body}");
    assert!(
        get(http, "/", "3").is_ok(),
        "the default site after a reboot"
    );
    let log = stop(st, name, again);
    assert!(!log.contains("panicked"), "{log}");
}

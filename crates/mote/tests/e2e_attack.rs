//! moted under attack on a booted node (QEMU), as an attacker on the host
//! would try it through the management forward: a flood of parallel wrong
//! logins must neither grow moted past its ceiling nor lock the
//! administrator out, and no answer of a settings change carries the
//! password hash. Loopback tests of each defence are in
//! `crates/moted/tests/`; this one checks them where they matter, on a node
//! with 256 MiB, with moted's memory read from the node's own `/proc`.
//! (Before the fix, 400 guesses 40 at a time got moted OOM-killed twice at
//! 173 MB of anonymous memory.)
//!
//! Same prerequisites as `e2e_hello.rs`; skipped only when `MOTE_SKIP_VM=1`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mote_api::client::Client;

mod vm;
use vm::*;

/// moted's resident memory on the node, in KiB (VmRSS of /proc/PID/status).
fn moted_rss_kib(state: &Path, name: &str) -> u64 {
    let pid = service_pid(state, name, "moted", true).expect("moted has a pid");
    let out = mote(state)
        .args(["-n", name, "files", "get", &format!("/proc/{pid}/status")])
        .output()
        .expect("mote runs");
    let status = String::from_utf8_lossy(&out.stdout);
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no VmRSS in /proc/{pid}/status: {status}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

#[test]
fn a_login_flood_neither_grows_moted_nor_locks_the_administrator_out() {
    if !prerequisites(&["mote-init", "moted", "mote-hello"]) {
        return;
    }
    let state = tempfile::tempdir().expect("temp dir");
    let st = state.path();
    let image = build_image(st, "examples/hello.toml");
    let name = "e2e-attack";
    let node = boot(st, &image, name, &[]);
    let addr = node.ready["management"]
        .as_str()
        .unwrap_or_else(|| panic!("no management forward: {}", node.ready))
        .to_owned();
    let fingerprint = node.ready["fingerprint"].as_str().unwrap().to_owned();
    // The administrator has logged in from this client before.
    remote(st, name, &["system"]);
    let moted = service_pid(st, name, "moted", true).expect("moted has a pid");
    let before = moted_rss_kib(st, name);

    // 90 wrong guesses, 30 at a time (under moted's 32 connections per
    // source), from the host: 10.0.2.2 to the node, as every host client is
    // through QEMU's NAT. Before the fix, 30 parallel password checks of
    // 19 MiB each were enough to get moted OOM-killed on a 256 MiB node.
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let flood = {
        let (addr, fingerprint) = (Arc::new(addr.clone()), Arc::new(fingerprint.clone()));
        rt.spawn(async move {
            let mut refused = 0u32;
            for _ in 0..3 {
                let mut wave = Vec::new();
                for i in 0..30 {
                    let (addr, fp) = (Arc::clone(&addr), Arc::clone(&fingerprint));
                    wave.push(tokio::spawn(async move {
                        let guess = async {
                            let mut c = Client::connect(&addr, Some(&fp)).await.ok()?;
                            c.login("admin", &format!("guess-{i}")).await.err()
                        };
                        tokio::time::timeout(Duration::from_secs(30), guess)
                            .await
                            .ok()
                            .flatten()
                    }));
                }
                for guess in wave {
                    if let Ok(Some(_)) = guess.await {
                        refused += 1;
                    }
                }
            }
            refused
        })
    };
    // While it runs, the administrator logs in afresh.
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let login = mote(st)
        .args(["-n", name, "login", "--json"])
        .output()
        .expect("mote runs");
    let took = asked.elapsed();
    let refused = rt.block_on(flood).expect("the flood ran");
    assert!(
        login.status.success(),
        "the administrator was locked out by a guessing client: {}",
        String::from_utf8_lossy(&login.stderr)
    );
    eprintln!(
        "attack: the administrator logged in after {} ms during a flood of wrong logins \
         ({refused} refused)",
        took.as_millis()
    );
    assert!(refused > 0, "no guess was refused");

    // The same moted: not killed by the kernel's OOM killer and restarted
    // (which is what this flood did before: 173 MB, killed twice).
    assert_eq!(
        service_pid(st, name, "moted", true),
        Some(moted),
        "moted was restarted during the flood (OOM-killed?)"
    );
    let after = moted_rss_kib(st, name);
    eprintln!("attack: moted RSS {before} KiB before the flood, {after} KiB after");
    assert!(
        after <= 48 * 1024,
        "moted grew to {after} KiB under a login flood (ceiling 48 MiB)"
    );

    // No settings change answers with the password hash.
    for args in [
        &["firewall", "add", "probe", "--port", "8099"][..],
        &["firewall", "disable", "probe"],
        &["firewall", "remove", "probe"],
        &["settings", "set", "system.hostname", "attacked"],
        &["settings", "history"],
        &["audit"],
        &["events"],
    ] {
        let answer = remote(st, name, args).to_string();
        assert!(
            !answer.contains("$argon2"),
            "{args:?} answered with the password hash: {answer}"
        );
    }
    stop(st, name, node);
}

//! Issue 17: moted probed as an attacker would, each defect's regression
//! test, on loopback with a fake PID 1 (defect 1, logins and memory, is in
//! `login_flood.rs`).

mod attacker;

use std::time::Duration;

use attacker::*;
use serde_json::{json, Value};

/// The parts of a PHC string an answer must never carry: the whole, the
/// salt and the hash.
fn secret_parts(phc: &str) -> Vec<String> {
    let mut parts = vec![phc.to_string()];
    parts.extend(phc.rsplit('$').take(2).map(str::to_string));
    parts
}

fn assert_no_secret(what: &str, text: &str, hashes: &[&str]) {
    for h in hashes {
        for part in secret_parts(h) {
            assert!(
                !text.contains(&part),
                "{what} carries the password hash ({part}):\n{text}"
            );
        }
    }
}

/// A request for every operation of the OpenAPI document: path parameters,
/// required query parameters and a body that moted takes.
fn requests(
    doc: &Value,
    pid: u32,
    dir: &str,
    password: &str,
    revert_to: u64,
) -> Vec<(String, String, Option<Value>, Vec<u8>)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            let mut p = path.clone();
            for (name, value) in [("{pid}", pid.to_string()), ("{path}", "system".to_string())] {
                p = p.replace(name, &value);
            }
            p = match id {
                "actOnService" | "getServiceLogs" => {
                    p.replace("{name}", "web").replace("{action}", "restart")
                }
                "putInterface" => p.replace("{name}", "eth0"),
                "removeFirewallRule" | "enableFirewallRule" => {
                    p.replace("{name}", "ssh").replace("{action}", "disable")
                }
                "power" => p.replace("{action}", "reboot"),
                _ => p,
            };
            if id == "getFiles" {
                p.push_str(&format!("?path={dir}"));
            }
            if id == "putFile" {
                p.push_str(&format!("?path={dir}/up.txt"));
            }
            let body = match id {
                "login" => Some(json!({"username": "admin", "password": password})),
                "patchSettings" => Some(json!({"system": {"hostname": "walked"}})),
                "revertSettings" => Some(json!({"version": revert_to})),
                "putInterface" => Some(json!({"ipv4": "dhcp"})),
                "addFirewallRule" => Some(json!({"name": "ssh", "port": 22})),
                "killProcess" => Some(json!({"signal": 15})),
                "exec" => Some(json!({"argv": ["/bin/echo", "hi"]})),
                _ => None,
            };
            let raw = if id == "putFile" {
                b"hello".to_vec()
            } else {
                Vec::new()
            };
            out.push((method.to_uppercase(), p, body, raw));
        }
    }
    // Add the rule before it is enabled or removed, and log out last.
    let rank =
        |(m, p, _, _): &(String, String, Option<Value>, Vec<u8>)| match (m.as_str(), p.as_str()) {
            ("POST", "/v1/firewall/rules") => 0,
            (_, p) if p.starts_with("/v1/firewall/rules/") && m == "DELETE" => 2,
            ("POST", "/v1/logout") => 3,
            _ => 1,
        };
    out.sort_by_key(rank);
    out
}

/// Walks every route of the OpenAPI document with requests moted takes,
/// before and after the password hash is changed, and finds neither hash in
/// any answer, in the settings history, the audit log on disk, or PID 1's
/// events.
#[tokio::test]
async fn no_answer_event_audit_line_or_history_entry_carries_the_password_hash() {
    let n = node().await;
    let old_hash = n.hash.clone();
    let new_hash = hash_with("another secret", 8, 1);
    let doc: Value = serde_json::from_str(moted::api::openapi::DOCUMENT).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().to_str().unwrap().to_string();
    let mut victim = std::process::Command::new("/bin/sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let walk =
        |token: String, password: &'static str, revert_to: u64, hashes: Vec<String>, pid: u32| {
            let n = &n;
            let doc = &doc;
            let dir_text = dir_text.clone();
            async move {
                let hashes: Vec<&str> = hashes.iter().map(String::as_str).collect();
                let mut answered = 0;
                for (method, path, body, raw) in requests(doc, pid, &dir_text, password, revert_to)
                {
                    let a = if path.starts_with("/v1/events/follow") {
                        // A stream: what it says in its first moments.
                        let auth = format!("Bearer {token}");
                        let req = format!(
                            "GET {path} HTTP/1.1\r\nhost: node\r\nauthorization: {auth}\r\n\r\n"
                        );
                        let mut s = tls(n.addr(), ME).await.unwrap();
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        s.write_all(req.as_bytes()).await.unwrap();
                        let mut buf = vec![0u8; 65536];
                        let got =
                            tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf))
                                .await
                                .map_or(0, |r| r.unwrap_or(0));
                        String::from_utf8_lossy(&buf[..got]).into_owned()
                    } else if !raw.is_empty() {
                        let auth = format!("Bearer {token}");
                        call(
                            n.addr(),
                            ME,
                            &method,
                            &path,
                            &[
                                ("authorization", auth.as_str()),
                                ("content-type", "application/octet-stream"),
                            ],
                            &raw,
                        )
                        .await
                        .unwrap()
                        .all()
                    } else {
                        let a = json_call(n, &method, &path, &token, body).await;
                        assert!(
                            a.status < 500 || path.starts_with("/v1/power"),
                            "{method} {path}: {}",
                            a.all()
                        );
                        a.all()
                    };
                    answered += 1;
                    assert_no_secret(&format!("{method} {path}"), &a, &hashes);
                }
                answered
            }
        };
    let t1 = token(&n, ME, "secret").await;
    let answered = walk(t1, "secret", 1, vec![old_hash.clone()], victim.id()).await;
    assert_eq!(answered, moted::api::routes().len());
    // Change the password: the answer, the history and the audit log show
    // no hash, old or new.
    let t2 = token(&n, ME, "secret").await;
    let a = json_call(
        &n,
        "PATCH",
        "/v1/settings",
        &t2,
        Some(json!({"system": {"admin_password_hash": new_hash}})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let both = [old_hash.as_str(), new_hash.as_str()];
    assert_no_secret("the password change's answer", &a.all(), &both);
    let changed = a.json()["version"].as_u64().unwrap();
    let t3 = token(&n, ME, "another secret").await;
    let mut victim2 = std::process::Command::new("/bin/sleep")
        .arg("60")
        .spawn()
        .unwrap();
    walk(
        t3.clone(),
        "another secret",
        changed,
        vec![old_hash.clone(), new_hash.clone()],
        victim2.id(),
    )
    .await;
    // (The walk ended by logging out.)
    let t4 = token(&n, ME, "another secret").await;
    let history = json_call(&n, "GET", "/v1/settings/history", &t4, None).await;
    assert!(history.text().contains("redacted"), "{}", history.text());
    for entry in std::fs::read_dir(n.state()).unwrap() {
        let p = entry.unwrap().path();
        if p.to_string_lossy().contains("audit.jsonl") {
            let text = std::fs::read_to_string(&p).unwrap();
            assert_no_secret(&p.display().to_string(), &text, &both);
        }
    }
    let events = format!("{:?}", n.fake.state.lock().unwrap().events);
    assert_no_secret("PID 1's events", &events, &both);
    let _ = victim.kill();
    let _ = victim2.kill();
    let _ = victim.wait();
    let _ = victim2.wait();
}

/// Defect 3: a token can be revoked by logging out, a password change
/// revokes every older token, and the sessions list names who is logged in
/// but never a token.
#[tokio::test]
async fn logout_and_a_password_change_revoke_tokens_and_sessions_never_show_one() {
    let n = node().await;
    let a = token(&n, ME, "secret").await;
    let b = token(&n, source(1), "secret").await;
    let c = token(&n, source(2), "secret").await;
    let list = json_call(&n, "GET", "/v1/sessions", &a, None).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let sessions = list.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3, "{}", list.text());
    for t in [&a, &b, &c] {
        assert!(
            !list.text().contains(t.as_str()),
            "a token in {}",
            list.text()
        );
    }
    let mine: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["source"], "127.0.0.1");
    assert!(sessions
        .iter()
        .any(|s| s["source"] == source(1).to_string()));
    assert!(sessions
        .iter()
        .all(|s| s["user"] == "admin" && s["expires_ms"].as_u64() > s["issued_ms"].as_u64()));
    // Logout: that token stops working, the others do not.
    let out = json_call(&n, "POST", "/v1/logout", &a, None).await;
    assert_eq!(out.status, 200, "{}", out.text());
    assert_eq!(
        json_call(&n, "GET", "/v1/system", &a, None).await.status,
        401
    );
    assert_eq!(
        json_call(&n, "POST", "/v1/logout", &a, None).await.status,
        401
    );
    assert_eq!(
        json_call(&n, "GET", "/v1/system", &b, None).await.status,
        200
    );
    let list = json_call(&n, "GET", "/v1/sessions", &b, None).await;
    assert_eq!(list.json()["sessions"].as_array().unwrap().len(), 2);
    // A new password: every token issued before it is dead, the one that
    // changed it too; the new password logs in.
    let new_hash = hash_with("new secret", 8, 1);
    let changed = json_call(
        &n,
        "PATCH",
        "/v1/settings",
        &b,
        Some(json!({"system": {"admin_password_hash": new_hash}})),
    )
    .await;
    assert_eq!(changed.status, 200, "{}", changed.text());
    for t in [&b, &c] {
        assert_eq!(
            json_call(&n, "GET", "/v1/system", t, None).await.status,
            401
        );
    }
    assert_eq!(login(&n, source(3), "secret").await.unwrap().status, 401);
    let d = token(&n, source(4), "new secret").await;
    let list = json_call(&n, "GET", "/v1/sessions", &d, None).await;
    assert_eq!(list.json()["sessions"].as_array().unwrap().len(), 1);
    // Reverting to the old password is a change of credential too.
    let reverted = json_call(
        &n,
        "POST",
        "/v1/settings/revert",
        &d,
        Some(json!({"version": 1})),
    )
    .await;
    assert_eq!(reverted.status, 200, "{}", reverted.text());
    assert_eq!(
        json_call(&n, "GET", "/v1/system", &d, None).await.status,
        401
    );
}

/// The real client and CLI pieces: `Client::logout` ends the session.
#[tokio::test]
async fn the_client_logs_out() {
    let n = node().await;
    let mut c = mote_api::client::Client::connect(&n.addr().to_string(), None)
        .await
        .unwrap();
    c.login("admin", "secret").await.unwrap();
    let token = c.token().unwrap().to_string();
    assert_eq!(c.sessions().await.unwrap().sessions.len(), 1);
    c.logout().await.unwrap();
    assert!(c.token().is_none());
    assert_eq!(
        json_call(&n, "GET", "/v1/system", &token, None)
            .await
            .status,
        401
    );
}

fn audit_bytes(n: &Node) -> u64 {
    std::fs::read_dir(n.state())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("audit.jsonl"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Defect 4: refused unauthenticated writes with 16 KB paths neither fill
/// the audit log nor flood PID 1's events: one line per source per minute,
/// its path cut, and the count of the others in the next one written.
#[tokio::test]
async fn unauthenticated_refusals_are_sampled_and_cut_not_written_in_full() {
    let n = node().await;
    let long = format!("/v1/firewall/rules/{}/enable", "A".repeat(16 * 1024));
    let mut refused = 0;
    for i in 0..200u16 {
        // Four sources, 50 each; a bad token or none.
        let from = source(i % 4);
        let headers: &[(&str, &str)] = if i % 2 == 0 {
            &[("authorization", "Bearer 00")]
        } else {
            &[]
        };
        let a = call(n.addr(), from, "POST", &long, headers, b"")
            .await
            .unwrap();
        assert_eq!(a.status, 401);
        refused += 1;
    }
    assert_eq!(refused, 200);
    let bytes = audit_bytes(&n);
    assert!(
        bytes < 4 * 1024,
        "audit.jsonl is {bytes} bytes after 200 refusals"
    );
    let t = token(&n, ME, "secret").await;
    let audit = json_call(&n, "GET", "/v1/audit", &t, None).await.json();
    let lines = audit["entries"].as_array().unwrap();
    let refusals: Vec<&Value> = lines
        .iter()
        .filter(|e| e["result"].as_str().unwrap().starts_with("401"))
        .collect();
    assert_eq!(refusals.len(), 4, "{audit}");
    for e in &refusals {
        assert!(e["what"].as_str().unwrap().len() < 400, "{e}");
    }
    let audit_events = n
        .fake
        .state
        .lock()
        .unwrap()
        .events
        .iter()
        .filter(|e| e.source == "audit")
        .count();
    assert!(audit_events <= 5, "{audit_events} audit events");
}

/// Defect 4: the audit log is rotated by size and keeps its cap, however
/// many changes are made.
#[tokio::test]
async fn the_audit_log_keeps_its_cap() {
    let n = start(
        cheap(),
        THROTTLE,
        moted::Limits {
            audit_max_bytes: 8 * 1024,
            ..moted::Limits::default()
        },
    )
    .await;
    let t = token(&n, ME, "secret").await;
    let long = format!("/v1/firewall/rules/{}/enable", "B".repeat(4 * 1024));
    for _ in 0..150 {
        // Logged in: every refusal is written (a 404, no such rule).
        let a = json_call(&n, "POST", &long, &t, None).await;
        assert_eq!(a.status, 404, "{}", a.text());
    }
    let bytes = audit_bytes(&n);
    assert!(bytes <= 2 * 8 * 1024 + 1024, "{bytes} bytes");
    assert!(n.state().join("audit.jsonl.1").exists());
    assert!(!n.state().join("audit.jsonl.2").exists());
    // The newest entries are still read back.
    let audit = json_call(&n, "GET", "/v1/audit", &t, None).await.json();
    assert!(audit["entries"].as_array().unwrap().len() > 10);
}

/// Whether the server closes `s` within `within` (reads until EOF or an
/// error; data is ignored).
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

fn quick_limits() -> moted::Limits {
    moted::Limits {
        tls_handshake: Duration::from_millis(500),
        header_read: Duration::from_millis(500),
        connections: 12,
        connections_per_source: 4,
        ..moted::Limits::default()
    }
}

/// Defect 5: a client that connects and says nothing, one that stops in
/// the middle of its header, and one that idles after a request are all
/// closed after their timeout.
#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let n = start(cheap(), THROTTLE, quick_limits()).await;
    // No TLS handshake at all.
    let mut idle_tcp = tcp(n.addr(), ME).await.unwrap();
    assert!(closed_within(&mut idle_tcp, Duration::from_secs(2)).await);
    // Half a header, never finished.
    let mut slow = tls(n.addr(), ME).await.unwrap();
    slow.write_all(b"GET /v1/system HTTP/1.1\r\nhost: no")
        .await
        .unwrap();
    slow.flush().await.unwrap();
    let t = std::time::Instant::now();
    assert!(closed_within(&mut slow, Duration::from_secs(2)).await);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    // A whole request, then silence on a keep-alive connection.
    let mut idle = tls(n.addr(), ME).await.unwrap();
    idle.write_all(b"GET /v1/system HTTP/1.1\r\nhost: node\r\n\r\n")
        .await
        .unwrap();
    idle.flush().await.unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(2)).await);
}

/// Defect 5: connections are capped per source and in total; past a cap a
/// new one is closed at once, and other sources still get in.
#[tokio::test]
async fn connections_are_capped_per_source_and_in_total() {
    let n = start(
        cheap(),
        THROTTLE,
        moted::Limits {
            tls_handshake: Duration::from_secs(30),
            header_read: Duration::from_secs(30),
            ..quick_limits()
        },
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tcp(n.addr(), ME).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fifth = tcp(n.addr(), ME).await.unwrap();
    assert!(closed_within(&mut fifth, Duration::from_secs(1)).await);
    // Another source is not held back by this one.
    assert_eq!(login(&n, source(1), "secret").await.unwrap().status, 200);
    // Fill the total (12): 4 more sources' worth.
    for i in 0..8u16 {
        held.push(tcp(n.addr(), source(10 + i / 4)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = tcp(n.addr(), source(20)).await.unwrap();
    assert!(closed_within(&mut over, Duration::from_secs(1)).await);
    // Closing some makes room again.
    held.truncate(6);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(login(&n, source(21), "secret").await.unwrap().status, 200);
}

async fn settings_version(n: &Node, t: &str) -> u64 {
    json_call(n, "GET", "/v1/settings", t, None).await.json()["version"]
        .as_u64()
        .unwrap()
}

/// Defect 7: the smaller ones. An oversized JSON body is 413, an upload to
/// a directory 400, a control character or 5,000 characters in a rule name
/// 422, a PATCH that is not JSON 415, an interface the node does not have
/// 404; none of them changes anything.
#[tokio::test]
async fn bad_input_gets_the_right_4xx_and_changes_nothing() {
    let n = node().await;
    let t = token(&n, ME, "secret").await;
    let auth = format!("Bearer {t}");
    let v0 = settings_version(&n, &t).await;
    // 3 MB of JSON.
    let big = format!(
        "{{\"system\":{{\"hostname\":\"{}\"}}}}",
        "a".repeat(3 << 20)
    );
    let a = call(
        n.addr(),
        ME,
        "PATCH",
        "/v1/settings",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        big.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(a.status, 413, "{}", a.text());
    // An upload to a directory.
    let dir = tempfile::tempdir().unwrap();
    for path in [
        format!("{}/", dir.path().display()),
        dir.path().display().to_string(),
    ] {
        let a = call(
            n.addr(),
            ME,
            "PUT",
            &format!("/v1/files?path={path}"),
            &[
                ("authorization", &auth),
                ("content-type", "application/octet-stream"),
            ],
            b"x",
        )
        .await
        .unwrap();
        assert_eq!(a.status, 400, "{path}: {}", a.text());
    }
    // Rule names: control characters, too long.
    for name in [
        "bad\u{7}name".to_string(),
        "x".repeat(5000),
        "new\nline".into(),
    ] {
        let a = json_call(
            &n,
            "POST",
            "/v1/firewall/rules",
            &t,
            Some(json!({"name": name, "port": 22})),
        )
        .await;
        assert_eq!(a.status, 422, "{}", a.text());
        assert!(
            a.text().len() < 2000,
            "the refusal echoes it all: {}",
            a.text().len()
        );
    }
    let a = json_call(
        &n,
        "POST",
        "/v1/firewall/rules",
        &t,
        Some(json!({"name": "web-443", "port": 443})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    // A PATCH that is not JSON.
    for ct in ["text/plain", "application/x-www-form-urlencoded"] {
        let a = call(
            n.addr(),
            ME,
            "PATCH",
            "/v1/settings",
            &[("authorization", &auth), ("content-type", ct)],
            br#"{"system":{"hostname":"plain"}}"#,
        )
        .await
        .unwrap();
        assert_eq!(a.status, 415, "{ct}: {}", a.text());
    }
    let a = call(
        n.addr(),
        ME,
        "PATCH",
        "/v1/settings",
        &[
            ("authorization", &auth),
            ("content-type", "application/merge-patch+json"),
        ],
        br#"{"system":{"hostname":"merged"}}"#,
    )
    .await
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    // An interface the node does not have; one it has.
    let a = json_call(
        &n,
        "PUT",
        "/v1/network/interfaces/eth9",
        &t,
        Some(json!({"ipv4": "dhcp"})),
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.text());
    let a = json_call(
        &n,
        "PUT",
        "/v1/network/interfaces/eth0",
        &t,
        Some(json!({"ipv4": "dhcp"})),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    // Only the two good changes made versions.
    assert_eq!(settings_version(&n, &t).await, v0 + 3);
}

/// Defect 4: a write that changes nothing makes no version (and applies
/// nothing), and the history keeps its depth however many writes come.
#[tokio::test]
async fn no_op_writes_make_no_version_and_the_history_keeps_its_depth() {
    let n = start(
        cheap(),
        THROTTLE,
        moted::Limits {
            history_depth: 5,
            ..moted::Limits::default()
        },
    )
    .await;
    let t = token(&n, ME, "secret").await;
    let v0 = settings_version(&n, &t).await;
    let applied = n.fake.state.lock().unwrap().applied.len();
    for _ in 0..20 {
        let same = json_call(
            &n,
            "PATCH",
            "/v1/settings",
            &t,
            Some(json!({"system": {"hostname": "node1"}})),
        )
        .await;
        assert_eq!(same.status, 200, "{}", same.text());
        assert_eq!(same.json()["version"], v0);
        let empty = json_call(&n, "PATCH", "/v1/settings", &t, Some(json!({}))).await;
        assert_eq!(empty.json()["version"], v0);
    }
    let revert = json_call(
        &n,
        "POST",
        "/v1/settings/revert",
        &t,
        Some(json!({"version": v0})),
    )
    .await;
    assert_eq!(revert.json()["version"], v0);
    assert_eq!(n.fake.state.lock().unwrap().applied.len(), applied);
    assert_eq!(settings_version(&n, &t).await, v0);
    // Real changes: numbers go on, 5 files stay.
    for i in 0..12 {
        let a = json_call(
            &n,
            "PATCH",
            "/v1/settings",
            &t,
            Some(json!({"system": {"hostname": format!("h{i}")}})),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text());
    }
    assert_eq!(settings_version(&n, &t).await, v0 + 12);
    let files = std::fs::read_dir(n.state().join("settings/history"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    assert_eq!(files, 5);
    let history = json_call(&n, "GET", "/v1/settings/history", &t, None)
        .await
        .json();
    assert_eq!(history["versions"].as_array().unwrap().len(), 5);
    // A pruned version is gone.
    let old = json_call(
        &n,
        "POST",
        "/v1/settings/revert",
        &t,
        Some(json!({"version": v0})),
    )
    .await;
    assert_eq!(old.status, 404, "{}", old.text());
}

/// Defect 5: a login whose body trickles in (the head is whole, so the
/// header timeout does not apply) is cut off after 10 s with 408, and does
/// not hold up anyone else's login meanwhile.
#[tokio::test]
async fn a_login_body_that_trickles_in_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let n = node().await;
    let mut slow = tls(n.addr(), source(1)).await.unwrap();
    slow.write_all(
        b"POST /v1/login HTTP/1.1\r\nhost: node\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"user",
    )
    .await
    .unwrap();
    slow.flush().await.unwrap();
    let t = std::time::Instant::now();
    // Meanwhile the administrator logs in at once.
    token(&n, ME, "secret").await;
    assert!(t.elapsed() < Duration::from_secs(2));
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), slow.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(t.elapsed() >= Duration::from_secs(9), "{:?}", t.elapsed());
}

/// The issue's goal: the audit log stays under its cap under a flood.
/// Eight clients for `MOTE_FLOOD_SECS` (3 s by default; the figure in
/// docs/reliability.md is from a longer run): six send refused writes with
/// 16 KB paths, without a token, from 48 addresses; two send logged-in
/// writes that fail (each written). The log keeps its 2 × 1 MiB cap, and
/// PID 1's events are not flooded by the refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_log_stays_under_its_cap_under_a_flood() {
    let secs: u64 = std::env::var("MOTE_FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let n = start(cheap(), THROTTLE, moted::Limits::default()).await;
    let t = token(&n, ME, "secret").await;
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    let long = format!("/v1/firewall/rules/{}/enable", "F".repeat(16 * 1024));
    let workers = (0..8u16).map(|w| {
        let (n, t, long) = (&n, t.clone(), long.clone());
        async move {
            let mut sent = 0u64;
            let mut i = 0u16;
            while std::time::Instant::now() < end {
                i = i.wrapping_add(1);
                let a = if w < 6 {
                    call(
                        n.addr(),
                        source(500 + (w * 8 + i % 8)),
                        "POST",
                        &long,
                        &[],
                        b"",
                    )
                    .await
                } else {
                    let auth = format!("Bearer {t}");
                    call(
                        n.addr(),
                        ME,
                        "POST",
                        &long,
                        &[("authorization", &auth)],
                        b"",
                    )
                    .await
                };
                if a.is_ok() {
                    sent += 1;
                }
            }
            sent
        }
    });
    let sent: u64 = futures_util::future::join_all(workers).await.iter().sum();
    let bytes = audit_bytes(&n);
    let events = n.fake.state.lock().unwrap().events.len();
    eprintln!(
        "audit flood: {sent} requests in {secs} s, audit log {bytes} bytes in all, {events} events"
    );
    assert!(bytes <= 2 * (1 << 20) + 2048, "{bytes} bytes");
    assert!(!n.state().join("audit.jsonl.2").exists());
}

/// Defect 6: behind one address (QEMU's NAT makes every host client
/// 10.0.2.2), a guessing client locks the address, but the administrator's
/// client, which logged in before and kept its device id, still logs in at
/// once; the guesser stays locked, a made-up device id does not help it,
/// and three wrong passwords with a device id end it.
#[tokio::test]
async fn a_guesser_behind_the_same_address_does_not_lock_out_a_known_client() {
    let n = node().await;
    let nat = source(7);
    let first = login(&n, nat, "secret").await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    let device = first.json()["device"].as_str().unwrap().to_string();
    assert_eq!(device.len(), 64);
    // The guesser, same address: a few guesses, then locked.
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(login(&n, nat, &format!("guess{i}")).await.unwrap().status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let with = |password: &str, device: &str| {
        let body = json!({"username": "admin", "password": password, "device": device}).to_string();
        let to = n.addr();
        async move {
            call(
                to,
                nat,
                "POST",
                "/v1/login",
                &[("content-type", "application/json")],
                body.as_bytes(),
            )
            .await
            .unwrap()
        }
    };
    // The administrator's client gets in at once, and keeps its id.
    let t = std::time::Instant::now();
    let a = with("secret", &device).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(a.json()["device"], device.as_str());
    // The guesser is still locked, with or without a made-up id.
    assert_eq!(login(&n, nat, "secret").await.unwrap().status, 429);
    assert_eq!(with("secret", &"0".repeat(64)).await.status, 429);
    // Three wrong passwords with the id end it.
    for _ in 0..3 {
        assert_eq!(with("wrong", &device).await.status, 401);
    }
    assert_eq!(with("secret", &device).await.status, 429);
    // The real client keeps it across logins too.
    let mut c = mote_api::client::Client::connect(&n.addr().to_string(), None)
        .await
        .unwrap();
    c.login("admin", "secret").await.unwrap();
    let kept = c.device().unwrap().to_string();
    c.login("admin", "secret").await.unwrap();
    assert_eq!(c.device(), Some(kept.as_str()));
}

/// Defect 1: a guesser that hangs up before the answer still has its guess
/// counted (the failure is recorded before the password is checked), so
/// hanging up cannot buy unlimited guesses.
#[tokio::test]
async fn a_guess_abandoned_before_its_answer_still_counts() {
    use tokio::io::AsyncWriteExt;
    // The node's real parameters: a check takes long enough to hang up in.
    let n = start(
        mote_config::password::hash("secret").unwrap(),
        THROTTLE,
        moted::Limits::default(),
    )
    .await;
    let from = source(9);
    let body = json!({"username": "admin", "password": "guess"}).to_string();
    let req = format!(
        "POST /v1/login HTTP/1.1\r\nhost: node\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = tls(n.addr(), from).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(s);
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Even the right password is refused: the guess was counted.
    let a = login(&n, from, "secret").await.unwrap();
    assert_eq!(a.status, 429, "{}", a.text());
}

/// Defect 7: PID 1 stops moted with SIGTERM (a reboot, a restart): the
/// request being answered (as `power reboot`'s is) still gets its answer,
/// and moted then ends within its 2 s grace.
#[tokio::test]
async fn sigterm_lets_the_answer_being_made_go_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut p = spawn_moted(&mote_config::password::hash("secret").unwrap());
    let to = p.addr();
    // One connection, already answering: a first request and its answer.
    let mut s = tls(to, ME).await.unwrap();
    s.write_all(b"GET /v1/system HTTP/1.1\r\nhost: node\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 401"));
    // A login whose body is still coming when SIGTERM arrives: moted is
    // answering it.
    let body = json!({"username": "admin", "password": "secret"}).to_string();
    let head = format!(
        "POST /v1/login HTTP/1.1\r\nhost: node\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body.as_bytes()[..5]).await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = p.child.id() as i32;
    // SAFETY: a signal to the moted process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let t = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    s.write_all(&body.as_bytes()[5..]).await.unwrap();
    s.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(4), "moted still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    // It no longer takes connections.
    assert!(login_to(to, ME, "secret").await.is_err());
}

/// Issue 17: an answer given before the body was read (401 without a
/// token, 413 on `Content-Length`) says `Connection: close` and the
/// connection ends; one given after the body was read, or to a request
/// without a body, leaves the connection open and says nothing.
#[tokio::test]
async fn an_answer_before_the_body_says_the_connection_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let n = node().await;
    let t = token(&n, ME, "secret").await;
    let early = [
        "POST /v1/settings/revert HTTP/1.1\r\nhost: node\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"vers".to_string(),
        format!(
            "POST /v1/settings/revert HTTP/1.1\r\nhost: node\r\nauthorization: Bearer {t}\r\ncontent-type: application/json\r\ncontent-length: 99999999\r\n\r\n{{\"vers"
        ),
    ];
    for request in early {
        let mut s = tls(n.addr(), ME).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        assert!(read.is_ok(), "the connection stays open after {text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    }
    let kept = [
        "GET /v1/system HTTP/1.1\r\nhost: node\r\n\r\n".to_string(),
        format!(
            "POST /v1/settings/revert HTTP/1.1\r\nhost: node\r\nauthorization: Bearer {t}\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\n{{\"v\"}}"
        ),
    ];
    for request in kept {
        let mut s = tls(n.addr(), ME).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        s.flush().await.unwrap();
        let mut buf = [0u8; 4096];
        let got = s.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..got]).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 4"), "{text}");
        assert!(!text.contains("connection: close"), "{text}");
        assert!(!closed_within(&mut s, Duration::from_millis(300)).await);
    }
}

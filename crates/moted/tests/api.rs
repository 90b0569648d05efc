//! moted served on loopback with a fake PID 1, driven by the real client.

use std::sync::Arc;
use std::time::Duration;

use mote_api::api::*;
use mote_api::client::{Client, ClientError, FileGet};
use moted::{Config, FakeInit};
use serde_json::json;

struct Node {
    _dir: tempfile::TempDir,
    fake: FakeInit,
    running: moted::Running,
}

fn cheap_hash(pw: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    a.hash_password(pw.as_bytes(), &salt).unwrap().to_string()
}

async fn node_with(ttl: Duration) -> Node {
    node_from(ttl, |_| {}).await
}

async fn node_from(ttl: Duration, edit: impl FnOnce(&mut mote_config::NodeSettings)) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut s = mote_config::NodeSettings::default();
    s.system.hostname = "node1".into();
    s.system.admin_password_hash = cheap_hash("secret");
    edit(&mut s);
    let image = dir.path().join("settings.json");
    std::fs::write(&image, serde_json::to_vec(&s).unwrap()).unwrap();
    let fake = FakeInit::new();
    let running = moted::start(
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: dir.path().join("state"),
            image_settings: image,
            token_ttl: ttl,
            throttle_base: Duration::from_millis(300),
            throttle_max: Duration::from_secs(30),
        },
        Arc::new(fake.clone()),
    )
    .await
    .unwrap();
    Node {
        _dir: dir,
        fake,
        running,
    }
}

async fn node() -> Node {
    node_with(Duration::from_secs(3600)).await
}

async fn client(n: &Node) -> Client {
    let mut c = Client::connect(&n.running.addr.to_string(), Some(&n.running.fingerprint))
        .await
        .unwrap();
    c.login("admin", "secret").await.unwrap();
    c
}

fn status(e: ClientError) -> u16 {
    match e {
        ClientError::Status { status, .. } => status,
        other => panic!("not a status error: {other}"),
    }
}

#[tokio::test]
async fn tofu_captures_and_a_wrong_pin_fails_loudly() {
    let n = node().await;
    let addr = n.running.addr.to_string();
    let c = Client::connect(&addr, None).await.unwrap();
    assert_eq!(c.fingerprint(), n.running.fingerprint);
    let wrong = "AA:".repeat(31) + "AA";
    match Client::connect(&addr, Some(&wrong)).await {
        Err(ClientError::FingerprintMismatch { presented, .. }) => {
            assert_eq!(presented, n.running.fingerprint)
        }
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("a wrong pin connected"),
    }
}

#[tokio::test]
async fn wrong_password_is_refused_and_throttled() {
    let n = node().await;
    let mut c = Client::connect(&n.running.addr.to_string(), None)
        .await
        .unwrap();
    assert_eq!(status(c.login("admin", "nope").await.unwrap_err()), 401);
    match c.login("admin", "secret").await.unwrap_err() {
        ClientError::Status {
            status: 429,
            retry_after: Some(s),
            ..
        } => assert!(s >= 1),
        e => panic!("expected 429, got {e}"),
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(status(c.login("admin", "bad").await.unwrap_err()), 401);
    // The second failure locks for twice as long.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(status(c.login("admin", "secret").await.unwrap_err()), 429);
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.login("admin", "secret").await.unwrap();
    let audit = c.audit(&AuditQuery::default()).await.unwrap();
    assert!(audit
        .entries
        .iter()
        .any(|e| e.what.contains("/v1/login") && e.result.starts_with("401")));
}

#[tokio::test]
async fn no_token_or_expired_token_is_401() {
    let n = node_with(Duration::from_millis(200)).await;
    let mut c = Client::connect(&n.running.addr.to_string(), None)
        .await
        .unwrap();
    assert_eq!(status(c.system().await.unwrap_err()), 401);
    assert_eq!(status(c.openapi().await.unwrap_err()), 401);
    c.login("admin", "secret").await.unwrap();
    c.system().await.unwrap();
    c.openapi().await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(status(c.system().await.unwrap_err()), 401);
}

#[tokio::test]
async fn settings_patch_history_revert_and_rollback() {
    let n = node().await;
    let c = client(&n).await;
    let s = c.settings().await.unwrap();
    assert_eq!(
        (s.version, s.settings.system.hostname.as_str()),
        (1, "node1")
    );
    let v = c
        .patch_settings(&json!({"system":{"hostname":"node2"}}))
        .await
        .unwrap();
    assert_eq!(v.version, 2);
    assert_eq!(
        c.settings_at("system.hostname").await.unwrap().value,
        json!("node2")
    );
    // Invalid → 422 with problems, nothing stored.
    match c
        .patch_settings(&json!({"system":{"hostname":"bad host!"}}))
        .await
        .unwrap_err()
    {
        ClientError::Status {
            status: 422, body, ..
        } => assert!(!body.problems.is_empty()),
        e => panic!("expected 422, got {e}"),
    }
    assert_eq!(
        status(c.patch_settings(&json!({"nope":1})).await.unwrap_err()),
        400
    );
    assert_eq!(
        status(c.patch_settings(&json!([1])).await.unwrap_err()),
        400
    );
    // PID 1 refuses → rolled back, old settings re-applied, store unchanged.
    n.fake.state.lock().unwrap().refuse_next_apply = Some("eth9 is gone".into());
    assert_eq!(
        status(
            c.patch_settings(&json!({"system":{"hostname":"node3"}}))
                .await
                .unwrap_err()
        ),
        409
    );
    let applied = n.fake.state.lock().unwrap().applied.clone();
    assert_eq!(applied.last().unwrap().system.hostname, "node2");
    assert_eq!(c.settings().await.unwrap().version, 2);
    // Revert and history.
    let r = c.revert_settings(1).await.unwrap();
    assert_eq!(
        (r.version, r.settings.system.hostname.as_str()),
        (3, "node1")
    );
    assert_eq!(status(c.revert_settings(99).await.unwrap_err()), 404);
    let h = c.settings_history().await.unwrap();
    assert_eq!(h.current, 3);
    assert_eq!(h.versions.len(), 3);
    // Audit: every change, in the log and as a PID 1 event.
    let audit = c.audit(&AuditQuery::default()).await.unwrap();
    assert!(
        audit
            .entries
            .iter()
            .filter(|e| e.what.contains("PATCH"))
            .count()
            >= 4
    );
    assert!(n
        .fake
        .state
        .lock()
        .unwrap()
        .events
        .iter()
        .any(|e| e.source == "audit"));
}

fn precondition_failed(e: ClientError) -> (Option<u64>, String) {
    match e {
        ClientError::PreconditionFailed { current, body } => (current, body.error),
        other => panic!("expected 412, got {other}"),
    }
}

#[tokio::test]
async fn settings_writes_honour_if_match_and_a_stale_one_is_412_and_changes_nothing() {
    let n = node().await;
    let c = client(&n).await;
    // GET gives the version as ETag.
    let resp = c
        .request(hyper::Method::GET, "/v1/settings", None, Vec::new())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], "\"1\"");
    // Matching: applied, stored, and the answer tags the new version.
    let v = c
        .patch_settings_if(&json!({"system":{"hostname":"node2"}}), 1)
        .await
        .unwrap();
    assert_eq!(
        (v.version, v.settings.system.hostname.as_str()),
        (2, "node2")
    );
    // Stale (made from version 1, the settings are at 2): refused, nothing
    // edited, applied or stored.
    let applied = n.fake.state.lock().unwrap().applied.len();
    let (current, error) = precondition_failed(
        c.patch_settings_if(&json!({"system":{"hostname":"node3"}}), 1)
            .await
            .unwrap_err(),
    );
    assert_eq!(current, Some(2));
    assert!(error.contains("version 2, not 1"), "{error}");
    assert!(
        error.contains("re-read the settings and apply your change again"),
        "{error}"
    );
    assert_eq!(n.fake.state.lock().unwrap().applied.len(), applied);
    let s = c.settings().await.unwrap();
    assert_eq!(
        (s.version, s.settings.system.hostname.as_str()),
        (2, "node2")
    );
    assert_eq!(c.settings_history().await.unwrap().versions.len(), 2);
    // The bare form, and a list of tags, are taken too; the answer carries
    // the new ETag.
    let patch = |host: &str| serde_json::to_vec(&json!({"system":{"hostname":host}})).unwrap();
    let send = |tag: &'static str, body: Vec<u8>| {
        let c = &c;
        async move {
            c.request_with(
                hyper::Method::PATCH,
                "/v1/settings",
                Some("application/json"),
                &[("if-match", tag)],
                body,
            )
            .await
            .unwrap()
        }
    };
    let resp = send("2", patch("node3")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], "\"3\"");
    assert_eq!(send("\"1\", \"3\"", patch("node4")).await.status(), 200);
    let resp = send("3", patch("node5")).await;
    assert_eq!(resp.status(), 412);
    assert_eq!(resp.headers()["etag"], "\"4\"");
    // Not a version: 400, nothing changed.
    assert_eq!(send("W/\"4\"", patch("node5")).await.status(), 400);
    assert_eq!(send("four", patch("node5")).await.status(), 400);
    assert_eq!(c.settings().await.unwrap().version, 4);
    // Revert honours it too.
    let (current, _) = precondition_failed(c.revert_settings_if(1, 3).await.unwrap_err());
    assert_eq!(current, Some(4));
    let r = c.revert_settings_if(1, 4).await.unwrap();
    assert_eq!(
        (r.version, r.settings.system.hostname.as_str()),
        (5, "node1")
    );
    // Without If-Match nothing changes from before.
    assert_eq!(
        c.patch_settings(&json!({"system":{"hostname":"node6"}}))
            .await
            .unwrap()
            .version,
        6
    );
    // A refused write is audited like any other.
    let audit = c.audit(&AuditQuery::default()).await.unwrap();
    let refused: Vec<&AuditEntry> = audit
        .entries
        .iter()
        .filter(|e| e.result.starts_with("412"))
        .collect();
    assert_eq!(refused.len(), 3, "{:?}", audit.entries);
    assert!(refused[0].what.contains("PATCH /v1/settings"));
    assert!(refused[0].result.contains("re-read the settings"));
}

/// Writers that all read version 1 and write at once: the check and the
/// store are one step, so exactly one wins and the others get 412.
#[tokio::test]
async fn concurrent_writers_from_the_same_version_one_wins_the_rest_get_412() {
    let n = node().await;
    let c = client(&n).await;
    // The first change to arrive holds the lock a while, so the others queue
    // behind it.
    n.fake.state.lock().unwrap().delay_next_apply = Some(Duration::from_millis(300));
    let patches: Vec<serde_json::Value> = (0..4)
        .map(|i| json!({"system":{"hostname":format!("writer{i}")}}))
        .collect();
    let results =
        futures_util::future::join_all(patches.iter().map(|p| c.patch_settings_if(p, 1))).await;
    let mut won = Vec::new();
    for r in results {
        match r {
            Ok(v) => won.push(v),
            Err(e) => assert_eq!(precondition_failed(e).0, Some(2)),
        }
    }
    assert_eq!(won.len(), 1);
    assert_eq!(won[0].version, 2);
    let s = c.settings().await.unwrap();
    assert_eq!(s.version, 2);
    assert_eq!(s.settings.system.hostname, won[0].settings.system.hostname);
}

#[tokio::test]
async fn services_events_network_firewall_power() {
    let n = node().await;
    let c = client(&n).await;
    assert_eq!(c.system().await.unwrap().kernel, "6.1.0-fake");
    assert_eq!(c.services().await.unwrap().services[0].name, "web");
    c.service("web", ServiceAction::Restart).await.unwrap();
    assert_eq!(
        status(c.service("nope", ServiceAction::Start).await.unwrap_err()),
        404
    );
    n.fake.emit("web", Level::Warn, "slow start");
    assert_eq!(
        c.service_logs("web", &EventsQuery::default())
            .await
            .unwrap()
            .events
            .len(),
        1
    );
    let q = EventsQuery {
        text: Some("slow".into()),
        ..Default::default()
    };
    assert_eq!(c.events(&q).await.unwrap().events.len(), 1);
    let mut follow = c
        .follow(&EventsQuery {
            source: Some("web".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    n.fake.emit("web", Level::Info, "hello");
    assert_eq!(follow.next().await.unwrap().unwrap().message, "hello");
    c.network().await.unwrap();
    let v = c
        .put_interface("eth0", &Interface::default())
        .await
        .unwrap();
    assert!(v.settings.network.interfaces.contains_key("eth0"));
    let rule: FirewallRule = serde_json::from_value(json!({"name":"ssh","port":22})).unwrap();
    c.add_rule(&rule).await.unwrap();
    assert_eq!(status(c.add_rule(&rule).await.unwrap_err()), 409);
    assert!(
        !c.enable_rule("ssh", false)
            .await
            .unwrap()
            .settings
            .firewall
            .rules[0]
            .enabled
    );
    assert_eq!(c.firewall().await.unwrap().rules.len(), 1);
    c.delete_rule("ssh").await.unwrap();
    assert_eq!(status(c.delete_rule("ssh").await.unwrap_err()), 404);
    c.power(PowerAction::Reboot).await.unwrap();
    assert_eq!(
        n.fake.state.lock().unwrap().power,
        vec![PowerAction::Reboot]
    );
}

#[tokio::test]
async fn processes_performance_files_exec() {
    let n = node().await;
    let c = client(&n).await;
    let me = std::process::id();
    assert!(c
        .processes()
        .await
        .unwrap()
        .processes
        .iter()
        .any(|p| p.pid == me));
    assert_eq!(status(c.kill(1, 15).await.unwrap_err()), 400);
    assert_eq!(status(c.kill(me, 99).await.unwrap_err()), 400);
    let p = c.performance().await.unwrap();
    assert!(p.memory.total_bytes > 0);
    assert!(c
        .metrics()
        .await
        .unwrap()
        .contains("mote_memory_total_bytes"));
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("a.txt");
    c.files_put(f.to_str().unwrap(), b"hi".to_vec())
        .await
        .unwrap();
    assert_eq!(
        c.files_get(f.to_str().unwrap()).await.unwrap(),
        FileGet::File(b"hi".to_vec())
    );
    match c.files_get(d.path().to_str().unwrap()).await.unwrap() {
        FileGet::Dir(l) => assert_eq!(l.entries[0].name, "a.txt"),
        other => panic!("{other:?}"),
    }
    assert_eq!(status(c.files_get("relative").await.unwrap_err()), 400);
    assert_eq!(status(c.files_get("/no/such/file").await.unwrap_err()), 404);
    // A device never ends: refused, and the agent stays up.
    assert_eq!(status(c.files_get("/dev/zero").await.unwrap_err()), 400);
    // A /proc file says 0 bytes and still arrives whole (streamed).
    match c.files_get("/proc/self/status").await.unwrap() {
        FileGet::File(b) => assert!(String::from_utf8_lossy(&b).contains("Name:")),
        other => panic!("{other:?}"),
    }
    // A file larger than the stream's buffer arrives byte for byte.
    let large: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let lf = d.path().join("large.bin");
    std::fs::write(&lf, &large).unwrap();
    assert_eq!(
        c.files_get(lf.to_str().unwrap()).await.unwrap(),
        FileGet::File(large)
    );
    let big = vec![0u8; MAX_UPLOAD_BYTES + 1];
    assert_eq!(
        status(c.files_put(f.to_str().unwrap(), big).await.unwrap_err()),
        413
    );
    let mut out = c
        .exec(&ExecRequest {
            argv: vec!["/bin/echo".into(), "hello".into()],
            timeout_secs: None,
            env: Default::default(),
        })
        .await
        .unwrap();
    let mut lines = Vec::new();
    while let Some(l) = out.next().await {
        lines.push(l.unwrap());
    }
    assert_eq!(
        lines.first(),
        Some(&ExecLine::Output {
            stream: "stdout".into(),
            data: "hello\n".into()
        })
    );
    assert_eq!(
        lines.last(),
        Some(&ExecLine::Exit {
            exit_code: Some(0),
            signal: None,
            timed_out: false
        })
    );
    let mut slow = c
        .exec(&ExecRequest {
            argv: vec!["/bin/sleep".into(), "5".into()],
            timeout_secs: Some(1),
            env: Default::default(),
        })
        .await
        .unwrap();
    let mut last = None;
    while let Some(l) = slow.next().await {
        last = Some(l.unwrap());
    }
    assert!(matches!(
        last,
        Some(ExecLine::Exit {
            timed_out: true,
            ..
        })
    ));
    assert_eq!(
        status(
            c.exec(&ExecRequest {
                argv: vec!["echo".into()],
                timeout_secs: None,
                env: Default::default()
            })
            .await
            .unwrap_err()
        ),
        400
    );
}

/// The committed document, `docs/api/openapi.json`.
const OPENAPI_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api/openapi.json");

/// The committed `docs/api/openapi.json` is exactly what moted generates from
/// its route table and the `mote_api` types. `MOTE_BLESS=1` rewrites it.
#[test]
fn openapi_document_is_generated() {
    let generated = moted::api::openapi::generate_text();
    if std::env::var_os("MOTE_BLESS").is_some_and(|v| v != "0") {
        std::fs::write(OPENAPI_FILE, &generated).unwrap();
        // The server's copy is built in; the next build picks the new file up.
        return;
    }
    let committed = std::fs::read_to_string(OPENAPI_FILE).unwrap();
    assert!(
        committed == generated,
        "docs/api/openapi.json differs from what moted generates (crates/moted/src/api/openapi.rs, \
         the mote-api types); regenerate it with `MOTE_BLESS=1 cargo test -p moted --test api openapi` \
         and commit it"
    );
    // And the server serves that file.
    assert!(
        moted::api::openapi::DOCUMENT == committed,
        "moted serves a stale copy of docs/api/openapi.json"
    );
}

#[test]
fn openapi_document_lists_exactly_the_routes() {
    let doc = moted::api::openapi::generate();
    let mut documented: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {p}", m.to_uppercase()))
        })
        .collect();
    let mut served: Vec<String> = moted::api::routes()
        .into_iter()
        .map(|(m, p, _)| format!("{m} {}", moted::api::openapi::openapi_path(p)))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v.as_str()) {
                    ("$ref", Some(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Every operation answers with a schema from `components.schemas` (but the
/// raw ones), errors with `ErrorBody`, takes its JSON body by schema, and
/// asks for the bearer token unless it is public; every `$ref` resolves.
#[test]
fn openapi_operations_have_schemas() {
    let doc = moted::api::openapi::generate();
    // Answers that are not JSON objects: Prometheus text, the document itself.
    let raw = ["GET /v1/metrics", "GET /v1/openapi.json"];
    let public = ["POST /v1/login"];
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let mut ops = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops += 1;
            let name = format!("{} {path}", method.to_uppercase());
            let ok = &op["responses"]["200"];
            let content = ok["content"].as_object().unwrap_or_else(|| {
                panic!("{name}: the 200 answer has no content");
            });
            assert!(!content.is_empty(), "{name}: the 200 answer has no content");
            for (ct, c) in content {
                assert!(c["schema"].is_object(), "{name}: {ct} has no schema");
            }
            if !raw.contains(&name.as_str()) {
                assert!(
                    content
                        .values()
                        .any(|c| c["schema"]["$ref"].as_str().is_some()),
                    "{name}: no answer refers to a schema in components"
                );
            }
            for code in ["4XX", "5XX"] {
                assert_eq!(
                    op["responses"][code]["$ref"], "#/components/responses/Error",
                    "{name}: {code}"
                );
            }
            if let Some(body) = op.get("requestBody") {
                for (ct, c) in body["content"].as_object().unwrap() {
                    assert!(
                        c["schema"].is_object(),
                        "{name}: request {ct} has no schema"
                    );
                }
            }
            let secured = op.get("security") == Some(&serde_json::json!([{"bearer": []}]));
            assert_eq!(
                secured,
                !public.contains(&name.as_str()),
                "{name}: security"
            );
        }
    }
    assert_eq!(ops, moted::api::routes().len());
    assert_eq!(
        doc["components"]["responses"]["Error"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in all {
        let ok = match r.strip_prefix("#/components/schemas/") {
            Some(name) => schemas.contains_key(name),
            None => r == "#/components/responses/Error",
        };
        assert!(ok, "{r} does not resolve");
    }
}

/// The schemas say what the server really sends: the keys of real answers
/// are the schemas' properties.
#[test]
fn openapi_schemas_match_the_wire() {
    let doc = moted::api::openapi::generate();
    let schemas = &doc["components"]["schemas"];
    let check = |name: &str, value: serde_json::Value| {
        let props = schemas[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has no properties"));
        for key in value.as_object().unwrap().keys() {
            assert!(props.contains_key(key), "{name}.{key} is not in the schema");
        }
    };
    let settings = mote_config::NodeSettings::default();
    check("NodeSettings", serde_json::to_value(&settings).unwrap());
    check(
        "VersionedSettings",
        serde_json::to_value(mote_api::api::VersionedSettings {
            version: 1,
            settings,
        })
        .unwrap(),
    );
    check(
        "ErrorBody",
        serde_json::to_value(mote_api::api::ErrorBody::default()).unwrap(),
    );
    // The string forms of the hand-written serde impls.
    let port = &schemas["Port"]["anyOf"];
    assert_eq!(port[0]["type"], "integer");
    assert_eq!(port[1]["type"], "string");
    let words = |name: &str| -> Vec<String> {
        let s = &schemas[name];
        let alternatives = s["oneOf"].as_array().cloned().unwrap_or(vec![s.clone()]);
        alternatives
            .iter()
            .flat_map(|a| a["enum"].as_array().cloned().unwrap_or_default())
            .map(|w| w.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(words("Policy"), mote_config::Policy::WORDS);
    assert_eq!(words("Protocol"), mote_config::Protocol::WORDS);
    assert_eq!(words("RestartPolicy"), mote_config::RestartPolicy::WORDS);
    assert_eq!(schemas["Ipv4Mode"]["type"], "string");
}

/// `openapi-spec-validator` (Python, `pip install openapi-spec-validator`)
/// accepts the document, where it is installed.
#[test]
fn openapi_document_is_valid_openapi() {
    match std::process::Command::new("openapi-spec-validator")
        .arg(OPENAPI_FILE)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "openapi-spec-validator rejects docs/api/openapi.json:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) => eprintln!("openapi-spec-validator is not installed; not validated"),
    }
}

#[tokio::test]
async fn reads_never_show_the_password_hash_and_writing_the_placeholder_back_is_refused() {
    let n = node().await;
    let c = client(&n).await;
    let s = c.settings().await.unwrap();
    assert!(!s.settings.system.admin_password_hash.starts_with("$argon2"));
    let at = c.settings_at("system.admin_password_hash").await.unwrap();
    assert!(
        !at.value.as_str().unwrap_or("").starts_with("$argon2"),
        "{:?}",
        at.value
    );
    let placeholder = s.settings.system.admin_password_hash.clone();
    let patch = serde_json::json!({ "system": { "admin_password_hash": placeholder } });
    assert_eq!(status(c.patch_settings(&patch).await.unwrap_err()), 422);
    // The credential still works.
    let again = client(&n).await;
    assert!(again.settings().await.is_ok());
}

/// A fake `mote-web --metrics`: answers every connection with `text`.
async fn fake_web_metrics(text: &'static str) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                assert!(req.starts_with(b"GET /metrics HTTP/1.1\r\n"));
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\r\n",
                    text.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(text.as_bytes()).await;
            });
        }
    });
    addr
}

/// Real `mote-web --metrics` output (the web role keeps it for its own test).
const WEB_SAMPLE: &str = include_str!("../../../roles/web/tests/metrics_sample.txt");

/// The fake PID 1 reports one active package `web` whose metrics answer
/// at `addr`.
fn web_package_at(n: &Node, addr: std::net::SocketAddr) {
    n.fake.state.lock().unwrap().packages = vec![mote_api::control::PackageInfo {
        name: "web".into(),
        version: "0.1.0".into(),
        description: "web".into(),
        in_image: true,
        active: true,
        services: vec!["web".into()],
        ports: Vec::new(),
        settings: Some("web".into()),
        trust: None,
        dependencies: Vec::new(),
        metrics: Some(format!("http://{addr}/metrics")),
    }];
}

#[tokio::test]
async fn web_figures_in_performance_and_metrics() {
    let n = node_from(Duration::from_secs(3600), |s| {
        s.packages = vec!["web".into()]
    })
    .await;
    web_package_at(&n, fake_web_metrics(WEB_SAMPLE).await);
    let c = client(&n).await;
    let p = c.performance().await.unwrap();
    assert_eq!(p.roles.len(), 1, "{p:?}");
    let web = &p.roles[0];
    assert_eq!((web.role.as_str(), web.row.as_str()), ("web", "site"));
    let names: Vec<&str> = web.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["requests", "2xx", "3xx", "4xx", "5xx", "sent", "p50", "p99"]
    );
    assert_eq!(web.rows.len(), 1);
    let s = &web.rows[0];
    assert_eq!(s.name, "main");
    assert_eq!(
        s.values[..6],
        [
            Some(2.0),
            Some(1.0),
            Some(0.0),
            Some(1.0),
            Some(0.0),
            Some(155.0)
        ]
    );
    let (p50, p99) = (s.values[6].unwrap(), s.values[7].unwrap());
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= 0.5, "{p50} {p99}");
    let m = c.metrics().await.unwrap();
    let own = m.find("mote_memory_total_bytes").unwrap();
    let theirs = m.find(WEB_SAMPLE).expect("mote-web's text unchanged");
    assert!(own < theirs);
}

#[tokio::test]
async fn web_unreachable_or_absent_is_no_web_and_no_error() {
    // Nothing listens: the package is on but mote-web does not answer.
    let n = node_from(Duration::from_secs(3600), |s| {
        s.packages = vec!["web".into()]
    })
    .await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    web_package_at(&n, addr);
    let c = client(&n).await;
    assert_eq!(c.performance().await.unwrap().roles, []);
    assert!(!c.metrics().await.unwrap().contains("mote_web_"));
    // A server that never answers: the short timeout, still no error.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    web_package_at(&n, silent.local_addr().unwrap());
    let t = std::time::Instant::now();
    assert_eq!(c.performance().await.unwrap().roles, []);
    assert!(t.elapsed() < Duration::from_secs(2));
    // An inactive package is not asked, even when it would answer.
    let n = node().await;
    web_package_at(&n, fake_web_metrics(WEB_SAMPLE).await);
    n.fake.state.lock().unwrap().packages[0].active = false;
    let c = client(&n).await;
    assert_eq!(c.performance().await.unwrap().roles, []);
    assert!(!c.metrics().await.unwrap().contains("mote_web_"));
}

fn refused(e: ClientError) -> ErrorBody {
    match e {
        ClientError::Status {
            status: 422, body, ..
        } => body,
        other => panic!("expected 422, got {other}"),
    }
}

#[tokio::test]
async fn a_role_section_its_library_refuses_is_422_and_nothing_is_stored_or_applied() {
    let n = node_from(Duration::from_secs(3600), |s| {
        s.packages = vec!["web".into()]
    })
    .await;
    let c = client(&n).await;
    let site = |root: &str, port: u64| {
        json!({"roles":{"web":{"sites":[
            {"name":"blog","root":root,"bindings":[{"scheme":"http","port":port}]}
        ]}}})
    };
    let applied = n.fake.state.lock().unwrap().applied.len();
    // A rule of the role (a relative root) and a type (a port out of
    // range) are refused by the role's library, in process, at their keys.
    let body = refused(c.patch_settings(&site("srv/blog", 8088)).await.unwrap_err());
    assert_eq!(body.problems.len(), 1, "{:?}", body.problems);
    assert_eq!(body.problems[0].path, "roles.web.sites[0].root");
    assert_eq!(body.problems[0].found, "\"srv/blog\"");
    assert_eq!(body.problems[0].allowed, "must be an absolute path");
    let body = refused(
        c.patch_settings(&site("/srv/blog", 70000))
            .await
            .unwrap_err(),
    );
    assert_eq!(body.problems[0].path, "roles.web.sites[0].bindings[0].port");
    assert_eq!(body.problems[0].found, "70000");
    assert_eq!(body.problems[0].allowed, "a port from 1 to 65535");
    let body = refused(
        c.patch_settings(&json!({"roles":{"web":{"sitez":[]}}}))
            .await
            .unwrap_err(),
    );
    assert_eq!(body.problems[0].path, "roles.web.sitez");
    let s = c.settings().await.unwrap();
    assert_eq!(s.version, 1);
    assert_eq!(n.fake.state.lock().unwrap().applied.len(), applied);
    // A good section goes through, and If-Match still counts.
    let good = c
        .patch_settings_if(&site("/srv/blog", 8088), 1)
        .await
        .unwrap();
    assert_eq!(good.version, 2);
    assert_eq!(good.settings.roles["web"]["sites"][0]["root"], "/srv/blog");
    assert_eq!(n.fake.state.lock().unwrap().applied.len(), applied + 1);
    // The refusals are audited.
    let audit = c.audit(&AuditQuery::default()).await.unwrap();
    let refused = audit
        .entries
        .iter()
        .filter(|e| e.result.starts_with("422"))
        .count();
    assert_eq!(refused, 3, "{:?}", audit.entries);
}

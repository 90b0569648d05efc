//! The remote verbs of `mote` against a real `moted` server on loopback (the
//! moted library in this test process, with its in-memory fake PID 1), each
//! verb run as the `mote` binary with a private `MOTE_CONFIG_DIR`.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use moted::{Config, FakeInit};
use serde_json::Value;

struct Node {
    _dir: tempfile::TempDir,
    fake: FakeInit,
    addr: String,
    fingerprint: String,
    _rt: tokio::runtime::Runtime,
}

fn cheap_hash(pw: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    a.hash_password(pw.as_bytes(), &salt).unwrap().to_string()
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut s = mote_config::NodeSettings::default();
    s.system.hostname = "node1".into();
    s.system.admin_password_hash = cheap_hash("secret");
    let image = dir.path().join("settings.json");
    std::fs::write(&image, serde_json::to_vec(&s).unwrap()).unwrap();
    let fake = FakeInit::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let running = rt
        .block_on(moted::start(
            Config {
                listen: "127.0.0.1:0".parse().unwrap(),
                state_dir: dir.path().join("state"),
                image_settings: image,
                token_ttl: Duration::from_secs(3600),
                throttle_base: Duration::from_millis(300),
                throttle_max: Duration::from_secs(30),
            },
            Arc::new(fake.clone()),
        ))
        .unwrap();
    Node {
        _dir: dir,
        fake,
        addr: running.addr.to_string(),
        fingerprint: running.fingerprint.clone(),
        _rt: rt,
    }
}

fn mote(config: &Path, password: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(args)
        .env("MOTE_CONFIG_DIR", config)
        .env("MOTE_PASSWORD", password)
        .output()
        .unwrap()
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = mote(config, "secret", args);
    assert!(
        out.status.success(),
        "mote {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(config: &Path, args: &[&str]) -> Value {
    let out = ok(config, args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("mote {args:?}: {e}: {out}"))
}

/// A node, a config dir with it added as `n1`.
fn added() -> (Node, tempfile::TempDir) {
    let n = node();
    let cfg = tempfile::tempdir().unwrap();
    ok(cfg.path(), &["node", "add", "n1", &n.addr]);
    (n, cfg)
}

#[test]
fn node_add_pins_and_a_changed_certificate_is_refused() {
    let (n, cfg) = added();
    let list = json(cfg.path(), &["node", "list", "--json"]);
    assert_eq!(list[0]["name"], "n1");
    assert_eq!(list[0]["fingerprint"], n.fingerprint.as_str());
    assert_eq!(list[0]["added_by"], "hand");
    // Another node (another certificate) under the same name: refused.
    let other = node();
    let out = mote(cfg.path(), "secret", &["node", "add", "n1", &other.addr]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CERTIFICATE HAS CHANGED"), "{err}");
    assert!(err.contains("mote node remove n1"), "{err}");
    // A wrong --fingerprint: refused.
    let wrong = "AB:".repeat(31) + "AB";
    let out = mote(
        cfg.path(),
        "secret",
        &["node", "add", "n2", &other.addr, "--fingerprint", &wrong],
    );
    assert!(!out.status.success());
    // The right one: pinned.
    ok(
        cfg.path(),
        &[
            "node",
            "add",
            "n2",
            &other.addr,
            "--fingerprint",
            &other.fingerprint,
        ],
    );
    // A pin that no longer matches (n1 pointed at the other node): refused
    // before anything is sent.
    let nodes = cfg.path().join("nodes.json");
    let text = std::fs::read_to_string(&nodes)
        .unwrap()
        .replacen(&n.addr, &other.addr, 1);
    std::fs::write(&nodes, text).unwrap();
    let out = mote(cfg.path(), "secret", &["-n", "n1", "system"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CERTIFICATE HAS CHANGED"));
    ok(cfg.path(), &["node", "remove", "n1"]);
    let list = json(cfg.path(), &["node", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn a_wrong_password_says_what_to_do_and_the_token_is_cached_0600() {
    let (_n, cfg) = added();
    let out = mote(cfg.path(), "nope", &["-n", "n1", "system"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mote -n n1 login"), "{err}");
    assert!(err.contains("MOTE_PASSWORD"), "{err}");
    std::thread::sleep(Duration::from_millis(400));
    ok(cfg.path(), &["-n", "n1", "login"]);
    use std::os::unix::fs::PermissionsExt;
    let token = cfg.path().join("tokens/n1.json");
    let mode = std::fs::metadata(&token).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // The cached token is used: no password needed now.
    let out = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(["-n", "n1", "system", "--json"])
        .env("MOTE_CONFIG_DIR", cfg.path())
        .env_remove("MOTE_PASSWORD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An explicit MOTE_PASSWORD that the node refuses is an error, even
    // with a cached token (it once succeeded on the token).
    let out = mote(cfg.path(), "wrong", &["-n", "n1", "system", "--json"]);
    assert!(!out.status.success(), "a wrong MOTE_PASSWORD was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the login"), "{err}");
}

#[test]
fn every_verb_prints_json() {
    let (_n, cfg) = added();
    let c = cfg.path();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), "hi").unwrap();
    let d = dir.path().to_str().unwrap();
    assert_eq!(
        json(c, &["-n", "n1", "system", "--json"])["hostname"],
        "node1"
    );
    assert!(json(c, &["-n", "n1", "service", "list", "--json"])["services"].is_array());
    assert!(json(c, &["-n", "n1", "events", "--json"])["events"].is_array());
    assert!(json(c, &["-n", "n1", "net", "show", "--json"])["live"].is_object());
    assert!(json(c, &["-n", "n1", "firewall", "list", "--json"])["rules"].is_array());
    assert!(json(c, &["-n", "n1", "ps", "--json"])["processes"].is_array());
    assert!(json(c, &["-n", "n1", "perf", "--json"])["memory"].is_object());
    assert!(json(c, &["-n", "n1", "settings", "get", "--json"])["version"].is_u64());
    assert_eq!(
        json(
            c,
            &["-n", "n1", "settings", "get", "system.hostname", "--json"]
        )["value"],
        "node1"
    );
    assert!(json(c, &["-n", "n1", "settings", "history", "--json"])["versions"].is_array());
    assert!(json(c, &["-n", "n1", "audit", "--json"])["entries"].is_array());
    let ls = json(c, &["-n", "n1", "files", "ls", d, "--json"]);
    assert_eq!(ls["entries"][0]["name"], "f.txt");
    assert!(ok(c, &["-n", "n1", "perf", "--prometheus"]).contains(' '));
    let got = ok(c, &["-n", "n1", "files", "get", &format!("{d}/f.txt")]);
    assert_eq!(got, "hi");
    ok(
        c,
        &[
            "-n",
            "n1",
            "files",
            "put",
            &format!("{d}/f.txt"),
            &format!("{d}/g.txt"),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("g.txt")).unwrap(),
        "hi"
    );
    assert!(ok(c, &["node", "list"]).contains("n1"));
}

#[test]
fn exec_streams_and_exits_with_the_remote_code() {
    let (_n, cfg) = added();
    let out = mote(
        cfg.path(),
        "secret",
        &["-n", "n1", "exec", "--", "/bin/echo", "hello"],
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    let out = mote(
        cfg.path(),
        "secret",
        &["-n", "n1", "exec", "--", "/bin/sh", "-c", "exit 3"],
    );
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn service_restart_events_and_firewall() {
    let (n, cfg) = added();
    let c = cfg.path();
    ok(c, &["-n", "n1", "service", "restart", "web"]);
    let actions = n.fake.state.lock().unwrap().service_actions.clone();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].0, "web");
    let out = mote(c, "secret", &["-n", "n1", "service", "restart", "nosuch"]);
    assert!(!out.status.success());

    n.fake
        .emit("web", mote_api::api::Level::Warn, "disk is slow");
    n.fake.emit("net", mote_api::api::Level::Info, "link up");
    let ev = json(c, &["-n", "n1", "events", "--source", "web", "--json"]);
    let ev = ev["events"].as_array().unwrap();
    assert!(ev.iter().all(|e| e["source"] == "web"));
    assert!(ev.iter().any(|e| e["message"] == "disk is slow"));
    let text = ok(
        c,
        &["-n", "n1", "events", "--level", "warn", "--since", "5m"],
    );
    assert!(
        text.contains("disk is slow") && !text.contains("link up"),
        "{text}"
    );

    ok(
        c,
        &["-n", "n1", "firewall", "add", "web8081", "--port", "8081"],
    );
    let fw = json(c, &["-n", "n1", "firewall", "list", "--json"]);
    assert!(fw["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "web8081"));
    ok(c, &["-n", "n1", "firewall", "disable", "web8081"]);
    ok(c, &["-n", "n1", "firewall", "remove", "web8081"]);
    let fw = json(c, &["-n", "n1", "firewall", "list", "--json"]);
    assert!(!fw["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "web8081"));
    // Each change reached PID 1.
    assert!(n.fake.state.lock().unwrap().applied.len() >= 3);
}

#[test]
fn settings_set_history_revert() {
    let (_n, cfg) = added();
    let c = cfg.path();
    let v = json(
        c,
        &[
            "-n",
            "n1",
            "settings",
            "set",
            "system.hostname",
            "renamed",
            "--json",
        ],
    );
    let version = v["version"].as_u64().unwrap();
    assert_eq!(v["settings"]["system"]["hostname"], "renamed");
    let h = json(c, &["-n", "n1", "settings", "history", "--json"]);
    assert_eq!(h["current"].as_u64(), Some(version));
    let r = json(c, &["-n", "n1", "settings", "revert", "1", "--json"]);
    assert!(r["version"].as_u64().unwrap() > version);
    assert_ne!(r["settings"]["system"]["hostname"], "renamed");
    let out = mote(
        c,
        "secret",
        &["-n", "n1", "settings", "set", "system.nosuch", "1"],
    );
    assert!(!out.status.success());
    let audit = json(c, &["-n", "n1", "audit", "--json"]);
    assert!(audit["entries"].as_array().unwrap().len() >= 2);
}

#[test]
fn a_session_runs_verbs_from_its_input() {
    let (_n, cfg) = added();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(["session", "n1"])
        .env("MOTE_CONFIG_DIR", cfg.path())
        .env("MOTE_PASSWORD", "secret")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"system --json\nbogus\nservice list\nexit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"hostname\": \"node1\""), "{stdout}");
    assert!(stdout.contains("web"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
}

#[test]
fn web_sites_and_bindings() {
    let (_n, cfg) = added();
    let c = cfg.path();
    let w = |args: &[&str]| {
        let mut a = vec!["-n", "n1", "web"];
        a.extend_from_slice(args);
        json(c, &a)
    };
    // No sites yet: an empty list.
    assert_eq!(w(&["site", "list", "--json"]), serde_json::json!([]));
    let web = w(&[
        "site",
        "add",
        "blog",
        "--root",
        "/srv/blog",
        "--bind",
        "http://*:8088",
        "--json",
    ]);
    let site = &web["sites"][0];
    assert_eq!(site["name"], "blog");
    assert_eq!(site["enabled"], true);
    assert_eq!(site["root"], "/srv/blog");
    assert_eq!(
        site["bindings"],
        serde_json::json!([{"scheme": "http", "address": "0.0.0.0", "port": 8088}])
    );
    let table = ok(c, &["-n", "n1", "web", "site", "list"]);
    assert!(table.contains("blog"), "{table}");
    assert!(table.contains("http://*:8088"), "{table}");
    assert!(table.contains("/srv/blog"), "{table}");
    // A second binding with a host name; https gets a self-signed tls.
    let web = w(&[
        "binding",
        "add",
        "blog",
        "https://blog.example:8443",
        "--json",
    ]);
    let b = &web["sites"][0]["bindings"];
    assert_eq!(b.as_array().unwrap().len(), 2);
    assert_eq!(b[1]["host"], "blog.example");
    assert_eq!(b[1]["port"], 8443);
    assert_eq!(web["sites"][0]["tls"]["self_signed"], true);
    let web = w(&["binding", "remove", "blog", "http://*:8088", "--json"]);
    assert_eq!(web["sites"][0]["bindings"].as_array().unwrap().len(), 1);
    // The last binding cannot go.
    let out = mote(
        c,
        "secret",
        &[
            "-n",
            "n1",
            "web",
            "binding",
            "remove",
            "blog",
            "https://blog.example:8443",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("only binding"));
    // Stop and start flip `enabled`; the table says so.
    assert_eq!(
        w(&["site", "stop", "blog", "--json"])["sites"][0]["enabled"],
        false
    );
    let list = w(&["site", "list", "--json"]);
    assert_eq!(list[0]["enabled"], false);
    assert_eq!(
        w(&["site", "start", "blog", "--json"])["sites"][0]["enabled"],
        true
    );
    // Unknown site: named, and the existing ones listed.
    let out = mote(c, "secret", &["-n", "n1", "web", "site", "stop", "nosuch"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"nosuch\""), "{err}");
    assert!(err.contains("the sites are: blog"), "{err}");
    // A duplicate add is refused; a human change line names the version.
    let out = mote(
        c,
        "secret",
        &[
            "-n",
            "n1",
            "web",
            "site",
            "add",
            "blog",
            "--root",
            "/x",
            "--bind",
            "http://*:1",
        ],
    );
    assert!(!out.status.success());
    let line = ok(c, &["-n", "n1", "web", "site", "remove", "blog"]);
    assert!(line.contains("web site blog removed"), "{line}");
    assert!(line.contains("settings version"), "{line}");
    assert_eq!(w(&["site", "list", "--json"]), serde_json::json!([]));
    // The stored settings hold the section the verbs wrote.
    let v = json(c, &["-n", "n1", "settings", "get", "roles.web", "--json"]);
    assert_eq!(v["value"]["sites"], serde_json::json!([]));
}

/// Two `web site add` at once: the second reads the settings while the
/// first is still being applied, so its write is made from a version that is
/// gone by the time it lands. moted refuses it (412), the verb reads again
/// and adds its site to what is there now: both sites end up stored.
#[test]
fn two_web_writers_at_once_keep_both_sites() {
    let (n, cfg) = added();
    let c = cfg.path();
    ok(c, &["-n", "n1", "login"]);
    let applied = || n.fake.state.lock().unwrap().applied.len();
    let before = applied();
    // PID 1 takes its time over the first change, which holds moted's
    // settings lock meanwhile.
    n.fake.state.lock().unwrap().delay_next_apply = Some(Duration::from_secs(3));
    let add = |name: &'static str, port: &'static str| {
        [
            "-n", "n1", "web", "site", "add", name, "--root", "/srv/www", "--bind", port,
        ]
    };
    let first = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(add("first", "http://*:8081"))
        .env("MOTE_CONFIG_DIR", c)
        .env("MOTE_PASSWORD", "secret")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while applied() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the first writer never reached PID 1"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first write is being applied: the second reads version 1.
    let line = ok(c, &add("second", "http://*:8082"));
    assert!(line.contains("web site second added"), "{line}");
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "the first writer failed: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let list = json(c, &["-n", "n1", "web", "site", "list", "--json"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second"]);
    // The second writer's first try was refused and audited as such.
    let audit = json(c, &["-n", "n1", "audit", "--json"]);
    let refused: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["result"].as_str().unwrap_or("").starts_with("412"))
        .collect();
    assert_eq!(refused.len(), 1, "{audit}");
    let v = json(c, &["-n", "n1", "settings", "history", "--json"]);
    assert_eq!(v["current"], 3);
}

/// `mote node add` once pinned whatever TLS endpoint answered. A real HTTPS
/// server that is no mote node (`openssl s_server -www`) is refused, and
/// nothing is pinned.
#[test]
fn node_add_refuses_an_endpoint_that_is_no_mote_node() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=not-mote", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-www", "-quiet", "-accept", &port.to_string()])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server starts");
    let addr = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "s_server never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let cfg = tempfile::tempdir().unwrap();
    let out = mote(cfg.path(), "secret", &["node", "add", "impostor", &addr]);
    let _ = server.kill();
    let _ = server.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "pinned a non-node: {err}");
    assert!(err.contains("is not a mote node"), "{err}");
    let list = json(cfg.path(), &["node", "list", "--json"]);
    assert_eq!(list, serde_json::json!([]), "nothing pinned");
}

#[test]
fn logout_ends_the_session_on_the_node_and_system_lists_sessions() {
    let (_n, cfg) = added();
    ok(cfg.path(), &["-n", "n1", "login"]);
    let token_file = cfg.path().join("tokens/n1.json");
    let cached: Value = serde_json::from_slice(&std::fs::read(&token_file).unwrap()).unwrap();
    // The node's device id for this client is kept for the next login.
    let device = cached["device"].as_str().unwrap().to_string();
    assert_eq!(device.len(), 64);
    ok(cfg.path(), &["-n", "n1", "login"]);
    let again: Value = serde_json::from_slice(&std::fs::read(&token_file).unwrap()).unwrap();
    assert_eq!(again["device"], device.as_str());
    let cached = again;
    let token = cached["token"].as_str().unwrap().to_string();
    let out = ok(cfg.path(), &["-n", "n1", "system"]);
    assert!(out.contains("SESSION"), "{out}");
    assert!(out.contains(" *"), "{out}");
    assert!(!out.contains(&token), "the token is shown: {out}");
    let v = json(cfg.path(), &["-n", "n1", "logout", "--json"]);
    assert_eq!(v["logged_out"], true);
    assert!(!token_file.exists());
    // The node refuses the old token: a client that kept it is out.
    let out = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(["-n", "n1", "logout"])
        .env("MOTE_CONFIG_DIR", cfg.path())
        .env_remove("MOTE_PASSWORD")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no live session"));
    std::fs::write(&token_file, serde_json::to_vec(&cached).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(["-n", "n1", "system", "--json"])
        .env("MOTE_CONFIG_DIR", cfg.path())
        .env_remove("MOTE_PASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a logged-out token still works");
}

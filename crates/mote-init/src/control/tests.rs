//! The control protocol over a real socket, with the real supervisor and
//! `/bin/sh` services.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mote_api::control::{Request, Response, ServiceAction};
use mote_api::events::{EventQuery, Level};
use mote_config::{NodeSettings, RestartPolicy, Service};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::{serve, Node, NodeOptions};
use crate::events::Events;
use crate::power::Action;
use crate::supervisor::{Limits, Reaper, Supervisor};

fn sleeper(tag: &str) -> Service {
    Service {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("echo {tag}; exec sleep 30"),
        ],
        environment: BTreeMap::new(),
        user: "root".into(),
        restart: RestartPolicy::Always,
        after: vec![],
        ports: vec![],
        stop_timeout_secs: 1,
        capabilities: Vec::new(),
        open_files: None,
    }
}

fn settings(services: &[(&str, &str)]) -> NodeSettings {
    let mut s = NodeSettings::default();
    s.system.hostname = "test".into();
    s.system.admin_password_hash = mote_config::password::hash("x").unwrap();
    s.management.enabled = false;
    for (name, tag) in services {
        s.services.insert((*name).into(), sleeper(tag));
    }
    s
}

struct Harness {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    node: Arc<Node>,
    power: mpsc::Receiver<Action>,
}

async fn harness(initial: NodeSettings) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let events = Events::new(false);
    let reaper = Reaper::start().unwrap();
    let limits = Limits {
        backoff_start: Duration::from_millis(10),
        ready_timeout: Duration::from_secs(5),
        ..Limits::default()
    };
    let supervisor = Supervisor::new(&reaper, &events, limits, None);
    supervisor.start_all(initial.services.clone(), vec![]);
    supervisor.wait_settled(Duration::from_secs(10)).await;
    let (tx, power) = mpsc::channel(1);
    let options = NodeOptions {
        hostname: false,
        firewall: false,
        network: false,
        moted: dir.path().join("no-moted"),
        installed: mote_package::Installed::default(),
        store: crate::package_store::Store::under(&dir.path().join("root")),
        role_settings: dir.path().join("roles"),
    };
    let node = Arc::new(Node::new(events, supervisor, initial, 5, options, tx));
    serve(&path, Arc::clone(&node)).unwrap();
    Harness {
        _dir: dir,
        path,
        node,
        power,
    }
}

struct Client {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn connect(h: &Harness) -> Self {
        let (r, w) = UnixStream::connect(&h.path).await.unwrap().into_split();
        Self {
            lines: BufReader::new(r).lines(),
            writer: w,
        }
    }

    async fn raw(&mut self, line: &str) -> Response {
        self.writer.write_all(line.as_bytes()).await.unwrap();
        self.writer.write_all(b"\n").await.unwrap();
        self.next().await
    }

    async fn next(&mut self) -> Response {
        let line = tokio::time::timeout(Duration::from_secs(15), self.lines.next_line())
            .await
            .expect("an answer in time")
            .unwrap()
            .expect("a line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    async fn ask(&mut self, request: &Request) -> Response {
        self.raw(&serde_json::to_string(request).unwrap()).await
    }
}

fn states(response: Response) -> Vec<(String, String)> {
    let Response::Services { services } = response else {
        panic!("{response:?}")
    };
    services.into_iter().map(|s| (s.name, s.state)).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn services_are_listed_stopped_and_started_and_bad_lines_answered() {
    let h = harness(settings(&[("a", "a")])).await;
    let mut c = Client::connect(&h).await;
    assert_eq!(
        states(c.ask(&Request::Services).await),
        [("a".into(), "ready".into())]
    );
    let stop = Request::Service {
        name: "a".into(),
        action: ServiceAction::Stop,
    };
    assert_eq!(c.ask(&stop).await, Response::Ok);
    assert_eq!(
        states(c.ask(&Request::Services).await),
        [("a".into(), "stopped".into())]
    );

    let Response::Error { message, .. } = c.raw("{not json").await else {
        panic!()
    };
    assert!(message.contains("not a request"), "{message}");
    let Response::Error { message, .. } = c.raw(r#"{"op":"format_disk"}"#).await else {
        panic!()
    };
    assert!(message.contains("format_disk"), "{message}");
    let Response::Error { message, .. } = c
        .ask(&Request::Service {
            name: "zz".into(),
            action: ServiceAction::Start,
        })
        .await
    else {
        panic!()
    };
    assert!(message.contains("zz") && message.contains("a"), "{message}");

    // The connection survived all that, and a second client works alongside.
    let mut other = Client::connect(&h).await;
    let start = Request::Service {
        name: "a".into(),
        action: ServiceAction::Start,
    };
    assert_eq!(other.ask(&start).await, Response::Ok);
    h.node
        .supervisor
        .wait_settled(Duration::from_secs(10))
        .await;
    assert_eq!(
        states(c.ask(&Request::Services).await),
        [("a".into(), "ready".into())]
    );
    let Response::System(info) = c.ask(&Request::System).await else {
        panic!()
    };
    assert_eq!(info.init_ms, 5);
    assert!(info.packages.is_empty());
    h.node.supervisor.stop_all().await;
}

#[tokio::test(flavor = "current_thread")]
async fn emit_events_and_follow() {
    let h = harness(settings(&[])).await;
    let mut follower = Client::connect(&h).await;
    follower
        .writer
        .write_all(b"{\"op\":\"follow\",\"source\":\"audit\"}\n")
        .await
        .unwrap();
    // Let the follower subscribe before emitting.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = Client::connect(&h).await;
    let emit = Request::Emit {
        source: "audit".into(),
        level: Level::Info,
        message: "admin logged in".into(),
    };
    assert_eq!(c.ask(&emit).await, Response::Ok);
    h.node.events.info("init", "not for the follower");
    let Response::Event(event) = follower.next().await else {
        panic!()
    };
    assert_eq!(
        (event.source.as_str(), event.message.as_str()),
        ("audit", "admin logged in")
    );
    let Response::Events { events } = c
        .ask(&Request::Events(EventQuery {
            source: Some("audit".into()),
            ..Default::default()
        }))
        .await
    else {
        panic!()
    };
    assert_eq!(events.len(), 1);
    // The follower hangs up; PID 1 goes on emitting without it.
    drop(follower);
    for i in 0..2000 {
        h.node.events.info("audit", format!("after {i}"));
    }
    assert!(matches!(c.ask(&Request::System).await, Response::System(_)));
}

#[tokio::test(flavor = "current_thread")]
async fn apply_adds_removes_and_restarts_services() {
    let h = harness(settings(&[("keep", "k"), ("gone", "g"), ("change", "v1")])).await;
    let mut c = Client::connect(&h).await;
    let pid = |name: &str| {
        h.node
            .supervisor
            .infos()
            .into_iter()
            .find(|i| i.name == name)
            .and_then(|i| i.pid)
    };
    let (keep, change) = (pid("keep"), pid("change"));
    let new = settings(&[("keep", "k"), ("change", "v2"), ("added", "n")]);
    let apply = Request::Apply {
        settings: Box::new(new.clone()),
        version: Some(2),
    };
    assert_eq!(c.ask(&apply).await, Response::Ok);
    let Response::System(system) = c.ask(&Request::System).await else {
        panic!("no system answer")
    };
    assert_eq!(
        system.settings.version,
        Some(2),
        "PID 1 says which version it runs"
    );
    assert_eq!(system.settings.problem, None);
    h.node
        .supervisor
        .wait_settled(Duration::from_secs(10))
        .await;
    assert_eq!(
        states(c.ask(&Request::Services).await),
        [
            ("added".into(), "ready".into()),
            ("change".into(), "ready".into()),
            ("keep".into(), "ready".into())
        ]
    );
    assert_eq!(pid("keep"), keep);
    assert_ne!(pid("change"), change);
    assert_eq!(h.node.settings(), new);

    let mut bad = new.clone();
    bad.system.hostname = "-bad-".into();
    let Response::Error { message, reason } = c
        .ask(&Request::Apply {
            settings: Box::new(bad),
            version: Some(3),
        })
        .await
    else {
        panic!()
    };
    assert!(message.starts_with("settings: invalid"), "{message}");
    assert_eq!(reason, mote_api::control::ErrorKind::Invalid);
    assert_eq!(h.node.settings(), new, "invalid settings change nothing");
    let applied = h.node.applied();
    assert_eq!(applied.version, Some(3));
    assert!(
        applied.problem.is_some_and(|p| p.contains("invalid")),
        "a refused apply is the node's problem until moted rolls back"
    );
    h.node.supervisor.stop_all().await;
}

#[tokio::test(flavor = "current_thread")]
async fn power_is_answered_then_handed_to_the_power_loop() {
    let mut h = harness(settings(&[])).await;
    let mut c = Client::connect(&h).await;
    let reboot = Request::Power {
        action: mote_api::control::PowerAction::Reboot,
    };
    assert_eq!(c.ask(&reboot).await, Response::Ok);
    assert_eq!(h.power.recv().await, Some(Action::Reboot));
}

#[tokio::test(flavor = "current_thread")]
async fn the_socket_is_root_only() {
    use std::os::unix::fs::PermissionsExt;
    let h = harness(settings(&[])).await;
    let mode = std::fs::metadata(&h.path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A package's changed settings section is rewritten and its running
/// service gets the package's reload signal: same pid, no restart.
#[tokio::test(flavor = "current_thread")]
async fn a_changed_section_reloads_its_package_service() {
    use std::os::unix::fs::PermissionsExt;
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the package's service runs as nobody, which needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let hups = dir.path().join("hups");
    std::fs::write(&hups, "").unwrap();
    std::fs::set_permissions(&hups, std::fs::Permissions::from_mode(0o666)).unwrap();
    // The app (as nobody) cannot make files in `dir`; it writes this one.
    let ready = dir.path().join("hups.ready");
    std::fs::write(&ready, "").unwrap();
    std::fs::set_permissions(&ready, std::fs::Permissions::from_mode(0o666)).unwrap();
    let app = dir.path().join("app");
    std::fs::write(
        &app,
        format!(
            "#!/bin/sh\ntrap 'echo hup >> {h}' HUP\necho trapped > {h}.ready\n\
             while :; do sleep 0.05; done\n",
            h = hups.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o755)).unwrap();
    let packages = dir.path().join("packages");
    std::fs::create_dir(&packages).unwrap();
    std::fs::write(
        packages.join("app.toml"),
        format!(
            "name = \"app\"\nversion = \"1.0.0\"\ndescription = \"x\"\nsettings = \"app\"\n\
             reload_signal = \"SIGHUP\"\n[services.app]\nargv = [\"{}\"]\nuser = \"nobody\"\n",
            app.display()
        ),
    )
    .unwrap();
    let roles = dir.path().join("roles");
    let (installed, problems) = mote_package::Installed::read(&packages);
    assert!(problems.is_empty(), "{problems:?}");
    let options = NodeOptions {
        hostname: false,
        firewall: false,
        network: false,
        moted: dir.path().join("no-moted"),
        installed: installed.clone(),
        store: crate::package_store::Store::under(&dir.path().join("root")),
        role_settings: roles.clone(),
    };
    let mut initial = settings(&[]);
    initial.packages = vec!["app".into()];
    initial
        .roles
        .insert("app".into(), serde_json::json!({"sites": []}));
    crate::packages::write_sections(&initial, &installed, &roles).unwrap();
    let (services, _) = crate::packages::services(&initial, &installed, &options.moted);
    let events = Events::new(false);
    let reaper = Reaper::start().unwrap();
    let supervisor = Supervisor::new(&reaper, &events, Limits::default(), None);
    supervisor.start_all(services, vec![]);
    supervisor.wait_settled(Duration::from_secs(10)).await;
    let pid = |s: &Supervisor| {
        s.infos()
            .iter()
            .find(|i| i.name == "app")
            .and_then(|i| i.pid)
    };
    let before = pid(&supervisor).expect("app runs");
    // The shell says when its trap is installed (a loaded host is slow).
    let trapped = || std::fs::read_to_string(&ready).unwrap().contains("trapped");
    for _ in 0..500 {
        if trapped() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(trapped(), "the app never installed its trap");
    let (tx, _power) = mpsc::channel(1);
    let node = Node::new(events, supervisor.clone(), initial.clone(), 5, options, tx);

    let mut new = initial.clone();
    new.roles
        .insert("app".into(), serde_json::json!({"sites": [{"name": "b"}]}));
    super::apply::apply(&node, new, None).await.unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(roles.join("app.json")).unwrap()).unwrap();
    assert_eq!(written["sites"][0]["name"], "b");
    for _ in 0..500 {
        if std::fs::read_to_string(&hups).unwrap().contains("hup") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_to_string(&hups).unwrap(), "hup\n");
    assert_eq!(pid(&supervisor), Some(before), "reloaded, not restarted");
    supervisor.stop_all().await;
}

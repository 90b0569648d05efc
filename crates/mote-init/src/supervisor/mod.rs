//! The service supervisor: starts services in dependency order, restarts them
//! by policy with backoff and a rapid-failure limit, turns their output into
//! events, and stops them in reverse order.
//!
//! The set of services is dynamic: one service can be started, stopped or
//! restarted on request ([`Supervisor::start`], [`Supervisor::stop`],
//! [`Supervisor::restart`]), and the whole set replaced
//! ([`Supervisor::replace`]: removed ones stop, added ones start, changed ones
//! restart). A stopped service stays stopped until it is started; starting
//! clears a failed state. Changes are serialised; reading states never waits
//! for them.
//!
//! With a cgroup root (`/sys/fs/cgroup/mote` on a node), each service runs in
//! its own cgroup v2 directory `ROOT/NAME`: the child writes its own pid into
//! `cgroup.procs` between fork and exec, so everything it forks is counted.

pub mod caps;
mod logs;
pub mod reaper;
pub mod service;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mote_api::control::ServiceInfo;
use mote_config::{NodeSettings, Service};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use reaper::{Exit, Reaper};
pub use service::{Limits, Meta, State};

use crate::events::{now_ms, Events};

/// Where services' cgroups go on a node.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup/mote";

/// What a request to the supervisor can fail on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupervisorError {
    /// No service by that name.
    #[error("no service named {name:?}; services: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// The service has no running process.
    #[error("service {0:?} is not running")]
    NotRunning(String),
}

struct Entry {
    state: watch::Receiver<State>,
    publish: watch::Sender<State>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    meta: Arc<Meta>,
    cgroup: Option<PathBuf>,
}

#[derive(Default)]
struct Table {
    /// Built-in services, started before the others (`moted`).
    first: Vec<String>,
    specs: BTreeMap<String, Service>,
    entries: BTreeMap<String, Entry>,
}

impl Table {
    /// Start order: built-ins, then dependencies first, then by name.
    fn order(&self) -> Vec<String> {
        let rest = NodeSettings {
            services: self
                .specs
                .iter()
                .filter(|(name, _)| !self.first.contains(name))
                .map(|(n, s)| (n.clone(), s.clone()))
                .collect(),
            ..NodeSettings::default()
        }
        .service_order();
        self.first
            .iter()
            .filter(|n| self.specs.contains_key(*n))
            .cloned()
            .chain(rest)
            .collect()
    }

    fn unknown(&self, name: &str) -> SupervisorError {
        SupervisorError::Unknown {
            name: name.to_owned(),
            known: if self.specs.is_empty() {
                "none".into()
            } else {
                self.specs.keys().cloned().collect::<Vec<_>>().join(", ")
            },
        }
    }
}

struct Inner {
    reaper: Arc<Reaper>,
    events: Events,
    limits: Limits,
    cgroups: Option<PathBuf>,
    table: Mutex<Table>,
    /// Serialises start/stop/replace; never held by readers.
    ops: tokio::sync::Mutex<()>,
}

/// All services of the node; a cheap, cloneable handle.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl Supervisor {
    /// A supervisor with no services yet. With `cgroups`, each service gets
    /// the cgroup directory `cgroups/NAME`.
    pub fn new(
        reaper: &Arc<Reaper>,
        events: &Events,
        limits: Limits,
        cgroups: Option<PathBuf>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                reaper: Arc::clone(reaper),
                events: events.clone(),
                limits,
                cgroups,
                table: Mutex::new(Table::default()),
                ops: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Start every service of `settings` (no cgroups); each waits for the
    /// services in its `after` list.
    pub fn start_settings(
        settings: &NodeSettings,
        reaper: &Arc<Reaper>,
        events: &Events,
        limits: Limits,
    ) -> Self {
        let supervisor = Self::new(reaper, events, limits, None);
        supervisor.start_all(settings.services.clone(), Vec::new());
        supervisor
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A poisoned lock only means a panic elsewhere; the data is still usable.
        self.inner.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take `services` as the node's services and start them all; `first`
    /// names built-ins started before the rest.
    pub fn start_all(&self, services: BTreeMap<String, Service>, first: Vec<String>) {
        let mut table = self.table();
        table.specs = services;
        table.first = first;
        for name in table.order() {
            self.spawn(&mut table, &name);
        }
    }

    /// The services' definitions now.
    pub fn specs(&self) -> BTreeMap<String, Service> {
        self.table().specs.clone()
    }

    /// Start `name`'s task afresh (its previous one must be over).
    fn spawn(&self, table: &mut Table, name: &str) {
        let Some(spec) = table.specs.get(name).cloned() else {
            return;
        };
        let deps = spec
            .after
            .iter()
            .filter_map(|dep| {
                table
                    .entries
                    .get(dep)
                    .map(|e| (dep.clone(), e.state.clone()))
            })
            .collect();
        let cgroup = self.inner.cgroups.as_ref().and_then(|root| {
            let dir = root.join(name);
            match std::fs::create_dir_all(&dir) {
                Ok(()) => Some(dir),
                Err(e) => {
                    self.inner.events.warn(
                        name,
                        format!("cannot make its cgroup {}: {e}", dir.display()),
                    );
                    None
                }
            }
        });
        let (publish, state) = watch::channel(State::Waiting);
        let (stop, stop_rx) = watch::channel(false);
        let meta = Arc::new(Meta::default());
        let runner = service::Runner {
            name: name.to_owned(),
            spec,
            deps,
            state: publish.clone(),
            stop: stop_rx,
            reaper: Arc::clone(&self.inner.reaper),
            events: self.inner.events.clone(),
            limits: self.inner.limits,
            meta: Arc::clone(&meta),
            cgroup: cgroup.clone(),
        };
        let task = tokio::spawn(runner.run());
        table.entries.insert(
            name.to_owned(),
            Entry {
                state,
                publish,
                stop,
                task: Some(task),
                meta,
                cgroup,
            },
        );
    }

    /// Wait until every service is ready or ended for good, up to `timeout`.
    pub async fn wait_settled(&self, timeout: Duration) -> BTreeMap<String, State> {
        let watches: Vec<_> = self
            .table()
            .entries
            .values()
            .map(|e| e.state.clone())
            .collect();
        let wait_all = async {
            for mut rx in watches {
                let _ = rx.wait_for(State::settled).await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait_all).await;
        self.states()
    }

    /// Current state of each service.
    pub fn states(&self) -> BTreeMap<String, State> {
        self.table()
            .entries
            .iter()
            .map(|(name, e)| (name.clone(), e.state.borrow().clone()))
            .collect()
    }

    /// A watch on one service's state.
    pub fn watch(&self, name: &str) -> Option<watch::Receiver<State>> {
        self.table().entries.get(name).map(|e| e.state.clone())
    }

    /// Every service as the control protocol reports it, in start order.
    pub fn infos(&self) -> Vec<ServiceInfo> {
        let table = self.table();
        table
            .order()
            .iter()
            .filter_map(|name| table.entries.get(name).map(|e| (name, e)))
            .map(|(name, e)| info(name, e))
            .collect()
    }

    /// Send `signal` to `name`'s running process (not its group).
    pub fn signal(&self, name: &str, signal: i32) -> Result<(), SupervisorError> {
        let table = self.table();
        let Some(entry) = table.entries.get(name) else {
            return Err(table.unknown(name));
        };
        let pid = match *entry.state.borrow() {
            State::Starting { pid } | State::Ready { pid } => pid,
            _ => return Err(SupervisorError::NotRunning(name.to_owned())),
        };
        // SAFETY: kill has no memory preconditions; the pid is our child,
        // not yet reaped (its state would no longer be running).
        if unsafe { libc::kill(pid as i32, signal) } != 0 {
            return Err(SupervisorError::NotRunning(name.to_owned()));
        }
        Ok(())
    }

    /// Start `name` if it is not running; clears a failed or stopped state.
    pub async fn start(&self, name: &str) -> Result<(), SupervisorError> {
        let _op = self.inner.ops.lock().await;
        self.start_locked(name)
    }

    fn start_locked(&self, name: &str) -> Result<(), SupervisorError> {
        let mut table = self.table();
        if !table.specs.contains_key(name) {
            return Err(table.unknown(name));
        }
        let running = table
            .entries
            .get(name)
            .and_then(|e| e.task.as_ref())
            .is_some_and(|t| !t.is_finished());
        if !running {
            self.inner.events.info(name, "starting on request");
            self.spawn(&mut table, name);
        }
        Ok(())
    }

    /// Stop `name` (SIGTERM, SIGKILL after its timeout); it stays stopped
    /// until started.
    pub async fn stop(&self, name: &str) -> Result<(), SupervisorError> {
        let _op = self.inner.ops.lock().await;
        self.stop_locked(name).await
    }

    async fn stop_locked(&self, name: &str) -> Result<(), SupervisorError> {
        let (task, publish, meta) = {
            let mut table = self.table();
            let Some(entry) = table.entries.get_mut(name) else {
                return Err(table.unknown(name));
            };
            let _ = entry.stop.send(true);
            (
                entry.task.take(),
                entry.publish.clone(),
                Arc::clone(&entry.meta),
            )
        };
        if let Some(task) = task {
            let _ = task.await;
        }
        if *publish.borrow() != State::Stopped {
            meta.since_ms.store(now_ms(), Ordering::Relaxed);
            publish.send_replace(State::Stopped);
        }
        Ok(())
    }

    /// Stop `name`, then start it.
    pub async fn restart(&self, name: &str) -> Result<(), SupervisorError> {
        let _op = self.inner.ops.lock().await;
        self.stop_locked(name).await?;
        self.start_locked(name)
    }

    /// Make `services` the node's services: those no longer there stop
    /// (dependents first) and are forgotten, changed ones restart, new ones
    /// start. Built-ins named in `first` start before the rest.
    pub async fn replace(&self, services: BTreeMap<String, Service>, first: Vec<String>) {
        let _op = self.inner.ops.lock().await;
        let (order, old) = {
            let table = self.table();
            (table.order(), table.specs.clone())
        };
        let mut to_stop = Vec::new();
        for name in order.iter().rev() {
            match services.get(name) {
                None => to_stop.push((name.clone(), true)),
                Some(spec) if old.get(name) != Some(spec) => to_stop.push((name.clone(), false)),
                Some(_) => {}
            }
        }
        for (name, removed) in &to_stop {
            let _ = self.stop_locked(name).await;
            if *removed {
                let entry = self.table().entries.remove(name);
                if let Some(dir) = entry.and_then(|e| e.cgroup) {
                    let _ = std::fs::remove_dir(dir);
                }
                self.inner.events.info(name, "removed");
            }
        }
        let mut table = self.table();
        table.specs = services;
        table.first = first;
        for name in table.order() {
            let changed = to_stop.iter().any(|(n, _)| n == &name);
            let added = !old.contains_key(&name);
            if changed || added {
                self.spawn(&mut table, &name);
            }
        }
    }

    /// Stop every service, dependents before their dependencies.
    pub async fn stop_all(&self) {
        let _op = self.inner.ops.lock().await;
        let order = self.table().order();
        for name in order.iter().rev() {
            let _ = self.stop_locked(name).await;
        }
    }
}

fn info(name: &str, entry: &Entry) -> ServiceInfo {
    let state = entry.state.borrow().clone();
    let (word, pid, reason) = match state {
        State::Waiting => ("waiting", None, None),
        State::Starting { pid } => ("starting", Some(pid), None),
        State::Ready { pid } => ("ready", Some(pid), None),
        State::Backoff => ("backoff", None, None),
        State::Failed(why) => ("failed", None, Some(why)),
        State::Exited => ("exited", None, None),
        State::Stopped => ("stopped", None, None),
    };
    ServiceInfo {
        name: name.to_owned(),
        state: word.to_owned(),
        reason,
        pid,
        restarts: entry.meta.restarts.load(Ordering::Relaxed),
        since_ms: entry.meta.since_ms.load(Ordering::Relaxed),
        cgroup: entry
            .cgroup
            .as_deref()
            .map(Path::to_string_lossy)
            .map(Into::into),
    }
}

/// Let services' cgroups count CPU, memory and processes: enable those
/// controllers for the children of the cgroup root and of `root`, which is
/// created. Best effort; each failure is an event.
pub fn prepare_cgroups(root: &Path, events: &Events) -> bool {
    if let Err(e) = std::fs::create_dir_all(root) {
        events.warn(
            "init",
            format!(
                "cannot make {}: {e}; services run without cgroups",
                root.display()
            ),
        );
        return false;
    }
    for dir in [root.parent().unwrap_or(root), root] {
        let control = dir.join("cgroup.subtree_control");
        for controller in ["+cpu", "+memory", "+pids"] {
            if let Err(e) = std::fs::write(&control, controller) {
                events.warn(
                    "init",
                    format!("{}: cannot enable {controller}: {e}", control.display()),
                );
            }
        }
    }
    true
}

/// Turn a child's output into `source` events (for processes run outside a
/// service, such as first-boot commands).
pub fn forward_output(fd: std::os::fd::OwnedFd, source: &str, events: &Events) {
    logs::forward(
        fd,
        source.to_owned(),
        crate::events::Level::Info,
        events.clone(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use mote_config::{RestartPolicy, Service};

    fn service(script: &str, restart: RestartPolicy, after: &[&str]) -> Service {
        Service {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            environment: Default::default(),
            user: "root".into(),
            restart,
            after: after.iter().map(|s| s.to_string()).collect(),
            ports: vec![],
            stop_timeout_secs: 1,
            capabilities: Vec::new(),
            open_files: None,
        }
    }

    /// A server needs a descriptor per connection: PID 1 sets each
    /// service's RLIMIT_NOFILE from its definition (default 65536), for
    /// unprivileged services too.
    #[tokio::test(flavor = "current_thread")]
    async fn services_get_their_open_files_limit() {
        let reaper = Reaper::start().unwrap();
        let events = Events::new(false);
        crate::system::raise_open_files_ceiling(&events);
        let mut settings = NodeSettings::default();
        let script = "echo \"limits $(ulimit -Sn) $(ulimit -Hn)\"; exec sleep 30";
        settings.services.insert(
            "default".into(),
            service(script, RestartPolicy::Always, &[]),
        );
        let mut own = service(script, RestartPolicy::Always, &[]);
        own.open_files = Some(4242);
        own.user = "nobody".into();
        settings.services.insert("own".into(), own);
        let sup = Supervisor::start_settings(&settings, &reaper, &events, fast());
        sup.wait_settled(Duration::from_secs(10)).await;
        let said = |source: &str| {
            events
                .recent()
                .into_iter()
                .find(|e| e.source == source && e.message.starts_with("limits"))
                .map(|e| e.message)
        };
        for _ in 0..100 {
            if said("default").is_some() && said("own").is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A test host may hold a ceiling below 65536 that root cannot raise
        // (no CAP_SYS_RESOURCE in a sandbox); PID 1 on a node raises it.
        let default = 65_536.min(crate::system::open_files_ceiling());
        assert_eq!(said("default"), Some(format!("limits {default} {default}")));
        assert_eq!(said("own").as_deref(), Some("limits 4242 4242"));
        sup.stop_all().await;
    }

    fn fast() -> Limits {
        Limits {
            backoff_start: Duration::from_millis(10),
            backoff_max: Duration::from_millis(40),
            healthy_after: Duration::from_secs(10),
            rapid_failures: 3,
            window: Duration::from_secs(60),
            ready_timeout: Duration::from_secs(5),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_crashing_service_is_given_up_after_rapid_failures() {
        let reaper = Reaper::start().unwrap();
        let events = Events::new(false);
        let mut settings = NodeSettings::default();
        settings.services.insert(
            "crash".into(),
            service("echo boom >&2; exit 1", RestartPolicy::Always, &[]),
        );
        let sup = Supervisor::start_settings(&settings, &reaper, &events, fast());
        let mut rx = sup.watch("crash").unwrap();
        let state = tokio::time::timeout(
            Duration::from_secs(10),
            rx.wait_for(|s| matches!(s, State::Failed(_))),
        )
        .await
        .expect("gave up in time")
        .unwrap()
        .clone();
        assert!(matches!(state, State::Failed(why) if why.contains("3 failures")));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let log: Vec<_> = events
            .recent()
            .into_iter()
            .filter(|e| e.source == "crash")
            .map(|e| e.message)
            .collect();
        assert_eq!(log.iter().filter(|m| *m == "boom").count(), 3, "{log:?}");
        assert!(log.iter().any(|m| m.contains("restarting in")), "{log:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn dependents_start_after_dependencies_and_stop_before_them() {
        let reaper = Reaper::start().unwrap();
        let events = Events::new(false);
        let mut settings = NodeSettings::default();
        settings.services.insert(
            "db".into(),
            service("echo db up; exec sleep 30", RestartPolicy::Always, &[]),
        );
        settings.services.insert(
            "app".into(),
            service("echo app up; exec sleep 30", RestartPolicy::Always, &["db"]),
        );
        let sup = Supervisor::start_settings(&settings, &reaper, &events, fast());
        let states = sup.wait_settled(Duration::from_secs(10)).await;
        assert!(
            states.values().all(|s| matches!(s, State::Ready { .. })),
            "{states:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        sup.stop_all().await;
        let log: Vec<_> = events
            .recent()
            .into_iter()
            .map(|e| format!("{}: {}", e.source, e.message))
            .collect();
        let pos = |needle: &str| {
            log.iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle} in {log:?}"))
        };
        assert!(pos("db: started") < pos("app: started"));
        assert!(pos("app: stopped") < pos("db: stopped"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_service_that_ignores_sigterm_is_killed_after_its_timeout() {
        let reaper = Reaper::start().unwrap();
        let events = Events::new(false);
        let mut settings = NodeSettings::default();
        settings.services.insert(
            "stubborn".into(),
            service(
                "trap '' TERM; echo armed; while :; do sleep 0.1; done",
                RestartPolicy::Always,
                &[],
            ),
        );
        let sup = Supervisor::start_settings(&settings, &reaper, &events, fast());
        sup.wait_settled(Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        sup.stop_all().await;
        assert!(events.recent().iter().any(|e| e.message.contains("killed")));
    }

    async fn wait_state(sup: &Supervisor, name: &str, f: impl Fn(&State) -> bool) -> State {
        let mut rx = sup.watch(name).expect("service exists");
        let state = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| f(s)))
            .await
            .expect("state reached in time")
            .expect("state channel open")
            .clone();
        state
    }

    fn info_of(sup: &Supervisor, name: &str) -> ServiceInfo {
        sup.infos()
            .into_iter()
            .find(|i| i.name == name)
            .expect("listed")
    }

    #[tokio::test(flavor = "current_thread")]
    async fn stop_start_and_restart_one_service_in_its_cgroup() {
        let reaper = Reaper::start().unwrap();
        let events = Events::new(false);
        let cgroups = tempfile::tempdir().unwrap();
        let sup = Supervisor::new(&reaper, &events, fast(), Some(cgroups.path().to_path_buf()));
        let mut services = BTreeMap::new();
        services.insert(
            "sleeper".into(),
            service("exec sleep 30", RestartPolicy::Always, &[]),
        );
        // A plain directory stands in for cgroupfs, with the file the
        // kernel would provide.
        let dir = cgroups.path().join("sleeper");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.procs"), "").unwrap();
        sup.start_all(services, vec![]);
        let State::Ready { pid } =
            wait_state(&sup, "sleeper", |s| matches!(s, State::Ready { .. })).await
        else {
            unreachable!()
        };
        let info = info_of(&sup, "sleeper");
        assert_eq!((info.state.as_str(), info.pid), ("ready", Some(pid)));
        assert_eq!(info.cgroup.as_deref(), dir.to_str());
        // The child wrote its own pid before exec.
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert_eq!(procs.trim(), pid.to_string());

        sup.stop("sleeper").await.unwrap();
        assert_eq!(info_of(&sup, "sleeper").state, "stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(info_of(&sup, "sleeper").state, "stopped", "stays stopped");

        sup.start("sleeper").await.unwrap();
        let State::Ready { pid: second } =
            wait_state(&sup, "sleeper", |s| matches!(s, State::Ready { .. })).await
        else {
            unreachable!()
        };
        assert_ne!(pid, second);
        sup.restart("sleeper").await.unwrap();
        let State::Ready { pid: third } =
            wait_state(&sup, "sleeper", |s| matches!(s, State::Ready { .. })).await
        else {
            unreachable!()
        };
        assert_ne!(second, third);
        assert!(matches!(
            sup.stop("nope").await,
            Err(SupervisorError::Unknown { .. })
        ));
        sup.stop_all().await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn start_clears_a_failed_state() {
        let reaper = Reaper::start().unwrap();
        let events = Events::new(false);
        let marker = tempfile::tempdir().unwrap();
        let flag = marker.path().join("fixed");
        let script = format!("test -e {} && exec sleep 30; exit 1", flag.display());
        let mut settings = NodeSettings::default();
        settings
            .services
            .insert("flaky".into(), service(&script, RestartPolicy::Always, &[]));
        let sup = Supervisor::start_settings(&settings, &reaper, &events, fast());
        wait_state(&sup, "flaky", |s| matches!(s, State::Failed(_))).await;
        let info = info_of(&sup, "flaky");
        assert_eq!(info.state, "failed");
        assert!(info.reason.unwrap().contains("failures"));
        assert_eq!(info.restarts, 2);
        std::fs::write(&flag, "").unwrap();
        sup.start("flaky").await.unwrap();
        wait_state(&sup, "flaky", |s| matches!(s, State::Ready { .. })).await;
        assert_eq!(info_of(&sup, "flaky").restarts, 0);
        sup.stop_all().await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn replace_stops_removed_starts_added_and_restarts_changed() {
        let reaper = Reaper::start().unwrap();
        let events = Events::new(false);
        let sleeper = |tag: &str| {
            service(
                &format!("echo {tag}; exec sleep 30"),
                RestartPolicy::Always,
                &[],
            )
        };
        let mut services = BTreeMap::new();
        services.insert("keep".into(), sleeper("keep"));
        services.insert("drop".into(), sleeper("drop"));
        services.insert("change".into(), sleeper("v1"));
        let sup = Supervisor::new(&reaper, &events, fast(), None);
        sup.start_all(services.clone(), vec![]);
        sup.wait_settled(Duration::from_secs(10)).await;
        let pid = |name: &str| info_of(&sup, name).pid;
        let (keep, change) = (pid("keep"), pid("change"));

        services.remove("drop");
        services.insert("change".into(), sleeper("v2"));
        services.insert("new".into(), sleeper("new"));
        sup.replace(services, vec![]).await;
        let states = sup.wait_settled(Duration::from_secs(10)).await;
        assert_eq!(
            states.keys().map(String::as_str).collect::<Vec<_>>(),
            ["change", "keep", "new"]
        );
        assert!(
            states.values().all(|s| matches!(s, State::Ready { .. })),
            "{states:?}"
        );
        assert_eq!(pid("keep"), keep, "unchanged services are left alone");
        assert_ne!(pid("change"), change, "changed services restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let log: Vec<String> = events
            .recent()
            .into_iter()
            .map(|e| format!("{}: {}", e.source, e.message))
            .collect();
        assert!(log.iter().any(|l| l == "drop: removed"), "{log:?}");
        assert!(log.iter().any(|l| l == "change: v2"), "{log:?}");
        sup.stop_all().await;
    }
}

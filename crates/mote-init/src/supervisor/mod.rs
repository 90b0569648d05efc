//! The service supervisor: starts services in dependency order, restarts them
//! by policy with backoff and a rapid-failure limit, turns their output into
//! events, and stops them in reverse order.

mod logs;
pub mod reaper;
pub mod service;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mote_config::NodeSettings;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use reaper::{Exit, Reaper};
pub use service::{Limits, State};

use crate::events::Events;

struct Running {
    state: watch::Receiver<State>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// All services of the node.
pub struct Supervisor {
    order: Vec<String>,
    services: BTreeMap<String, Running>,
}

impl Supervisor {
    /// Start every service; each waits for the services in its `after` list.
    pub fn start(
        settings: &NodeSettings,
        reaper: &Arc<Reaper>,
        events: &Events,
        limits: Limits,
    ) -> Self {
        let order = settings.service_order();
        let mut services: BTreeMap<String, Running> = BTreeMap::new();
        for name in &order {
            let Some(spec) = settings.services.get(name) else {
                continue;
            };
            let deps = spec
                .after
                .iter()
                .filter_map(|dep| services.get(dep).map(|r| (dep.clone(), r.state.clone())))
                .collect();
            let (state_tx, state_rx) = watch::channel(State::Waiting);
            let (stop_tx, stop_rx) = watch::channel(false);
            let runner = service::Runner {
                name: name.clone(),
                spec: spec.clone(),
                deps,
                state: state_tx,
                stop: stop_rx,
                reaper: Arc::clone(reaper),
                events: events.clone(),
                limits,
            };
            let task = tokio::spawn(runner.run());
            services.insert(
                name.clone(),
                Running {
                    state: state_rx,
                    stop: stop_tx,
                    task,
                },
            );
        }
        Self { order, services }
    }

    /// Wait until every service is ready or ended for good, up to `timeout`.
    pub async fn wait_settled(&self, timeout: Duration) -> BTreeMap<String, State> {
        let wait_all = async {
            for running in self.services.values() {
                let mut rx = running.state.clone();
                let _ = rx.wait_for(State::settled).await;
            }
        };
        let _ = tokio::time::timeout(timeout, wait_all).await;
        self.states()
    }

    /// Current state of each service.
    pub fn states(&self) -> BTreeMap<String, State> {
        self.services
            .iter()
            .map(|(name, r)| (name.clone(), r.state.borrow().clone()))
            .collect()
    }

    /// Stop every service, dependents before their dependencies.
    pub async fn stop_all(&mut self) {
        for name in self.order.iter().rev() {
            if let Some(running) = self.services.remove(name) {
                let _ = running.stop.send(true);
                let _ = running.task.await;
            }
        }
    }
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
        }
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
        let sup = Supervisor::start(&settings, &reaper, &events, fast());
        let mut rx = sup.services["crash"].state.clone();
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
        let mut sup = Supervisor::start(&settings, &reaper, &events, fast());
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
        let mut sup = Supervisor::start(&settings, &reaper, &events, fast());
        sup.wait_settled(Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        sup.stop_all().await;
        assert!(events.recent().iter().any(|e| e.message.contains("killed")));
    }
}

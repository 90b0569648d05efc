//! What PID 1 does for each request, and the node state it needs.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use mote_api::control::{
    AppliedSettings, ErrorKind, PowerAction, Request, Response, ServiceAction, SystemInfo,
};
use mote_config::NodeSettings;
use tokio::sync::mpsc;

use crate::events::Events;
use crate::net::NetState;
use crate::power::Action;
use crate::supervisor::Supervisor;
use crate::system;

/// Boot figures for `System`.
#[derive(Debug, Default)]
pub struct BootInfo {
    /// Kernel uptime when PID 1 started.
    pub init_ms: u64,
    /// Kernel uptime at the ready line.
    pub ready_ms: Mutex<Option<u64>>,
    /// Boot phases and when each ended, ms after PID 1 started.
    pub timeline: Mutex<Vec<(String, u64)>>,
}

impl BootInfo {
    /// Record that `phase` ended now.
    pub fn mark(&self, phase: &str) {
        let at = system::uptime_ms().saturating_sub(self.init_ms);
        lock(&self.timeline).push((phase.to_owned(), at));
    }

    /// Record that `phase` ended at kernel uptime `uptime_ms` (for phases
    /// that ran before this record existed).
    pub fn mark_at(&self, phase: &str, uptime_ms: u64) {
        let at = uptime_ms.saturating_sub(self.init_ms);
        lock(&self.timeline).push((phase.to_owned(), at));
    }

    /// `phase@ms phase@ms …`
    pub fn summary(&self) -> String {
        lock(&self.timeline)
            .iter()
            .map(|(p, ms)| format!("{p}@{ms}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Which parts of the machine `Apply` may change. All true on a node; tests
/// turn off what would touch the host they run on.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Set the host name.
    pub hostname: bool,
    /// Load the firewall.
    pub firewall: bool,
    /// Reconfigure interfaces.
    pub network: bool,
    /// The management agent's binary; run as service `moted` when it exists
    /// and management is enabled.
    pub moted: PathBuf,
    /// The packages the image installed.
    pub installed: mote_package::Installed,
    /// Where packages installed online are kept, trusted and unpacked.
    pub store: crate::package_store::Store,
    /// Where the packages' settings sections are written, as `NAME.json`.
    pub role_settings: PathBuf,
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self {
            hostname: true,
            firewall: true,
            network: true,
            moted: PathBuf::from(crate::management::MOTED),
            installed: mote_package::Installed::default(),
            store: crate::package_store::Store::default(),
            role_settings: PathBuf::from(mote_config::paths::ROLE_SETTINGS),
        }
    }
}

/// Everything the control socket acts on.
pub struct Node {
    /// The event log.
    pub events: Events,
    /// The services.
    pub supervisor: Supervisor,
    /// Boot figures.
    pub boot: BootInfo,
    /// What `Apply` may touch.
    pub options: NodeOptions,
    settings: Mutex<NodeSettings>,
    applied: Mutex<AppliedSettings>,
    net: Mutex<Option<NetState>>,
    power: mpsc::Sender<Action>,
    /// One `Apply` at a time.
    pub(super) applying: tokio::sync::Mutex<()>,
    /// The installed packages: the image's and those installed online.
    installed: Mutex<mote_package::Installed>,
    /// Who signed each package installed online.
    trust: Mutex<std::collections::BTreeMap<String, mote_api::control::PackageTrust>>,
}

impl Node {
    /// A node running `settings`; power requests go to `power`.
    pub fn new(
        events: Events,
        supervisor: Supervisor,
        settings: NodeSettings,
        init_ms: u64,
        options: NodeOptions,
        power: mpsc::Sender<Action>,
    ) -> Self {
        Self {
            events,
            supervisor,
            boot: BootInfo {
                init_ms,
                ..BootInfo::default()
            },
            installed: Mutex::new(options.installed.clone()),
            trust: Mutex::default(),
            options,
            settings: Mutex::new(settings),
            applied: Mutex::new(AppliedSettings::default()),
            net: Mutex::new(None),
            power,
            applying: tokio::sync::Mutex::new(()),
        }
    }

    /// The installed packages (the image's and those installed online).
    pub fn installed(&self) -> mote_package::Installed {
        lock(&self.installed).clone()
    }

    /// Is `name` one of the image's packages (which only a new image
    /// changes)?
    pub fn in_image(&self, name: &str) -> bool {
        self.options.installed.packages.contains_key(name)
    }

    /// Adds packages installed online (at boot, from the state disk).
    pub fn add_installed(
        &self,
        packages: Vec<(
            mote_package::PackageManifest,
            mote_api::control::PackageTrust,
        )>,
    ) {
        for (m, trust) in packages {
            let name = m.name.clone();
            self.set_package(&name, Some(m), Some(trust));
        }
    }

    pub(crate) fn set_package(
        &self,
        name: &str,
        manifest: Option<mote_package::PackageManifest>,
        trust: Option<mote_api::control::PackageTrust>,
    ) {
        let mut installed = lock(&self.installed);
        match manifest {
            Some(m) => installed.packages.insert(name.to_owned(), m),
            None => installed.packages.remove(name),
        };
        let mut trusts = lock(&self.trust);
        match trust {
            Some(t) => trusts.insert(name.to_owned(), t),
            None => trusts.remove(name),
        };
    }

    fn package_infos(&self) -> Vec<mote_api::control::PackageInfo> {
        let settings = self.settings();
        let trust = lock(&self.trust).clone();
        lock(&self.installed)
            .packages
            .values()
            .map(|m| {
                crate::package_store::info(
                    m,
                    self.in_image(&m.name),
                    settings.packages.contains(&m.name),
                    trust.get(&m.name).cloned(),
                )
            })
            .collect()
    }

    /// The settings in force.
    pub fn settings(&self) -> NodeSettings {
        lock(&self.settings).clone()
    }

    pub(super) fn set_settings(&self, settings: NodeSettings) {
        *lock(&self.settings) = settings;
    }

    /// Which settings the node runs and why (for `System`).
    pub fn applied(&self) -> AppliedSettings {
        lock(&self.applied).clone()
    }

    /// Record which settings the node now runs.
    pub fn set_applied(&self, applied: AppliedSettings) {
        *lock(&self.applied) = applied;
    }

    /// The network, once boot has configured it.
    pub fn set_net(&self, net: NetState) {
        *lock(&self.net) = Some(net);
    }

    pub(super) fn net(&self) -> Option<NetState> {
        lock(&self.net).clone()
    }

    /// The node was ready now.
    pub fn set_ready(&self) {
        *lock(&self.boot.ready_ms) = Some(system::uptime_ms());
    }

    pub(super) async fn request_power(&self, action: PowerAction) {
        let (action, what) = match action {
            PowerAction::Reboot => (Action::Reboot, "reboot"),
            PowerAction::Poweroff => (Action::PowerOff, "power off"),
        };
        self.events
            .info("init", format!("control socket: {what} requested"));
        let _ = self.power.send(action).await;
    }

    fn system(&self) -> SystemInfo {
        let uname = rustix::system::uname();
        SystemInfo {
            hostname: uname.nodename().to_string_lossy().into_owned(),
            kernel: uname.release().to_string_lossy().into_owned(),
            uptime_ms: system::uptime_ms(),
            init_ms: self.boot.init_ms,
            ready_ms: *lock(&self.boot.ready_ms),
            boot_timeline: lock(&self.boot.timeline).clone(),
            packages: self.settings().packages,
            allow_unsigned: self.options.store.trusted().1,
            settings: self.applied(),
        }
    }
}

fn error(message: impl Into<String>) -> Response {
    failure(ErrorKind::Failed, message)
}

/// An error answer of kind `reason`.
pub(super) fn failure(reason: ErrorKind, message: impl Into<String>) -> Response {
    Response::Error {
        reason,
        message: message.into(),
    }
}

/// Answer one request (all but `Follow`, which the connection streams, and
/// `Power`, which it answers before acting).
pub async fn handle(node: &Node, request: Request) -> Response {
    match request {
        Request::System => Response::System(node.system()),
        Request::Services => Response::Services {
            services: node.supervisor.infos(),
        },
        Request::Service { name, action } => {
            let result = match action {
                ServiceAction::Start => node.supervisor.start(&name).await,
                ServiceAction::Stop => node.supervisor.stop(&name).await,
                ServiceAction::Restart => node.supervisor.restart(&name).await,
            };
            match result {
                Ok(()) => Response::Ok,
                Err(e @ crate::supervisor::SupervisorError::Unknown { .. }) => {
                    failure(ErrorKind::NotFound, e.to_string())
                }
                Err(e) => failure(ErrorKind::Conflict, e.to_string()),
            }
        }
        Request::Events(query) => Response::Events {
            events: node.events.query(&query),
        },
        Request::Follow(_) => failure(
            ErrorKind::Invalid,
            "follow is a stream; the connection handles it",
        ),
        Request::Emit {
            source,
            level,
            message,
        } => {
            if source.is_empty() || message.contains('\n') {
                return failure(
                    ErrorKind::Invalid,
                    "emit needs a source and a one-line message",
                );
            }
            node.events.emit(&source, level, message);
            Response::Ok
        }
        Request::Network => {
            let settings = node.settings();
            let dns = node
                .net()
                .map(|n| n.dns_servers().iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            match crate::net::inspect(&settings.network, dns) {
                Ok(info) => Response::Network(info),
                Err(e) => error(format!("cannot read the network from the kernel: {e}")),
            }
        }
        Request::Apply { settings, version } => {
            match super::apply(node, *settings, version).await {
                Ok(()) => Response::Ok,
                Err(e) => failure(e.kind, e.message),
            }
        }
        Request::Packages => Response::Packages {
            packages: node.package_infos(),
            allow_unsigned: node.options.store.trusted().1,
        },
        Request::StagePackage { archive, signature } => {
            super::packages::stage(node, &archive, signature.as_deref()).await
        }
        Request::CommitPackage { name } => super::packages::commit(node, &name).await,
        Request::AbortPackage { name } => super::packages::abort(node, &name).await,
        Request::RemovePackage { name } => super::packages::remove(node, &name).await,
        Request::Power { action } => {
            node.request_power(action).await;
            Response::Ok
        }
    }
}

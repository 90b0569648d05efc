//! The control protocol between `moted` and PID 1.
//!
//! PID 1 owns the node's live state: services, events, network, firewall,
//! power. `moted` owns the API, authentication, the settings store and the
//! audit log, and asks PID 1 to act. They talk over the unix socket
//! [`SOCKET`] (mode 0600, root only), one JSON [`Request`] per line; PID 1
//! answers with one JSON [`Response`] per line. [`Request::Follow`] answers
//! with one [`Response::Event`] line per event until the client hangs up.
//!
//! [`Request::Apply`] hands PID 1 a whole, already validated
//! [`NodeSettings`]: it applies what changed (host name, firewall, network,
//! services: stop removed, start added, restart changed) and answers
//! [`Response::Ok`] or an error naming what failed. A caller that gets an
//! error re-applies the previous settings (that is the rollback).

use serde::{Deserialize, Serialize};

pub use mote_config::NodeSettings;

use crate::events::{Event, EventQuery, Level};

/// Where PID 1 listens.
pub const SOCKET: &str = "/run/mote/control.sock";

/// A request to PID 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Host name, kernel, uptime, boot timeline.
    System,
    /// Every service with its state.
    Services,
    /// Start, stop or restart one service.
    Service {
        /// Service name.
        name: String,
        /// What to do.
        action: ServiceAction,
    },
    /// Recorded events matching the query, oldest first.
    Events(EventQuery),
    /// Events matching the query as they happen (a stream).
    Follow(EventQuery),
    /// Record an event (moted's audit entries use source `audit`).
    Emit {
        /// Source.
        source: String,
        /// Severity.
        level: Level,
        /// Message.
        message: String,
    },
    /// Links, addresses, routes and resolvers as the kernel has them.
    Network,
    /// Apply these settings now.
    Apply {
        /// The whole new settings.
        settings: Box<NodeSettings>,
        /// The store version they are (moted's), so PID 1 can say which
        /// version it runs; `None` for settings that were never stored.
        #[serde(default)]
        version: Option<u64>,
    },
    /// Reboot or power off, in order.
    Power {
        /// What to do.
        action: PowerAction,
    },
    /// The installed packages.
    Packages,
    /// Verify a package file moted received against the node's trusted
    /// keys and unpack it (an install, or an upgrade of a package installed
    /// online); its services run once the settings name it. Answered with
    /// [`Response::Staged`]; not kept past a reboot until committed.
    StagePackage {
        /// The archive, written by moted on the state disk.
        archive: std::path::PathBuf,
        /// Its minisign signature, when it has one.
        signature: Option<String>,
    },
    /// Keep a staged package (moted stored the settings that name it).
    CommitPackage {
        /// Package name.
        name: String,
    },
    /// Undo a staged package: the previous version comes back, or none.
    AbortPackage {
        /// Package name.
        name: String,
    },
    /// Remove a package installed online, once no settings name it.
    RemovePackage {
        /// Package name.
        name: String,
    },
}

/// What to do with a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ServiceAction {
    /// Start it (and clear a failed state).
    Start,
    /// Stop it; it stays stopped until started.
    Stop,
    /// Stop it, then start it.
    Restart,
}

/// How the node ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PowerAction {
    /// Reboot.
    Reboot,
    /// Power off.
    Poweroff,
}

/// PID 1's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    /// Done.
    Ok,
    /// Not done, and why.
    Error {
        /// What kind of failure, so that moted answers the right status.
        #[serde(default)]
        reason: ErrorKind,
        /// What failed and what to do.
        message: String,
    },
    /// For [`Request::System`].
    System(SystemInfo),
    /// For [`Request::Services`].
    Services {
        /// Every service.
        services: Vec<ServiceInfo>,
    },
    /// For [`Request::Events`].
    Events {
        /// The events, oldest first.
        events: Vec<Event>,
    },
    /// One event of a [`Request::Follow`] stream.
    Event(Event),
    /// For [`Request::Network`].
    Network(NetworkInfo),
    /// For [`Request::Packages`].
    Packages {
        /// Every installed package, by name.
        packages: Vec<PackageInfo>,
        /// Whether the node lets unsigned packages in (`allow_unsigned` in
        /// its manifest).
        allow_unsigned: bool,
    },
    /// For [`Request::StagePackage`].
    Staged {
        /// The package as staged.
        package: PackageInfo,
        /// The version it replaces, for an upgrade.
        previous: Option<String>,
    },
}

/// What kind of failure a [`Response::Error`] is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A step failed while doing it (a service that did not start, a file
    /// that could not be written).
    #[default]
    Failed,
    /// The request itself is wrong (a package that does not verify).
    Invalid,
    /// What it names does not exist.
    NotFound,
    /// It conflicts with the node's state (a dependency, a name in use).
    Conflict,
    /// Not now: the node is still configuring what it needs.
    Unavailable,
}

/// An installed package, as the node has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PackageInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// What it is.
    pub description: String,
    /// Part of the image (changed only by a new image), not installed
    /// online.
    pub in_image: bool,
    /// Named by the settings' `packages`: its services run and its ports
    /// are open.
    pub active: bool,
    /// Its services.
    pub services: Vec<String>,
    /// The ports it opens itself (besides those its settings section names).
    pub ports: Vec<String>,
    /// The `roles.NAME` section it reads.
    pub settings: Option<String>,
    /// Who signed it, for a package installed online.
    pub trust: Option<PackageTrust>,
    /// What it needs: `NAME REQUIREMENT` each.
    pub dependencies: Vec<String>,
    /// Where its Prometheus metrics answer on the node's loopback
    /// (`http://127.0.0.1:9180/metrics`), from its `[metrics]`.
    pub metrics: Option<String>,
}

/// Why a package installed online is trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum PackageTrust {
    /// Signed by a key the node trusts.
    Signed {
        /// The key's id.
        key_id: String,
    },
    /// Let in unsigned because the node allows that.
    Unsigned {
        /// Why it did not verify.
        reason: String,
    },
}

/// The node at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SystemInfo {
    /// Host name.
    pub hostname: String,
    /// Kernel release.
    pub kernel: String,
    /// Milliseconds since the kernel started.
    pub uptime_ms: u64,
    /// Kernel uptime when PID 1 started.
    pub init_ms: u64,
    /// Kernel uptime when the node was ready (None before).
    pub ready_ms: Option<u64>,
    /// Boot phases and when each ended, in ms after PID 1 started.
    pub boot_timeline: Vec<(String, u64)>,
    /// Active packages (roles and apps), as the settings name them.
    pub packages: Vec<String>,
    /// The node lets unsigned packages in (`allow_unsigned` in its
    /// manifest): for development only.
    #[serde(default)]
    pub allow_unsigned: bool,
    /// Which settings the node runs, and why.
    #[serde(default)]
    pub settings: AppliedSettings,
}

/// Where the settings a node runs came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum SettingsSource {
    /// The settings store on the state disk (what moted committed).
    Store,
    /// The image's `/etc/mote/settings.json`: nothing was stored yet, the
    /// node has no state disk, or the store could not be used (see
    /// [`AppliedSettings::problem`]).
    #[default]
    Image,
}

/// The settings PID 1 applied last: which version, from where, and why not
/// the stored ones when it could not use them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AppliedSettings {
    /// The store version applied; `None` for the image's settings.
    pub version: Option<u64>,
    /// Where they came from.
    pub source: SettingsSource,
    /// Why the stored settings are not the ones in force, when that is so.
    pub problem: Option<String>,
}

impl std::fmt::Display for AppliedSettings {
    /// `version 7 (store)`, `image`, `image (problem: …)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.version, self.source) {
            (Some(v), SettingsSource::Store) => write!(f, "version {v} (store)")?,
            (Some(v), SettingsSource::Image) => write!(f, "version {v} (image)")?,
            (None, _) => write!(f, "image")?,
        }
        if let Some(p) = &self.problem {
            write!(f, "; problem: {p}")?;
        }
        Ok(())
    }
}

/// One service as PID 1 sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ServiceInfo {
    /// Name.
    pub name: String,
    /// `waiting`, `starting`, `ready`, `backoff`, `failed`, `exited`, `stopped`.
    pub state: String,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    /// Current process id.
    pub pid: Option<u32>,
    /// Restarts since boot.
    pub restarts: u32,
    /// When the current state began (ms since the Unix epoch).
    pub since_ms: u64,
    /// The service's cgroup directory, for CPU and memory figures.
    pub cgroup: Option<String>,
}

/// The network as the kernel has it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NetworkInfo {
    /// Links.
    pub links: Vec<LinkInfo>,
    /// Routes of the main table.
    pub routes: Vec<RouteInfo>,
    /// Resolvers in use.
    pub dns: Vec<String>,
}

/// One link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LinkInfo {
    /// Kernel name.
    pub name: String,
    /// Administratively up and carrier present.
    pub up: bool,
    /// MAC address.
    pub mac: Option<String>,
    /// MTU.
    pub mtu: u32,
    /// Addresses as `ip/prefix`.
    pub addresses: Vec<String>,
    /// How IPv4 is configured (`dhcp`, `static`, `off`), from the settings.
    pub ipv4: String,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RouteInfo {
    /// `default` or `net/prefix`.
    pub destination: String,
    /// Next hop, if any.
    pub gateway: Option<String>,
    /// Outgoing link.
    pub interface: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_object_with_an_op() {
        let r = Request::Service {
            name: "web".into(),
            action: ServiceAction::Restart,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(line, r#"{"op":"service","name":"web","action":"restart"}"#);
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        let q: Request =
            serde_json::from_str(r#"{"op":"events","source":"init","limit":5}"#).unwrap();
        assert!(matches!(
            q,
            Request::Events(EventQuery { limit: Some(5), .. })
        ));
        assert!(serde_json::from_str::<Request>(r#"{"op":"format_disk"}"#).is_err());
    }

    #[test]
    fn responses_carry_a_kind() {
        let line = serde_json::to_string(&Response::Error {
            reason: ErrorKind::NotFound,
            message: "no such service".into(),
        })
        .unwrap();
        assert_eq!(
            line,
            r#"{"kind":"error","reason":"not_found","message":"no such service"}"#
        );
        // An answer without a reason is a failure.
        let old: Response = serde_json::from_str(r#"{"kind":"error","message":"x"}"#).unwrap();
        assert!(matches!(
            old,
            Response::Error {
                reason: ErrorKind::Failed,
                ..
            }
        ));
    }
}

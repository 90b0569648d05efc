//! `Apply`: make a whole new [`NodeSettings`] the node's, live.
//!
//! The new settings become the ones in force first, then each part that
//! differs from the previous settings is applied, in this order:
//!
//! 1. `hostname` — `sethostname(2)`;
//! 2. `firewall` — the whole nftables batch again (atomic: the old ruleset
//!    stays if the kernel refuses the new one), when the firewall section,
//!    the services' ports or the management port changed;
//! 3. `network` — each interface whose settings changed, added or removed:
//!    its DHCP client stopped, the addresses and default routes on it
//!    removed, then configured afresh as at boot; resolv.conf rewritten;
//! 4. `services` — removed ones stop, added ones start, changed ones restart
//!    (`moted` and the installed packages' services included); a package's
//!    changed settings section is written to `/run/mote/roles/NAME.json`
//!    and its services, when otherwise unchanged, get its reload signal
//!    (they reload without a restart).
//!
//! The first part that fails stops the apply, and the error names it.
//! Because the new settings are already in force, re-applying the previous
//! settings (moted's rollback) changes back every part that had changed.

use std::collections::BTreeSet;

use mote_api::control::{AppliedSettings, ErrorKind, SettingsSource};
use mote_config::NodeSettings;

use super::Node;
use crate::{net, packages};

/// Why an apply stopped: the first part that failed, and what kind of
/// failure it is (for moted's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyError {
    /// What kind.
    pub kind: ErrorKind,
    /// The part, what failed and what to do.
    pub message: String,
}

impl From<String> for ApplyError {
    fn from(message: String) -> Self {
        Self {
            kind: ErrorKind::Failed,
            message,
        }
    }
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Apply `new`, store version `version` (`None`: never stored); `Err`
/// names the first part that failed and why. Either way the node records
/// which version it now runs, and a failure as its problem.
pub async fn apply(node: &Node, new: NodeSettings, version: Option<u64>) -> Result<(), ApplyError> {
    let result = apply_parts(node, new, true).await;
    node.set_applied(AppliedSettings {
        version,
        source: if version.is_some() {
            SettingsSource::Store
        } else {
            SettingsSource::Image
        },
        problem: result
            .as_ref()
            .err()
            .map(|e| format!("only partly applied: {e}")),
    });
    result
}

/// At boot, switch to the saved settings before any service runs: as
/// [`apply`], but waits for the network to be configured first, and leaves
/// the services to boot.
pub async fn apply_boot(node: &Node, new: NodeSettings) -> Result<(), ApplyError> {
    for _ in 0..200 {
        if node.net().is_some() || !node.options.network {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    apply_parts(node, new, false).await
}

/// [`apply_parts`] while holding the one-apply-at-a-time lock (package
/// changes hold it across their steps).
pub(super) async fn apply_parts(
    node: &Node,
    new: NodeSettings,
    services: bool,
) -> Result<(), ApplyError> {
    let _one_at_a_time = node.applying.lock().await;
    apply_locked(node, new, services).await
}

pub(super) async fn apply_locked(
    node: &Node,
    mut new: NodeSettings,
    services: bool,
) -> Result<(), ApplyError> {
    if let Err(problems) = new.validate_with(mote_roles::ALL) {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(ApplyError {
            kind: ErrorKind::Invalid,
            message: format!("settings: invalid: {}", list.join("; ")),
        });
    }
    let installed = node.installed();
    if !services {
        // At boot, a package whose archive did not come back (no longer
        // trusted, damaged) must not keep the rest of the settings out.
        new.packages.retain(|p| {
            let there = installed.packages.contains_key(p);
            if !there {
                node.events.error(
                    "init",
                    format!("settings name package {p}, which is not installed; left out"),
                );
            }
            there
        });
    }
    if let Some(missing) = new
        .packages
        .iter()
        .find(|p| !installed.packages.contains_key(*p))
    {
        return Err(ApplyError {
            kind: ErrorKind::Invalid,
            message: format!(
                "packages: {missing:?} is not installed on this node; install it first \
                 (mote -n NODE package install FILE)"
            ),
        });
    }
    let old = node.settings();
    node.set_settings(new.clone());
    let events = &node.events;
    events.info("init", "applying new settings");

    if node.options.hostname && old.system.hostname != new.system.hostname {
        rustix::system::sethostname(new.system.hostname.as_bytes())
            .map_err(|e| format!("hostname: cannot set {:?}: {e}", new.system.hostname))?;
        events.info("init", format!("host name is now {}", new.system.hostname));
    }

    let installed = &installed;
    let new_ports = packages::open_ports(&new, installed);
    if node.options.firewall
        && (old.firewall != new.firewall || packages::open_ports(&old, installed) != new_ports)
    {
        net::apply_firewall(&new.firewall, &new_ports, events)
            .map_err(|e| format!("firewall: {e}"))?;
    }

    let old_net = &old.network.interfaces;
    let new_net = &new.network.interfaces;
    let changed: Vec<&String> = old_net
        .keys()
        .chain(new_net.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|name| old_net.get(*name) != new_net.get(*name))
        .collect();
    if node.options.network && !changed.is_empty() {
        let Some(state) = node.net() else {
            return Err(ApplyError {
                kind: ErrorKind::Unavailable,
                message: "network: still being configured at boot; try again shortly".into(),
            });
        };
        for name in changed {
            net::reconfigure_interface(&state, name, new_net.get(name), &new.network, events)
                .await
                .map_err(|e| format!("network: {e}"))?;
        }
    }

    if old.roles != new.roles || old.packages != new.packages {
        packages::make_directories(&new, installed, events);
        packages::write_sections(&new, installed, &node.options.role_settings)?;
    }
    if services {
        let (services, first) = packages::services(&new, installed, &node.options.moted);
        let before = node.supervisor.specs();
        node.supervisor.replace(services, first).await;
        // Same service, new section: the service rereads it on its signal.
        let after = node.supervisor.specs();
        for (service, signal) in installed.reloads(&old, &new) {
            if before.contains_key(&service) && before.get(&service) == after.get(&service) {
                node.supervisor
                    .signal(&service, signal.number())
                    .map_err(|e| format!("services.{service}: cannot signal a reload: {e}"))?;
                events.info("init", format!("service {service} reloading its settings"));
            }
        }
    }
    events.info("init", "new settings applied");
    Ok(())
}

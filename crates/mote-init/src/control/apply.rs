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
//!    (`moted` included, as the built-in service); a changed `roles.web` is
//!    written to `/run/mote/roles/web.json` and the `web` service gets
//!    SIGHUP (it reloads without a restart).
//!
//! The first part that fails stops the apply, and the error names it.
//! Because the new settings are already in force, re-applying the previous
//! settings (moted's rollback) changes back every part that had changed.

use std::collections::BTreeSet;

use mote_api::control::{AppliedSettings, SettingsSource};
use mote_config::NodeSettings;

use super::Node;
use crate::{management, net};

/// Apply `new`, store version `version` (`None`: never stored); `Err`
/// names the first part that failed and why. Either way the node records
/// which version it now runs, and a failure as its problem.
pub async fn apply(node: &Node, new: NodeSettings, version: Option<u64>) -> Result<(), String> {
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
pub async fn apply_boot(node: &Node, new: NodeSettings) -> Result<(), String> {
    for _ in 0..200 {
        if node.net().is_some() || !node.options.network {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    apply_parts(node, new, false).await
}

async fn apply_parts(node: &Node, new: NodeSettings, services: bool) -> Result<(), String> {
    let _one_at_a_time = node.applying.lock().await;
    if let Err(problems) = new.validate() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(format!("settings: invalid: {}", list.join("; ")));
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

    if node.options.firewall
        && (old.firewall != new.firewall || old.open_ports() != new.open_ports())
    {
        net::apply_firewall(&new.firewall, &new.open_ports(), events)
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
            return Err("network: still being configured at boot; try again shortly".into());
        };
        for name in changed {
            net::reconfigure_interface(&state, name, new_net.get(name), &new.network, events)
                .await
                .map_err(|e| format!("network: {e}"))?;
        }
    }

    let web_changed = old.roles.web != new.roles.web || old.packages != new.packages;
    if web_changed && management::has_web(&new) {
        management::write_web_config(&new, &node.options.web_config).map_err(|e| {
            format!(
                "roles.web: cannot write {}: {e}",
                node.options.web_config.display()
            )
        })?;
    }
    if services {
        let (mut services, first) = management::services(&new, &node.options.moted);
        management::add_web(
            &mut services,
            &new,
            &node.options.web,
            &node.options.web_config,
        );
        let web_before = node
            .supervisor
            .specs()
            .get(management::WEB_SERVICE)
            .cloned();
        node.supervisor.replace(services, first).await;
        // Same service, new sites: the server reloads its file on SIGHUP.
        if web_changed
            && web_before.is_some()
            && web_before
                == node
                    .supervisor
                    .specs()
                    .get(management::WEB_SERVICE)
                    .cloned()
        {
            node.supervisor
                .signal(management::WEB_SERVICE, libc::SIGHUP)
                .map_err(|e| format!("roles.web: cannot reload the web server: {e}"))?;
            events.info("init", "web server reloading its sites");
        }
    }
    events.info("init", "new settings applied");
    Ok(())
}

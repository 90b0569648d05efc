//! The boot sequence of PID 1, as named phases (see docs/boot.md):
//!
//! 1. `filesystems` — proc, sys, dev, devpts, shm, run, tmp, cgroup2;
//! 2. `settings` — `/etc/mote/settings.json`, written by `mote build`,
//!    and the host name;
//! 3. `modules` — drivers and what the node needs, in dependency order;
//! 4. `firewall` — nftables, inbound denied but for declared ports, before
//!    any link is up;
//! 5. then two branches at once:
//!    - `network` — loopback and each interface (static, DHCPv4, SLAAC);
//!    - `state` — the state disk on `/state`, the event log moves onto it;
//!      `first-boot` — once per node, remembered on the state disk;
//!      `services` — started in dependency order and supervised;
//! 6. ready — one `mote: ready …` line on the console, when both are done.
//!
//! The settings are moted's `/state/mote/settings/current.json` when the
//! state disk has a valid one, else the image's. The control socket
//! ([`crate::control`]) is up from the `settings` phase on; services start
//! only after the state disk, with `moted` (management) first.
//!
//! Every phase logs its failures as events and the boot goes on: a bad
//! setting costs that setting, never the node.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mote_config::NodeSettings;

use tokio::sync::mpsc;

use crate::control::{self, Node, NodeOptions};
use crate::events::Events;
use crate::first_boot::{self, Outcome};
use crate::power::{self, Action};
use crate::supervisor::{self as sup, Limits, Reaper, State, Supervisor};
use crate::{console, management, net, state, system};

/// Node settings baked into the image.
pub const SETTINGS: &str = "/etc/mote/settings.json";
/// Settings saved by moted's settings store, preferred when valid.
pub const CURRENT_SETTINGS: &str = "/state/mote/settings/current.json";
/// Module list baked into the image.
pub const MODULES: &str = "/etc/mote/modules";

/// Boot the node, run until asked to stop, stop the services; returns what
/// to do next.
pub async fn run(events: &Events, init_ms: u64) -> Action {
    system::mount_pseudo_filesystems(events);
    system::disable_ctrl_alt_del();
    if system::kernel_cmdline()
        .split_whitespace()
        .any(|w| w == "mote.verbose")
    {
        events.set_console_level(crate::events::Level::Debug);
    }
    let filesystems_at = system::uptime_ms();

    let settings = load_settings(Path::new(SETTINGS), events);
    system::set_hostname(&settings.system.hostname, events);
    let settings_at = system::uptime_ms();
    let modules = system::load_modules(Path::new(MODULES), events);
    let modules_at = system::uptime_ms();

    // The firewall goes on before any link is up, so no packet ever meets a
    // node without it; it needs no addresses.
    if let Err(e) = net::apply_firewall(&settings.firewall, &settings.open_ports(), events) {
        events.error("firewall", format!("not applied: {e}"));
    }
    let firewall_at = system::uptime_ms();

    let reaper = match Reaper::start() {
        Ok(r) => r,
        Err(e) => {
            events.error(
                "init",
                format!("cannot watch child processes: {e}; services will not run"),
            );
            Arc::new(Reaper::default())
        }
    };
    let cgroups = Path::new(sup::CGROUP_ROOT);
    let cgroups = sup::prepare_cgroups(cgroups, events).then(|| cgroups.to_path_buf());
    let supervisor = Supervisor::new(&reaper, events, Limits::default(), cgroups);
    let (power_tx, power_rx) = mpsc::channel(4);
    let node = Arc::new(Node::new(
        events.clone(),
        supervisor.clone(),
        settings.clone(),
        init_ms,
        NodeOptions::default(),
        power_tx,
    ));
    for (phase, at) in [
        ("filesystems", filesystems_at),
        ("settings", settings_at),
        ("modules", modules_at),
        ("firewall", firewall_at),
    ] {
        node.boot.mark_at(phase, at);
    }
    if let Err(e) = control::serve(Path::new(control::SOCKET), Arc::clone(&node)) {
        events.error(
            "init",
            format!(
                "cannot open the control socket {}: {e}; no remote management",
                control::SOCKET
            ),
        );
    }

    // The network (a DHCP exchange is mostly waiting) runs alongside the
    // state disk, first boot and the services; ready needs both.
    let network = async {
        let network = net::configure(&settings.network, events).await;
        node.set_net(network.clone());
        node.boot.mark("network");
        network
    };
    let workload = async {
        let state_dir = mount_state(events).await;
        node.boot.mark("state");
        // moted's saved settings win over the image's once the disk is there.
        let settings = match load_current(Path::new(CURRENT_SETTINGS), events) {
            Some(current) => {
                apply_saved(&node, &settings, current).await;
                node.settings()
            }
            None => settings.clone(),
        };
        match first_boot::run(&settings.first_boot, state_dir, &reaper, events).await {
            Outcome::Ran { ok, total } => {
                console::line(format!("mote: first-boot ran {ok}/{total} commands"))
            }
            Outcome::AlreadyDone => console::line("mote: first-boot already done".into()),
            Outcome::Nothing | Outcome::NoStateDisk => {}
        }
        node.boot.mark("first-boot");
        let (mut services, first) = management::services(&settings, &node.options.moted);
        if management::has_web(&settings) {
            if let Err(e) = management::write_web_config(&settings, &node.options.web_config) {
                events.error(
                    "web",
                    format!("cannot write {}: {e}", node.options.web_config.display()),
                );
            }
            if let Err(e) = management::prepare_web_logs(Path::new(management::WEB_LOGS)) {
                events.warn(
                    "web",
                    format!("cannot prepare {}: {e}", management::WEB_LOGS),
                );
            }
            management::add_web(
                &mut services,
                &settings,
                &node.options.web,
                &node.options.web_config,
            );
        }
        supervisor.start_all(services, first);
        let states = supervisor.wait_settled(Duration::from_secs(30)).await;
        node.boot.mark("services");
        (settings, states)
    };
    let (network, (settings, states)) = tokio::join!(network, workload);

    let up = states
        .values()
        .filter(|s| matches!(s, State::Ready { .. }))
        .count();
    for (name, state) in &states {
        if !matches!(state, State::Ready { .. }) {
            events.warn(
                "init",
                format!("service {name} is not up at boot: {state:?}"),
            );
        }
    }
    let addresses: Vec<String> = network
        .addresses()
        .iter()
        .map(ToString::to_string)
        .collect();
    let management_ready = matches!(states.get(management::SERVICE), Some(State::Ready { .. }));
    let fingerprint = if management_ready {
        management::fingerprint(Path::new(management::FINGERPRINT), Duration::from_secs(3)).await
    } else {
        None
    };
    node.set_ready();
    console::line(format!(
        "mote: ready hostname={} addresses={} boot_ms={} init_ms={init_ms} services={up}/{} modules={modules}{}",
        settings.system.hostname,
        addresses.join(","),
        system::uptime_ms(),
        states.len(),
        fingerprint.as_deref().map(|fp| format!(" fingerprint={fp}")).unwrap_or_default(),
    ));
    if management_ready {
        let host = addresses.first().map_or("<no address>".to_owned(), |a| {
            if a.contains(':') {
                format!("[{a}]")
            } else {
                a.clone()
            }
        });
        console::line(format!(
            "mote: management https://{host}:{} fingerprint={}",
            settings.management.port,
            fingerprint.as_deref().unwrap_or("unknown"),
        ));
    }
    events.info(
        "init",
        format!(
            "boot timeline (ms after PID 1 started): {}",
            node.boot.summary()
        ),
    );

    let action = power::wait_for_request(events, power_rx).await;
    network.stop();
    supervisor.stop_all().await;
    action
}

/// moted's saved settings, when the file exists, parses and validates;
/// otherwise `None`, with an event saying why it was not used.
fn load_current(path: &Path, events: &Events) -> Option<NodeSettings> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            events.warn(
                "init",
                format!("{}: {e}; using the image's settings", path.display()),
            );
            return None;
        }
    };
    match serde_json::from_slice::<NodeSettings>(&bytes) {
        Ok(settings) => match settings.validate() {
            Ok(()) => Some(settings),
            Err(problems) => {
                let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
                events.warn(
                    "init",
                    format!(
                        "{}: invalid ({}); using the image's settings",
                        path.display(),
                        list.join("; ")
                    ),
                );
                None
            }
        },
        Err(e) => {
            events.warn(
                "init",
                format!("{}: {e}; using the image's settings", path.display()),
            );
            None
        }
    }
}

/// Switch from the image's settings to the saved ones: host name, firewall
/// and network are already set up from the image's (the state disk comes
/// after them), so the difference is applied as `Apply` would.
async fn apply_saved(node: &Node, image: &NodeSettings, current: NodeSettings) {
    let events = &node.events;
    if current == *image {
        events.info(
            "init",
            format!("settings: {CURRENT_SETTINGS} (same as the image's)"),
        );
        return;
    }
    events.info(
        "init",
        format!("settings: {CURRENT_SETTINGS} (saved by moted), not the image's {SETTINGS}"),
    );
    // Services are not running yet; apply starts none while the list is
    // empty, and boot starts them from the node's settings afterwards.
    match control::apply_boot(node, current).await {
        Ok(()) => {}
        Err(e) => events.error("init", format!("saved settings only partly applied: {e}")),
    }
}

/// Mount the state disk and move the event log onto it; `None` without one.
async fn mount_state(events: &Events) -> Option<&'static Path> {
    match state::mount_state_disk(Duration::from_secs(2)).await {
        Ok(_) => {
            let log_dir = Path::new(state::MOUNT_POINT).join("log");
            let _ = std::fs::create_dir_all(&log_dir);
            if let Err(e) = events.persist_to(&log_dir) {
                events.error(
                    "init",
                    format!("cannot write the event log on the state disk: {e}"),
                );
            }
            Some(Path::new(state::MOUNT_POINT))
        }
        Err(why) => {
            events.warn("init", why);
            None
        }
    }
}

/// The image's settings; a node with unreadable settings still boots, with
/// defaults and no services, so it stays reachable for repair.
fn load_settings(path: &Path, events: &Events) -> NodeSettings {
    let parsed = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            serde_json::from_slice::<NodeSettings>(&bytes).map_err(|e| e.to_string())
        });
    match parsed {
        Ok(settings) => {
            events.info("init", format!("settings: {}", path.display()));
            settings
        }
        Err(e) => {
            events.error(
                "init",
                format!("{}: {e}; booting with defaults", path.display()),
            );
            let mut settings = NodeSettings::default();
            settings.system.hostname = "mote".into();
            settings
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_settings_are_used_only_when_they_parse_and_validate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("current.json");
        let events = Events::new(false);
        assert_eq!(load_current(&path, &events), None, "absent");
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(load_current(&path, &events), None, "unparsable");
        let mut settings = NodeSettings::default();
        settings.system.hostname = "saved".into();
        std::fs::write(&path, serde_json::to_vec(&settings).unwrap()).unwrap();
        assert_eq!(load_current(&path, &events), None, "no credential: invalid");
        settings.system.admin_password_hash = mote_config::password::hash("x").unwrap();
        std::fs::write(&path, serde_json::to_vec(&settings).unwrap()).unwrap();
        assert_eq!(load_current(&path, &events), Some(settings));
        let warnings = events
            .recent()
            .into_iter()
            .filter(|e| e.message.contains("using the image's settings"))
            .count();
        assert_eq!(warnings, 2);
    }
}

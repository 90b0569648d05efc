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
//!    - `state` — the state disk on `/state`, grown first when its disk
//!      was enlarged, the event log moves onto it;
//!      `first-boot` — once per node, remembered on the state disk;
//!      `services` — started in dependency order and supervised;
//! 6. ready — one `mote: ready …` line on the console, when both are done.
//!
//! The settings are the newest version moted committed to its store on the
//! state disk (`/state/mote/settings`, read with the same code moted
//! uses, [`mote_api::store::read_committed`]), else the image's. When a
//! stored version exists but cannot be used, the node says so at error
//! level, in the ready line (`settings=image!`) and in `System`; it never
//! falls back silently. The control socket
//! ([`crate::control`]) is up from the `settings` phase on; services start
//! only after the state disk, with `moted` (management) first.
//!
//! Every phase logs its failures as events and the boot goes on: a bad
//! setting costs that setting, never the node.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mote_api::control::{AppliedSettings, SettingsSource};
use mote_api::store::{self, Stored};
use mote_config::NodeSettings;

use tokio::sync::mpsc;

use crate::control::{self, Node, NodeOptions};
use crate::events::Events;
use crate::first_boot::{self, Outcome};
use crate::power::{self, Action};
use crate::supervisor::{self as sup, Limits, Reaper, State, Supervisor};
use crate::{console, grow, management, net, packages, state, system};

/// Node settings baked into the image.
pub const SETTINGS: &str = "/etc/mote/settings.json";
/// Module list baked into the image.
pub const MODULES: &str = "/etc/mote/modules";

/// Boot the node, run until asked to stop, stop the services; returns what
/// to do next.
pub async fn run(events: &Events, init_ms: u64) -> Action {
    system::mount_pseudo_filesystems(events);
    system::disable_ctrl_alt_del();
    system::raise_open_files_ceiling(events);
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
    let installed = packages::read(Path::new(mote_config::paths::IMAGE_PACKAGES), events);
    let ports = packages::open_ports(&settings, &installed);
    if let Err(e) = net::apply_firewall(&settings.firewall, &ports, events) {
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
        NodeOptions {
            installed,
            ..NodeOptions::default()
        },
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
        if state_dir.is_some() {
            reinstate_packages(&node, events).await;
        }
        node.boot.mark("state");
        // What moted committed wins over the image's once the disk is there.
        let settings = match state_dir {
            None => {
                node.set_applied(AppliedSettings {
                    problem: Some(
                        "no state disk: the image's settings, and changes last until the next boot"
                            .into(),
                    ),
                    ..AppliedSettings::default()
                });
                settings.clone()
            }
            Some(_) => match committed(Path::new(store::DIR), events) {
                Ok(Some(stored)) => {
                    apply_saved(&node, &settings, stored).await;
                    node.settings()
                }
                Ok(None) => settings.clone(),
                Err(problem) => {
                    node.set_applied(AppliedSettings {
                        problem: Some(problem),
                        ..AppliedSettings::default()
                    });
                    settings.clone()
                }
            },
        };
        match first_boot::run(&settings.first_boot, state_dir, &reaper, events).await {
            Outcome::Ran { ok, total } => {
                console::line(format!("mote: first-boot ran {ok}/{total} commands"))
            }
            Outcome::AlreadyDone => console::line("mote: first-boot already done".into()),
            Outcome::Nothing | Outcome::NoStateDisk => {}
        }
        node.boot.mark("first-boot");
        let installed = &node.installed();
        let (services, first) = packages::services(&settings, installed, &node.options.moted);
        packages::make_directories(&settings, installed, events);
        if let Err(e) = packages::write_sections(&settings, installed, &node.options.role_settings)
        {
            events.error("init", e);
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
    events.end_boot();
    let applied = node.applied();
    console::line(format!(
        "mote: ready hostname={} addresses={} boot_ms={} init_ms={init_ms} services={up}/{} modules={modules} settings={}{}",
        settings.system.hostname,
        addresses.join(","),
        system::uptime_ms(),
        states.len(),
        ready_settings(&applied),
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

/// The settings word of the ready line: `v7`, `image`, or `image!` /
/// `v7!` when something is wrong (the reason is an error event).
fn ready_settings(applied: &AppliedSettings) -> String {
    let mut word = applied
        .version
        .map_or_else(|| "image".to_owned(), |v| format!("v{v}"));
    if applied.problem.is_some() {
        word.push('!');
    }
    word
}

/// What moted last committed to the store in `dir`, validated: `Ok(None)`
/// when nothing was stored yet (first boot), `Err` with the reason, logged
/// at error level, when stored settings exist and cannot be used.
fn committed(dir: &Path, events: &Events) -> Result<Option<Stored>, String> {
    let found = store::read_committed(dir).map_err(|e| {
        let why = format!("cannot read the settings store: {}", chain(&e));
        events.error("init", format!("{why}; running the image's settings"));
        why
    })?;
    for problem in &found.problems {
        events.error(
            "init",
            format!("settings store: {}; not used", chain(problem)),
        );
    }
    let Some(stored) = found.newest else {
        if found.problems.is_empty() {
            return Ok(None);
        }
        let why = "no stored settings version can be read".to_owned();
        events.error("init", format!("{why}; running the image's settings"));
        return Err(why);
    };
    if let Err(problems) = stored.settings.validate() {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let why = format!(
            "stored settings version {} is invalid ({})",
            stored.entry.version,
            list.join("; ")
        );
        events.error("init", format!("{why}; running the image's settings"));
        return Err(why);
    }
    Ok(Some(stored))
}

/// An error with its sources, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Switch from the image's settings to the stored ones: host name, firewall
/// and network are already set up from the image's (the state disk comes
/// after them), so the difference is applied as `Apply` would.
async fn apply_saved(node: &Node, image: &NodeSettings, stored: Stored) {
    let events = &node.events;
    let version = stored.entry.version;
    let mut applied = AppliedSettings {
        version: Some(version),
        source: SettingsSource::Store,
        problem: None,
    };
    if stored.settings == *image {
        events.info(
            "init",
            format!("settings: stored version {version} (same as the image's)"),
        );
    } else {
        events.info(
            "init",
            format!(
                "settings: stored version {version} ({} by {}), not the image's {SETTINGS}",
                stored.entry.what, stored.entry.who
            ),
        );
        // Services are not running yet; apply starts none, and boot starts
        // them from the node's settings afterwards.
        if let Err(e) = control::apply_boot(node, stored.settings).await {
            events.error(
                "init",
                format!("stored settings version {version} only partly applied: {e}"),
            );
            applied.problem = Some(format!("only partly applied: {e}"));
        }
    }
    node.set_applied(applied);
}

/// Packages installed online come back from the state disk, verified
/// again, before the stored settings that name them are applied.
async fn reinstate_packages(node: &Node, events: &Events) {
    let store = node.options.store.clone();
    let image: std::collections::BTreeSet<String> =
        node.options.installed.packages.keys().cloned().collect();
    let Ok((done, problems)) = tokio::task::spawn_blocking(move || store.reinstate(&image)).await
    else {
        events.error("init", "reinstating packages stopped");
        return;
    };
    for problem in problems {
        events.error("init", format!("installed package left out: {problem}"));
    }
    if !done.is_empty() {
        let names: Vec<String> = done.iter().map(|(m, _)| m.id()).collect();
        events.info(
            "init",
            format!("packages installed online: {}", names.join(", ")),
        );
        node.add_installed(done);
    }
}

/// Mount the state disk and move the event log onto it; `None` without one.
async fn mount_state(events: &Events) -> Option<&'static Path> {
    match state::mount_state_disk(Duration::from_secs(2)).await {
        Ok(device) => {
            grow_state(device, events).await;
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

/// Grow the state partition and its file system into an enlarged disk,
/// before anything is written there; on failure the disk keeps its size.
async fn grow_state(device: PathBuf, events: &Events) {
    let done = tokio::task::spawn_blocking(move || {
        grow::grow_state_disk(&device, Path::new(state::MOUNT_POINT))
    })
    .await;
    match done {
        Ok(Ok(Some(line))) => events.info("init", line),
        Ok(Ok(None)) => {}
        Ok(Err(why)) => events.warn("init", format!("state: {why}; it keeps its size")),
        Err(_) => events.warn("init", "state: growing the disk stopped; it keeps its size"),
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
    use crate::events::Level;

    fn stored(dir: &Path, settings: &NodeSettings) {
        let (mut st, _) = store::Store::open(dir, NodeSettings::default).unwrap();
        st.save(settings.clone(), "admin", "test").unwrap();
    }

    #[test]
    fn a_booting_node_uses_what_moted_committed() {
        let dir = tempfile::tempdir().unwrap();
        let events = Events::new(false);
        assert!(matches!(committed(dir.path(), &events), Ok(None)), "empty");
        let mut settings = NodeSettings::default();
        settings.system.hostname = "saved".into();
        settings.system.admin_password_hash = mote_config::password::hash("x").unwrap();
        stored(dir.path(), &settings);
        let found = committed(dir.path(), &events).unwrap().unwrap();
        assert_eq!(found.entry.version, 2);
        assert_eq!(found.settings, settings);
        assert!(events.recent().iter().all(|e| e.level != Level::Error));
    }

    #[test]
    fn stored_settings_that_cannot_be_used_are_an_error_not_a_silent_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let events = Events::new(false);
        let mut settings = NodeSettings::default();
        settings.system.hostname = "saved".into();
        stored(dir.path(), &settings); // no credential: invalid
        let why = committed(dir.path(), &events).unwrap_err();
        assert!(why.contains("version 2 is invalid"), "{why}");
        std::fs::write(dir.path().join("current.json"), "{not json").unwrap();
        std::fs::write(dir.path().join("history/000002.json"), "").unwrap();
        std::fs::write(dir.path().join("history/000001.json"), "").unwrap();
        let why = committed(dir.path(), &events).unwrap_err();
        assert!(why.contains("no stored settings version"), "{why}");
        let errors = events
            .recent()
            .into_iter()
            .filter(|e| e.level == Level::Error)
            .count();
        assert!(
            errors >= 5,
            "each unreadable file and each fallback is an error"
        );
    }

    #[test]
    fn the_ready_line_marks_a_problem() {
        let mut a = AppliedSettings::default();
        assert_eq!(ready_settings(&a), "image");
        a.version = Some(7);
        assert_eq!(ready_settings(&a), "v7");
        a.problem = Some("x".into());
        assert_eq!(ready_settings(&a), "v7!");
    }
}

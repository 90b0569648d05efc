//! The boot sequence of PID 1, as named phases (see docs/boot.md):
//!
//! 1. `filesystems` — proc, sys, dev, devpts, shm, run, tmp, cgroup2;
//! 2. `settings` — `/etc/mote/settings.json`, written by `mote build`;
//! 3. `identity` — host name;
//! 4. `modules` — drivers and what the node needs, in dependency order;
//! 5. `state` — the state disk on `/state`, the event log moves onto it;
//! 6. `network` — loopback and each interface (static, DHCPv4, SLAAC);
//! 7. `firewall` — nftables, inbound denied but for declared ports;
//! 8. `first-boot` — once per node, remembered on the state disk;
//! 9. `services` — started in dependency order and supervised;
//! 10. ready — one `mote: ready …` line on the console.
//!
//! Every phase logs its failures as events and the boot goes on: a bad
//! setting costs that setting, never the node.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mote_config::NodeSettings;

use crate::events::Events;
use crate::first_boot::{self, Outcome};
use crate::power::{self, Action};
use crate::supervisor::{Limits, Reaper, State, Supervisor};
use crate::{console, net, state, system};

/// Node settings baked into the image.
pub const SETTINGS: &str = "/etc/mote/settings.json";
/// Module list baked into the image.
pub const MODULES: &str = "/etc/mote/modules";

/// Boot the node, run until asked to stop, stop the services; returns what
/// to do next.
pub async fn run(events: &Events, init_ms: u64) -> Action {
    let mut timeline = Timeline::new(init_ms);
    system::mount_pseudo_filesystems(events);
    system::disable_ctrl_alt_del();
    if system::kernel_cmdline()
        .split_whitespace()
        .any(|w| w == "mote.verbose")
    {
        events.set_console_level(crate::events::Level::Debug);
    }
    timeline.mark("filesystems");

    let settings = load_settings(Path::new(SETTINGS), events);
    timeline.mark("settings");
    system::set_hostname(&settings.system.hostname, events);
    timeline.mark("identity");
    let modules = system::load_modules(Path::new(MODULES), events);
    timeline.mark("modules");

    let state_dir = match state::mount_state_disk(Duration::from_secs(2)) {
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
    };
    timeline.mark("state");

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
    let network = net::configure(&settings.network, events).await;
    timeline.mark("network");
    if let Err(e) = net::apply_firewall(&settings.firewall, &settings.open_ports(), events) {
        events.error("firewall", format!("not applied: {e}"));
    }
    timeline.mark("firewall");

    match first_boot::run(&settings.first_boot, state_dir, &reaper, events).await {
        Outcome::Ran { ok, total } => {
            console::line(format!("mote: first-boot ran {ok}/{total} commands"))
        }
        Outcome::AlreadyDone => console::line("mote: first-boot already done".into()),
        Outcome::Nothing | Outcome::NoStateDisk => {}
    }
    timeline.mark("first-boot");

    let mut supervisor = Supervisor::start(&settings, &reaper, events, Limits::default());
    let states = supervisor.wait_settled(Duration::from_secs(30)).await;
    timeline.mark("services");
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
    console::line(format!(
        "mote: ready hostname={} addresses={} boot_ms={} init_ms={init_ms} services={up}/{} modules={modules}",
        settings.system.hostname,
        addresses.join(","),
        system::uptime_ms(),
        states.len(),
    ));
    events.info("init", format!("boot timeline: {}", timeline.summary()));

    let action = power::wait_for_request(events).await;
    supervisor.stop_all().await;
    action
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
        Ok(settings) => settings,
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

/// Kernel uptime at the end of each phase.
struct Timeline {
    last: u64,
    phases: Vec<(&'static str, u64)>,
}

impl Timeline {
    fn new(start: u64) -> Self {
        Self {
            last: start,
            phases: Vec::new(),
        }
    }

    fn mark(&mut self, phase: &'static str) {
        let now = system::uptime_ms();
        self.phases.push((phase, now.saturating_sub(self.last)));
        self.last = now;
    }

    fn summary(&self) -> String {
        self.phases
            .iter()
            .map(|(p, ms)| format!("{p}={ms}ms"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

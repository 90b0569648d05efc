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
    let timeline = Timeline::new(init_ms);
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
    system::set_hostname(&settings.system.hostname, events);
    timeline.mark("settings");
    let modules = system::load_modules(Path::new(MODULES), events);
    timeline.mark("modules");

    // The firewall goes on before any link is up, so no packet ever meets a
    // node without it; it needs no addresses.
    if let Err(e) = net::apply_firewall(&settings.firewall, &settings.open_ports(), events) {
        events.error("firewall", format!("not applied: {e}"));
    }
    timeline.mark("firewall");

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
    // The network (a DHCP exchange is mostly waiting) runs alongside the
    // state disk, first boot and the services; ready needs both.
    let network = async {
        let network = net::configure(&settings.network, events).await;
        timeline.mark("network");
        network
    };
    let workload = async {
        let state_dir = mount_state(events).await;
        timeline.mark("state");
        match first_boot::run(&settings.first_boot, state_dir, &reaper, events).await {
            Outcome::Ran { ok, total } => {
                console::line(format!("mote: first-boot ran {ok}/{total} commands"))
            }
            Outcome::AlreadyDone => console::line("mote: first-boot already done".into()),
            Outcome::Nothing | Outcome::NoStateDisk => {}
        }
        timeline.mark("first-boot");
        let supervisor = Supervisor::start_settings(&settings, &reaper, events, Limits::default());
        let states = supervisor.wait_settled(Duration::from_secs(30)).await;
        timeline.mark("services");
        (supervisor, states)
    };
    let (network, (supervisor, states)) = tokio::join!(network, workload);

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
    events.info(
        "init",
        format!(
            "boot timeline (ms after PID 1 started): {}",
            timeline.summary()
        ),
    );

    let action = power::wait_for_request(events).await;
    supervisor.stop_all().await;
    action
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

/// When each phase ended, in ms after PID 1 started (phases may overlap).
struct Timeline {
    start: u64,
    phases: std::sync::Mutex<Vec<(&'static str, u64)>>,
}

impl Timeline {
    fn new(start: u64) -> Self {
        Self {
            start,
            phases: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn mark(&self, phase: &'static str) {
        let at = system::uptime_ms().saturating_sub(self.start);
        self.phases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((phase, at));
    }

    fn summary(&self) -> String {
        let phases = self.phases.lock().unwrap_or_else(|e| e.into_inner());
        phases
            .iter()
            .map(|(p, ms)| format!("{p}@{ms}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

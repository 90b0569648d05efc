//! What ends a node's run: signals to PID 1 and the ACPI power button.
//!
//! - SIGTERM or SIGUSR2: power off; SIGINT (Ctrl-Alt-Del once PID 1 has
//!   disabled the kernel's instant reboot): reboot; SIGUSR1: halt is not
//!   offered, a node either runs, reboots or powers off.
//! - The ACPI power button (QEMU's `system_powerdown`, a hypervisor's "shut
//!   down", a press on real hardware) reaches us as a KEY_POWER input event
//!   from the `button` driver through evdev: a thread reads the input device
//!   named "Power Button" and forwards a press.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::events::Events;

/// How the node ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Power off.
    PowerOff,
    /// Reboot.
    Reboot,
}

/// Wait for the first request to power off or reboot: a signal, the power
/// button, or one sent on `requests` (the control socket's `Power`).
pub async fn wait_for_request(events: &Events, mut requests: mpsc::Receiver<Action>) -> Action {
    let (tx, mut rx) = mpsc::channel(4);
    watch_power_button(tx, events);
    let (Ok(mut term), Ok(mut int), Ok(mut usr2)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined2()),
    ) else {
        events.error(
            "init",
            "cannot listen for signals; only the power button will stop the node",
        );
        return tokio::select! {
            Some(action) = rx.recv() => action,
            Some(action) = requests.recv() => action,
            else => Action::PowerOff,
        };
    };
    tokio::select! {
        _ = term.recv() => { events.info("init", "SIGTERM: powering off"); Action::PowerOff }
        _ = usr2.recv() => { events.info("init", "SIGUSR2: powering off"); Action::PowerOff }
        _ = int.recv() => { events.info("init", "Ctrl-Alt-Del: rebooting"); Action::Reboot }
        Some(action) = rx.recv() => { events.info("init", "power button: powering off"); action }
        Some(action) = requests.recv() => { events.info("init", format!("control socket: {action:?}")); action }
    }
}

/// The evdev device whose name is "Power Button".
fn power_button_devices() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir("/sys/class/input") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| n.starts_with("event")) else {
            continue;
        };
        let label = std::fs::read_to_string(entry.path().join("device/name")).unwrap_or_default();
        if label.trim() == "Power Button" {
            found.push(PathBuf::from("/dev/input").join(name));
        }
    }
    found
}

const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;
/// `struct input_event` on 64-bit: timeval (16), type (2), code (2), value (4).
const INPUT_EVENT_SIZE: usize = 24;

fn watch_power_button(tx: mpsc::Sender<Action>, events: &Events) {
    for device in power_button_devices() {
        let tx = tx.clone();
        let events = events.clone();
        std::thread::spawn(move || {
            let Ok(mut file) = File::open(&device) else {
                events.warn("init", format!("cannot open {}", device.display()));
                return;
            };
            let mut buf = [0u8; INPUT_EVENT_SIZE];
            while file.read_exact(&mut buf).is_ok() {
                let kind = u16::from_ne_bytes([buf[16], buf[17]]);
                let code = u16::from_ne_bytes([buf[18], buf[19]]);
                let value = i32::from_ne_bytes([buf[20], buf[21], buf[22], buf[23]]);
                if kind == EV_KEY && code == KEY_POWER && value == 1 {
                    let _ = tx.blocking_send(Action::PowerOff);
                }
            }
        });
    }
}

/// Kill what is left, flush and unmount, then power off or reboot. Never returns.
pub fn finish(action: Action, events: &Events) -> ! {
    // SAFETY: kill(-1) signals every process but PID 1; plain integers.
    unsafe { libc::kill(-1, libc::SIGTERM) };
    std::thread::sleep(std::time::Duration::from_millis(100));
    // SAFETY: as above.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    events.sync();
    crate::state::unmount_state_disk();
    let how = match action {
        Action::PowerOff => "powering off",
        Action::Reboot => "rebooting",
    };
    crate::console::line(format!("mote: {how}"));
    crate::console::drain();
    let cmd = match action {
        Action::PowerOff => libc::RB_POWER_OFF,
        Action::Reboot => libc::RB_AUTOBOOT,
    };
    loop {
        // SAFETY: reboot takes a constant command; on success it does not return.
        unsafe { libc::reboot(cmd) };
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

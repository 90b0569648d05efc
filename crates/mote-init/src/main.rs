//! `mote-init`: PID 1 of a mote node. Thin on purpose: the work is in the
//! library; here a panic is caught, reported, and turned into a reboot.

use mote_init::events::Events;
use mote_init::power::{self, Action};
use mote_init::{boot, system};

fn main() {
    if std::process::id() != 1 {
        eprintln!(
            "mote-init is the first process of a mote node; it is not meant to be run by hand"
        );
        std::process::exit(2);
    }
    let init_ms = system::uptime_ms();
    mote_init::console::start();
    mote_init::console::line(format!("mote: init uptime_ms={init_ms}"));
    let events = Events::new(true);
    let outcome = std::panic::catch_unwind(|| {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(boot::run(&events, init_ms)),
            Err(e) => {
                events.error("init", format!("cannot start the runtime: {e}; rebooting"));
                Action::Reboot
            }
        }
    });
    let action = outcome.unwrap_or_else(|_| {
        events.error(
            "init",
            "PID 1 hit a bug (panic above); rebooting to recover",
        );
        Action::Reboot
    });
    power::finish(action, &events)
}

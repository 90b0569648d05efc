//! `[[first_boot]]` commands: run once, on the node's first boot, in order.
//! The marker on the state disk remembers that they ran, with their results;
//! without a state disk they would run on every boot, so they are then skipped
//! with a warning rather than repeated.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mote_config::FirstBoot;

use crate::events::Events;
use crate::supervisor::Reaper;

/// Where the marker lives on the state disk.
pub const MARKER: &str = "mote/first-boot.done";

/// What happened to the first-boot commands on this boot.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// None declared.
    Nothing,
    /// Ran now; this many succeeded out of the total.
    Ran {
        /// Succeeded.
        ok: usize,
        /// Declared.
        total: usize,
    },
    /// A previous boot ran them.
    AlreadyDone,
    /// No state disk to remember them on.
    NoStateDisk,
}

/// Run the commands unless the marker under `state` says they ran.
pub async fn run(
    commands: &[FirstBoot],
    state: Option<&Path>,
    reaper: &Arc<Reaper>,
    events: &Events,
) -> Outcome {
    if commands.is_empty() {
        return Outcome::Nothing;
    }
    let Some(state) = state else {
        events.warn(
            "first-boot",
            "no state disk: first-boot commands skipped (they could not be remembered)",
        );
        return Outcome::NoStateDisk;
    };
    let marker = state.join(MARKER);
    if marker.exists() {
        return Outcome::AlreadyDone;
    }
    let mut ok = 0;
    let mut record = String::new();
    for command in commands {
        let line = command.argv.join(" ");
        let result = run_one(command, reaper, events).await;
        if result.is_ok() {
            ok += 1;
        }
        let result = result.unwrap_or_else(|e| e);
        events.info("first-boot", format!("{line}: {result}"));
        record.push_str(&format!("{line}\t{result}\n"));
    }
    if let Err(e) = crate::state::write_atomic(&marker, record.as_bytes()) {
        events.error(
            "first-boot",
            format!("cannot write {}: {e}", marker.display()),
        );
    }
    Outcome::Ran {
        ok,
        total: commands.len(),
    }
}

async fn run_one(
    command: &FirstBoot,
    reaper: &Arc<Reaper>,
    events: &Events,
) -> Result<String, String> {
    let Some((program, args)) = command.argv.split_first() else {
        return Err("empty command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let (mut child, exited) = reaper
        .spawn(&mut cmd)
        .map_err(|e| format!("cannot start: {e}"))?;
    if let Some(out) = child.stdout.take() {
        crate::supervisor::forward_output(out.into(), "first-boot", events);
    }
    if let Some(err) = child.stderr.take() {
        crate::supervisor::forward_output(err.into(), "first-boot", events);
    }
    let timeout = Duration::from_secs(u64::from(command.timeout_secs));
    match tokio::time::timeout(timeout, exited).await {
        Ok(Ok(exit)) if exit.success() => Ok("ok".into()),
        Ok(Ok(exit)) => Err(format!("failed ({exit})")),
        Ok(Err(_)) => Err("lost track of the process".into()),
        Err(_) => {
            // SAFETY: kill with the child's own pid and a constant signal.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            Err(format!("timed out after {} s; killed", timeout.as_secs()))
        }
    }
}

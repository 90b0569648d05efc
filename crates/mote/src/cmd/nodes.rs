//! `mote list`, `mote stop NAME`

use std::time::Duration;

use serde::Serialize;

use crate::output;

/// List the nodes `mote run` started on this host, with their state,
/// network and forwarded ports.
#[derive(clap::Args)]
pub struct ListArgs {
    /// Print the list as JSON.
    #[arg(long)]
    json: bool,
}

/// Power a node off in order: the ACPI power button tells PID 1 to stop its
/// services and flush the state disk; after the timeout QEMU is killed.
#[derive(clap::Args)]
pub struct StopArgs {
    /// The node's name (see `mote list`).
    name: String,
    /// Seconds to wait for a clean power-off before killing it.
    #[arg(long, default_value_t = 20)]
    timeout: u64,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

pub fn list(args: ListArgs) -> anyhow::Result<()> {
    let nodes = mote_vm::registry::list();
    if args.json {
        return output::json(&nodes);
    }
    if nodes.is_empty() {
        println!("no nodes; start one with: mote run out/NAME");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                if n.alive {
                    "running".into()
                } else {
                    "stopped".into()
                },
                n.pid.to_string(),
                match &n.tap {
                    Some(tap) => format!("{} ({tap})", n.net),
                    None => n.net.to_string(),
                },
                n.forwards
                    .iter()
                    .map(|f| format!("{}→{}", f.host, f.guest))
                    .collect::<Vec<_>>()
                    .join(" "),
                n.image_dir.display().to_string(),
            ]
        })
        .collect();
    output::table(&["name", "state", "pid", "net", "forwards", "image"], &rows);
    Ok(())
}

#[derive(Serialize)]
struct Stopped<'a> {
    name: &'a str,
    outcome: String,
}

pub fn stop(args: StopArgs) -> anyhow::Result<()> {
    let outcome = mote_vm::registry::stop(&args.name, Duration::from_secs(args.timeout))?;
    let outcome = outcome.to_string();
    if args.json {
        return output::json(&Stopped {
            name: &args.name,
            outcome,
        });
    }
    println!("{}: {outcome}", args.name);
    Ok(())
}

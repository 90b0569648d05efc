//! `mote -n NAME power reboot|poweroff`

use mote_api::api::PowerAction;

use crate::output;
use crate::remote::{Explain, Session};

/// Reboot or power off the node (services are stopped in order).
#[derive(clap::Args)]
pub struct Args {
    /// reboot or poweroff.
    #[arg(value_parser = ["reboot", "poweroff"])]
    action: String,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<()> {
    let action = if a.action == "reboot" {
        PowerAction::Reboot
    } else {
        PowerAction::Poweroff
    };
    let d = s.client.power(action).await.explain(&s.name)?;
    if a.json {
        return output::json(&d);
    }
    println!("{}: {}", s.name, d.message);
    Ok(())
}

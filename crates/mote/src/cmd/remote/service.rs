//! `mote -n NAME service list|start|stop|restart|logs`

use mote_api::api::{EventsQuery, ServiceAction};

use crate::cmd::remote::events::print_events;
use crate::output;
use crate::remote::{Explain, Session};

/// Services of the node.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
    /// Print the API's JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// Every service with its state, pid and restarts.
    List,
    /// Start a stopped service.
    Start {
        /// The service.
        name: String,
    },
    /// Stop a service (it stays stopped until started).
    Stop {
        /// The service.
        name: String,
    },
    /// Stop and start a service.
    Restart {
        /// The service.
        name: String,
    },
    /// A service's output and events.
    Logs {
        /// The service.
        name: String,
        /// At most this many lines, the newest.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<()> {
    let (name, action) = match &a.verb {
        Verb::List => return list(s, a.json).await,
        Verb::Logs { name, limit } => {
            let q = EventsQuery {
                limit: Some(*limit),
                ..Default::default()
            };
            let ev = s.client.service_logs(name, &q).await.explain(&s.name)?;
            return print_events(&ev.events, a.json, true);
        }
        Verb::Start { name } => (name, ServiceAction::Start),
        Verb::Stop { name } => (name, ServiceAction::Stop),
        Verb::Restart { name } => (name, ServiceAction::Restart),
    };
    let done = s.client.service(name, action).await.explain(&s.name)?;
    if a.json {
        return output::json(&done);
    }
    println!("{}: {}", s.name, done.message);
    Ok(())
}

async fn list(s: &Session, json: bool) -> anyhow::Result<()> {
    let l = s.client.services().await.explain(&s.name)?;
    if json {
        return output::json(&l);
    }
    let rows: Vec<Vec<String>> = l
        .services
        .iter()
        .map(|x| {
            vec![
                x.name.clone(),
                x.state.clone(),
                x.pid.map_or("-".into(), |p| p.to_string()),
                x.restarts.to_string(),
                output::time_ms(x.since_ms),
                x.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        &["name", "state", "pid", "restarts", "since", "reason"],
        &rows,
    );
    Ok(())
}

//! `mote -n NAME events`

use std::time::Duration;

use anyhow::Context;
use mote_api::api::{Event, EventsQuery, Level};

use crate::output;
use crate::remote::{Explain, Session};

/// Query the node's events (newest last), or follow them as they happen.
#[derive(clap::Args)]
pub struct Args {
    /// Only events newer than this (e.g. 30s, 5m, 2h).
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// Only this source (`init`, `net`, `firewall`, `audit`, a service…).
    #[arg(long)]
    source: Option<String>,
    /// Only this level or worse: debug, info, warn, error.
    #[arg(long, value_parser = parse_level)]
    level: Option<Level>,
    /// Only messages containing this text.
    #[arg(long)]
    text: Option<String>,
    /// At most this many, the newest.
    #[arg(long)]
    limit: Option<usize>,
    /// Keep printing new events until interrupted.
    #[arg(short, long)]
    follow: bool,
    /// Print the API's JSON (one object a line with --follow).
    #[arg(long)]
    json: bool,
}

fn parse_level(s: &str) -> Result<Level, String> {
    serde_json::from_value(serde_json::Value::String(s.to_ascii_lowercase()))
        .map_err(|_| format!("{s:?} is not a level: debug, info, warn or error"))
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<()> {
    let since = match a.since {
        Some(d) => Some(
            std::time::SystemTime::now()
                .checked_sub(d)
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .context("--since reaches before 1970")?
                .as_millis() as u64,
        ),
        None => None,
    };
    let q = EventsQuery {
        source: a.source.clone(),
        level: a.level,
        since,
        text: a.text.clone(),
        limit: a.limit,
    };
    if !a.follow {
        let ev = s.client.events(&q).await.explain(&s.name)?;
        if a.json {
            return output::json(&ev);
        }
        return print_events(&ev.events, false, false);
    }
    let mut lines = s.client.follow(&q).await.explain(&s.name)?;
    while let Some(e) = lines.next().await {
        let e = e.explain(&s.name)?;
        if a.json {
            println!("{}", serde_json::to_string(&e)?);
        } else {
            println!("{}", line(&e));
        }
    }
    Ok(())
}

fn line(e: &Event) -> String {
    format!(
        "{} {:<5} {:<10} {}",
        output::time_ms(e.time_ms),
        format!("{:?}", e.level).to_ascii_lowercase(),
        e.source,
        e.message
    )
}

/// Prints events as a list (or JSON `{"events": …}`).
pub fn print_events(events: &[Event], json: bool, bare: bool) -> anyhow::Result<()> {
    if json {
        return output::json(&serde_json::json!({ "events": events }));
    }
    if events.is_empty() && !bare {
        eprintln!("no events match");
    }
    for e in events {
        println!("{}", line(e));
    }
    Ok(())
}

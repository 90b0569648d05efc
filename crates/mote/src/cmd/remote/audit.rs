//! `mote -n NAME audit`

use mote_api::api::AuditQuery;

use crate::output;
use crate::remote::{Explain, Session};

/// Every change made through the API: when, who, from where, what, result.
#[derive(clap::Args)]
pub struct Args {
    /// At most this many, the newest.
    #[arg(long)]
    limit: Option<usize>,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<()> {
    let q = AuditQuery {
        since: None,
        limit: a.limit,
    };
    let au = s.client.audit(&q).await.explain(&s.name)?;
    if a.json {
        return output::json(&au);
    }
    let rows: Vec<Vec<String>> = au
        .entries
        .iter()
        .map(|e| {
            vec![
                output::time_ms(e.time_ms),
                e.who.clone(),
                e.source.clone(),
                e.result.clone(),
                e.what.clone(),
            ]
        })
        .collect();
    output::table(&["time", "who", "source", "result", "what"], &rows);
    Ok(())
}

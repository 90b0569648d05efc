//! `mote -n NAME ps`, `mote -n NAME kill PID`

use crate::output;
use crate::remote::{Explain, Session};

/// List the node's processes.
#[derive(clap::Args)]
pub struct Args {
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

/// Send a signal to a process.
#[derive(clap::Args)]
pub struct KillArgs {
    /// Process id.
    pid: u32,
    /// Signal number (default 15, SIGTERM).
    #[arg(short, long, default_value_t = 15)]
    signal: i32,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<()> {
    let p = s.client.processes().await.explain(&s.name)?;
    if a.json {
        return output::json(&p);
    }
    let rows: Vec<Vec<String>> = p
        .processes
        .iter()
        .map(|p| {
            vec![
                p.pid.to_string(),
                p.ppid.to_string(),
                p.user.clone().unwrap_or_else(|| p.uid.to_string()),
                p.state.clone(),
                output::size(p.rss_bytes),
                format!("{:.2} s", p.cpu_ms as f64 / 1000.0),
                p.name.clone(),
            ]
        })
        .collect();
    output::table(
        &["pid", "ppid", "user", "state", "rss", "cpu", "name"],
        &rows,
    );
    Ok(())
}

pub async fn kill(s: &Session, a: &KillArgs) -> anyhow::Result<()> {
    let d = s.client.kill(a.pid, a.signal).await.explain(&s.name)?;
    if a.json {
        return output::json(&d);
    }
    println!("{}: {}", s.name, d.message);
    Ok(())
}

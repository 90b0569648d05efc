//! `mote -n NAME perf`

use crate::output;
use crate::remote::{Explain, Session};

/// CPU, memory, disks, network and per-service resource use.
#[derive(clap::Args)]
pub struct Args {
    /// Print the Prometheus text of `/v1/metrics` instead.
    #[arg(long)]
    prometheus: bool,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<()> {
    if a.prometheus {
        print!("{}", s.client.metrics().await.explain(&s.name)?);
        return Ok(());
    }
    let p = s.client.performance().await.explain(&s.name)?;
    if a.json {
        return output::json(&p);
    }
    println!(
        "cpu     {:.1}% of {} (load {:.2} {:.2} {:.2})",
        p.cpu.busy_percent, p.cpu.cpus, p.cpu.load[0], p.cpu.load[1], p.cpu.load[2]
    );
    println!(
        "memory  {} available of {}",
        output::size(p.memory.available_bytes),
        output::size(p.memory.total_bytes)
    );
    for d in &p.disks {
        println!(
            "disk    {} {} free of {}",
            d.path,
            output::size(d.available_bytes),
            output::size(d.total_bytes)
        );
    }
    for n in &p.network {
        println!(
            "net     {} rx {} tx {}",
            n.name,
            output::size(n.rx_bytes),
            output::size(n.tx_bytes)
        );
    }
    let rows: Vec<Vec<String>> = p
        .services
        .iter()
        .map(|x| {
            vec![
                x.name.clone(),
                x.cpu_usec
                    .map_or("-".into(), |u| format!("{:.2} s", u as f64 / 1e6)),
                x.memory_bytes.map_or("-".into(), output::size),
            ]
        })
        .collect();
    if !rows.is_empty() {
        output::table(&["service", "cpu", "memory"], &rows);
    }
    for role in &p.roles {
        println!();
        role_table(role);
    }
    Ok(())
}

/// A role's own figures as a table: its row kind (`web site`), then its
/// columns, each value read by the column's unit.
fn role_table(role: &mote_api::api::RolePerf) {
    use mote_api::api::PerfUnit;
    let mut headers = vec![format!("{} {}", role.role, role.row)];
    headers.extend(role.columns.iter().map(|c| c.name.clone()));
    let rows: Vec<Vec<String>> = role
        .rows
        .iter()
        .map(|r| {
            let mut row = vec![r.name.clone()];
            row.extend(
                role.columns
                    .iter()
                    .zip(&r.values)
                    .map(|(c, v)| match (v, c.unit) {
                        (None, _) => "-".into(),
                        (Some(v), PerfUnit::Count) => format!("{v:.0}"),
                        (Some(v), PerfUnit::Bytes) => output::size(*v as u64),
                        (Some(v), PerfUnit::Milliseconds) => format!("{v:.1} ms"),
                    }),
            );
            row
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    output::table(&headers, &rows);
}

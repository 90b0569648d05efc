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
    if let Some(sites) = &p.web {
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} ms"));
        let rows: Vec<Vec<String>> = sites
            .iter()
            .map(|w| {
                vec![
                    w.site.clone(),
                    w.requests.to_string(),
                    format!(
                        "{}/{}/{}/{}",
                        w.status_2xx, w.status_3xx, w.status_4xx, w.status_5xx
                    ),
                    output::size(w.sent_bytes),
                    ms(w.latency_p50_ms),
                    ms(w.latency_p99_ms),
                ]
            })
            .collect();
        println!();
        output::table(
            &[
                "web site",
                "requests",
                "2xx/3xx/4xx/5xx",
                "sent",
                "p50",
                "p99",
            ],
            &rows,
        );
    }
    Ok(())
}

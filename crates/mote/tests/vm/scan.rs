//! Port scans of a node with nmap from inside a test's namespace, read from
//! nmap's grepable output (`-oG -`), and printed as a table.
//!
//! TCP: a SYN scan of 1–65535 (`-sS -p-`) with one retry and at least
//! 10 000 probes a second: a node that drops what it does not serve answers
//! nothing, and waiting out a timeout per port would take hours under TCG.
//! Measured here on a TCG guest: ~13 s. UDP: nmap's 100 most common ports;
//! a port that answers (a reply, "open") or whose packet reached the node's
//! stack (an ICMP port unreachable, "closed") counts; silence
//! ("open|filtered") is what a dropping firewall gives.

use std::process::Command;
use std::time::{Duration, Instant};

/// One port nmap listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub port: u16,
    pub proto: String,
    pub state: String,
    pub service: String,
}

/// One scan's result.
#[derive(Debug, Clone)]
pub struct Scan {
    pub what: String,
    pub ports: Vec<Port>,
    /// The state nmap did not list port by port, and how many had it.
    pub ignored: Option<(String, u32)>,
    pub took: Duration,
}

impl Scan {
    /// Ports that answered or whose probe reached the node's stack.
    pub fn answering(&self) -> Vec<u16> {
        self.ports
            .iter()
            .filter(|p| matches!(p.state.as_str(), "open" | "closed" | "unfiltered"))
            .map(|p| p.port)
            .collect()
    }
}

/// Run nmap (`cmd` is nmap, in the namespace) with `args` against `target`.
pub fn nmap(mut cmd: Command, what: &str, args: &[&str], target: &str) -> Scan {
    let started = Instant::now();
    let out = cmd
        .args(["-n", "-Pn", "-oG", "-"])
        .args(args)
        .arg(target)
        .output()
        .expect("nmap runs");
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "nmap {args:?} {target} failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut scan = parse_grepable(&text)
        .unwrap_or_else(|| panic!("nmap {args:?} {target}: no Ports line (host down?):\n{text}"));
    scan.what = what.to_owned();
    scan.took = took;
    scan
}

/// The `Ports:` and `Ignored State:` fields of the host's line, e.g.
/// `Host: 10.77.0.10 ()\tPorts: 8080/open/tcp//http-proxy///\tIgnored State: filtered (65534)`.
pub fn parse_grepable(text: &str) -> Option<Scan> {
    let line = text
        .lines()
        .find(|l| l.starts_with("Host: ") && l.contains("Ports:"))?;
    let mut ports = Vec::new();
    let mut ignored = None;
    for field in line.split('\t') {
        if let Some(list) = field.strip_prefix("Ports: ") {
            for entry in list.split(", ").filter(|e| !e.trim().is_empty()) {
                let parts: Vec<&str> = entry.trim().split('/').collect();
                ports.push(Port {
                    port: parts.first()?.parse().ok()?,
                    state: parts.get(1)?.to_string(),
                    proto: parts.get(2)?.to_string(),
                    service: parts.get(4).copied().unwrap_or_default().to_string(),
                });
            }
        } else if let Some(rest) = field.strip_prefix("Ignored State: ") {
            let (state, count) = rest.split_once(" (")?;
            ignored = Some((state.to_string(), count.trim_end_matches(')').parse().ok()?));
        }
    }
    Some(Scan {
        what: String::new(),
        ports,
        ignored,
        took: Duration::ZERO,
    })
}

/// Print the scans as one table: each listed port, then the rest.
pub fn print_table(target: &str, declared: &[u16], scans: &[&Scan]) {
    let mut rows: Vec<[String; 5]> = Vec::new();
    for scan in scans {
        for p in &scan.ports {
            let declared = if declared.contains(&p.port) && p.proto == "tcp" {
                "yes"
            } else {
                "no"
            };
            rows.push([
                p.proto.clone(),
                p.port.to_string(),
                p.state.clone(),
                if p.service.is_empty() {
                    "-".into()
                } else {
                    p.service.clone()
                },
                declared.into(),
            ]);
        }
        if let Some((state, count)) = &scan.ignored {
            rows.push([
                scan.what.split(' ').next().unwrap_or_default().to_string(),
                format!("{count} others"),
                state.clone(),
                "-".into(),
                "-".into(),
            ]);
        }
    }
    let head = ["proto", "port", "state", "service", "declared"];
    let width: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(&format!("{c:<w$}  ", w = width[i]));
        }
        println!("{}", s.trim_end());
    };
    println!();
    let times: Vec<String> = scans
        .iter()
        .map(|s| format!("{} in {:.1} s", s.what, s.took.as_secs_f64()))
        .collect();
    println!("port scan of {target}: {}", times.join(", "));
    line(head);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    println!();
}

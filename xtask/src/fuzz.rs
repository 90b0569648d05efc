//! `cargo xtask fuzz [SECONDS]`: the suite's property tests and its
//! schemathesis run, for longer.
//!
//! The suite runs each property for a fixed number of cases (seconds in
//! all); here each target gets an equal share of SECONDS: its properties
//! run round after round of cases (`MOTE_FUZZ_UNTIL`, a Unix time, tells
//! them when to stop starting rounds), and schemathesis fuzzes the API
//! until its share is spent (`--max-time`). Building comes first and is not
//! counted. A failure prints the smallest input proptest found, or
//! schemathesis's `curl` line; turn it into a regression test.

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

/// Default length of a run.
const DEFAULT_SECONDS: u64 = 600;

/// One fuzz target: a name, its package and `cargo test` arguments
/// (before and after `--`).
struct Target {
    name: &'static str,
    package: &'static str,
    select: &'static [&'static str],
    filter: &'static [&'static str],
}

const TARGETS: [Target; 5] = [
    Target {
        name: "manifest loader",
        package: "mote-config",
        select: &["--test", "fuzz"],
        filter: &[],
    },
    Target {
        name: "settings merge patch",
        package: "moted",
        select: &["--lib"],
        filter: &["fuzz::"],
    },
    Target {
        name: "DHCP reply parser",
        package: "mote-init",
        select: &["--lib"],
        filter: &["dhcp::packet::fuzz::"],
    },
    Target {
        name: "web request path",
        package: "mote-web",
        select: &["--bin", "mote-web"],
        filter: &["path::fuzz::"],
    },
    Target {
        name: "management API (schemathesis)",
        package: "moted",
        select: &["--test", "schemathesis"],
        filter: &[],
    },
];

fn cargo_test(target: &Target) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["test", "--release", "-p", target.package])
        .args(target.select);
    cmd
}

/// `cargo xtask fuzz [SECONDS]`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let seconds = match args.first() {
        None => DEFAULT_SECONDS,
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .with_context(|| format!("{s:?} is not a number of seconds (such as 600)"))?,
    };
    crate::prereqs::ensure_python_tools()?;
    eprintln!("xtask: building the fuzz targets (release)…");
    for target in &TARGETS {
        crate::run(cargo_test(target).arg("--no-run"))?;
    }
    let share = (seconds / TARGETS.len() as u64).max(1);
    let mut failed = Vec::new();
    let mut summary = Vec::new();
    for target in &TARGETS {
        eprintln!("xtask: fuzzing the {} for {share} s…", target.name);
        let until = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs()
            + share;
        let started = Instant::now();
        let mut cmd = cargo_test(target);
        cmd.arg("--")
            .args(target.filter)
            .arg("--nocapture")
            // Every property at once, sharing the cores, rather than the
            // first two taking the whole share.
            .args(["--test-threads", "64"])
            .env("MOTE_FUZZ_UNTIL", until.to_string())
            .env("MOTE_SCHEMATHESIS_MAX_TIME", share.to_string());
        let ok = crate::run(&mut cmd).is_ok();
        let took = started.elapsed().as_secs_f64();
        summary.push(format!(
            "  {:<32} {:>7.0} s  {}",
            target.name,
            took,
            if ok { "ok" } else { "FAILED" }
        ));
        if !ok {
            failed.push(target.name);
        }
    }
    println!("fuzz run of {seconds} s (the case counts are in the lines above):");
    for line in summary {
        println!("{line}");
    }
    if !failed.is_empty() {
        bail!(
            "{} failed: the smallest failing input is printed above",
            failed.join(", ")
        );
    }
    Ok(())
}

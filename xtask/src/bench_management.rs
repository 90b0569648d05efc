//! `cargo xtask bench management`: builds and runs the `bench_management`
//! example of the `mote` crate (source: `bench/management/main.rs`), which
//! measures moted's request latency on loopback against a fake PID 1. See
//! `bench/management/README.md`.

use std::process::Command;

/// Runs the bench with `args` (`--runs N`, `--json`).
pub fn run(args: &[String]) -> anyhow::Result<()> {
    crate::run(
        Command::new(env!("CARGO"))
            .args([
                "run",
                "--quiet",
                "--release",
                "-p",
                "mote",
                "--example",
                "bench_management",
                "--",
            ])
            .args(args),
    )
}

/// Is this `bench management …`?
pub fn asked(args: &[String]) -> bool {
    args.get(1).is_some_and(|a| a == "management")
}

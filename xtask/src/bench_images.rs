//! `cargo xtask bench images`: what a disk image costs.
//!
//! 1. **Build**: `mote build examples/web.toml --format vhdx` (the whole
//!    `mote` process, warm kernel cache): one untimed warm-up, then N runs,
//!    the median; the disk's size from `build.json`.
//! 2. **Boot**: `examples/hello.toml` built once with `--format qcow2`, then
//!    N interleaved triples, each to the ready line, under TCG: the kernel
//!    and initramfs booted directly on `microvm` (mote's fast path) and on
//!    `pc`, and the qcow2 booted by OVMF on `pc`. The ratios say what the
//!    firmware costs and what the disk costs against the fast path.
//!
//! Goals (issue 12): the vhdx build ≤ 3 s; the disk ≤ 64 MiB. Reported,
//! never enforced.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::bench_packages::{max, median, min, ms};

const USAGE: &str = "usage: cargo xtask bench images [--runs N] [--json]";
const GOAL_BUILD_MS: f64 = 3000.0;
const GOAL_DISK_BYTES: u64 = 64 << 20;

/// `cargo xtask bench images ARGS…`
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let Some((runs, json)) = crate::bench_packages::options(args, 3, 20, USAGE)? else {
        return Ok(());
    };
    crate::build_release()?;
    let mote = crate::release_dir().join("mote");
    let tmp = tempfile::tempdir().context("a temporary directory")?;
    let t = tmp.path();
    let command = |args: &[&str]| {
        let mut c = Command::new(&mote);
        c.args(args)
            .env("MOTE_STATE_DIR", t.join("state"))
            .env("MOTE_CONFIG_DIR", t.join("config"))
            .env("MOTE_PASSWORD", "mote-demo")
            .current_dir(crate::root())
            .stdin(Stdio::null());
        c
    };
    let cmd = |args: &[&str]| -> anyhow::Result<Duration> {
        let began = Instant::now();
        let out = command(args)
            .output()
            .with_context(|| format!("running mote {args:?}"))?;
        if !out.status.success() {
            bail!(
                "mote {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(began.elapsed())
    };
    let s = |p: &Path| p.to_str().unwrap_or_default().to_owned();

    eprintln!("bench images: build of a web node's vhdx, {runs} runs…");
    let web = t.join("web");
    let mut build_ms = Vec::new();
    for _ in 0..=runs {
        let took = cmd(&[
            "build",
            "examples/web.toml",
            "--format",
            "vhdx",
            "-o",
            &s(&web),
        ])?;
        build_ms.push(ms(took));
    }
    build_ms.remove(0);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(web.join("build.json"))?)?;
    let vhdx = report["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["format"] == "vhdx"))
        .context("build.json lists no vhdx")?;
    let disk_bytes = vhdx["virtual_size"].as_u64().unwrap_or_default();
    let file_bytes = vhdx["bytes"].as_u64().unwrap_or_default();

    let hello = t.join("hello");
    cmd(&[
        "build",
        "examples/hello.toml",
        "--format",
        "qcow2",
        "-o",
        &s(&hello),
    ])?;
    let qcow2 = hello.join("hello.qcow2");
    let kinds: [(&str, Vec<String>); 3] = [
        ("direct-microvm", vec![s(&hello)]),
        (
            "direct-pc",
            vec![s(&hello), "--machine".into(), "pc".into()],
        ),
        ("disk-ovmf", vec![s(&qcow2)]),
    ];
    let mut ready_ms: [Vec<f64>; 3] = Default::default();
    for round in 0..=runs {
        for (i, (kind, target)) in kinds.iter().enumerate() {
            eprintln!("bench images: boot {round}/{runs} {kind}…");
            let name = format!("bench-{kind}");
            let mut args = vec![
                "run",
                "--json",
                "--accel",
                "tcg",
                "--no-manage",
                "--name",
                &name,
            ];
            args.extend(target.iter().map(String::as_str));
            let mut child = command(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .context("starting mote run")?;
            let mut line = String::new();
            BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
            let _ = cmd(&["stop", &name, "--timeout", "20"]);
            let _ = child.wait();
            let ready: serde_json::Value = serde_json::from_str(&line)
                .with_context(|| format!("mote run {kind} said {line:?}"))?;
            let total = ready["boot"]["total_ms"]
                .as_f64()
                .with_context(|| format!("no boot.total_ms in {ready}"))?;
            // The first round makes state disks and variable stores.
            if round > 0 {
                ready_ms[i].push(total);
            }
        }
    }
    let [micro, pc, disk] = [0, 1, 2].map(|i| median(&ready_ms[i]));
    let b = median(&build_ms);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "runs": runs,
                "vhdx_build_ms": b,
                "disk_bytes": disk_bytes,
                "vhdx_file_bytes": file_bytes,
                "ready_ms": {"direct_microvm": micro, "direct_pc": pc, "disk_ovmf": disk},
                "ratio_disk_to_direct": disk / micro,
                "ratio_disk_to_direct_pc": disk / pc,
                "goals": {"vhdx_build_ms": GOAL_BUILD_MS, "disk_bytes": GOAL_DISK_BYTES},
            })
        );
        return Ok(());
    }
    let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
    println!("| figure | median | range | goal |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| web node: `mote build --format vhdx` | {b:.0} ms | {:.0}–{:.0} ms | ≤ {GOAL_BUILD_MS:.0} ms |",
        min(&build_ms),
        max(&build_ms)
    );
    println!(
        "| web node: disk (guest size) / vhdx file | {:.1} / {:.1} MiB | — | ≤ {:.0} MiB |",
        mib(disk_bytes),
        mib(file_bytes),
        mib(GOAL_DISK_BYTES)
    );
    for (i, (kind, _)) in kinds.iter().enumerate() {
        println!(
            "| hello: `mote run` to ready, {kind} (TCG) | {:.0} ms | {:.0}–{:.0} ms | — |",
            median(&ready_ms[i]),
            min(&ready_ms[i]),
            max(&ready_ms[i])
        );
    }
    println!(
        "| disk under OVMF ÷ direct boot (microvm) | {:.2} | — | — |",
        disk / micro
    );
    println!(
        "| disk under OVMF ÷ direct boot (pc): the firmware's cost | {:.2} | — | — |",
        disk / pc
    );
    Ok(())
}

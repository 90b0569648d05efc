//! `cargo xtask bench packages`: what a package costs.
//!
//! 1. **Build and sign**: `mote package build examples/hello` then `mote
//!    package sign`, each the whole `mote` process; N runs, the median.
//! 2. **Online install**: a node (TCG, 256 MiB) whose image trusts the
//!    signing key and has no app boots once; then N times: `mote -n NODE
//!    package install hello.mpkg` (upload, verify on the node, unpack,
//!    settings applied, service started, archive committed), timed from the
//!    command's start until hello's first HTTP 200 through the port
//!    forward; then `package remove` (untimed) and a wait for the port to
//!    close. The node's own boot figures are printed beside them.
//!
//! Goals (issue 11): install to serving ≤ 1 s under TCG; build and sign
//! ≤ 100 ms.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

const NODE: &str = "bench-packages";
const USAGE: &str = "usage: cargo xtask bench packages [--runs N] [--json]";

/// The node (`examples/online.toml`): management only, trusting
/// `me.key.pub` beside it.
fn manifest() -> anyhow::Result<String> {
    let path = crate::root().join("examples/online.toml");
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// `cargo xtask bench packages ARGS…`
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let Some((runs, json)) = options(args, 5, 50, USAGE)? else {
        return Ok(());
    };
    crate::build_release()?;
    let mote = crate::release_dir().join("mote");
    let tmp = tempfile::tempdir().context("a temporary directory")?;
    let t = tmp.path();
    let cmd = |args: &[&str]| -> anyhow::Result<Duration> {
        let began = Instant::now();
        let out = Command::new(&mote)
            .args(args)
            .env("MOTE_STATE_DIR", t.join("state"))
            .env("MOTE_CONFIG_DIR", t.join("config"))
            .env("MOTE_PASSWORD", "mote-demo")
            .current_dir(crate::root())
            .stdin(Stdio::null())
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
    let key = t.join("me.key");
    cmd(&["key", "generate", "-o", &s(&key)])?;
    let pkg = t.join("hello.mpkg");

    eprintln!("bench packages: build and sign, {runs} runs…");
    let mut build_ms = Vec::new();
    let mut sign_ms = Vec::new();
    for _ in 0..=runs {
        let b = cmd(&["package", "build", "examples/hello", "-o", &s(&pkg)])?;
        let g = cmd(&["package", "sign", &s(&pkg), "--key", &s(&key)])?;
        build_ms.push(ms(b));
        sign_ms.push(ms(g));
    }
    // The first run warms the page cache.
    build_ms.remove(0);
    sign_ms.remove(0);

    std::fs::write(t.join("pkg.toml"), manifest()?)?;
    let image = t.join("image");
    cmd(&["build", &s(&t.join("pkg.toml")), "-o", &s(&image)])?;
    let port = free_port()?;
    eprintln!("bench packages: booting {NODE} (TCG)…");
    let mut node = Command::new(&mote)
        .args(["run", "--json", "--accel", "tcg", "--name", NODE])
        .arg(&image)
        .args(["--forward", &format!("{port}:8080")])
        .env("MOTE_STATE_DIR", t.join("state"))
        .env("MOTE_CONFIG_DIR", t.join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting mote run")?;
    let mut line = String::new();
    BufReader::new(node.stdout.take().context("stdout")?).read_line(&mut line)?;
    let ready: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("mote run said {line:?}"))?;
    let result = (|| -> anyhow::Result<Vec<f64>> {
        cmd(&["-n", NODE, "system"])?; // log in once; the token is cached
        let mut install_ms = Vec::new();
        for i in 0..=runs {
            eprintln!("bench packages: install {i}/{runs}…");
            let began = Instant::now();
            cmd(&["-n", NODE, "package", "install", &s(&pkg)])?;
            wait(port, true, Duration::from_secs(30))?;
            install_ms.push(ms(began.elapsed()));
            cmd(&["-n", NODE, "package", "remove", "hello"])?;
            wait(port, false, Duration::from_secs(30))?;
        }
        install_ms.remove(0);
        Ok(install_ms)
    })();
    let _ = cmd(&["stop", NODE, "--timeout", "20"]);
    let _ = node.wait();
    let install_ms = result?;

    let (b, g, i) = (median(&build_ms), median(&sign_ms), median(&install_ms));
    let boot = &ready["boot"];
    if json {
        println!(
            "{}",
            serde_json::json!({
                "runs": runs,
                "build_ms": b, "sign_ms": g, "build_and_sign_ms": b + g,
                "install_to_serving_ms": i,
                "install_to_serving_range_ms": [min(&install_ms), max(&install_ms)],
                "goals": {"install_to_serving_ms": 1000, "build_and_sign_ms": 100},
                "node_boot": boot,
            })
        );
        return Ok(());
    }
    println!("| figure | median | range | goal |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| package build (mote process) | {b:.0} ms | {:.0}–{:.0} ms | — |",
        min(&build_ms),
        max(&build_ms)
    );
    println!(
        "| package sign (mote process) | {g:.0} ms | {:.0}–{:.0} ms | — |",
        min(&sign_ms),
        max(&sign_ms)
    );
    println!("| build + sign | {:.0} ms | — | ≤ 100 ms |", b + g);
    println!(
        "| online install → first 200 (TCG) | {i:.0} ms | {:.0}–{:.0} ms | ≤ 1000 ms |",
        min(&install_ms),
        max(&install_ms)
    );
    println!("\nthe node's boot (ready report): {boot}");
    Ok(())
}

/// `--runs N` (1 to `max`, default `default`) and `--json`; `None` after
/// printing `usage` for `--help`.
pub(crate) fn options(
    args: &[String],
    default: usize,
    max: usize,
    usage: &str,
) -> anyhow::Result<Option<(usize, bool)>> {
    let mut runs = default;
    let mut json = false;
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        match a {
            "--json" => json = true,
            "--runs" => {
                runs = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=max).contains(n))
                    .with_context(|| format!("--runs takes a number from 1 to {max}"))?;
            }
            "-h" | "--help" => {
                println!("{usage}");
                return Ok(None);
            }
            other => bail!("unknown argument {other:?}\n\n{usage}"),
        }
    }
    Ok(Some((runs, json)))
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

pub(crate) fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Polls `GET /` on the forward every 10 ms until it answers 200 (`up`) or
/// stops answering (`!up`), within `patience`.
fn wait(port: u16, up: bool, patience: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if answers(port) == up {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!(
        "hello did not {} on port {port} within {patience:?}",
        if up { "answer" } else { "stop answering" }
    )
}

fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

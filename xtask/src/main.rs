//! Project tasks.
//!
//! - `cargo xtask demo` — build everything, boot `examples/hello.toml`, show it serving;
//! - `cargo xtask test` — install what the tests need (on Debian), run every test;
//! - `cargo xtask fuzz [SECONDS]` — the property tests and the API fuzz run, longer;
//! - `cargo xtask bench boot` — build time, sizes, boot split against the floor;
//! - `cargo xtask bench management` — moted latency on loopback;
//! - `cargo xtask bench web` — mote-web against nginx;
//! - `cargo xtask bench packages` — package build and sign, online install;
//! - `cargo xtask bench images` — disk build time and size, OVMF boot against direct boot.

mod bench;
mod bench_images;
mod bench_management;
mod bench_packages;
mod bench_web;
mod fuzz;
mod prereqs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

const USAGE: &str =
    "usage: cargo xtask <demo | test [CARGO TEST ARGS…] | fuzz [SECONDS] | bench boot|management|web|packages|images>

  demo              build everything, boot examples/hello.toml, show it serving
  test              install test prerequisites if missing (Debian, as root), check
                    cargo fmt and clippy, run all tests
  fuzz [SECONDS]    the property tests (manifest loader, settings merge patch, DHCP
                    parser) and the schemathesis run against moted, for SECONDS in
                    all (default 600) instead of the suite's few seconds
  bench boot        build time, image sizes and the boot split against a trivial init
  bench management  moted request latency (read, write) and 50 concurrent sessions
  bench web         mote-web against nginx with wrk: req/s, p99, ratios, RSS
  bench packages    package build and sign, online install to serving on a TCG node
  bench images      a web node's vhdx build time and size; a disk under OVMF against direct boot";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(),
        Some("test") => test(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("bench") if bench_management::asked(&args) => bench_management::run(&args[2..]),
        Some("bench") if args.get(1).is_some_and(|a| a == "packages") => {
            bench_packages::run(&args[2..])
        }
        Some("bench") if args.get(1).is_some_and(|a| a == "images") => {
            bench_images::run(&args[2..])
        }
        Some("bench") => bench::run(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Where `cargo build --release` puts the binaries.
pub fn release_dir() -> PathBuf {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    target.join("x86_64-unknown-linux-gnu/release")
}

/// Run a command from the workspace root, failing on a non-zero exit.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// Build every binary of the workspace in release mode, then pack the
/// roles into signed packages beside them (`BIN/roles`).
pub fn build_release() -> anyhow::Result<()> {
    eprintln!("xtask: building the workspace (release)…");
    run(Command::new(env!("CARGO")).args(["build", "--release", "--workspace", "--bins"]))?;
    sign_roles()
}

/// The workspace key: `MOTE_WORKSPACE_KEY` (a release's own key), else
/// `target/workspace.key`, made on first use. It signs the roles this
/// build packs; images trust it as mote's own key.
fn workspace_key() -> anyhow::Result<PathBuf> {
    if let Some(key) = std::env::var_os("MOTE_WORKSPACE_KEY") {
        return Ok(PathBuf::from(key));
    }
    let key = release_dir().join("../../workspace.key");
    if !key.exists() {
        eprintln!("xtask: making the workspace key {}…", key.display());
        run(Command::new(release_dir().join("mote"))
            .args(["key", "generate", "-o"])
            .arg(&key))?;
    }
    Ok(key)
}

fn sign_roles() -> anyhow::Result<()> {
    let key = workspace_key()?;
    eprintln!(
        "xtask: packing and signing the roles into {}…",
        release_dir().join("roles").display()
    );
    run(Command::new(release_dir().join("mote"))
        .args(["package", "roles", "--key"])
        .arg(&key)
        .arg("--bin-dir")
        .arg(release_dir()))
}

fn demo() -> anyhow::Result<()> {
    prereqs::ensure(&prereqs::DEMO)?;
    build_release()?;
    let mote = release_dir().join("mote");
    // A node from an earlier demo would hold the name and the port.
    let _ = Command::new(&mote)
        .args(["stop", "hello", "--timeout", "10"])
        .output();
    eprintln!("xtask: booting examples/hello.toml…");
    let started = Instant::now();
    run(Command::new(&mote).args([
        "run",
        "examples/hello.toml",
        "--forward",
        "8080:8080",
        "--detach",
    ]))?;
    let body = fetch("http://127.0.0.1:8080/", Duration::from_secs(20))?;
    println!();
    println!(
        "The hello node answered in {:.1} s from the build: {}",
        started.elapsed().as_secs_f64(),
        body.trim()
    );
    let installed = install_mote(&mote)?;
    println!();
    println!("mote is installed as {}.", installed.display());
    if !on_path(&installed) {
        println!(
            "That directory is not on your PATH; add it first:\n  export PATH=\"{}:$PATH\"",
            installed
                .parent()
                .map_or(String::new(), |d| d.display().to_string())
        );
    }
    println!("Try, in any shell (the example's demo password is mote-demo):");
    println!("  curl http://127.0.0.1:8080/");
    println!("  export MOTE_PASSWORD=mote-demo");
    println!("  mote -n hello system");
    println!("  mote list");
    println!("  mote stop hello");
    Ok(())
}

/// Put the built `mote` where `cargo install` puts binaries
/// (`$CARGO_HOME/bin`, else `~/.cargo/bin`), so the README's `mote …` lines
/// work in a new shell. A copy, not a link: it outlives `cargo clean`.
fn install_mote(built: &Path) -> anyhow::Result<PathBuf> {
    let bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set: cannot install mote")?
        .join("bin");
    std::fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    let target = bin.join("mote");
    let tmp = bin.join(".mote.installing");
    std::fs::copy(built, &tmp)
        .with_context(|| format!("copying {} to {}", built.display(), tmp.display()))?;
    std::fs::rename(&tmp, &target).with_context(|| format!("installing {}", target.display()))?;
    Ok(target)
}

/// Does a bare `mote` find `installed` through PATH?
fn on_path(installed: &Path) -> bool {
    let Some(dir) = installed.parent() else {
        return false;
    };
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d == dir))
}

/// GET a URL with curl until it answers or `patience` runs out.
fn fetch(url: &str, patience: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + patience;
    loop {
        let out = Command::new("curl")
            .args(["-fsS", "--max-time", "2", url])
            .output()
            .context("running curl")?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        if Instant::now() > deadline {
            bail!(
                "{url} did not answer: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn test(extra: &[String]) -> anyhow::Result<()> {
    prereqs::ensure(prereqs::TEST)?;
    prereqs::ensure_python_tools()?;
    eprintln!("xtask: cargo fmt --check…");
    run(Command::new(env!("CARGO")).args(["fmt", "--all", "--check"]))
        .context("the code is not formatted: run `cargo fmt --all`")?;
    build_release()?;
    eprintln!("xtask: cargo clippy --all-targets -- -D warnings…");
    run(Command::new(env!("CARGO")).args([
        "clippy",
        "--release",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
    .context("clippy found problems")?;
    eprintln!("xtask: running every test…");
    run(Command::new(env!("CARGO"))
        .args(["test", "--release", "--workspace", "--no-fail-fast"])
        .args(extra)
        .env("MOTE_BIN_DIR", release_dir()))
}

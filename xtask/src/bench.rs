//! `cargo xtask bench boot`: build time, image sizes, the boot split of
//! `examples/hello.toml`, and the floor — the same kernel booting a trivial
//! static init that powers off — with the ratios between them.
//!
//! What it does, in order (see `bench/README.md` for what each figure means):
//!
//! 1. `build_release()`, then `mote build examples/hello.toml -o TMP/hello`:
//!    one untimed warm-up, then `--runs` timed runs, each a whole process.
//! 2. Sizes from the `build.json` that build wrote.
//! 3. The floor image: the same `vmlinuz` and `cmdline`, an initramfs of only
//!    `/init` (the `mote-floor-init` binary) and `/dev/console`.
//! 4. One untimed warm-up boot of each (hello's is also its first boot: the
//!    state disk is made and `[[first_boot]]` runs; the timed boots are
//!    ordinary reboots), then `--runs` pairs, interleaved (hello, floor,
//!    hello, floor…) so host load falls on both alike. hello is booted by
//!    `mote run --json` as a child process, the floor by the `mote_vm`
//!    library: the same readiness machinery reads both consoles.
//! 5. One more hello boot with `mote.verbose`, for PID 1's phase timeline.
//!
//! Every wait is bounded; nodes run under TCG with private `MOTE_STATE_DIR`s
//! in a temporary directory that is removed at the end. Goals are checked
//! against the median and reported, never enforced: the bench fails only
//! when something does not run.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use mote_image::cpio::{Meta, Writer};
use mote_vm::{AccelChoice, BootSplit, RunConfig};
use serde_json::{json, Value};

const USAGE: &str = "usage: cargo xtask bench boot [--runs N] [--json]

  build time, image sizes, the boot split of examples/hello.toml and of the
  floor (the same kernel booting a trivial init), and their ratios

  --runs N   timed builds and boot pairs (default 5)
  --json     print the whole result as JSON instead of a table";

/// The manifest measured.
const MANIFEST: &str = "examples/hello.toml";
/// Node names (each in its own private state directory).
const HELLO_NODE: &str = "bench-hello";
const FLOOR_NODE: &str = "bench-floor";

/// Goals (issue "bench/boot"); checked against the median, never enforced.
const GOAL_BUILD_MS: f64 = 3000.0;
const GOAL_USERLAND_BYTES: f64 = 6_000_000.0;
const GOAL_INIT_TO_READY_MS: f64 = 100.0;
const GOAL_RATIO: f64 = 1.15;

/// The first build may fetch the kernel into the cache.
const FIRST_BUILD_TIMEOUT: Duration = Duration::from_secs(600);
const BUILD_TIMEOUT: Duration = Duration::from_secs(60);
/// `mote run` gives up after its own `--timeout` (60 s); we after this.
const READY_TIMEOUT: Duration = Duration::from_secs(90);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const QUICK_TIMEOUT: Duration = Duration::from_secs(10);

struct Options {
    runs: usize,
    json: bool,
}

/// `cargo xtask bench ARGS…`
pub fn run(args: &[String]) -> anyhow::Result<()> {
    if args.first().map(String::as_str) == Some("web") {
        return crate::bench_web::run(&args[1..]);
    }
    let mut args = args.iter().map(String::as_str);
    match args.next() {
        Some("boot") => {}
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return Ok(());
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
    let mut opts = Options {
        runs: 5,
        json: false,
    };
    while let Some(arg) = args.next() {
        match arg {
            "--json" => opts.json = true,
            "--runs" => {
                opts.runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=50).contains(n))
                    .context("--runs takes a number from 1 to 50")?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    boot(&opts)
}

/// Paths shared by the steps.
struct Ctx {
    mote: PathBuf,
    tmp: PathBuf,
    hello_image: PathBuf,
    hello_state: PathBuf,
    floor_image: PathBuf,
}

fn boot(opts: &Options) -> anyhow::Result<()> {
    let began = Instant::now();
    let loadavg_start = loadavg();
    crate::build_release()?;
    let bin = crate::release_dir();
    let mote = bin.join("mote");
    let floor_init = bin.join("mote-floor-init");
    for exe in [&mote, &floor_init] {
        if !exe.is_file() {
            bail!("{} is missing after the release build", exe.display());
        }
    }
    let tmp = tempfile::Builder::new()
        .prefix("mote-bench.")
        .tempdir()
        .context("making a temporary directory")?;
    let ctx = Ctx {
        mote,
        tmp: tmp.path().to_path_buf(),
        hello_image: tmp.path().join("hello"),
        hello_state: tmp.path().join("state-hello"),
        floor_image: tmp.path().join("floor"),
    };
    // The floor is booted through the mote_vm library in this process; its
    // registry (node directory, state disk) lives here. Set before any
    // thread starts.
    std::env::set_var("MOTE_STATE_DIR", tmp.path().join("state-floor"));

    // 1. Build time.
    say(&format!(
        "building {MANIFEST}: 1 warm-up, {} timed runs",
        opts.runs
    ));
    time_build(&ctx, FIRST_BUILD_TIMEOUT).context("the warm-up build")?;
    let mut build_ms = Vec::with_capacity(opts.runs);
    for _ in 0..opts.runs {
        build_ms.push(time_build(&ctx, BUILD_TIMEOUT)?);
    }

    // 2. Sizes.
    let report_path = ctx.hello_image.join("build.json");
    let report: Value = serde_json::from_slice(
        &std::fs::read(&report_path)
            .with_context(|| format!("reading {}", report_path.display()))?,
    )
    .with_context(|| format!("parsing {}", report_path.display()))?;
    let size = |key: &str| -> anyhow::Result<u64> {
        report["sizes"][key]
            .as_u64()
            .with_context(|| format!("{} has no sizes.{key}", report_path.display()))
    };
    let sizes = Sizes {
        kernel: size("kernel")?,
        initramfs: size("initramfs")?,
        userland_compressed: size("userland_compressed")?,
        userland_uncompressed: size("userland_uncompressed")?,
        modules_compressed: size("modules_compressed")?,
    };
    let kernel_version = report["kernel"]["version"]
        .as_str()
        .unwrap_or("?")
        .to_string();

    // 3. The floor image.
    let floor_initramfs = make_floor(&ctx.hello_image, &ctx.floor_image, &floor_init)?;

    // 4. Boots: warm-ups, then interleaved pairs.
    say("warm-up boots (hello's first boot, the floor)");
    boot_hello(&ctx, false).context("the warm-up boot of hello")?;
    boot_floor(&ctx).context("the warm-up boot of the floor")?;
    let mut hello = Vec::with_capacity(opts.runs);
    let mut floor = Vec::with_capacity(opts.runs);
    for i in 1..=opts.runs {
        let h = boot_hello(&ctx, false).with_context(|| format!("hello boot {i}"))?;
        let f = boot_floor(&ctx).with_context(|| format!("floor boot {i}"))?;
        say(&format!(
            "pair {i}/{}: hello boot_ms={} total={} ms; floor init={} ms total={} ms",
            opts.runs, h.boot_ms, h.split.total_ms, f.init_uptime_ms, f.split.total_ms
        ));
        hello.push(h);
        floor.push(f);
    }

    // 5. PID 1's phases.
    say("one hello boot with mote.verbose, for PID 1's phase timeline");
    let verbose = boot_hello(&ctx, true).context("the verbose boot of hello")?;
    let timeline = verbose.timeline.clone().unwrap_or_default();

    let result = Results {
        runs: opts.runs,
        kernel_version,
        qemu_version: qemu_version(),
        loadavg_start,
        loadavg_end: loadavg(),
        build_ms,
        sizes,
        floor_initramfs,
        hello,
        floor,
        verbose,
        timeline,
        elapsed: began.elapsed(),
    };
    let rows = result.rows();
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&result.to_json(&rows))?);
    } else {
        print_table(&result, &rows);
    }
    Ok(())
}

fn say(message: &str) {
    eprintln!("bench: {message}");
}

// ---------------------------------------------------------------- build

/// One whole `mote build` process, in ms.
fn time_build(ctx: &Ctx, timeout: Duration) -> anyhow::Result<f64> {
    let log = ctx.tmp.join("build.log");
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let started = Instant::now();
    let child = Command::new(&ctx.mote)
        .arg("build")
        .arg(MANIFEST)
        .arg("-o")
        .arg(&ctx.hello_image)
        .current_dir(crate::root())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {}", ctx.mote.display()))?;
    let status = wait_bounded(child, timeout, Duration::from_millis(1), "mote build")?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if !status.success() {
        bail!(
            "mote build {MANIFEST} failed ({status}):\n{}",
            read_lossy(&log)
        );
    }
    Ok(ms)
}

// ---------------------------------------------------------------- boots

/// What one boot measured.
#[derive(Debug, Clone)]
struct Boot {
    /// The host's split, from the guest's own numbers (as `mote_vm` does).
    split: BootSplit,
    /// Guest uptime when PID 1 started (`mote: init uptime_ms=`).
    init_uptime_ms: u64,
    /// Guest uptime at the ready line (`boot_ms=`).
    boot_ms: u64,
    /// `boot timeline` of a verbose boot: (phase, ms after PID 1 started
    /// when it was done).
    timeline: Option<Vec<(String, u64)>>,
}

impl Boot {
    /// From the host's spawn → ready and the console.
    fn from_console(total_ms: u64, console: &str, log: &Path) -> anyhow::Result<Self> {
        let seen = parse_console(console);
        let init_uptime_ms = seen
            .init_uptime_ms
            .with_context(|| format!("no `mote: init uptime_ms=` line in {}", log.display()))?;
        let ready = seen
            .ready
            .with_context(|| format!("no `mote: ready` line in {}", log.display()))?;
        let boot_ms = ready
            .get("boot_ms")
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("the ready line in {} has no boot_ms", log.display()))?;
        Ok(Self {
            split: BootSplit::compute(total_ms, Some(init_uptime_ms), Some(boot_ms)),
            init_uptime_ms,
            boot_ms,
            timeline: seen.timeline,
        })
    }

    /// PID 1 start → ready, guest clock.
    fn init_to_ready_ms(&self) -> u64 {
        self.boot_ms.saturating_sub(self.init_uptime_ms)
    }
}

/// Boot hello with `mote run --json` as a child, stop it with `mote stop`.
fn boot_hello(ctx: &Ctx, verbose: bool) -> anyhow::Result<Boot> {
    let errlog = ctx.tmp.join("hello-run.log");
    let err = File::create(&errlog).with_context(|| format!("creating {}", errlog.display()))?;
    let mut cmd = Command::new(&ctx.mote);
    cmd.arg("run")
        .arg(&ctx.hello_image)
        .args(["--json", "--accel", "tcg", "--name", HELLO_NODE])
        .args(["--timeout", "60"])
        .env("MOTE_STATE_DIR", &ctx.hello_state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err);
    if verbose {
        cmd.args(["--cmdline", "mote.verbose"]);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", ctx.mote.display()))?;
    let line = first_line(&mut child, READY_TIMEOUT);
    let ready = line.and_then(|line| {
        serde_json::from_str::<Value>(&line)
            .with_context(|| format!("mote run printed {line:?}, not its JSON ready report"))
    });
    // Whatever happened, power the node off and let `mote run` end.
    let stopped = stop_hello(ctx);
    let exited = wait_bounded(child, STOP_TIMEOUT, Duration::from_millis(20), "mote run");
    let ready = ready.with_context(|| format!("mote run said:\n{}", read_lossy(&errlog)))?;
    stopped?;
    let status = exited?;
    if !status.success() {
        bail!("mote run ended with {status}:\n{}", read_lossy(&errlog));
    }
    let total_ms = ready["boot"]["total_ms"]
        .as_u64()
        .context("the ready report has no boot.total_ms")?;
    let log = PathBuf::from(
        ready["serial_log"]
            .as_str()
            .context("the ready report has no serial_log")?,
    );
    Boot::from_console(total_ms, &read_lossy(&log), &log)
}

/// `mote stop bench-hello`, bounded.
fn stop_hello(ctx: &Ctx) -> anyhow::Result<()> {
    let log = ctx.tmp.join("hello-stop.log");
    let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(&ctx.mote)
        .args(["stop", HELLO_NODE, "--timeout", "20"])
        .env("MOTE_STATE_DIR", &ctx.hello_state)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {}", ctx.mote.display()))?;
    let status = wait_bounded(child, STOP_TIMEOUT, Duration::from_millis(20), "mote stop")?;
    if !status.success() {
        bail!("mote stop {HELLO_NODE} failed: {}", read_lossy(&log).trim());
    }
    Ok(())
}

/// Boot the floor with the `mote_vm` library; it powers itself off.
fn boot_floor(ctx: &Ctx) -> anyhow::Result<Boot> {
    let mut cfg = RunConfig::new(FLOOR_NODE, &ctx.floor_image);
    cfg.accel = AccelChoice::Tcg;
    // Made once; the floor has no virtio_mmio driver and never sees it.
    cfg.state_disk_mib = 16;
    let mut node = mote_vm::start(&cfg).context("starting the floor")?;
    let log = node.serial_log().to_path_buf();
    let report = match node.wait_ready(READY_TIMEOUT) {
        Ok(report) => report,
        Err(e) => {
            let _ = node.kill();
            return Err(e).context("waiting for the floor's ready line");
        }
    };
    let deadline = Instant::now() + STOP_TIMEOUT;
    let status = loop {
        if let Some(status) = node.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = node.kill();
            bail!(
                "the floor did not power off within {STOP_TIMEOUT:?}:\n{}",
                read_lossy(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        bail!(
            "the floor's QEMU ended with {status}:\n{}",
            read_lossy(&log)
        );
    }
    Boot::from_console(report.split.total_ms, &read_lossy(&log), &log)
}

/// The floor image: hello's `vmlinuz` and `cmdline`, and an initramfs of
/// `/init` and `/dev/console`. Returns the initramfs's size.
fn make_floor(hello: &Path, floor: &Path, init: &Path) -> anyhow::Result<u64> {
    std::fs::create_dir_all(floor).with_context(|| format!("creating {}", floor.display()))?;
    for name in ["vmlinuz", "cmdline"] {
        std::fs::copy(hello.join(name), floor.join(name))
            .with_context(|| format!("copying {name} to {}", floor.display()))?;
    }
    let init_bytes = std::fs::read(init).with_context(|| format!("reading {}", init.display()))?;
    let mut archive = Writer::new(Vec::new());
    archive.dir("dev", Meta::new(0o755))?;
    archive.char_device("dev/console", Meta::new(0o600), 5, 1)?;
    archive.file_bytes("init", Meta::new(0o755), &init_bytes)?;
    let cpio = archive.finish()?;
    let compressed = zstd::encode_all(&cpio[..], 9).context("compressing the floor initramfs")?;
    let path = floor.join("initrd.img");
    std::fs::write(&path, &compressed).with_context(|| format!("writing {}", path.display()))?;
    Ok(compressed.len() as u64)
}

/// The lines of a console log the bench reads.
#[derive(Debug, Default, PartialEq)]
struct Console {
    init_uptime_ms: Option<u64>,
    ready: Option<BTreeMap<String, String>>,
    timeline: Option<Vec<(String, u64)>>,
}

/// The first `mote: init uptime_ms=N`, the first `mote: ready …` and the
/// first `boot timeline…` (PID 1 logs it as an event after the ready line,
/// on the console with `mote.verbose`). Matched anywhere in a line, as
/// kernel messages may be interleaved. Only `mote: init uptime_ms=` counts as
/// PID 1's start: PID 1's own events read `mote: init Info: …`.
fn parse_console(text: &str) -> Console {
    const INIT: &str = "mote: init uptime_ms=";
    const READY: &str = "mote: ready";
    const TIMELINE: &str = "boot timeline";
    let mut seen = Console::default();
    for line in text.lines() {
        if seen.init_uptime_ms.is_none() {
            if let Some(at) = line.find(INIT) {
                seen.init_uptime_ms = line[at + INIT.len()..]
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok());
            }
        }
        if seen.ready.is_none() {
            if let Some(at) = line.find(READY) {
                seen.ready = Some(
                    line[at + READY.len()..]
                        .split_whitespace()
                        .filter_map(|w| w.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                );
            }
        }
        if seen.timeline.is_none() {
            if let Some(at) = line.find(TIMELINE) {
                seen.timeline = Some(parse_timeline(&line[at + TIMELINE.len()..]));
            }
        }
    }
    seen
}

/// PID 1's phases as (phase, ms after PID 1 started when it was done), from
/// either form PID 1 has printed: `boot timeline (ms after PID 1 started):
/// filesystems@51 settings@65 …` (marks), or `boot timeline: filesystems=52ms
/// settings=10ms …` (durations of consecutive phases, summed here).
fn parse_timeline(rest: &str) -> Vec<(String, u64)> {
    let words = rest.split_once(':').map_or(rest, |(_, words)| words);
    let mut elapsed = 0;
    words
        .split_whitespace()
        .filter_map(|word| {
            if let Some((phase, at)) = word.split_once('@') {
                return Some((phase.to_string(), at.parse().ok()?));
            }
            let (phase, took) = word.split_once('=')?;
            elapsed += took.trim_end_matches("ms").parse::<u64>().ok()?;
            Some((phase.to_string(), elapsed))
        })
        .collect()
}

// ---------------------------------------------------------------- processes

/// Read the first line `child` prints on its piped stdout, within `timeout`.
/// On failure the child is killed.
fn first_line(child: &mut Child, timeout: Duration) -> anyhow::Result<String> {
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(read);
    });
    let got = match rx.recv_timeout(timeout) {
        Ok(Ok(line)) if !line.trim().is_empty() => return Ok(line),
        Ok(Ok(_)) => anyhow::anyhow!("it ended without printing its ready report"),
        Ok(Err(e)) => anyhow::Error::new(e).context("reading its output"),
        Err(_) => anyhow::anyhow!("no ready report within {timeout:?}"),
    };
    let _ = child.kill();
    Err(got)
}

/// Wait for `child` at most `timeout`, looking every `poll`; kill it after.
fn wait_bounded(
    mut child: Child,
    timeout: Duration,
    poll: Duration,
    what: &str,
) -> anyhow::Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for {what}"))?
        {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{what} did not finish within {timeout:?}; killed it");
        }
        std::thread::sleep(poll);
    }
}

/// A command's output, or "" (for labels only), bounded.
fn quick_output(program: &str, args: &[&str]) -> String {
    let Ok(mut file) = tempfile::tempfile() else {
        return String::new();
    };
    let Ok(out) = file.try_clone() else {
        return String::new();
    };
    let Ok(child) = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
    else {
        return String::new();
    };
    if !wait_bounded(child, QUICK_TIMEOUT, Duration::from_millis(10), program)
        .is_ok_and(|s| s.success())
    {
        return String::new();
    }
    let mut text = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut text);
    text
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("({}: {e})", path.display()))
}

fn qemu_version() -> String {
    quick_output("qemu-system-x86_64", &["--version"])
        .lines()
        .next()
        .unwrap_or("?")
        .trim()
        .to_string()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            let parts: Vec<&str> = s.split_whitespace().take(3).collect();
            (parts.len() == 3).then(|| parts.join(" "))
        })
        .unwrap_or_else(|| "?".into())
}

// ---------------------------------------------------------------- results

/// The sizes of `build.json`, in bytes.
struct Sizes {
    kernel: u64,
    initramfs: u64,
    userland_compressed: u64,
    userland_uncompressed: u64,
    modules_compressed: u64,
}

struct Results {
    runs: usize,
    kernel_version: String,
    qemu_version: String,
    loadavg_start: String,
    loadavg_end: String,
    build_ms: Vec<f64>,
    sizes: Sizes,
    floor_initramfs: u64,
    hello: Vec<Boot>,
    floor: Vec<Boot>,
    verbose: Boot,
    timeline: Vec<(String, u64)>,
    elapsed: Duration,
}

/// min / median / max of some runs.
#[derive(Debug, Clone, PartialEq)]
struct Stats {
    min: f64,
    median: f64,
    max: f64,
    runs: Vec<f64>,
}

impl Stats {
    fn of(runs: &[f64]) -> Self {
        let mut sorted = runs.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Self {
            min: sorted.first().copied().unwrap_or(f64::NAN),
            median,
            max: sorted.last().copied().unwrap_or(f64::NAN),
            runs: runs.to_vec(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Ms,
    Bytes,
    Ratio,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ms => "ms",
            Self::Bytes => "bytes",
            Self::Ratio => "ratio",
        }
    }
}

/// One figure of the table.
struct Row {
    /// JSON key.
    key: &'static str,
    /// Table label.
    label: &'static str,
    unit: Unit,
    stats: Stats,
    /// At most this (checked on the median).
    goal: Option<f64>,
}

impl Row {
    fn met(&self) -> Option<bool> {
        self.goal.map(|g| self.stats.median <= g)
    }
}

impl Results {
    fn rows(&self) -> Vec<Row> {
        let series = |boots: &[Boot], f: fn(&Boot) -> u64| {
            Stats::of(&boots.iter().map(|b| f(b) as f64).collect::<Vec<_>>())
        };
        let one = |v: u64| Stats::of(&[v as f64]);
        let ratio = |num: fn(&Boot) -> u64, den: fn(&Boot) -> u64| {
            let pairs: Vec<f64> = self
                .hello
                .iter()
                .zip(&self.floor)
                .map(|(h, f)| num(h) as f64 / den(f).max(1) as f64)
                .collect();
            Stats::of(&pairs)
        };
        let row = |key, label, unit, stats, goal| Row {
            key,
            label,
            unit,
            stats,
            goal,
        };
        use Unit::{Bytes, Ms, Ratio};
        vec![
            row(
                "build_ms",
                "build, warm (whole `mote build`)",
                Ms,
                Stats::of(&self.build_ms),
                Some(GOAL_BUILD_MS),
            ),
            row(
                "kernel_bytes",
                "kernel (vmlinuz)",
                Bytes,
                one(self.sizes.kernel),
                None,
            ),
            row(
                "initramfs_bytes",
                "initramfs (zstd)",
                Bytes,
                one(self.sizes.initramfs),
                None,
            ),
            row(
                "userland_compressed_bytes",
                "  userland, compressed",
                Bytes,
                one(self.sizes.userland_compressed),
                Some(GOAL_USERLAND_BYTES),
            ),
            row(
                "userland_uncompressed_bytes",
                "  userland, uncompressed",
                Bytes,
                one(self.sizes.userland_uncompressed),
                None,
            ),
            row(
                "modules_compressed_bytes",
                "  modules, compressed",
                Bytes,
                one(self.sizes.modules_compressed),
                None,
            ),
            row(
                "floor_initramfs_bytes",
                "floor initramfs (zstd)",
                Bytes,
                one(self.floor_initramfs),
                None,
            ),
            row(
                "hello_qemu_to_kernel_ms",
                "hello: QEMU spawn → kernel clock",
                Ms,
                series(&self.hello, |b| b.split.qemu_to_kernel_ms),
                None,
            ),
            row(
                "hello_kernel_to_init_ms",
                "hello: kernel → PID 1",
                Ms,
                series(&self.hello, |b| b.init_uptime_ms),
                None,
            ),
            row(
                "hello_init_to_ready_ms",
                "hello: PID 1 start → ready",
                Ms,
                series(&self.hello, Boot::init_to_ready_ms),
                Some(GOAL_INIT_TO_READY_MS),
            ),
            row(
                "hello_boot_to_ready_ms",
                "hello: boot-to-ready (guest boot_ms)",
                Ms,
                series(&self.hello, |b| b.boot_ms),
                None,
            ),
            row(
                "hello_total_ms",
                "hello: QEMU spawn → ready (wall)",
                Ms,
                series(&self.hello, |b| b.split.total_ms),
                None,
            ),
            row(
                "floor_qemu_to_kernel_ms",
                "floor: QEMU spawn → kernel clock",
                Ms,
                series(&self.floor, |b| b.split.qemu_to_kernel_ms),
                None,
            ),
            row(
                "floor_boot_to_init_ms",
                "floor: boot-to-init (guest uptime)",
                Ms,
                series(&self.floor, |b| b.init_uptime_ms),
                None,
            ),
            row(
                "floor_total_ms",
                "floor: QEMU spawn → ready (wall)",
                Ms,
                series(&self.floor, |b| b.split.total_ms),
                None,
            ),
            row(
                "ratio_boot",
                "ratio: hello boot-to-ready ÷ floor boot-to-init",
                Ratio,
                ratio(|h| h.boot_ms, |f| f.init_uptime_ms),
                Some(GOAL_RATIO),
            ),
            row(
                "ratio_wall",
                "ratio: hello wall ÷ floor wall",
                Ratio,
                ratio(|h| h.split.total_ms, |f| f.split.total_ms),
                None,
            ),
        ]
    }

    fn to_json(&self, rows: &[Row]) -> Value {
        let figures: serde_json::Map<String, Value> = rows
            .iter()
            .map(|r| {
                let mut v = json!({
                    "unit": r.unit.as_str(),
                    "min": round(r.stats.min),
                    "median": round(r.stats.median),
                    "max": round(r.stats.max),
                    "runs": r.stats.runs.iter().map(|v| round(*v)).collect::<Vec<_>>(),
                });
                if let Some(goal) = r.goal {
                    v["goal_max"] = round(goal);
                    v["goal_met"] = json!(r.met());
                }
                (r.key.to_string(), v)
            })
            .collect();
        let boot = |b: &Boot| {
            json!({
                "qemu_to_kernel_ms": b.split.qemu_to_kernel_ms,
                "kernel_to_init_ms": b.split.kernel_to_init_ms,
                "init_to_ready_ms": b.split.init_to_ready_ms,
                "total_ms": b.split.total_ms,
                "init_uptime_ms": b.init_uptime_ms,
                "boot_ms": b.boot_ms,
            })
        };
        let timeline: Vec<Value> = self
            .timeline
            .iter()
            .map(|(phase, ms)| json!({ "phase": phase, "done_ms_after_pid1_start": ms }))
            .collect();
        json!({
            "bench": "boot",
            "date": utc_date(SystemTime::now()),
            "manifest": MANIFEST,
            "runs": self.runs,
            "accel": "tcg",
            "machine": "microvm",
            "kernel": self.kernel_version,
            "qemu": self.qemu_version,
            "host": {
                "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
                "loadavg_start": self.loadavg_start,
                "loadavg_end": self.loadavg_end,
            },
            "figures": figures,
            "boots": {
                "hello": self.hello.iter().map(boot).collect::<Vec<_>>(),
                "floor": self.floor.iter().map(boot).collect::<Vec<_>>(),
                "hello_verbose": boot(&self.verbose),
            },
            "pid1_timeline": timeline,
            "elapsed_s": round(self.elapsed.as_secs_f64()),
        })
    }
}

/// A figure for JSON: whole numbers as integers, others to 3 decimals.
fn round(v: f64) -> Value {
    if !v.is_finite() {
        Value::Null
    } else if v.fract() == 0.0 && v.abs() < 9e15 {
        json!(v as i64)
    } else {
        json!((v * 1000.0).round() / 1000.0)
    }
}

fn print_table(r: &Results, rows: &[Row]) {
    println!(
        "mote bench boot — {}, {} runs, TCG microvm, kernel {}, {}",
        utc_date(SystemTime::now()),
        r.runs,
        r.kernel_version,
        r.qemu_version
    );
    println!(
        "host: {} CPUs, load {} at start, {} at end; {:.0} s in all",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        r.loadavg_start,
        r.loadavg_end,
        r.elapsed.as_secs_f64()
    );
    println!();
    let fmt = |unit: Unit, v: f64| match unit {
        Unit::Ms => format!("{v:.0} ms"),
        Unit::Bytes => human_bytes(v),
        Unit::Ratio => format!("{v:.2}"),
    };
    let mut table: Vec<[String; 6]> = vec![[
        "figure".into(),
        "min".into(),
        "median".into(),
        "max".into(),
        "goal".into(),
        String::new(),
    ]];
    for row in rows {
        let single = row.stats.runs.len() == 1;
        let (min, max) = if single {
            (String::new(), String::new())
        } else {
            (fmt(row.unit, row.stats.min), fmt(row.unit, row.stats.max))
        };
        let goal = row.goal.map_or(String::new(), |g| match row.unit {
            Unit::Bytes => format!("≤ {:.0} MB", g / 1e6),
            _ => format!("≤ {}", fmt(row.unit, g)),
        });
        let met = match row.met() {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "",
        };
        table.push([
            row.label.into(),
            min,
            fmt(row.unit, row.stats.median),
            max,
            goal,
            met.into(),
        ]);
    }
    let width = |i: usize| {
        table
            .iter()
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..6).map(width).collect();
    for r in &table {
        let pad = |s: &str, w: usize, right: bool| {
            let fill = " ".repeat(w.saturating_sub(s.chars().count()));
            if right {
                format!("{fill}{s}")
            } else {
                format!("{s}{fill}")
            }
        };
        let line = format!(
            "{}  {}  {}  {}  {}  {}",
            pad(&r[0], widths[0], false),
            pad(&r[1], widths[1], true),
            pad(&r[2], widths[2], true),
            pad(&r[3], widths[3], true),
            pad(&r[4], widths[4], false),
            r[5]
        );
        println!("{}", line.trim_end());
    }
    println!();
    if r.timeline.is_empty() {
        println!("PID 1 phases: no `boot timeline` line in the verbose boot's console");
    } else {
        let phases: Vec<String> = r
            .timeline
            .iter()
            .map(|(p, ms)| format!("{p}@{ms}"))
            .collect();
        println!(
            "PID 1 phases, done at ms after PID 1 started (one mote.verbose boot, ready at {}): {}",
            r.verbose.init_to_ready_ms(),
            phases.join(", ")
        );
    }
    println!("Goals are checked on the median; ratios are per interleaved pair.");
}

fn human_bytes(v: f64) -> String {
    if v >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", v / (1024.0 * 1024.0))
    } else if v >= 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

/// `YYYY-MM-DD` (UTC) of a time, without a date crate (the civil-from-days
/// algorithm of Howard Hinnant's `chrono`-compatible date library).
fn utc_date(t: SystemTime) -> String {
    let days = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consoles_parse() {
        let log = "\
[    1.1] random kernel line
mote: init uptime_ms=1686
mote: init Info: something before ready
mote: ready hostname=hello addresses=10.0.2.15 boot_ms=2442 init_ms=1686 services=1/1
mote: init Info: boot timeline: filesystems=52ms settings=10ms services=73ms
mote: init Info: boot timeline (ms after PID 1 started): filesystems@51 modules@400
mote: ready hostname=again boot_ms=1
";
        let c = parse_console(log);
        assert_eq!(c.init_uptime_ms, Some(1686));
        let ready = c.ready.unwrap();
        assert_eq!(ready["boot_ms"], "2442");
        assert_eq!(ready["hostname"], "hello");
        assert_eq!(
            c.timeline.unwrap(),
            vec![
                ("filesystems".to_string(), 52),
                ("settings".to_string(), 62),
                ("services".to_string(), 135)
            ]
        );
        let floor =
            "mote: init uptime_ms=1100\r\nmote: ready hostname=floor addresses= boot_ms=1101\r\n";
        let boot = Boot::from_console(2000, floor, Path::new("x")).unwrap();
        assert_eq!((boot.init_uptime_ms, boot.boot_ms), (1100, 1101));
        assert_eq!(boot.split.qemu_to_kernel_ms, 899);
        assert_eq!(boot.init_to_ready_ms(), 1);
        assert!(Boot::from_console(2000, "mote: init uptime_ms=5\n", Path::new("x")).is_err());
    }

    #[test]
    fn timelines_parse_in_both_forms() {
        assert_eq!(
            parse_timeline(" (ms after PID 1 started): filesystems@51 modules@400 junk"),
            vec![
                ("filesystems".to_string(), 51),
                ("modules".to_string(), 400)
            ]
        );
        assert_eq!(
            parse_timeline(": a=5ms b=7ms"),
            vec![("a".to_string(), 5), ("b".to_string(), 12)]
        );
    }

    #[test]
    fn stats_and_dates() {
        let s = Stats::of(&[5.0, 1.0, 3.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 5.0));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(utc_date(UNIX_EPOCH), "1970-01-01");
        let t = UNIX_EPOCH + Duration::from_secs(1_763_683_200); // 2025-11-21
        assert_eq!(utc_date(t), "2025-11-21");
        assert_eq!(
            utc_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29"
        );
    }
}

//! `mote run DIR|MANIFEST`

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use mote_vm::{AccelChoice, Forward, Machine, NetMode, Protocol, RunConfig};
use serde::Serialize;

use crate::cmd::build::{self, BinDir};
use crate::exit::{Code, WithCode};
use crate::output;

/// Boot an image under QEMU (KVM when a probe shows it really runs a guest,
/// else TCG with a notice), wait for the node's ready line and print where
/// the boot time went. Given a manifest, build it first. Given a disk
/// (`.raw`, `.qcow2`, `.vhdx`, `.vhd` from `mote build --format`), boot it
/// under UEFI firmware (OVMF), in place: the disk keeps the node's state.
/// In the foreground the serial console is shown and Ctrl-C powers the node
/// off in order.
#[derive(clap::Args)]
pub struct Args {
    /// An image directory from `mote build`, a manifest to build first, or
    /// a disk to boot under UEFI.
    target: PathBuf,
    /// Node name [default: the image directory's name]
    #[arg(long)]
    name: Option<String>,
    /// The node's network: `user` (QEMU's user-mode network, reached through
    /// --forward), `tap=NAME` (an existing tap device), `tap` (mote makes one
    /// named after the node, gone when QEMU exits; needs root), or
    /// `bridge=NAME` (a tap mote makes on that bridge, or QEMU's bridge
    /// helper's). The MAC address is derived from the node's name.
    #[arg(long, value_name = "MODE", default_value = "user")]
    net: NetMode,
    /// Forward a host port on 127.0.0.1 to a guest port: HOST:GUEST[/udp]
    /// (repeatable; HOST 0 picks a free port; user-mode network only).
    #[arg(short, long = "forward", value_name = "HOST:GUEST")]
    forwards: Vec<Forward>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 256)]
    memory: u32,
    /// Virtual CPUs.
    #[arg(long, default_value_t = 1)]
    cpus: u32,
    /// Return once the node is ready and leave it running (stop it with `mote stop`).
    #[arg(short, long)]
    detach: bool,
    /// Write the serial console to FILE instead of the terminal.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Accelerator: auto (probe KVM, fall back to TCG), kvm, or tcg.
    #[arg(long, default_value = "auto")]
    accel: AccelChoice,
    /// QEMU machine: microvm (fastest) or pc.
    #[arg(long, default_value = "microvm")]
    machine: Machine,
    /// Extra kernel command line words (e.g. `mote.verbose` to see every event).
    #[arg(long, value_name = "WORDS", default_value = "")]
    cmdline: String,
    /// Seconds to wait for the ready line.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    #[command(flatten)]
    bins: BinDir,
    /// Print the ready report as one line of JSON (and no console).
    #[arg(long)]
    json: bool,
    /// The node's management port, forwarded from a free host port
    /// [default: the image's, else 5986].
    #[arg(long, value_name = "PORT")]
    management_port: Option<u16>,
    /// Boot the disk with UEFI Secure Boot enforced, trusting Debian's
    /// test key (`/usr/share/ovmf/PkKek-1-snakeoil.pem`): to check an image
    /// signed with `[image] secure_boot` before it goes to a platform that
    /// trusts your own key.
    #[arg(long)]
    secure_boot: bool,
    /// Do not forward the management port nor register the node.
    #[arg(long)]
    no_manage: bool,
}

#[derive(Serialize)]
struct Ready<'a> {
    name: &'a str,
    pid: u32,
    hostname: &'a str,
    addresses: &'a [String],
    forwards: Vec<String>,
    /// The network mode, as `--net` takes it.
    net: String,
    /// The node's MAC address, the same on every boot.
    mac: String,
    /// The host side of its tap, on a tap or bridge network.
    tap: Option<String>,
    boot: mote_vm::BootSplit,
    serial_log: PathBuf,
    notice: Option<String>,
    /// `127.0.0.1:PORT` of the management API, when forwarded; on a tap or
    /// bridge network, the node's first IPv4 address and the port.
    management: Option<String>,
    /// The pinned certificate fingerprint, from the ready line.
    fingerprint: Option<String>,
    /// Which settings the node runs, from the ready line: `vN` (the stored
    /// version N), `image`, and a trailing `!` when something is wrong.
    settings: Option<String>,
    /// What happened to the pin in `nodes.json`.
    pin: Option<String>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !args.target.exists() {
        return Err(anyhow::anyhow!(
            "{} does not exist: give a manifest (such as examples/hello.toml) or an image \
             directory that `mote build` wrote (such as out/hello)",
            args.target.display()
        ))
        .code(Code::Usage);
    }
    if !args.net.forwards() && !args.forwards.is_empty() {
        return Err(anyhow::anyhow!(
            "--forward works only with --net user; on --net {} the node has its own address on \
             the segment (printed when it is ready): connect to it there, or drop --net",
            args.net
        ))
        .code(Code::Usage);
    }
    let disk = is_disk(&args.target).then(|| args.target.clone());
    let image_dir = if let Some(disk) = &disk {
        // A disk from `mote build` sits beside its build.json.
        disk.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), PathBuf::from)
    } else if args.target.is_file() {
        build::build(&args.target, None, &[], &args.bins, args.json)?.0
    } else {
        args.target.clone()
    };
    let name = match (&args.name, &disk) {
        (Some(name), _) => name.clone(),
        (None, Some(disk)) => disk
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .context("cannot name the node after its disk; pass --name")?,
        (None, None) => image_dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .context("cannot name the node after its image directory; pass --name")?,
    };
    let mut cfg = RunConfig::new(&name, &image_dir);
    if args.secure_boot && disk.is_none() {
        return Err(anyhow::anyhow!(
            "--secure-boot needs a disk (mote run out/NAME/NAME.qcow2): firmware checks a UKI's \
             signature, and a directory boots without firmware"
        ))
        .code(Code::Usage);
    }
    cfg.disk = disk;
    cfg.secure_boot = args.secure_boot;
    cfg.net = args.net.clone();
    cfg.forwards = args.forwards.clone();
    let mgmt_port = args
        .management_port
        .unwrap_or_else(|| image_management_port(&image_dir));
    if !args.no_manage
        && cfg.net.forwards()
        && !cfg
            .forwards
            .iter()
            .any(|f| f.guest == mgmt_port && f.protocol == Protocol::Tcp)
    {
        cfg.forwards.push(Forward {
            host: 0,
            guest: mgmt_port,
            protocol: Protocol::Tcp,
        });
    }
    cfg.memory_mib = args.memory;
    cfg.cpus = args.cpus;
    cfg.log = args.log.clone();
    cfg.console = !args.detach && !args.json && args.log.is_none();
    cfg.accel = args.accel;
    cfg.machine = args.machine;
    cfg.extra_cmdline = args.cmdline.clone();

    let mut node = mote_vm::start(&cfg).code(Code::Environment)?;
    if let (Some(notice), false) = (node.notice(), args.json) {
        eprintln!("mote: {notice}");
    }
    // SAFETY: the handler only stores to an atomic, which is signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_interrupt as *const () as libc::sighandler_t,
        )
    };
    // The console shows progress in the foreground; otherwise a spinner does.
    let mut progress = crate::progress::Progress::start(args.json || cfg.console);
    progress.step(&format!(
        "booting {name} (console: {})",
        node.serial_log().display()
    ));
    let waited = node.wait_ready(Duration::from_secs(args.timeout));
    progress.finish();
    let report = match waited {
        Ok(report) => report,
        Err(e) => {
            let _ = node.kill();
            return Err(e).code(Code::NodeFailed);
        }
    };
    let forwards: Vec<String> = node
        .forwards()
        .iter()
        .map(|f| format!("127.0.0.1:{} → {}/{}", f.host, f.guest, f.protocol))
        .collect();
    let management = if args.no_manage {
        None
    } else if cfg.net.forwards() {
        node.forwards()
            .iter()
            .find(|f| f.guest == mgmt_port && f.protocol == Protocol::Tcp)
            .map(|f| format!("127.0.0.1:{}", f.host))
    } else {
        // On a segment: the node's own address, as its ready line says.
        report
            .addresses
            .iter()
            .find_map(|a| a.parse::<std::net::Ipv4Addr>().ok())
            .map(|ip| format!("{ip}:{mgmt_port}"))
    };
    let fingerprint = report.fields.get("fingerprint").cloned();
    let pin = match (&management, &fingerprint) {
        (Some(addr), Some(fp)) => Some(pin(&name, addr, fp)?),
        _ => None,
    };
    let ready = Ready {
        name: &name,
        pid: node.pid(),
        hostname: &report.hostname,
        addresses: &report.addresses,
        forwards,
        net: cfg.net.to_string(),
        mac: node.mac().to_owned(),
        tap: node.tap().map(str::to_owned),
        boot: report.split,
        serial_log: node.serial_log().to_path_buf(),
        notice: node.notice().map(str::to_owned),
        management,
        fingerprint,
        settings: report.fields.get("settings").cloned(),
        pin,
    };
    if args.json {
        println!("{}", serde_json::to_string(&ready)?);
    } else {
        print_ready(&ready, args.detach);
    }
    if args.detach {
        return Ok(());
    }
    let mut pressed = false;
    loop {
        if let Some(status) = node.try_wait()? {
            if !status.success() {
                return Err(anyhow::anyhow!(
                    "QEMU ended with {status}; see {}",
                    ready.serial_log.display()
                ))
                .code(Code::NodeFailed);
            }
            return Ok(());
        }
        if INTERRUPTED.swap(false, Ordering::SeqCst) {
            if pressed {
                eprintln!("\nmote: killing {name}");
                node.kill()?;
                return Ok(());
            }
            eprintln!("\nmote: powering {name} off (Ctrl-C again to kill it)");
            node.powerdown()?;
            pressed = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn print_ready(ready: &Ready<'_>, detached: bool) {
    let b = &ready.boot;
    let secs = |ms: u64| format!("{:.2} s", ms as f64 / 1000.0);
    eprintln!();
    eprintln!(
        "{} is ready in {} (qemu→kernel {}, kernel→init {}, init→ready {})",
        ready.name,
        secs(b.total_ms),
        secs(b.qemu_to_kernel_ms),
        secs(b.kernel_to_init_ms),
        secs(b.init_to_ready_ms)
    );
    let addresses = if ready.addresses.is_empty() {
        "none".into()
    } else {
        ready.addresses.join(" ")
    };
    output::table(
        &["", ""],
        &[
            vec!["addresses".into(), addresses],
            vec![
                "forwards".into(),
                if ready.forwards.is_empty() {
                    "none".into()
                } else {
                    ready.forwards.join(", ")
                },
            ],
            vec![
                "network".into(),
                match &ready.tap {
                    Some(tap) => format!("{} (tap {tap}), mac {}", ready.net, ready.mac),
                    None => format!("{}, mac {}", ready.net, ready.mac),
                },
            ],
            vec!["console".into(), ready.serial_log.display().to_string()],
            vec![
                "settings".into(),
                ready.settings.clone().unwrap_or_else(|| "unknown".into()),
            ],
            vec!["stop".into(), format!("mote stop {}", ready.name)],
        ],
    );
    if ready.settings.as_deref().is_some_and(|s| s.ends_with('!')) {
        eprintln!(
            "mote: {} does not run its stored settings as it should; its console ({}) says why",
            ready.name,
            ready.serial_log.display()
        );
    }
    if let Some(pin) = &ready.pin {
        eprintln!("{pin}");
    }
    if ready.pin.is_some() {
        eprintln!("manage it: mote -n {} system", ready.name);
    }
    if !detached {
        eprintln!("(Ctrl-C powers it off)");
    }
}

/// The management port the image's settings ask for (`build.json`
/// `management.port`, when present), else 5986.
/// A disk `mote build` writes, told by its extension (a manifest is
/// `.toml`).
fn is_disk(target: &std::path::Path) -> bool {
    target.is_file()
        && matches!(
            target.extension().and_then(|e| e.to_str()),
            Some("raw" | "qcow2" | "vhdx" | "vhd")
        )
}

fn image_management_port(image_dir: &std::path::Path) -> u16 {
    std::fs::read(image_dir.join("build.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.pointer("/management/port").and_then(|p| p.as_u64()))
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(mote_api::api::DEFAULT_PORT)
}

/// Pins the fingerprint of the ready line under the node's name. A pin
/// `mote run` made earlier is replaced (a new state disk makes a new
/// certificate); one added by hand never is.
fn pin(name: &str, address: &str, fingerprint: &str) -> anyhow::Result<String> {
    use crate::remote::{AddedBy, NodeEntry, Nodes};
    let mut nodes = Nodes::load()?;
    let entry = NodeEntry {
        address: address.to_string(),
        fingerprint: fingerprint.to_string(),
        added_by: AddedBy::Run,
        pinned_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    let said = match nodes.nodes.get(name) {
        Some(old) if old.added_by == AddedBy::Hand => {
            if old.fingerprint == fingerprint && old.address == address {
                return Ok(format!(
                    "{name}: pinned fingerprint {fingerprint} (added by hand)"
                ));
            }
            return Ok(format!(
                "{name}: NOT re-pinned: `mote node add` pinned {} at {}; the node now presents \
                 {fingerprint} at {address}. If that is right: mote node remove {name} && \
                 mote node add {name} {address} --fingerprint {fingerprint}",
                old.fingerprint, old.address
            ));
        }
        Some(old) if old.fingerprint != fingerprint => format!(
            "{name}: the node has a new certificate (new state disk?): re-pinned {fingerprint} \
             (was {})",
            old.fingerprint
        ),
        _ => format!("{name}: pinned fingerprint {fingerprint} at {address}"),
    };
    nodes.nodes.insert(name.to_string(), entry);
    nodes.save()?;
    if let Err(e) = crate::remote::forget_token(name) {
        eprintln!("mote: cannot forget the old login of {name}: {e}");
    }
    Ok(said)
}

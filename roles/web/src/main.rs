//! `mote-web`: the web role — an async static web server and reverse proxy
//! for managed app backends (IIS's feature set on a mote node).
//!
//! ```text
//! mote-web --config /etc/mote/web.toml [--metrics 127.0.0.1:9101] [--workers N]
//! mote-web --check /run/mote/roles/web.json
//! ```
//!
//! Design: `--workers` threads (default the CPU count) with a
//! single-threaded tokio runtime each serve the connections (`workers`);
//! the main thread's runtime reloads, supervises the apps and serves
//! metrics. hyper 1 with HTTP/1.1 and HTTP/2, rustls (ring) for https. The settings
//! (`config.rs`) are compiled (`site.rs`) into an `Arc` that every request
//! reads; SIGHUP reloads the file and swaps it without dropping
//! connections. Modules: `workers` (the serving threads), `server`
//! (listeners and the request pipeline), `sniff` (HTTP/1 or HTTP/2 on
//! plain TCP),
//! `static_files`, `filter`, `app` (managed backends and the proxy), `tls`,
//! `log` (W3C logs), `metrics` (Prometheus text on `--metrics`).
//!
//! `--check FILE` loads and validates FILE as a reload does
//! (`WebSettings::load`: JSON or TOML by extension, unknown keys refused,
//! then `validate`) and exits: 0 and no output when it is good, 1 and
//! `mote-web: FILE: key: message` on stderr when not. moted runs it on a
//! new `roles.web` before storing it. It does not build the sites (roots,
//! error pages, certificates, log directories, listeners): those can still
//! fail at the reload itself.
//!
//! Limits: see each module's docs.
//!
//! Exit codes: 0 on SIGTERM/SIGINT (and for good settings with `--check`),
//! 1 on a startup error (bad settings with `--check`), 2 on bad arguments.

mod app;
mod backend;
mod body;
mod filter;
mod host;
mod log;
mod metrics;
mod mime;
mod server;
mod site;
mod sniff;
mod static_files;
mod tls;
mod watch;
mod workers;

use mote_web::{config, path};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use hyper::{header, Response};
use hyper_util::rt::TokioIo;
use tokio::signal::unix::{signal, SignalKind};

// mimalloc: per-thread free lists; glibc malloc was ~13% of the proxy
// path's user time (measured with perf under wrk).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: mote-web --config FILE [--metrics 127.0.0.1:PORT] [--workers N]
       mote-web --check FILE";

const HELP: &str = "
  --config FILE    serve the sites of FILE (.json or .toml); SIGHUP reloads it
  --check FILE     load and validate FILE as a reload does, then exit: 0 and no
                   output when good, 1 and `mote-web: FILE: key: message` on
                   stderr when not (roots, certificates and ports are not tried)
  --metrics ADDR   serve Prometheus text on this loopback IP:PORT
  --workers N      serving threads, 1 to 1024 (default: the CPU count)";

/// What the command line asks for.
enum Command {
    /// Serve the sites of a settings file.
    Serve(Args),
    /// Load and validate a settings file, then exit.
    Check(PathBuf),
}

struct Args {
    config: PathBuf,
    metrics: Option<SocketAddr>,
    workers: usize,
}

fn parse_args() -> anyhow::Result<Command> {
    let mut config = None;
    let mut check = None;
    let mut metrics = None;
    let mut workers = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => config = Some(PathBuf::from(it.next().context("--config takes a file")?)),
            "--check" => check = Some(PathBuf::from(it.next().context("--check takes a file")?)),
            "--metrics" => {
                let addr: SocketAddr = it
                    .next()
                    .context("--metrics takes an address")?
                    .parse()
                    .context("--metrics: not an IP:PORT address")?;
                if !addr.ip().is_loopback() {
                    bail!("--metrics {addr}: must be a loopback address");
                }
                metrics = Some(addr);
            }
            "--workers" => {
                workers = Some(
                    it.next()
                        .and_then(|n| n.parse().ok())
                        .filter(|n| (1..=1024).contains(n))
                        .context("--workers takes a number from 1 to 1024")?,
                );
            }
            "-h" | "--help" => {
                println!("{USAGE}\n{HELP}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if let Some(file) = check {
        if config.is_some() || metrics.is_some() || workers.is_some() {
            bail!("--check takes no other option\n{USAGE}");
        }
        return Ok(Command::Check(file));
    }
    Ok(Command::Serve(Args {
        config: config.context(USAGE)?,
        metrics,
        workers: workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    }))
}

/// `--check FILE`: the exit code; the error, if any, on stderr.
fn check(file: &Path) -> i32 {
    match config::WebSettings::load(file) {
        Ok(_) => 0,
        Err(e) => {
            // A semantic error names only the key: add the file, as a parse
            // error does, so every refusal reads `FILE: key: message`.
            let message = match &e {
                config::ConfigError::Invalid { .. } => format!("{}: {e}", file.display()),
                _ => format!("{:#}", anyhow::Error::from(e)),
            };
            eprintln!("mote-web: {message}");
            1
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(Command::Serve(a)) => a,
        Ok(Command::Check(file)) => std::process::exit(check(&file)),
        Err(e) => {
            eprintln!("mote-web: {e:#}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let result = rt
        .context("cannot start the runtime")
        .and_then(|rt| rt.block_on(run(args)));
    if let Err(e) = result {
        eprintln!("mote-web: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let settings = config::WebSettings::load(&args.config)?;
    raise_open_file_limit();
    let workers = workers::Workers::start(args.workers).context("cannot start the workers")?;
    let mut server = server::Server::start(&settings, workers)?;
    for a in server.addresses() {
        eprintln!("mote-web: listening on {a}");
    }
    if let Some(addr) = args.metrics {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for metrics"))?;
        eprintln!("mote-web: metrics on {addr}");
        tokio::spawn(serve_metrics(l, server.shared.clone()));
    }
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                match config::WebSettings::load(&args.config)
                    .map_err(anyhow::Error::from)
                    .and_then(|s| server.reload(&s).map_err(anyhow::Error::from))
                {
                    Ok(()) => eprintln!("mote-web: reloaded {}", args.config.display()),
                    Err(e) => eprintln!("mote-web: reload failed, keeping the previous settings: {e:#}"),
                }
            }
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
        }
    }
}

async fn serve_metrics(l: tokio::net::TcpListener, shared: Arc<server::Shared>) {
    loop {
        let Ok((s, _)) = l.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |_req| {
                let text = shared.metrics.render();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
                            .body(http_body_util::Full::new(bytes::Bytes::from(text)))
                            .unwrap_or_default(),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .await;
        });
    }
}

/// Raises this process's soft limit on open files to its hard limit (no
/// privilege needed): the connection limit is kept below it (see
/// `server::connection_limit`). Failing leaves the limit as it was.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let l = getrlimit(Resource::Nofile);
    if let Some(max) = l.maximum {
        if l.current < Some(max) {
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(max),
                    maximum: Some(max),
                },
            );
        }
    }
}

//! `mote-web`: the web role — an async static web server and reverse proxy
//! for managed app backends (IIS's feature set on a mote node).
//!
//! ```text
//! mote-web --config /etc/mote/web.toml [--metrics 127.0.0.1:9101] [--workers N]
//! ```
//!
//! Design: tokio multi-thread runtime (`--workers`, default the CPU count),
//! hyper 1 with HTTP/1.1 and HTTP/2, rustls (ring) for https. The settings
//! (`config.rs`) are compiled (`site.rs`) into an `Arc` that every request
//! reads; SIGHUP reloads the file and swaps it without dropping
//! connections. Modules: `server` (listeners and the request pipeline),
//! `static_files`, `filter`, `app` (managed backends and the proxy), `tls`,
//! `log` (W3C logs), `metrics` (Prometheus text on `--metrics`).
//!
//! Limits: see each module's docs.
//!
//! Exit codes: 0 on SIGTERM/SIGINT, 1 on a startup error, 2 on bad arguments.

mod app;
mod backend;
mod body;
mod config;
mod filter;
mod log;
mod metrics;
mod mime;
mod server;
mod site;
mod static_files;
mod tls;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use hyper::{header, Response};
use hyper_util::rt::TokioIo;
use tokio::signal::unix::{signal, SignalKind};

// mimalloc: per-thread free lists; glibc malloc was ~13% of the proxy
// path's user time (measured with perf under wrk).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: mote-web --config FILE [--metrics 127.0.0.1:PORT] [--workers N]";

struct Args {
    config: PathBuf,
    metrics: Option<SocketAddr>,
    workers: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut config = None;
    let mut metrics = None;
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => config = Some(PathBuf::from(it.next().context("--config takes a file")?)),
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
                workers = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=1024).contains(n))
                    .context("--workers takes a number from 1 to 1024")?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(Args {
        config: config.context(USAGE)?,
        metrics,
        workers,
    })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mote-web: {e:#}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
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
    let mut server = server::Server::start(&settings)?;
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

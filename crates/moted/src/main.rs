//! `moted`: parse arguments, start the agent, print the fingerprint, serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// The mote node agent: HTTPS management API.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on [default: 0.0.0.0:$MOTE_MANAGEMENT_PORT or 5986].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Port when --listen is absent.
    #[arg(long, env = "MOTE_MANAGEMENT_PORT", default_value_t = mote_api::api::DEFAULT_PORT)]
    port: u16,
    /// State directory.
    #[arg(long, default_value = "/state/mote")]
    state: PathBuf,
    /// The image's settings (first start).
    #[arg(long, default_value = "/etc/mote/settings.json")]
    image_settings: PathBuf,
    /// PID 1's control socket.
    #[arg(long, default_value = mote_api::control::SOCKET)]
    control: PathBuf,
    /// Token lifetime, seconds.
    #[arg(long, default_value_t = 3600)]
    token_ttl_secs: u64,
    /// Settings versions the history keeps (older ones are deleted).
    #[arg(long, default_value_t = mote_api::store::HISTORY_DEPTH)]
    history_depth: usize,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // PID 1 reads this pipe into events: no colour codes in them.
        .with_ansi(false)
        .init();
    let args = Args::parse();
    let config = moted::Config {
        listen: args
            .listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], args.port))),
        state_dir: args.state,
        image_settings: args.image_settings,
        token_ttl: Duration::from_secs(args.token_ttl_secs),
        throttle_base: Duration::from_millis(250),
        throttle_max: Duration::from_secs(30),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let init = Arc::new(moted::ControlSocket::new(args.control));
        let mut running = moted::start_with(
            config,
            moted::Limits {
                history_depth: args.history_depth,
                ..moted::Limits::default()
            },
            init,
        )
        .await
        .context("moted cannot start")?;
        println!("moted listening on {}", running.addr);
        println!("fingerprint {}", running.fingerprint);
        // PID 1 stops moted with SIGTERM (a reboot, a power-off, a restart):
        // answer what is being answered first, at most 2 s.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot catch SIGTERM")?;
        tokio::select! {
            r = &mut running.task => r.context("the accept loop ended"),
            _ = term.recv() => {
                running.drain(Duration::from_secs(2)).await;
                Ok(())
            }
        }
    })
    .map_err(|e| anyhow::anyhow!("{e:#}"))
}

//! `moted`, the node agent: the HTTPS management API on port 5986.
//!
//! Design: PID 1 owns live state and is reached through the [`Init`] trait
//! ([`ControlSocket`] on a node, [`FakeInit`] in tests); moted owns TLS, login,
//! the settings store (`STATE/settings/`, versioned, written atomically), and
//! the audit log (`STATE/audit.jsonl`). Requests flow router (`api/mod.rs`) →
//! one file per resource (`api/<resource>.rs`) → actions ([`app`]) → core
//! (`core/`, `store`). The OpenAPI document is `docs/api/openapi.json`.
//!
//! Limits: HTTP/1.1 only; one administrator; tokens live in memory (a restart
//! logs everyone out).
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use mote_api::control::NodeSettings;
use tokio::net::TcpListener;
use tower_service::Service;

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod core;
pub mod error;
pub mod init;
pub mod store;
pub mod tls;

pub use init::{ControlSocket, FakeInit, Init};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// State directory (`tls/`, `settings/`, `audit.jsonl`).
    pub state_dir: PathBuf,
    /// The image's settings, for the first start.
    pub image_settings: PathBuf,
    /// Token lifetime.
    pub token_ttl: Duration,
    /// First lock after a failed login (doubles each time).
    pub throttle_base: Duration,
    /// Longest lock.
    pub throttle_max: Duration,
}

/// Why moted could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// TLS identity.
    #[error("node TLS identity")]
    Tls(#[from] tls::TlsError),
    /// Settings store.
    #[error("settings store")]
    Store(#[from] store::StoreError),
    /// Image settings.
    #[error("cannot read the image settings {path}")]
    ImageSettings {
        /// File.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Listening.
    #[error("cannot listen on {addr}")]
    Listen {
        /// Address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A running server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its certificate fingerprint.
    pub fingerprint: String,
    /// The shared state (tests look inside).
    pub app: Arc<app::App>,
    /// The accept loop.
    pub task: tokio::task::JoinHandle<()>,
}

fn image_settings(path: &PathBuf) -> Result<NodeSettings, StartError> {
    let err = |source: Box<dyn std::error::Error + Send + Sync>| StartError::ImageSettings {
        path: path.clone(),
        source,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.into()))?;
    serde_json::from_slice(&bytes).map_err(|e| err(e.into()))
}

/// Loads the state, listens, and serves until the task is aborted.
pub async fn start(config: Config, init: Arc<dyn Init>) -> Result<Running, StartError> {
    let identity = tls::load_or_make(&config.state_dir.join("tls"))?;
    let mut initial = None;
    let settings_dir = config.state_dir.join("settings");
    if !settings_dir.join("current.json").exists() {
        initial = Some(image_settings(&config.image_settings)?);
    }
    let store = store::Store::open(&settings_dir, || initial.unwrap_or_default())?;
    let app = Arc::new(app::App {
        init,
        store: Mutex::new(store),
        auth: Mutex::new(auth::Auth::new(
            config.token_ttl,
            config.throttle_base,
            config.throttle_max,
        )),
        audit: audit::AuditLog::new(config.state_dir.join("audit.jsonl")),
        changing: tokio::sync::Mutex::new(()),
        state_dir: config.state_dir.clone(),
        cpu: Mutex::new(None),
        token_ttl: config.token_ttl,
    });
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let router = api::router(app.clone());
    let acceptor = tokio_rustls::TlsAcceptor::from(identity.config);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(api::Peer(peer));
                        router.clone().call(req)
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .http1_only()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Ok(Running {
        addr,
        fingerprint: identity.fingerprint,
        app,
        task,
    })
}

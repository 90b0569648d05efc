//! PID 1, behind a small trait: [`ControlSocket`] talks to the real one over
//! the control socket; [`FakeInit`] is an in-memory one for tests.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use mote_api::control::{
    AppliedSettings, PowerAction, Request, Response, ServiceAction, ServiceInfo, SettingsSource,
    SystemInfo,
};
use mote_api::control::{ErrorKind, NodeSettings};
use mote_api::events::{Event, EventQuery, Level};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc};

/// A boxed future, so the trait stays object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why PID 1 could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The control socket is not there or refused.
    #[error("cannot reach PID 1 at {path}")]
    Connect {
        /// Socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The exchange broke off.
    #[error("control socket exchange failed")]
    Io(#[from] std::io::Error),
    /// PID 1 answered something that does not parse.
    #[error("PID 1 answered {line:?}")]
    Garbled {
        /// The line.
        line: String,
    },
}

/// What moted asks of PID 1.
pub trait Init: Send + Sync + 'static {
    /// One request, one answer.
    fn call(&self, req: Request) -> BoxFuture<'_, Result<Response, InitError>>;
    /// Events matching `query` as they happen, until the receiver is dropped.
    fn follow(&self, query: EventQuery) -> BoxFuture<'_, Result<mpsc::Receiver<Event>, InitError>>;
}

/// The real PID 1, one connection per request (JSON lines, see
/// `mote_api::control`).
pub struct ControlSocket {
    path: PathBuf,
}

impl ControlSocket {
    /// PID 1 at `path` (normally `mote_api::control::SOCKET`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    async fn open(
        &self,
        req: &Request,
    ) -> Result<tokio::io::Lines<BufReader<UnixStream>>, InitError> {
        let mut s = UnixStream::connect(&self.path)
            .await
            .map_err(|source| InitError::Connect {
                path: self.path.clone(),
                source,
            })?;
        let mut line = serde_json::to_vec(req).map_err(|e| InitError::Io(e.into()))?;
        line.push(b'\n');
        s.write_all(&line).await?;
        Ok(BufReader::new(s).lines())
    }
}

fn parse(line: Option<String>) -> Result<Response, InitError> {
    let line = line.ok_or_else(|| InitError::Garbled {
        line: "<nothing>".into(),
    })?;
    serde_json::from_str(&line).map_err(|_| InitError::Garbled { line })
}

impl Init for ControlSocket {
    fn call(&self, req: Request) -> BoxFuture<'_, Result<Response, InitError>> {
        Box::pin(async move {
            let mut lines = self.open(&req).await?;
            parse(lines.next_line().await?)
        })
    }

    fn follow(&self, query: EventQuery) -> BoxFuture<'_, Result<mpsc::Receiver<Event>, InitError>> {
        Box::pin(async move {
            let mut lines = self.open(&Request::Follow(query)).await?;
            let (tx, rx) = mpsc::channel(256);
            tokio::spawn(async move {
                while let Ok(Some(line)) = lines.next_line().await {
                    match serde_json::from_str::<Response>(&line) {
                        Ok(Response::Event(e)) => {
                            if tx.send(e).await.is_err() {
                                break;
                            }
                        }
                        _ => break,
                    }
                }
            });
            Ok(rx)
        })
    }
}

/// What a [`FakeInit`] saw and holds.
#[derive(Debug, Default)]
pub struct FakeState {
    /// Every `Apply`, in order.
    pub applied: Vec<NodeSettings>,
    /// The store version of each `Apply`, in order.
    pub applied_versions: Vec<Option<u64>>,
    /// Refuse the next `Apply` with this message (once).
    pub refuse_next_apply: Option<String>,
    /// Answer the next `Apply` only after this long (once), as a slow
    /// PID 1 would: the change holds moted's settings lock meanwhile. The
    /// settings are in `applied` as soon as the call arrives.
    pub delay_next_apply: Option<std::time::Duration>,
    /// Recorded events (emits land here).
    pub events: Vec<Event>,
    /// Services reported.
    pub services: Vec<ServiceInfo>,
    /// Service actions asked for.
    pub service_actions: Vec<(String, ServiceAction)>,
    /// Power actions asked for.
    pub power: Vec<PowerAction>,
    /// Installed packages reported.
    pub packages: Vec<mote_api::control::PackageInfo>,
}

/// An in-memory PID 1 for tests.
#[derive(Clone)]
pub struct FakeInit {
    /// Its state, for tests to inspect and arrange.
    pub state: Arc<Mutex<FakeState>>,
    events: broadcast::Sender<Event>,
}

impl Default for FakeInit {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeInit {
    /// One service `web`, running; links `lo` and `eth0`.
    pub fn new() -> Self {
        let state = FakeState {
            services: vec![ServiceInfo {
                name: "web".into(),
                state: "ready".into(),
                reason: None,
                pid: Some(4242),
                restarts: 0,
                since_ms: 1,
                cgroup: None,
            }],
            ..Default::default()
        };
        Self {
            state: Arc::new(Mutex::new(state)),
            events: broadcast::channel(256).0,
        }
    }

    /// Records an event as PID 1 would.
    pub fn emit(&self, source: &str, level: Level, message: &str) {
        let e = Event {
            time_ms: crate::now_ms(),
            source: source.into(),
            level,
            message: message.into(),
        };
        if let Ok(mut s) = self.state.lock() {
            s.events.push(e.clone());
        }
        let _ = self.events.send(e);
    }

    fn answer(&self, req: Request) -> Response {
        let Ok(mut s) = self.state.lock() else {
            return Response::Error {
                reason: ErrorKind::Failed,
                message: "fake state poisoned".into(),
            };
        };
        match req {
            Request::System => Response::System(SystemInfo {
                hostname: s
                    .applied
                    .last()
                    .map(|a| a.system.hostname.clone())
                    .unwrap_or_else(|| "fake".into()),
                kernel: "6.1.0-fake".into(),
                uptime_ms: 1000,
                init_ms: 10,
                ready_ms: Some(500),
                boot_timeline: vec![("mounts".into(), 5)],
                packages: vec!["hello".into()],
                allow_unsigned: false,
                settings: AppliedSettings {
                    version: s.applied_versions.last().copied().flatten(),
                    source: if s.applied_versions.last().copied().flatten().is_some() {
                        SettingsSource::Store
                    } else {
                        SettingsSource::Image
                    },
                    problem: None,
                },
            }),
            Request::Services => Response::Services {
                services: s.services.clone(),
            },
            Request::Service { name, action } => {
                if !s.services.iter().any(|x| x.name == name) {
                    return Response::Error {
                        reason: ErrorKind::NotFound,
                        message: format!("no such service {name:?}"),
                    };
                }
                s.service_actions.push((name, action));
                Response::Ok
            }
            Request::Events(q) => {
                let mut events: Vec<Event> =
                    s.events.iter().filter(|e| q.matches(e)).cloned().collect();
                let limit = q.limit.unwrap_or(1000);
                if events.len() > limit {
                    events.drain(..events.len() - limit);
                }
                Response::Events { events }
            }
            Request::Follow(_) => Response::Error {
                reason: ErrorKind::Invalid,
                message: "follow is a stream".into(),
            },
            Request::Emit {
                source,
                level,
                message,
            } => {
                drop(s);
                self.emit(&source, level, &message);
                Response::Ok
            }
            Request::Network => Response::Network(mote_api::control::NetworkInfo {
                links: ["lo", "eth0"]
                    .into_iter()
                    .map(|name| mote_api::control::LinkInfo {
                        name: name.into(),
                        up: true,
                        mac: None,
                        mtu: 1500,
                        addresses: Vec::new(),
                        ipv4: "off".into(),
                    })
                    .collect(),
                ..Default::default()
            }),
            Request::Apply { settings, version } => {
                if let Some(message) = s.refuse_next_apply.take() {
                    return Response::Error {
                        reason: ErrorKind::Failed,
                        message,
                    };
                }
                s.applied.push(*settings);
                s.applied_versions.push(version);
                Response::Ok
            }
            Request::Power { action } => {
                s.power.push(action);
                Response::Ok
            }
            // The fake installs no packages (it reports those a test puts
            // in `packages`); the package routes refuse what they are sent
            // before asking to stage one (an archive that does not open),
            // and e2e_packages installs them on a node.
            Request::Packages => Response::Packages {
                packages: s.packages.clone(),
                allow_unsigned: false,
            },
            Request::StagePackage { .. }
            | Request::CommitPackage { .. }
            | Request::AbortPackage { .. }
            | Request::RemovePackage { .. } => Response::Error {
                reason: ErrorKind::Failed,
                message: "the fake PID 1 installs no packages".into(),
            },
        }
    }
}

impl Init for FakeInit {
    fn call(&self, req: Request) -> BoxFuture<'_, Result<Response, InitError>> {
        let delay = match req {
            Request::Apply { .. } => self
                .state
                .lock()
                .ok()
                .and_then(|mut s| s.delay_next_apply.take()),
            _ => None,
        };
        Box::pin(async move {
            let answer = self.answer(req);
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            Ok(answer)
        })
    }

    fn follow(&self, query: EventQuery) -> BoxFuture<'_, Result<mpsc::Receiver<Event>, InitError>> {
        let mut sub = self.events.subscribe();
        Box::pin(async move {
            let (tx, rx) = mpsc::channel(256);
            tokio::spawn(async move {
                while let Ok(e) = sub.recv().await {
                    if query.matches(&e) && tx.send(e).await.is_err() {
                        break;
                    }
                }
            });
            Ok(rx)
        })
    }
}

//! Listeners, connections and the request pipeline.
//!
//! Job: own the listening sockets, accept on every worker (TLS when
//! https; see [`crate::workers`]), serve HTTP/1.1
//! and HTTP/2 (ALPN, or prior knowledge: [`crate::sniff`]) with hyper, and
//! run each request through the pipeline:
//!
//! host checks (400, [`crate::host`]) → route by listener + host → IP
//! allow/deny (403) → request filtering and the canonical path
//! (405/414/413/400/404, [`crate::path`]) → HTTP→HTTPS redirect →
//! redirect rules → Basic auth (401) → app proxy or static content → HSTS
//! → log and metrics. Every step after the filter matches the canonical
//! path.
//!
//! Limits per connection ([`crate::watch`]): the header timeout (HTTP/1
//! heads, idle connections of both protocols), the send timeout, HTTP/2
//! stream and buffer bounds; in total, `limits.max_connections`
//! ([`crate::workers`]), past which plain http gets a 503.
//!
//! Reload: [`Server::reload`] compiles the new settings, swaps the `Arc`
//! every request reads, then opens listeners for new addresses and stops
//! accepting on removed ones. Open connections keep running; each request
//! reads the settings current when it arrives.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::task::JoinHandle;

use crate::body::Body;
use crate::config::{Scheme, WebSettings};
use crate::host;
use crate::log::Entry;
use crate::metrics;
use crate::site::{self, Compiled, Site, SiteError, AUTH_CACHE};
use crate::sniff::{self, Proto};
use crate::static_files::{self, FileCache};
use crate::tls::{self, TlsError};
use crate::watch::{self, ConnWatch, Watched};
use crate::workers::{self, Workers};

/// Errors starting or reloading the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS on {addr}")]
    Tls {
        addr: SocketAddr,
        #[source]
        source: TlsError,
    },
}

/// Pending connections a listening socket holds (the kernel caps it at
/// `net.core.somaxconn`).
const BACKLOG: i32 = 1024;

/// State every connection reads.
pub(crate) struct Shared {
    config: RwLock<Arc<Compiled>>,
    pub files: FileCache,
    pub metrics: metrics::Registry,
}

impl Shared {
    pub(crate) fn current(&self) -> Arc<Compiled> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

pub(crate) struct Server {
    pub shared: Arc<Shared>,
    workers: Arc<Workers>,
    /// Accept loops by address, one per worker.
    listeners: HashMap<SocketAddr, Vec<JoinHandle<()>>>,
}

/// What a request knows of its connection.
#[derive(Clone, Copy)]
struct Conn {
    listener: SocketAddr,
    local: SocketAddr,
    peer: SocketAddr,
    https: bool,
}

impl Server {
    /// Compiles `settings` and accepts on their addresses on every worker.
    pub(crate) fn start(
        settings: &WebSettings,
        workers: Arc<Workers>,
    ) -> Result<Self, ServerError> {
        let metrics = metrics::Registry::default();
        let compiled = site::compile(settings, &metrics, None)?;
        let shared = Arc::new(Shared {
            config: RwLock::new(Arc::new(compiled)),
            files: FileCache::default(),
            metrics,
        });
        let mut s = Self {
            shared,
            workers,
            listeners: HashMap::new(),
        };
        s.workers.set_limit(connection_limit(&s.shared.current()));
        let opened = s.open_new(&s.shared.current())?;
        s.sync_listeners(opened);
        Ok(s)
    }

    /// Applies new settings. The new listeners are opened first: if one
    /// cannot be, the reload fails with the previous settings untouched.
    pub(crate) fn reload(&mut self, settings: &WebSettings) -> Result<(), ServerError> {
        let old = self.shared.current();
        let compiled = site::compile(settings, &self.shared.metrics, Some(&old))?;
        drop(old);
        let opened = self.open_new(&compiled)?;
        self.workers.set_limit(connection_limit(&compiled));
        *self
            .shared
            .config
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(compiled);
        self.sync_listeners(opened);
        Ok(())
    }

    pub(crate) fn addresses(&self) -> Vec<SocketAddr> {
        self.listeners.keys().copied().collect()
    }

    /// Binds the addresses of `cfg` that have no listener yet.
    fn open_new(&self, cfg: &Compiled) -> Result<Vec<Opened>, ServerError> {
        let mut opened = Vec::new();
        for addr in cfg.routes.keys() {
            if self.listeners.contains_key(addr) {
                continue;
            }
            let bind_err = |source| ServerError::Bind {
                addr: *addr,
                source,
            };
            let std_l = std::net::TcpListener::bind(addr)
                // std listens with a backlog of 128; nginx's is 511. A
                // second listen() only raises it.
                .and_then(|l| {
                    rustix::net::listen(&l, BACKLOG)
                        .map(|()| l)
                        .map_err(Into::into)
                })
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(bind_err)?;
            // One socket, registered with each worker's driver.
            let acceptors = self.workers.acceptors(&std_l).map_err(bind_err)?;
            // Every listener can do TLS: whether it does is read from the
            // settings per connection, so a binding may change scheme on a
            // reload without closing the socket.
            let tls = tls::server_config(self.shared.clone(), *addr).map_err(|source| {
                ServerError::Tls {
                    addr: *addr,
                    source,
                }
            })?;
            opened.push(Opened {
                addr: *addr,
                acceptors,
                tls: tokio_rustls::TlsAcceptor::from(tls),
            });
        }
        Ok(opened)
    }

    /// Starts accepting on `opened` and stops on addresses no longer bound.
    fn sync_listeners(&mut self, opened: Vec<Opened>) {
        let cfg = self.shared.current();
        self.listeners.retain(|addr, task| {
            let keep = cfg.routes.contains_key(addr);
            if !keep {
                task.iter().for_each(JoinHandle::abort);
            }
            keep
        });
        for o in opened {
            let tasks = o
                .acceptors
                .into_iter()
                .zip(self.workers.handles())
                .enumerate()
                .map(|(i, (acc, h))| {
                    let (addr, tls, shared) = (o.addr, o.tls.clone(), self.shared.clone());
                    h.spawn(
                        self.workers
                            .clone()
                            .accept(i, acc, move |s, peer, admitted| {
                                connection(s, peer, admitted, addr, tls.clone(), shared.clone())
                            }),
                    )
                })
                .collect();
            self.listeners.insert(o.addr, tasks);
        }
    }
}

/// A listener bound for new settings, not yet accepting.
struct Opened {
    addr: SocketAddr,
    /// The socket as each worker's driver knows it.
    acceptors: Vec<workers::Acceptor>,
    tls: tokio_rustls::TlsAcceptor,
}

/// `limits.max_connections`, kept below the open-file limit (less room
/// for listeners, logs, app sockets and files) so that a client past it
/// gets the 503 rather than a failed accept.
fn connection_limit(cfg: &Compiled) -> usize {
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let room = files.saturating_sub(FILES_KEPT).max(1);
    if cfg.max_connections > room {
        eprintln!(
            "mote-web: limits.max_connections {} is over what the open-file limit ({files}) \
             leaves; serving at most {room} connections (raise the service's RLIMIT_NOFILE)",
            cfg.max_connections
        );
    }
    cfg.max_connections.min(room)
}

/// Descriptors kept for other things than client connections.
const FILES_KEPT: usize = 128;

/// The answer to a connection past `limits.max_connections`.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
Content-Length: 49\r\nRetry-After: 5\r\nConnection: close\r\n\r\n\
mote-web: too many connections; try again later\n";

/// Refused connections being drained at once, at most: past it they are
/// closed at once, so a flood of them cannot hold descriptors either.
const DRAINING: usize = 256;

/// Refuses a connection past the limit: plain http gets [`BUSY`] (written
/// once, without waiting), https is closed. What the client sent is read
/// off for up to a second so that the close does not reset the answer.
async fn refuse(stream: tokio::net::TcpStream, https: bool) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    static NOW: AtomicUsize = AtomicUsize::new(0);
    struct Draining;
    impl Drop for Draining {
        fn drop(&mut self) {
            NOW.fetch_sub(1, Ordering::Relaxed);
        }
    }
    let mut stream = stream;
    if !https {
        let _ = stream.try_write(BUSY);
    }
    if NOW.fetch_add(1, Ordering::Relaxed) >= DRAINING {
        NOW.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let _draining = Draining;
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 2048];
        for _ in 0..8 {
            if matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Serves one accepted connection of the listener bound to `listener`;
/// one past the connection limit (`admitted` false) is refused.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    admitted: bool,
    listener: SocketAddr,
    tls: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    if !admitted {
        let https = shared.current().routes.get(&listener).map(|r| r.scheme) == Some(Scheme::Https);
        return refuse(stream, https).await;
    }
    let _ = stream.set_nodelay(true);
    // The listener's own address unless it is a wildcard (saves a
    // getsockname per connection).
    let local = if listener.ip().is_unspecified() {
        stream.local_addr().unwrap_or(listener)
    } else {
        listener
    };
    let (https, header_timeout) = {
        let cfg = shared.current();
        let https = cfg.routes.get(&listener).map(|r| r.scheme) == Some(Scheme::Https);
        let t = Timeouts {
            header: cfg.header_timeout,
            send: cfg.send_timeout,
            spent: Duration::ZERO,
        };
        (https, t)
    };
    let conn = Conn {
        listener,
        local,
        peer,
        https,
    };
    // Boxed: hyper's connection state is 2 KB (several times that with
    // TLS), and tokio moves a task's future when it spawns and when it
    // ends; a box is made once and never moves.
    if https {
        let tls = Box::pin(serve_tls(tls, stream, header_timeout, conn, shared));
        tls.await
    } else {
        let plain = Box::pin(serve_plain(stream, header_timeout, conn, shared));
        plain.await
    }
}

async fn serve_tls(
    acc: tokio_rustls::TlsAcceptor,
    stream: tokio::net::TcpStream,
    header_timeout: Timeouts,
    conn: Conn,
    shared: Arc<Shared>,
) {
    let handshake = tokio::time::timeout(std::time::Duration::from_secs(10), acc.accept(stream));
    if let Ok(Ok(s)) = handshake.await {
        let proto = match s.get_ref().1.alpn_protocol() {
            Some(b"h2") => Proto::Http2,
            _ => Proto::Http1,
        };
        serve(TokioIo::new(s), proto, header_timeout, conn, shared).await
    }
}

/// Plain TCP: the first bytes tell HTTP/2 with prior knowledge from
/// HTTP/1 ([`sniff`]); they, and for HTTP/1 the whole first request head,
/// must come within the header timeout from accept.
async fn serve_plain(
    mut stream: tokio::net::TcpStream,
    header_timeout: Timeouts,
    conn: Conn,
    shared: Arc<Shared>,
) {
    let accepted = tokio::time::Instant::now();
    let until = accepted + header_timeout.header;
    if let Some((proto, first)) = sniff::first_bytes(&mut stream, until).await {
        let io = sniff::Prefixed::new(first, TokioIo::new(stream));
        // HTTP/2's first idle time counts from accept too.
        let t = Timeouts {
            spent: accepted.elapsed(),
            ..header_timeout
        };
        serve(io, proto, t, conn, shared).await
    }
}

/// The connection's time limits, read from the settings when it opens.
#[derive(Clone, Copy)]
struct Timeouts {
    /// `limits.header_timeout_secs`: a request head, an idle connection.
    header: Duration,
    /// `limits.send_timeout_secs`: an answer without progress.
    send: Duration,
    /// Of the header timeout, what the connection spent before hyper got
    /// it (the protocol sniff).
    spent: Duration,
}

/// Streams an HTTP/2 connection may have open at once (nginx: 128).
const H2_MAX_STREAMS: u32 = 100;
/// What an HTTP/2 client may send ahead on a stream and on the whole
/// connection (request bodies not yet read).
const H2_STREAM_WINDOW: u32 = 256 * 1024;
const H2_CONN_WINDOW: u32 = 1024 * 1024;
/// Answer bytes buffered per HTTP/2 stream, waiting for the client's
/// window or the socket.
const H2_SEND_BUFFER: usize = 16 * 1024;
/// After a GOAWAY for idleness, how long the client has to answer its
/// PING (hyper waits for it, in case a request crossed the GOAWAY) and
/// close, before the connection is dropped.
const H2_GOODBYE: Duration = Duration::from_secs(1);

async fn serve<I>(io: I, proto: Proto, t: Timeouts, conn: Conn, shared: Arc<Shared>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    match proto {
        Proto::Http1 => {
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req, conn, None).await) }
            });
            let io = Watched::new(io, t.send, None);
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(t.header)
                // The head the sniff reads at most: a larger one is 431.
                .max_buf_size(sniff::MAX_HEAD)
                .serve_connection(io, svc)
                .with_upgrades()
                .await;
        }
        Proto::Http2 => {
            let watch = Arc::new(ConnWatch::default());
            let w = watch.clone();
            let svc = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                // Counted from here, so a stream reset mid-answer is let go.
                let stream = w.stream();
                async move { Ok::<_, Infallible>(handle(&shared, req, conn, Some(stream)).await) }
            });
            let io = Watched::new(io, t.send, Some(watch.clone()));
            let c = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_concurrent_streams(H2_MAX_STREAMS)
                .initial_stream_window_size(H2_STREAM_WINDOW)
                .initial_connection_window_size(H2_CONN_WINDOW)
                .max_send_buf_size(H2_SEND_BUFFER)
                // A PING after a header timeout without a frame from the
                // client, answered within the send timeout, or the
                // connection is closed: finds peers that are gone while
                // their streams wait on an app.
                .keep_alive_interval(t.header)
                .keep_alive_timeout(t.send)
                .serve_connection(io, svc);
            let mut c = std::pin::pin!(c);
            let verdict = tokio::select! {
                _ = c.as_mut() => return,
                v = watch::h2_watchdog(&watch, t.header, t.spent, t.send) => v,
            };
            if verdict == watch::Verdict::Idle {
                // GOAWAY; the client has a moment to close.
                c.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(H2_GOODBYE, c).await;
            }
        }
    }
}

fn plain(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::bytes(site::default_page(status)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    r
}

async fn handle(
    shared: &Shared,
    req: Request<Incoming>,
    conn: Conn,
    stream: Option<watch::Stream>,
) -> Response<Tracked> {
    let start = Instant::now();
    let Ok(host) = host::of(req.version(), req.uri(), req.headers()) else {
        let mut r = plain(StatusCode::BAD_REQUEST);
        if req.version() != hyper::Version::HTTP_2 {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        return r.map(|body| Tracked {
            body,
            done: None,
            stream,
        });
    };
    let cfg = shared.current();
    let Some(site) = cfg.route(&conn.listener, host).cloned() else {
        return plain(StatusCode::NOT_FOUND).map(|body| Tracked {
            body,
            done: None,
            stream,
        });
    };
    drop(cfg);
    // What the log needs, kept before the request is consumed.
    let logged = site.log.is_some().then(|| {
        let h = req.headers();
        Box::new(Logged {
            method: req.method().clone(),
            uri: req.uri().clone(),
            user_agent: h.get(header::USER_AGENT).cloned(),
            referer: h.get(header::REFERER).cloned(),
            user: None,
            substatus: 0,
            conn,
        })
    });
    let (mut resp, substatus, user) = pipeline(shared, &site, req, conn).await;
    if conn.https {
        if let Some(h) = &site.hsts {
            resp.headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, h.clone());
        }
    }
    let status = resp.status().as_u16();
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| hyper::body::Body::size_hint(resp.body()).lower());
    let logged = logged.map(|mut l| {
        l.user = user;
        l.substatus = substatus;
        l
    });
    resp.map(|body| Tracked {
        body,
        stream,
        done: Some(Done {
            site,
            start,
            status,
            bytes,
            logged,
        }),
    })
}

/// A response body that records its request (metrics, log line) when
/// hyper is done with it: after the last byte was handed to the
/// connection, or when the client went away. So `time-taken` and the
/// latency histogram cover the whole body, as IIS's do.
pub(crate) struct Tracked {
    body: Body,
    done: Option<Done>,
    /// HTTP/2: the stream as its connection's watchdog counts it.
    stream: Option<watch::Stream>,
}

struct Done {
    site: Arc<Site>,
    start: Instant,
    status: u16,
    bytes: u64,
    /// Boxed: only sites with a log pay for it.
    logged: Option<Box<Logged>>,
}

struct Logged {
    method: hyper::Method,
    uri: hyper::Uri,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
    user: Option<String>,
    substatus: u16,
    conn: Conn,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let Some(d) = self.done.take() else {
            return;
        };
        let took = d.start.elapsed();
        d.site.metrics.record(d.status, d.bytes, took);
        if let (Some(log), Some(l)) = (&d.site.log, d.logged) {
            let line = Entry {
                s_ip: l.conn.local.ip(),
                method: l.method.as_str(),
                stem: l.uri.path(),
                query: l.uri.query(),
                s_port: l.conn.local.port(),
                user: l.user.as_deref(),
                c_ip: l.conn.peer.ip(),
                user_agent: l.user_agent.as_ref().and_then(|v| v.to_str().ok()),
                referer: l.referer.as_ref().and_then(|v| v.to_str().ok()),
                status: d.status,
                substatus: l.substatus,
                time_taken_ms: took.as_millis(),
            }
            .format();
            log.log(line);
        }
    }
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let Some(stream) = &mut this.stream else {
            return std::pin::Pin::new(&mut this.body).poll_frame(cx);
        };
        stream.polled();
        let frame = std::pin::Pin::new(&mut this.body).poll_frame(cx);
        if matches!(frame, std::task::Poll::Ready(Some(Ok(_)))) && !this.body.is_end_stream() {
            stream.handed();
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// Longest-prefix match on whole segments.
fn under(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix)
        && (prefix.ends_with('/')
            || path.len() == prefix.len()
            || path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

async fn pipeline(
    shared: &Shared,
    site: &Arc<Site>,
    req: Request<Incoming>,
    conn: Conn,
) -> (Response<Body>, u16, Option<String>) {
    if !site.ip_allowed(conn.peer.ip()) {
        return (site.error(StatusCode::FORBIDDEN), 6, None);
    }
    let (parts, body) = req.into_parts();
    let path = match site.filter.check(&parts) {
        Ok(p) => p,
        Err(r) => return (site.error(r.status), r.substatus, None),
    };
    let query = parts.uri.query();
    if let (false, Some(port)) = (conn.https, site.https_redirect) {
        // Checked by `handle` already.
        let host = host::of(parts.version, &parts.uri, &parts.headers)
            .ok()
            .flatten()
            .unwrap_or("localhost");
        let name = if host.starts_with('[') {
            host.find(']').map_or(host, |e| &host[..=e])
        } else {
            host.split(':').next().unwrap_or(host)
        };
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let loc = if port == 443 {
            format!("https://{name}{pq}")
        } else {
            format!("https://{name}:{port}{pq}")
        };
        return (
            static_files::redirect(StatusCode::MOVED_PERMANENTLY, &loc),
            0,
            None,
        );
    }
    for r in &site.redirects {
        if under(&path, &r.from) {
            return (redirect_rule(r, &path, query), 0, None);
        }
    }
    let mut user = None;
    if let Some(rule) = site
        .auth
        .iter()
        .filter(|a| under(&path, &a.path))
        .max_by_key(|a| a.path.len())
    {
        // Boxed, like the two handlers below: hyper moves the request's
        // future into place, and inline these made it 4 KB per request.
        // Made in a statement of its own: a temporary lives to the end of
        // its statement, so in `Box::pin(f).await` the unboxed `f` would
        // still take room in this future.
        let checked = Box::pin(authenticate(rule, parts.headers.get(header::AUTHORIZATION)));
        match checked.await {
            Some(u) => user = Some(u),
            None => {
                let mut r = site.error(StatusCode::UNAUTHORIZED);
                r.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, rule.challenge.clone());
                return (r, 2, None);
            }
        }
    }
    if let Some(app) = site
        .apps
        .iter()
        .filter(|a| under(&path, &a.config.path))
        .max_by_key(|a| a.config.path.len())
    {
        // The app sees the path the rules matched, however it was spelled.
        let target = match &path {
            Cow::Borrowed(_) => None,
            Cow::Owned(p) => {
                let mut t = crate::path::encode(p).into_owned();
                if let Some(q) = query {
                    t.push('?');
                    t.push_str(q);
                }
                // Fails closed: never the raw spelling instead.
                match hyper::Uri::try_from(t) {
                    Ok(u) => Some(u),
                    Err(_) => return (site.error(StatusCode::BAD_REQUEST), 11, None),
                }
            }
        };
        drop(path);
        let req = Request::from_parts(parts, body);
        let max_body = site.filter.max_body();
        let proxied = Box::pin(app.proxy(req, target, conn.peer.ip(), conn.https, max_body));
        return (proxied.await, 0, user);
    }
    drop(body);
    let served = Box::pin(static_files::serve(
        site,
        &shared.files,
        &parts.method,
        &parts.headers,
        &path,
        query,
        if parts.version == hyper::Version::HTTP_2 {
            crate::body::H2_CHUNK
        } else {
            crate::body::CHUNK
        },
    ));
    let resp = served.await;
    (resp, 0, user)
}

/// The answer of redirect rule `r` to the canonical `path`. With
/// `keep_path`, what follows `from` in the path (percent-encoded again) and
/// the query are appended to `to`; the path part never makes the
/// `Location` start with `//`.
fn redirect_rule(r: &crate::config::Redirect, path: &str, query: Option<&str>) -> Response<Body> {
    let mut loc = r.to.clone();
    if r.keep_path {
        // `path` is canonical and under `from`: the rest is empty or
        // starts with one '/'.
        let rest = path.get(r.from.len()..).unwrap_or("");
        let rest = crate::path::encode(rest);
        if loc.ends_with('/') {
            loc.push_str(rest.strip_prefix('/').unwrap_or(&rest));
        } else {
            loc.push_str(&rest);
        }
        if let Some(q) = query {
            loc.push('?');
            loc.push_str(q);
        }
    }
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND);
    static_files::redirect(status, &loc)
}

/// The user name when the `Authorization` header holds a valid Basic
/// credential for `rule`. Argon2 runs on a blocking thread; successes are
/// cached for [`AUTH_CACHE`].
async fn authenticate(rule: &site::AuthRule, h: Option<&HeaderValue>) -> Option<String> {
    let value = h?.to_str().ok()?;
    let b64 = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?
        .trim();
    let decoded = String::from_utf8(base64_decode(b64)?).ok()?;
    let (name, password) = decoded.split_once(':')?;
    let phc = rule.users.get(name)?.clone();
    {
        let v = rule.verified.lock().unwrap_or_else(|e| e.into_inner());
        if v.get(value).is_some_and(|t| t.elapsed() < AUTH_CACHE) {
            return Some(name.to_owned());
        }
    }
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || mote_config::password::verify(&phc, &password))
        .await
        .unwrap_or(false);
    if !ok {
        return None;
    }
    let mut v = rule.verified.lock().unwrap_or_else(|e| e.into_inner());
    if v.len() > 1000 {
        v.clear();
    }
    v.insert(value.to_owned(), Instant::now());
    Some(name.to_owned())
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b64_and_prefix() {
        assert_eq!(
            base64_decode("YWxhZGRpbjpvcGVuc2VzYW1l").unwrap(),
            b"aladdin:opensesame"
        );
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert!(under("/a/b", "/a"));
        assert!(under("/a", "/a"));
        assert!(!under("/ab", "/a"));
        assert!(under("/x", "/"));
    }
}

//! The accept loop and what bounds it: connection caps per source and in
//! total, the TLS handshake and header timeouts, the head buffer, and the
//! count of requests being answered (for a graceful end on SIGTERM).
//!
//! An answer given before the request's body was read to its end (a 401
//! before the body, a 413 on `Content-Length`, a refused query) carries
//! `Connection: close`, and the connection ends after it: the unread rest
//! of the body would otherwise be taken for the next request, and hyper,
//! which gives up such a connection, does not say so itself.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{header, HeaderValue};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower_service::Service;

use crate::{api, auth};

/// Bounds on what clients can make moted do (issue 17); the defaults are
/// the node's and `docs/api.md` names them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Password checks at once (`0`: from the node's memory, see
    /// [`auth::password::pool_size`]).
    pub login_checks: usize,
    /// While a user is under attack, one check from a clean source per
    /// this long.
    pub login_lane: Duration,
    /// A TLS handshake must end within this.
    pub tls_handshake: Duration,
    /// A request's header must arrive within this; also how long a
    /// keep-alive connection may idle between requests.
    pub header_read: Duration,
    /// Connections at once, in total.
    pub connections: usize,
    /// Connections at once from one source address.
    pub connections_per_source: usize,
    /// `audit.jsonl` is rotated past this size.
    pub audit_max_bytes: u64,
    /// Audit files kept (the live one and its rotated predecessors).
    pub audit_files: usize,
    /// Unauthenticated refusals written: one per source per this long.
    pub refusal_window: Duration,
    /// Settings versions the history keeps.
    pub history_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            login_checks: 0,
            login_lane: Duration::from_secs(1),
            tls_handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            connections: 256,
            connections_per_source: 32,
            audit_max_bytes: 1 << 20,
            audit_files: 2,
            refusal_window: Duration::from_secs(60),
            history_depth: mote_api::store::HISTORY_DEPTH,
        }
    }
}

/// One request being answered, counted in [`Running::in_flight`].
pub(crate) struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A request body that notes when it has been read to its end.
struct Tracked {
    inner: Incoming,
    ended: Arc<AtomicBool>,
}

impl Tracked {
    /// `body`, and the flag that is set once it has been read to its end
    /// (at once for a request without a body).
    fn new(body: Incoming) -> (Self, Arc<AtomicBool>) {
        let ended = Arc::new(AtomicBool::new(body.is_end_stream()));
        let tracked = Self {
            inner: body,
            ended: ended.clone(),
        };
        (tracked, ended)
    }
}

impl Body for Tracked {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.ended.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The most a connection buffers while reading a request head (hyper's
/// default is ~400 KiB): 256 connections hold at most 16 MiB of heads.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Connections open now, in total and by source address.
#[derive(Default)]
struct Open {
    total: usize,
    by_source: std::collections::HashMap<std::net::IpAddr, usize>,
}

/// One connection's place among the open ones, given back on drop.
struct Slot {
    open: Arc<Mutex<Open>>,
    ip: std::net::IpAddr,
}

impl Slot {
    /// A place for a connection from `ip`, unless a cap is reached.
    fn take(open: &Arc<Mutex<Open>>, ip: std::net::IpAddr, limits: &Limits) -> Option<Self> {
        let mut o = open.lock().ok()?;
        let mine = o.by_source.get(&ip).copied().unwrap_or(0);
        if o.total >= limits.connections || mine >= limits.connections_per_source {
            return None;
        }
        o.total += 1;
        o.by_source.insert(ip, mine + 1);
        Some(Self {
            open: open.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let last = match self.open.lock() {
            Ok(mut o) => {
                o.total = o.total.saturating_sub(1);
                if let Some(n) = o.by_source.get_mut(&self.ip) {
                    *n -= 1;
                    if *n == 0 {
                        o.by_source.remove(&self.ip);
                    }
                }
                o.total == 0
            }
            Err(_) => false,
        };
        if last {
            // The last connection of a burst: hand the heap's free memory
            // back (glibc keeps freed TLS buffers in its arenas otherwise;
            // measured in tests/login_flood.rs).
            // SAFETY: malloc_trim only releases free heap pages.
            unsafe {
                libc::malloc_trim(0);
            }
        }
    }
}

/// The accept loop: a connection over a cap is closed at once; a TLS
/// handshake has [`Limits::tls_handshake`], a request header (and an idle
/// keep-alive connection) [`Limits::header_read`].
pub(crate) async fn serve(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
    limits: Limits,
    in_flight: Arc<AtomicUsize>,
) {
    let open = Arc::new(Mutex::new(Open::default()));
    let mut refused_at: Option<std::time::Instant> = None;
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let source = auth::throttle::source_of(peer.ip());
        let Some(slot) = Slot::take(&open, source, &limits) else {
            if refused_at.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                tracing::warn!(%peer, "connection refused: too many open (logged once a minute)");
                refused_at = Some(std::time::Instant::now());
            }
            drop(tcp);
            continue;
        };
        // Small request/response exchanges: without this, Nagle's
        // algorithm meets the peer's delayed ACK and every call waits
        // ~40 ms (measured in bench/management).
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let limits = limits.clone();
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(Ok(tls)) =
                tokio::time::timeout(limits.tls_handshake, acceptor.accept(tcp)).await
            else {
                return;
            };
            let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let (parts, body) = req.into_parts();
                let (body, ended) = Tracked::new(body);
                let mut req = hyper::Request::from_parts(parts, axum::body::Body::new(body));
                req.extensions_mut().insert(api::Peer(peer));
                let counted = InFlight::enter(&in_flight);
                let answer = router.clone().call(req);
                async move {
                    let mut r = answer.await;
                    drop(counted);
                    // Answered before the body was read: say that the
                    // connection ends (the header makes hyper end it).
                    if let Ok(resp) = &mut r {
                        if !ended.load(Ordering::Relaxed) {
                            resp.headers_mut()
                                .insert(header::CONNECTION, HeaderValue::from_static("close"));
                        }
                    }
                    r
                }
            });
            let mut builder =
                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .max_buf_size(MAX_HEADER_BYTES);
            let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
        });
    }
}

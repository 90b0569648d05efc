//! Bounds on how long a connection may hold the server without progress:
//! the send timeout (both protocols) and HTTP/2's idle timeout.
//!
//! - [`Watched`] wraps a connection's I/O. When a write or flush cannot
//!   proceed (the client reads nothing, the socket is full), it arms a
//!   timer of `send_timeout`; any progress disarms it; if it fires, the
//!   write fails with `TimedOut` and hyper drops the connection. Nothing
//!   is done while writes go through: the timer is made on the first
//!   stall and only re-armed after that.
//! - An HTTP/2 client can also stall an answer without filling the socket:
//!   by never opening the stream's flow-control window. hyper then simply
//!   stops asking the body for data. [`Stream`] counts, per connection,
//!   the answers that handed hyper data and wait to be asked again
//!   (`blocked`), and [`ConnWatch`] counts the bytes written; the
//!   connection's watchdog ([`h2_watchdog`]) closes it when answers are
//!   blocked and nothing was written for `send_timeout`.
//! - HTTP/2 idle: the watchdog also shuts down (GOAWAY) a connection
//!   without open streams and without new ones for the header timeout, as
//!   hyper's header timer does for an idle HTTP/1 connection.
//!
//! An answer waiting on its own source (an app still thinking, a stream of
//! events) is not blocked: only a client that does not take what is ready
//! counts against it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// What the watchdog of an HTTP/2 connection reads.
#[derive(Default)]
pub(crate) struct ConnWatch {
    /// Streams whose request is being handled or answered.
    active: AtomicUsize,
    /// Streams ever started (tells a quiet tick from a busy one).
    started: AtomicU64,
    /// Answers that handed data to hyper and were not asked again.
    blocked: AtomicUsize,
    /// Bytes written to the connection.
    written: AtomicU64,
}

impl ConnWatch {
    /// Counts a stream until the guard drops.
    pub(crate) fn stream(self: &Arc<Self>) -> Stream {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        Stream {
            watch: self.clone(),
            handed: false,
        }
    }
}

/// One HTTP/2 stream of a watched connection.
pub(crate) struct Stream {
    watch: Arc<ConnWatch>,
    /// Data was handed to hyper and the body was not polled since.
    handed: bool,
}

impl Stream {
    /// The body is being polled again: it is not waiting on the client.
    pub(crate) fn polled(&mut self) {
        if self.handed {
            self.handed = false;
            self.watch.blocked.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The body gave hyper a frame and has more to come.
    pub(crate) fn handed(&mut self) {
        if !self.handed {
            self.handed = true;
            self.watch.blocked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.polled();
        self.watch.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs beside an HTTP/2 connection until it returns: Idle when the
/// connection was idle for `idle` (`spent` of it before the connection
/// came here: the wait for the preface), Stalled when its answers were
/// blocked on the client with nothing written for `send`.
pub(crate) async fn h2_watchdog(
    watch: &ConnWatch,
    idle: Duration,
    spent: Duration,
    send: Duration,
) -> Verdict {
    let tick = (idle.min(send) / 4).max(Duration::from_millis(50));
    let mut timer = tokio::time::interval_at(Instant::now() + tick, tick);
    let (mut idle_for, mut stalled_for) = (spent, Duration::ZERO);
    let (mut started, mut written) = (u64::MAX, u64::MAX);
    loop {
        timer.tick().await;
        let s = watch.started.load(Ordering::Relaxed);
        let w = watch.written.load(Ordering::Relaxed);
        if watch.active.load(Ordering::Relaxed) == 0 && (s == started || started == u64::MAX) {
            idle_for += tick;
        } else {
            idle_for = Duration::ZERO;
        }
        if watch.blocked.load(Ordering::Relaxed) > 0 && w == written {
            stalled_for += tick;
        } else {
            stalled_for = Duration::ZERO;
        }
        (started, written) = (s, w);
        if stalled_for >= send {
            return Verdict::Stalled;
        }
        if idle_for >= idle {
            return Verdict::Idle;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Idle,
    Stalled,
}

/// A connection's I/O with the send timeout (see the module docs).
pub(crate) struct Watched<I> {
    io: I,
    timeout: Duration,
    /// Made on the first stall, re-armed on later ones.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    /// HTTP/2 connections count the bytes written for their watchdog.
    watch: Option<Arc<ConnWatch>>,
}

impl<I> Watched<I> {
    pub(crate) fn new(io: I, timeout: Duration, watch: Option<Arc<ConnWatch>>) -> Self {
        Self {
            io,
            timeout,
            timer: None,
            armed: false,
            watch,
        }
    }

    /// A write or flush could not proceed: Err once that lasted the
    /// timeout.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let deadline = Instant::now() + self.timeout;
        let timer = match &mut self.timer {
            Some(t) => {
                if !self.armed {
                    t.as_mut().reset(deadline);
                }
                t
            }
            None => self
                .timer
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.armed = true;
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing for the send timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress(&mut self, n: usize) {
        self.armed = false;
        if let (Some(w), true) = (&self.watch, n > 0) {
            w.written.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

impl<I: hyper::rt::Read + Unpin> hyper::rt::Read for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: hyper::rt::Write + Unpin> hyper::rt::Write for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.progress(n);
                Poll::Ready(Ok(n))
            }
            Poll::Pending => this.stalled(cx).map(|r| r.map(|()| 0)),
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                this.progress(0);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => this.stalled(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                this.progress(n);
                Poll::Ready(Ok(n))
            }
            Poll::Pending => this.stalled(cx).map(|r| r.map(|()| 0)),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn a_write_that_cannot_proceed_fails_after_the_send_timeout() {
        use hyper_util::rt::TokioIo;
        // The peer never reads: writes stop once the pipe is full.
        let (_peer, ours) = tokio::io::duplex(1024);
        let mut io = TokioIo::new(Watched::new(TokioIo::new(ours), 300 * MS, None));
        let t = Instant::now();
        let chunk = [0u8; 256];
        let err = loop {
            match tokio::io::AsyncWriteExt::write(&mut io, &chunk).await {
                Ok(_) => assert!(t.elapsed() < 5000 * MS, "never stalled"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let took = t.elapsed();
        assert!(took >= 300 * MS && took < 3000 * MS, "{took:?}");
    }

    #[tokio::test]
    async fn writes_that_proceed_never_time_out() {
        use hyper_util::rt::TokioIo;
        use tokio::io::AsyncReadExt;
        let (mut peer, ours) = tokio::io::duplex(1024);
        let w = Arc::new(ConnWatch::default());
        let mut io = TokioIo::new(Watched::new(TokioIo::new(ours), 200 * MS, Some(w.clone())));
        // A slow reader: each stall is shorter than the timeout.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut got = 0;
            while got < 8 * 1024 {
                tokio::time::sleep(50 * MS).await;
                got += peer.read(&mut buf).await.unwrap();
            }
            got
        });
        for _ in 0..32 {
            tokio::io::AsyncWriteExt::write_all(&mut io, &[1u8; 256])
                .await
                .unwrap();
        }
        assert_eq!(reader.await.unwrap(), 8 * 1024);
        assert_eq!(w.written.load(Ordering::Relaxed), 8 * 1024);
    }

    #[tokio::test]
    async fn an_idle_h2_connection_is_let_go_after_the_idle_time() {
        let w = ConnWatch::default();
        let t = Instant::now();
        let v = h2_watchdog(&w, 400 * MS, Duration::ZERO, 60_000 * MS).await;
        assert_eq!(v, Verdict::Idle);
        let took = t.elapsed();
        assert!(took >= 400 * MS && took <= 2000 * MS, "{took:?}");
    }

    #[tokio::test]
    async fn a_busy_connection_is_not_idle_and_a_blocked_one_is_stalled() {
        let w = Arc::new(ConnWatch::default());
        let mut s = w.stream();
        // Open but not blocked (waiting on its app): neither verdict.
        let quiet = tokio::time::timeout(
            600 * MS,
            h2_watchdog(&w, 200 * MS, Duration::ZERO, 200 * MS),
        );
        assert!(quiet.await.is_err());
        s.handed();
        let t = Instant::now();
        let v = h2_watchdog(&w, 30_000 * MS, Duration::ZERO, 400 * MS).await;
        assert_eq!(v, Verdict::Stalled);
        assert!(t.elapsed() <= 2000 * MS, "{:?}", t.elapsed());
        s.polled();
        drop(s);
        assert_eq!(w.blocked.load(Ordering::Relaxed), 0);
        assert_eq!(w.active.load(Ordering::Relaxed), 0);
    }
}

//! The one response (and proxied request) body type: in-memory bytes, a
//! file streamed in chunks, or a backend's body passed through.
//!
//! An enum rather than a boxed trait object: no allocation per response and
//! an exact size hint, so hyper writes `Content-Length` itself.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use tokio::io::{AsyncRead, ReadBuf};

use crate::app::Slot;

/// Chunk size for streamed files.
const CHUNK: usize = 128 * 1024;

pub(crate) enum Body {
    Full(Option<Bytes>),
    File(FileBody),
    /// A backend's response; its connection goes back to the pool when
    /// the body has been read to the end.
    Proxied(ProxiedBody),
    /// A proxied request body counted against the site's limit: a chunked
    /// upload has no Content-Length for the filter to check up front.
    Limited(LimitedBody),
}

pub(crate) struct LimitedBody {
    inner: Incoming,
    remaining: u64,
    over: Arc<AtomicBool>,
}

pub(crate) struct ProxiedBody {
    inner: Incoming,
    /// Where the connection returns after a complete body.
    home: Option<(SendRequest<Body>, Arc<Slot>)>,
    done: bool,
}

impl Drop for ProxiedBody {
    fn drop(&mut self) {
        // A body that was not read to the end leaves the connection
        // mid-response: it is dropped (closed) rather than pooled.
        if self.done || self.inner.is_end_stream() {
            if let Some((conn, slot)) = self.home.take() {
                slot.put(conn);
            }
        }
    }
}

pub(crate) struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl Body {
    pub(crate) fn empty() -> Self {
        Body::Full(None)
    }

    pub(crate) fn bytes(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        if b.is_empty() {
            Body::Full(None)
        } else {
            Body::Full(Some(b))
        }
    }

    /// `inner`, failing once more than `limit` bytes have come, and then
    /// setting `over` so the caller can answer 413.
    pub(crate) fn limited(inner: Incoming, limit: u64, over: Arc<AtomicBool>) -> Self {
        Body::Limited(LimitedBody {
            inner,
            remaining: limit,
            over,
        })
    }

    /// A backend response whose connection `conn` returns to `slot`'s
    /// idle list once the body has been read to the end.
    pub(crate) fn proxied(inner: Incoming, conn: SendRequest<Body>, slot: Arc<Slot>) -> Self {
        Body::Proxied(ProxiedBody {
            inner,
            home: Some((conn, slot)),
            done: false,
        })
    }

    /// `file` positioned at the first byte to send; `len` bytes are sent.
    pub(crate) fn file(file: tokio::fs::File, len: u64) -> Self {
        Body::File(FileBody {
            file,
            remaining: len,
            buf: BytesMut::new(),
        })
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Proxied(p) => {
                let frame = ready!(Pin::new(&mut p.inner).poll_frame(cx));
                if frame.is_none() {
                    p.done = true;
                }
                Poll::Ready(frame.map(|f| f.map_err(io::Error::other)))
            }
            Body::Limited(l) => {
                let frame = ready!(Pin::new(&mut l.inner).poll_frame(cx))
                    .map(|f| f.map_err(io::Error::other));
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                    let len = data.map_or(0, |d| d.len() as u64);
                    if len > l.remaining {
                        l.over.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(io::Error::other(
                            "request body over the site's limit",
                        ))));
                    }
                    l.remaining -= len;
                }
                Poll::Ready(frame)
            }
            Body::File(f) => {
                if f.remaining == 0 {
                    return Poll::Ready(None);
                }
                let want = f.remaining.min(CHUNK as u64) as usize;
                if f.buf.len() < want {
                    f.buf.resize(want, 0);
                }
                let mut rb = ReadBuf::new(&mut f.buf[..want]);
                ready!(Pin::new(&mut f.file).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    ))));
                }
                f.remaining -= n as u64;
                let chunk = f.buf.split_to(n).freeze();
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.is_none(),
            Body::File(f) => f.remaining == 0,
            Body::Proxied(p) => p.done || p.inner.is_end_stream(),
            Body::Limited(l) => l.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::File(f) => SizeHint::with_exact(f.remaining),
            Body::Proxied(p) => p.inner.size_hint(),
            Body::Limited(l) => l.inner.size_hint(),
        }
    }
}

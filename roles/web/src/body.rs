//! The one response body type: in-memory bytes, a
//! file streamed in chunks, or a backend's body passed through.
//!
//! An enum rather than a boxed trait object: no allocation per response and
//! an exact size hint, so hyper writes `Content-Length` itself.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

use crate::backend::BackendBody;

/// Chunk size for streamed files.
const CHUNK: usize = 128 * 1024;

pub(crate) enum Body {
    Full(Option<Bytes>),
    // Boxed: the variants are large and responses are moved around.
    File(Box<FileBody>),
    /// An app backend's answer, streamed (see `backend`).
    Backend(Box<BackendBody>),
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

    /// `file` positioned at the first byte to send; `len` bytes are sent.
    pub(crate) fn file(file: tokio::fs::File, len: u64) -> Self {
        Body::File(Box::new(FileBody {
            file,
            remaining: len,
            buf: BytesMut::new(),
        }))
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
            Body::Backend(b) => b.poll_frame(cx),
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
            Body::Backend(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::File(f) => SizeHint::with_exact(f.remaining),
            Body::Backend(b) => b.size_hint(),
        }
    }
}

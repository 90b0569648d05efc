//! The one response body type: in-memory bytes, a
//! file streamed in chunks, or a backend's body passed through.
//!
//! An enum rather than a boxed trait object: no allocation per response and
//! an exact size hint, so hyper writes `Content-Length` itself.
//!
//! Files are read on the worker thread, one chunk each time hyper asks for
//! more (`pread`, from the page cache in the usual case, as nginx reads
//! without `aio`): no thread per stream, and at most one chunk per answer
//! waiting in memory. HTTP/2 answers use smaller chunks, as a client may
//! hold many streams open at once.

use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::body::{Frame, SizeHint};

use crate::backend::BackendBody;

/// Chunk size for files streamed over HTTP/1.
pub(crate) const CHUNK: usize = 64 * 1024;
/// Chunk size for files streamed over HTTP/2 (one frame of the default
/// size).
pub(crate) const H2_CHUNK: usize = 16 * 1024;

pub(crate) enum Body {
    Full(Option<Bytes>),
    // Boxed: the variants are large and responses are moved around.
    File(Box<FileBody>),
    /// An app backend's answer, streamed (see `backend`).
    Backend(Box<BackendBody>),
}

pub(crate) struct FileBody {
    file: std::fs::File,
    /// Where the next chunk is read.
    offset: u64,
    remaining: u64,
    chunk: usize,
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

    /// `len` bytes of `file` from `offset`, read `chunk` bytes at a time.
    pub(crate) fn file(file: std::fs::File, offset: u64, len: u64, chunk: usize) -> Self {
        Body::File(Box::new(FileBody {
            file,
            offset,
            remaining: len,
            chunk,
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
                let want = f.remaining.min(f.chunk as u64) as usize;
                // Reuses the last chunk's memory once hyper let go of it.
                f.buf.clear();
                f.buf.resize(want, 0);
                let n = match f.file.read_at(&mut f.buf[..want], f.offset) {
                    Ok(0) => {
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "file shrank while being sent",
                        ))))
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                };
                if n == 0 {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                f.offset += n as u64;
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

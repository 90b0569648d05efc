//! Which HTTP a plain-TCP connection speaks: HTTP/2 with prior knowledge
//! starts with the client preface, anything else is HTTP/1.
//!
//! Job: read the connection's first bytes (one read, as the request head
//! usually arrives whole), tell the protocol from them, and hand them back
//! to hyper ahead of the socket ([`Prefixed`]). TLS connections don't come
//! here: ALPN names their protocol.
//!
//! One header timeout: for HTTP/1 it goes on reading until the first
//! request head is complete (at most [`MAX_HEAD`] bytes), all within the
//! deadline set at accept. hyper's own header timer then only ever sees
//! that head whole, so a client that sends its first byte late and then
//! drips is cut at the one deadline, not at twice the timeout. (hyper's
//! timer goes on covering later requests on the connection.)
//!
//! Why not hyper-util's auto builder: it reads the first 24 bytes alone and
//! the rest in a second read, a system call more on every connection, and
//! its wrapper sits on every later read and poll.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncReadExt;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The first read's buffer: a request head of a usual size.
const FIRST_READ: usize = 2048;
/// Largest HTTP/1 request head read here; hyper is set to refuse a larger
/// one (431) as well.
pub(crate) const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Http1,
    Http2,
}

/// Reads until the protocol is known and, for HTTP/1, the first request
/// head is complete (or [`MAX_HEAD`] bytes came), by `deadline` at the
/// latest: the protocol and the bytes read. None when the client closed
/// or was not done in time.
pub(crate) async fn first_bytes<S>(
    s: &mut S,
    deadline: tokio::time::Instant,
) -> Option<(Proto, Bytes)>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(FIRST_READ);
    // Where the search for the head's end starts.
    let mut scanned = 0;
    loop {
        match tokio::time::timeout_at(deadline, s.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(_)) => {}
        }
        let n = buf.len().min(H2_PREFACE.len());
        if buf[..n] != H2_PREFACE[..n] {
            if head_ends(&buf, scanned) || buf.len() >= MAX_HEAD {
                return Some((Proto::Http1, buf.freeze()));
            }
            scanned = buf.len().saturating_sub(2);
            if buf.capacity() == buf.len() {
                buf.reserve(buf.len().min(MAX_HEAD - buf.len()));
            }
            continue;
        }
        if n == H2_PREFACE.len() {
            return Some((Proto::Http2, buf.freeze()));
        }
    }
}

/// Whether `b` holds the end of a request head (an empty line: `\n\n`
/// or `\n\r\n`), looking from `from` on.
fn head_ends(b: &[u8], from: usize) -> bool {
    let mut i = from;
    while let Some(p) = b.get(i..).and_then(|r| r.iter().position(|&c| c == b'\n')) {
        let at = i + p;
        match (b.get(at + 1), b.get(at + 2)) {
            (Some(b'\n'), _) | (Some(b'\r'), Some(b'\n')) => return true,
            _ => i = at + 1,
        }
    }
    false
}

/// An I/O whose reads give `prefix` first.
pub(crate) struct Prefixed<I> {
    prefix: Bytes,
    io: I,
}

impl<I> Prefixed<I> {
    pub(crate) fn new(prefix: Bytes, io: I) -> Self {
        Self { prefix, io }
    }
}

impl<I: hyper::rt::Read + Unpin> hyper::rt::Read for Prefixed<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<I: hyper::rt::Write + Unpin> hyper::rt::Write for Prefixed<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
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
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn soon() -> tokio::time::Instant {
        tokio::time::Instant::now() + std::time::Duration::from_secs(5)
    }

    #[tokio::test]
    async fn http1_is_known_from_the_first_byte_and_its_bytes_are_kept() {
        let (mut c, mut s) = tokio::io::duplex(4096);
        c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (p, b) = first_bytes(&mut s, soon()).await.unwrap();
        assert_eq!(p, Proto::Http1);
        assert_eq!(&b[..], b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    }

    #[tokio::test]
    async fn an_http1_head_in_pieces_is_read_whole_within_the_deadline() {
        let (mut c, mut s) = tokio::io::duplex(4096);
        let task = tokio::spawn(async move {
            for part in [&b"GET / HTTP/1.1\r"[..], b"\nHost: a\r\n", b"\r", b"\nrest"] {
                c.write_all(part).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            c
        });
        let (p, b) = first_bytes(&mut s, soon()).await.unwrap();
        assert_eq!(p, Proto::Http1);
        assert!(b.starts_with(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), "{b:?}");
        let _c = task.await.unwrap();
        // A head that never ends is dropped at the deadline.
        let (mut c, mut s) = tokio::io::duplex(4096);
        c.write_all(b"GET / HTTP/1.1\r\nX: y").await.unwrap();
        let soon = tokio::time::Instant::now() + std::time::Duration::from_millis(30);
        assert!(first_bytes(&mut s, soon).await.is_none());
    }

    #[test]
    fn head_ends_at_an_empty_line() {
        assert!(head_ends(b"GET / HTTP/1.1\r\n\r\n", 0));
        assert!(head_ends(b"GET / HTTP/1.1\n\n", 0));
        assert!(head_ends(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody", 10));
        assert!(!head_ends(b"GET / HTTP/1.1\r\nA: b\r\n", 0));
        assert!(!head_ends(b"GET / HTTP/1.1\r\n\r", 0));
    }

    #[tokio::test]
    async fn a_preface_in_pieces_is_read_whole() {
        let (mut c, mut s) = tokio::io::duplex(4096);
        let task = tokio::spawn(async move {
            for part in H2_PREFACE.chunks(5) {
                c.write_all(part).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            c
        });
        let (p, b) = first_bytes(&mut s, soon()).await.unwrap();
        assert_eq!((p, &b[..]), (Proto::Http2, H2_PREFACE));
        drop(task.await);
    }

    #[tokio::test]
    async fn a_close_or_silence_is_none() {
        let (c, mut s) = tokio::io::duplex(64);
        drop(c);
        assert!(first_bytes(&mut s, soon()).await.is_none());
        let (_c, mut s) = tokio::io::duplex(64);
        let now = tokio::time::Instant::now() + std::time::Duration::from_millis(20);
        assert!(first_bytes(&mut s, now).await.is_none());
        // A partial preface, then silence.
        let (mut c, mut s) = tokio::io::duplex(64);
        c.write_all(b"PRI * HT").await.unwrap();
        let now = tokio::time::Instant::now() + std::time::Duration::from_millis(20);
        assert!(first_bytes(&mut s, now).await.is_none());
    }

    #[tokio::test]
    async fn reads_give_the_prefix_then_the_socket() {
        use hyper_util::rt::TokioIo;
        let (mut c, s) = tokio::io::duplex(64);
        c.write_all(b" world").await.unwrap();
        let mut io = TokioIo::new(Prefixed::new(Bytes::from_static(b"hello"), TokioIo::new(s)));
        let mut out = Vec::new();
        let mut buf = [0u8; 3];
        while out.len() < 11 {
            let n = tokio::io::AsyncReadExt::read(&mut io, &mut buf)
                .await
                .unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, b"hello world");
    }
}

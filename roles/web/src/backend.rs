//! HTTP/1.1 to an app backend on loopback, driven from the request's own
//! task.
//!
//! Job: write one request (head, then the client's body, counted against
//! the site's limit), read and parse the answer's head, and hand back its
//! body: whole when it came with the head (the common small answer), else
//! streamed as a [`BackendBody`] that decodes `Content-Length`, chunked or
//! read-until-close framing. A connection whose exchange ended cleanly goes
//! back to its process slot's idle list.
//!
//! Why not hyper's client: it runs each connection in a task of its own and
//! passes requests, answers and body chunks through channels; perf showed
//! that a third of the proxy's CPU went there. Here the bytes move in the
//! task that serves the client, as nginx does it. Parsing is httparse's
//! (the parser hyper uses).
//!
//! Limits: answer heads up to [`MAX_HEAD`] bytes and [`MAX_HEADERS`]
//! headers (else 502); interim 1xx answers other than 101 are skipped;
//! trailers of chunked answers are read and dropped.

use std::io::{self, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::app::Slot;

/// Largest answer head accepted.
pub(crate) const MAX_HEAD: usize = 64 * 1024;
/// Most headers accepted in an answer.
pub(crate) const MAX_HEADERS: usize = 100;
/// Read size while streaming a body.
const READ_CHUNK: usize = 16 * 1024;

/// One keep-alive connection to a backend process.
pub(crate) struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet used.
    buf: BytesMut,
    /// The request head being written (its allocation is reused).
    wbuf: Vec<u8>,
    /// The request timeout's timer, kept with the connection: moving a
    /// registered timer's deadline later is one atomic update, while a new
    /// timer per request takes the timer wheel's lock twice.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// What the proxy tells the app about the client (X-Forwarded-*), and the
/// upgrade asked for.
pub(crate) struct Forwarded<'a> {
    /// The client's Host (or HTTP/2 authority), passed on as Host.
    pub host: Option<&'a [u8]>,
    pub client_ip: std::net::IpAddr,
    pub https: bool,
    pub upgrade: Option<&'a HeaderValue>,
}

/// Why an exchange failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The connection was closed or reset before any byte of an answer
    /// came: the backend never took the request (an idle connection it had
    /// closed). Safe to send again when the request had no body.
    NotTaken,
    /// The client's body went over the site's limit.
    TooLarge,
    /// The client's body failed (the client went away).
    Client,
    /// No answer head by the deadline.
    Timeout,
    /// Anything else: a malformed answer, a reset mid-answer.
    Backend,
}

/// The answer's head, with hop-by-hop headers removed (kept on a 101).
pub(crate) struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    framing: Framing,
    /// The connection can carry another request after this answer.
    keep_alive: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

impl Conn {
    pub(crate) async fn open(port: u16) -> io::Result<Conn> {
        let stream = TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port)).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: Vec::with_capacity(512),
            deadline: None,
        })
    }

    /// The connection itself, for an upgrade: the bytes already read after
    /// the 101 head, and the stream.
    pub(crate) fn into_upgraded(self) -> (Bytes, TcpStream) {
        (self.buf.freeze(), self.stream)
    }

    /// Sends the request and reads the answer's head, by `until` at the
    /// latest ([`Failure::Timeout`]).
    pub(crate) async fn exchange(
        &mut self,
        parts: &Parts,
        forwarded: &Forwarded<'_>,
        body: Option<&mut Incoming>,
        max_body: u64,
        until: tokio::time::Instant,
    ) -> Result<Head, Failure> {
        let mut deadline = self
            .deadline
            .take()
            .unwrap_or_else(|| Box::pin(tokio::time::sleep_until(until)));
        deadline.as_mut().reset(until);
        let r = tokio::select! {
            biased;
            r = async {
                self.send(parts, forwarded, body, max_body).await?;
                self.read_head(&parts.method).await
            } => r,
            () = deadline.as_mut() => Err(Failure::Timeout),
        };
        self.deadline = Some(deadline);
        r
    }

    /// Writes the request: the client's `parts` (origin-form URI) with the
    /// hop-by-hop headers left out and the `forwarded` ones put in, then
    /// `body` (None when the client sent none), counting at most
    /// `max_body` bytes of it. The head is written straight from the
    /// client's header map: nothing is inserted into or removed from it.
    pub(crate) async fn send(
        &mut self,
        parts: &Parts,
        forwarded: &Forwarded<'_>,
        body: Option<&mut Incoming>,
        max_body: u64,
    ) -> Result<(), Failure> {
        let framing = body.as_ref().map(|b| b.size_hint().exact());
        let head = &mut self.wbuf;
        head.clear();
        head.extend_from_slice(parts.method.as_str().as_bytes());
        head.push(b' ');
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        head.extend_from_slice(target.as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        let mut prior_xff: Option<&HeaderValue> = None;
        // Headers named in Connection are hop-by-hop too.
        let named = parts.headers.get_all(header::CONNECTION);
        let listed = |n: &HeaderName| {
            named.iter().any(|v| {
                v.to_str().is_ok_and(|v| {
                    v.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case(n.as_str()))
                })
            })
        };
        let has_connection = parts.headers.contains_key(header::CONNECTION);
        for (name, value) in &parts.headers {
            match name.as_str() {
                // The framing and the forwarding headers are ours to state.
                "content-length" | "transfer-encoding" | "host" | "expect" | "x-forwarded-host"
                | "x-forwarded-proto" => continue,
                "x-forwarded-for" => {
                    prior_xff = Some(value);
                    continue;
                }
                n if is_hop(n) => continue,
                _ if has_connection && listed(name) => continue,
                _ => {}
            }
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        if let Some(h) = forwarded.host {
            for name in [&b"host: "[..], b"x-forwarded-host: "] {
                head.extend_from_slice(name);
                head.extend_from_slice(h);
                head.extend_from_slice(b"\r\n");
            }
        }
        head.extend_from_slice(b"x-forwarded-for: ");
        if let Some(prior) = prior_xff {
            head.extend_from_slice(prior.as_bytes());
            head.extend_from_slice(b", ");
        }
        let _ = write!(head, "{}\r\n", forwarded.client_ip);
        head.extend_from_slice(if forwarded.https {
            b"x-forwarded-proto: https\r\n"
        } else {
            b"x-forwarded-proto: http\r\n"
        });
        if let Some(u) = forwarded.upgrade {
            head.extend_from_slice(b"connection: upgrade\r\nupgrade: ");
            head.extend_from_slice(u.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        match framing {
            Some(Some(n)) => {
                if n > max_body {
                    return Err(Failure::TooLarge);
                }
                let _ = write!(head, "content-length: {n}\r\n");
            }
            Some(None) => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            None if method_has_body(&parts.method) => {
                head.extend_from_slice(b"content-length: 0\r\n")
            }
            None => {}
        }
        head.extend_from_slice(b"\r\n");
        self.stream
            .write_all(&self.wbuf)
            .await
            .map_err(|_| Failure::NotTaken)?;
        let Some(body) = body else {
            return Ok(());
        };
        let chunked = framing == Some(None);
        let mut left = max_body;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Failure::Client)?;
            let Ok(data) = frame.into_data() else {
                continue; // Trailers are not passed on.
            };
            if data.is_empty() {
                continue;
            }
            let len = data.len() as u64;
            if len > left {
                return Err(Failure::TooLarge);
            }
            left -= len;
            let r = if chunked {
                let size = format!("{len:x}\r\n");
                let mut parts = [
                    io::IoSlice::new(size.as_bytes()),
                    io::IoSlice::new(&data),
                    io::IoSlice::new(b"\r\n"),
                ];
                write_all_vectored(&mut self.stream, &mut parts).await
            } else {
                self.stream.write_all(&data).await
            };
            r.map_err(|_| Failure::Backend)?;
        }
        if chunked {
            self.stream
                .write_all(b"0\r\n\r\n")
                .await
                .map_err(|_| Failure::Backend)?;
        }
        Ok(())
    }

    /// Reads the answer's head (skipping interim 1xx answers but 101).
    pub(crate) async fn read_head(&mut self, method: &Method) -> Result<Head, Failure> {
        let mut got_any = false;
        loop {
            if let Some(head) = self.parse_head(method)? {
                if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS
                {
                    got_any = true;
                    continue;
                }
                return Ok(head);
            }
            if self.buf.len() >= MAX_HEAD {
                return Err(Failure::Backend);
            }
            self.buf.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) if !got_any && self.buf.is_empty() => return Err(Failure::NotTaken),
                Ok(0) | Err(_) => return Err(Failure::Backend),
                Ok(_) => got_any = true,
            }
        }
    }

    /// One head from the front of `buf`, consumed; None when incomplete.
    fn parse_head(&mut self, method: &Method) -> Result<Option<Head>, Failure> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut slots);
        let len = match resp.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(Failure::Backend),
        };
        let code = resp.code.unwrap_or(0);
        let status = StatusCode::from_u16(code).map_err(|_| Failure::Backend)?;
        let mut keep_alive = resp.version == Some(1);
        let mut chunked = false;
        let mut length = None;
        // Headers named in Connection are hop-by-hop too.
        let mut named: Vec<&str> = Vec::new();
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("connection") {
                let v = std::str::from_utf8(h.value).unwrap_or("");
                for token in v.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        keep_alive = true;
                    } else if !token.is_empty() {
                        named.push(token);
                    }
                }
            }
        }
        let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
        let mut headers = HeaderMap::with_capacity(resp.headers.len());
        for h in resp.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| Failure::Backend)?;
            if name == header::TRANSFER_ENCODING {
                let v = std::str::from_utf8(h.value).unwrap_or("");
                chunked = v
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
                continue;
            }
            if name == header::CONTENT_LENGTH {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .ok_or(Failure::Backend)?;
                if length.is_some_and(|l| l != n) {
                    return Err(Failure::Backend);
                }
                length = Some(n);
            }
            if !upgrade
                && (is_hop(name.as_str())
                    || (!named.is_empty()
                        && named.iter().any(|n| n.eq_ignore_ascii_case(name.as_str()))))
            {
                continue;
            }
            let value = HeaderValue::from_bytes(h.value).map_err(|_| Failure::Backend)?;
            headers.append(name, value);
        }
        self.buf.advance(len);
        let framing = if upgrade
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || method == Method::HEAD
        {
            Framing::Empty
        } else if chunked {
            headers.remove(header::CONTENT_LENGTH);
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            keep_alive = false;
            Framing::UntilClose
        };
        Ok(Some(Head {
            status,
            headers,
            framing,
            keep_alive,
        }))
    }
}

/// The body that follows `head` on `conn`: whole when it has already been
/// read, else streamed. `conn` goes back to `slot` once its answer is over
/// and it can carry another.
pub(crate) fn body_of(head: &Head, mut conn: Conn, slot: &Arc<Slot>) -> crate::body::Body {
    use crate::body::Body;
    match head.framing {
        Framing::Empty => {
            if head.keep_alive {
                slot.put(conn);
            }
            Body::empty()
        }
        Framing::Length(n) if (conn.buf.len() as u64) >= n => {
            let whole = conn.buf.split_to(n as usize).freeze();
            if head.keep_alive {
                slot.put(conn);
            }
            Body::bytes(whole)
        }
        framing => Body::Backend(Box::new(BackendBody {
            conn: Some(conn),
            state: match framing {
                Framing::Length(n) => State::Length(n),
                Framing::Chunked => State::ChunkSize,
                _ => State::UntilClose,
            },
            keep_alive: head.keep_alive,
            slot: slot.clone(),
        })),
    }
}

/// Hop-by-hop headers (RFC 9110 7.6.1), not passed on either way.
fn is_hop(lowercase_name: &str) -> bool {
    matches!(
        lowercase_name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn method_has_body(m: &Method) -> bool {
    *m == Method::POST || *m == Method::PUT || *m == Method::PATCH
}

async fn write_all_vectored(s: &mut TcpStream, mut bufs: &mut [io::IoSlice<'_>]) -> io::Result<()> {
    while !bufs.is_empty() {
        let n = s.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// Where a streamed body is.
#[derive(Debug, PartialEq, Eq)]
enum State {
    /// This many bytes are left.
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Inside a chunk: this many data bytes left, then CRLF.
    ChunkData(u64),
    /// Expecting the CRLF after a chunk's data.
    ChunkEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    /// Until the backend closes.
    UntilClose,
    Done,
}

/// A backend's answer body, read as the client takes it.
pub(crate) struct BackendBody {
    conn: Option<Conn>,
    state: State,
    keep_alive: bool,
    slot: Arc<Slot>,
}

impl BackendBody {
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            // Bytes past the answer mean a confused backend: not reused.
            if self.keep_alive && conn.buf.is_empty() {
                self.slot.put(conn);
            }
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }

    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let buf = &mut conn.buf;
            // Decode what is buffered; None: more bytes are needed.
            let out: Option<Bytes> = match self.state {
                State::Done => return Poll::Ready(None),
                State::Length(0) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                State::Length(n) if !buf.is_empty() => {
                    let take = (buf.len() as u64).min(n) as usize;
                    self.state = State::Length(n - take as u64);
                    Some(buf.split_to(take).freeze())
                }
                State::UntilClose if !buf.is_empty() => Some(buf.split().freeze()),
                State::ChunkSize => match find_line(buf) {
                    Some(end) => {
                        let size = parse_chunk_size(&buf[..end]).ok_or_else(bad_chunk)?;
                        buf.advance(end + 2);
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::ChunkData(size)
                        };
                        continue;
                    }
                    None if buf.len() > 4096 => return Poll::Ready(Some(Err(bad_chunk()))),
                    None => None,
                },
                State::ChunkData(n) if !buf.is_empty() => {
                    let take = (buf.len() as u64).min(n) as usize;
                    self.state = if take as u64 == n {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(n - take as u64)
                    };
                    Some(buf.split_to(take).freeze())
                }
                State::ChunkEnd if buf.len() >= 2 => {
                    if &buf[..2] != b"\r\n" {
                        return Poll::Ready(Some(Err(bad_chunk())));
                    }
                    buf.advance(2);
                    self.state = State::ChunkSize;
                    continue;
                }
                State::Trailers => match find_line(buf) {
                    Some(0) => {
                        buf.advance(2);
                        self.finish();
                        return Poll::Ready(None);
                    }
                    Some(end) => {
                        buf.advance(end + 2);
                        continue;
                    }
                    None if buf.len() > MAX_HEAD => return Poll::Ready(Some(Err(bad_chunk()))),
                    None => None,
                },
                _ => None,
            };
            if let Some(data) = out {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            buf.reserve(READ_CHUNK);
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut conn.stream),
                cx,
                buf
            ))?;
            if n == 0 {
                if self.state == State::UntilClose {
                    self.state = State::Done;
                    self.conn = None;
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the app closed the connection mid-answer",
                ))));
            }
        }
    }
}

/// The index of the CRLF ending the first line of `b`.
fn find_line(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// A chunk-size line: hex digits, then optional `;extensions`.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let hex = line.split(|c| *c == b';').next()?;
    let hex = std::str::from_utf8(hex).ok()?.trim();
    if hex.is_empty() || hex.len() > 15 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

fn bad_chunk() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the app sent malformed chunked encoding",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    use tokio::net::TcpListener;

    #[test]
    fn chunk_sizes() {
        assert_eq!(parse_chunk_size(b"1a"), Some(26));
        assert_eq!(parse_chunk_size(b"0"), Some(0));
        assert_eq!(parse_chunk_size(b"FF;name=value"), Some(255));
        assert_eq!(parse_chunk_size(b""), None);
        assert_eq!(parse_chunk_size(b"xyz"), None);
        assert_eq!(parse_chunk_size(b"ffffffffffffffffff"), None);
        assert_eq!(find_line(b"abc\r\nrest"), Some(3));
        assert_eq!(find_line(b"abc\r"), None);
    }

    /// A backend on loopback that reads one request head, answers with
    /// `pieces` (20 ms apart, so the client sees split reads) and then
    /// closes or keeps the connection open. Yields the request it read.
    async fn canned(
        pieces: Vec<&'static [u8]>,
        close: bool,
    ) -> (u16, tokio::task::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = Vec::new();
            while !req.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                if s.read(&mut b).await.unwrap() == 0 {
                    break;
                }
                req.push(b[0]);
            }
            for p in pieces {
                s.write_all(p).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !close {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            req
        });
        (port, task)
    }

    struct Got {
        status: StatusCode,
        headers: HeaderMap,
        body: Result<Bytes, io::Error>,
        pooled: bool,
    }

    async fn fetch(port: u16, method: Method) -> Result<Got, Failure> {
        let mut conn = Conn::open(port).await.unwrap();
        let (parts, ()) = hyper::Request::builder()
            .method(method.clone())
            .uri("/x?y=1")
            .header("host", "example")
            .header("x-forwarded-for", "198.51.100.1")
            .header("x-forwarded-proto", "https")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "1")
            .header("te", "trailers")
            .header("x-end", "2")
            .body(())
            .unwrap()
            .into_parts();
        let fwd = Forwarded {
            host: Some(b"example"),
            client_ip: std::net::Ipv4Addr::new(192, 0, 2, 7).into(),
            https: false,
            upgrade: None,
        };
        conn.send(&parts, &fwd, None, 0).await?;
        let head = conn.read_head(&method).await?;
        let slot = Arc::new(Slot::new());
        slot.port.store(port, Ordering::Release);
        let body = body_of(&head, conn, &slot)
            .collect()
            .await
            .map(|c| c.to_bytes());
        Ok(Got {
            status: head.status,
            headers: head.headers,
            body,
            pooled: slot.take().is_some(),
        })
    }

    #[tokio::test]
    async fn whole_and_streamed_lengths() {
        let (port, req) = canned(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
            false,
        )
        .await;
        let g = fetch(port, Method::GET).await.unwrap();
        assert_eq!(
            (g.status, &g.body.unwrap()[..], g.pooled),
            (StatusCode::OK, &b"hello"[..], true)
        );
        // Hop-by-hop headers (and those Connection names) are dropped; the
        // forwarding headers are ours, X-Forwarded-For extended.
        assert_eq!(
            String::from_utf8(req.await.unwrap()).unwrap(),
            "GET /x?y=1 HTTP/1.1\r\nx-end: 2\r\nhost: example\r\nx-forwarded-host: example\r\n\
             x-forwarded-for: 198.51.100.1, 192.0.2.7\r\nx-forwarded-proto: http\r\n\r\n"
        );

        let (port, _) = canned(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                b"hel",
                b"lo",
            ],
            false,
        )
        .await;
        let g = fetch(port, Method::GET).await.unwrap();
        assert_eq!((&g.body.unwrap()[..], g.pooled), (&b"hello"[..], true));
        assert_eq!(g.headers[header::CONTENT_LENGTH], "5");
    }

    #[tokio::test]
    async fn chunked_split_with_extensions_and_trailers() {
        let (port, _) = canned(
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel",
                b"lo\r\n6\r",
                b"\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
            ],
            false,
        )
        .await;
        let g = fetch(port, Method::GET).await.unwrap();
        assert_eq!(
            (&g.body.unwrap()[..], g.pooled),
            (&b"hello world"[..], true)
        );
        assert!(!g.headers.contains_key(header::TRANSFER_ENCODING));
    }

    #[tokio::test]
    async fn until_close_interim_head_and_hop_headers() {
        let (port, _) = canned(vec![b"HTTP/1.1 200 OK\r\n\r\nab", b"c"], true).await;
        let g = fetch(port, Method::GET).await.unwrap();
        assert_eq!((&g.body.unwrap()[..], g.pooled), (&b"abc"[..], false));

        let (port, _) = canned(
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            ],
            false,
        )
        .await;
        let g = fetch(port, Method::POST).await.unwrap();
        assert_eq!(
            (g.status, &g.body.unwrap()[..]),
            (StatusCode::CREATED, &b"ok"[..])
        );

        let (port, _) = canned(
            vec![b"HTTP/1.1 200 OK\r\nConnection: close, x-private\r\nX-Private: 1\r\nKeep-Alive: t=5\r\nX-Kept: 2\r\nContent-Length: 1\r\n\r\nz"],
            true,
        )
        .await;
        let g = fetch(port, Method::GET).await.unwrap();
        assert_eq!((&g.body.unwrap()[..], g.pooled), (&b"z"[..], false));
        for gone in ["connection", "x-private", "keep-alive"] {
            assert!(!g.headers.contains_key(gone), "{gone} was passed on");
        }
        assert_eq!(g.headers["x-kept"], "2");
    }

    #[tokio::test]
    async fn bodiless_answers() {
        let (port, _) = canned(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"],
            false,
        )
        .await;
        let g = fetch(port, Method::HEAD).await.unwrap();
        assert_eq!((g.body.unwrap().len(), g.pooled), (0, true));
        assert_eq!(g.headers[header::CONTENT_LENGTH], "10");

        let (port, _) = canned(
            vec![b"HTTP/1.1 304 Not Modified\r\nETag: \"a\"\r\n\r\n"],
            false,
        )
        .await;
        let g = fetch(port, Method::GET).await.unwrap();
        assert_eq!(
            (g.status, g.body.unwrap().len(), g.pooled),
            (StatusCode::NOT_MODIFIED, 0, true)
        );
    }

    #[tokio::test]
    async fn no_answer_by_the_deadline_is_a_timeout_and_the_timer_is_reused() {
        let (port, _) = canned(vec![], false).await;
        let mut conn = Conn::open(port).await.unwrap();
        let (parts, ()) = hyper::Request::builder()
            .uri("/slow")
            .body(())
            .unwrap()
            .into_parts();
        let fwd = Forwarded {
            host: None,
            client_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            https: false,
            upgrade: None,
        };
        let t = tokio::time::Instant::now();
        let until = t + Duration::from_millis(60);
        let r = conn.exchange(&parts, &fwd, None, 0, until).await;
        assert!(matches!(r, Err(Failure::Timeout)), "{:?}", r.err());
        assert!(t.elapsed() >= Duration::from_millis(60));
        assert!(
            conn.deadline.is_some(),
            "the timer stays with the connection"
        );
    }

    #[tokio::test]
    async fn bad_answers_are_errors_not_panics() {
        let (port, _) = canned(
            vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
            false,
        )
        .await;
        let g = fetch(port, Method::GET).await.unwrap();
        assert!(g.body.is_err() && !g.pooled);

        let (port, _) = canned(vec![b"NOT HTTP AT ALL\r\n\r\n"], true).await;
        assert!(matches!(
            fetch(port, Method::GET).await,
            Err(Failure::Backend)
        ));

        let (port, _) = canned(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"],
            true,
        )
        .await;
        assert!(matches!(
            fetch(port, Method::GET).await,
            Err(Failure::Backend)
        ));

        // Closed before answering: the request was never taken.
        let (port, _) = canned(vec![], true).await;
        assert!(matches!(
            fetch(port, Method::GET).await,
            Err(Failure::NotTaken)
        ));

        // Cut mid-body.
        let (port, _) = canned(
            vec![b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc"],
            true,
        )
        .await;
        let g = fetch(port, Method::GET).await.unwrap();
        assert!(g.body.is_err() && !g.pooled);
    }
}

//! `mote-web-testapp`: the tiny backend used by mote-web's tests and bench.
//!
//! Listens on 127.0.0.1:`$PORT` (HttpPlatformHandler style) and answers:
//! `GET …/` → `hello from app`; `…/pid` → its process id; `/echo` → the
//! request body; `/headers` → the request headers; `/peer` → the address
//! the request came from (to see connection reuse); `/big` → 1 MB of
//! `abc…z` repeated; `/drip` → three chunks 300 ms apart (chunked); `/close` → answers with
//! `Connection: close` and closes; `/sleep` → after 3 s;
//! `/exit` → exits the process; an `Upgrade` request → 101, then echoes
//! raw bytes (a stand-in for a WebSocket). With `MOTE_TESTAPP_FAIL=1` it
//! exits at once without listening (to exercise startup retries).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn handle(
    mut req: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    if req.headers().contains_key(hyper::header::UPGRADE) {
        let up = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(u) = up.await {
                let mut io = TokioIo::new(u);
                let mut buf = [0u8; 4096];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let r = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap_or_default();
        return Ok(r);
    }
    // Matched on the last segment: the proxy passes the whole path.
    let last = req.uri().path().rsplit('/').next().unwrap_or("");
    let body = match last {
        "" => Bytes::from_static(b"hello from app"),
        "pid" => Bytes::from(std::process::id().to_string()),
        "peer" => Bytes::from(peer.to_string()),
        "big" => Bytes::from(
            (0..1_000_000u32)
                .map(|i| b'a' + (i % 26) as u8)
                .collect::<Vec<u8>>(),
        ),
        "close" => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"closing")).boxed());
            r.headers_mut().insert(
                hyper::header::CONNECTION,
                hyper::header::HeaderValue::from_static("close"),
            );
            return Ok(r);
        }
        "echo" => req
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default(),
        "headers" => {
            let mut s = String::new();
            for (k, v) in req.headers() {
                s.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
            }
            Bytes::from(s)
        }
        "drip" => return Ok(Response::new(Drip::new().boxed())),
        "sleep" => {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            Bytes::from_static(b"slept")
        }
        "exit" => std::process::exit(3),
        _ => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"not found")).boxed());
            *r.status_mut() = StatusCode::NOT_FOUND;
            return Ok(r);
        }
    };
    Ok(Response::new(Full::new(body).boxed()))
}

/// Three chunks 300 ms apart, length unknown (sent chunked).
struct Drip {
    left: u8,
    pause: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl Drip {
    fn new() -> Self {
        Self {
            left: 3,
            pause: Box::pin(tokio::time::sleep(std::time::Duration::ZERO)),
        }
    }
}

impl hyper::body::Body for Drip {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        std::task::ready!(std::future::Future::poll(self.pause.as_mut(), cx));
        self.left -= 1;
        let next = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
        self.pause.as_mut().reset(next);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(
            b"drip\n",
        )))))
    }
}

fn main() {
    if std::env::var_os("MOTE_TESTAPP_FAIL").is_some() {
        std::process::exit(1);
    }
    let Some(port) = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
    else {
        eprintln!("mote-web-testapp: PORT is not set");
        std::process::exit(2);
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mote-web-testapp: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async move {
        let l = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("mote-web-testapp: bind {port}: {e}");
                std::process::exit(1);
            }
        };
        println!("mote-web-testapp listening on {port}");
        loop {
            let Ok((s, peer)) = l.accept().await else {
                continue;
            };
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        TokioIo::new(s),
                        hyper::service::service_fn(move |r| handle(r, peer)),
                    )
                    .with_upgrades()
                    .await;
            });
        }
    });
}

//! Each active package's metrics, from the endpoint its `package.toml`
//! declares (`[metrics]`, on the node's loopback), read with hyper's HTTP/1
//! client: bounded in time and size, and nothing when it does not answer a
//! 200 in time (a package's figures must never fail or stall an answer of
//! moted's).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;

/// The whole exchange (connect, ask, read) must end within this.
pub const TIMEOUT: Duration = Duration::from_millis(300);

/// Larger answers are dropped.
const MAX_BYTES: usize = 4 << 20;

/// `GET url` (`http://127.0.0.1:PORT/PATH`, loopback only): the body of a
/// 200 within [`TIMEOUT`], else `None`.
pub async fn fetch(url: &str) -> Option<String> {
    let uri: Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.host()?;
    let ip: std::net::IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
    if !ip.is_loopback() {
        return None;
    }
    let addr = std::net::SocketAddr::new(ip, uri.port_u16()?);
    tokio::time::timeout(TIMEOUT, async move {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let req = Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::ACCEPT, "text/plain")
            .body(Empty::<Bytes>::new())
            .ok()?;
        let resp = sender.send_request(req).await.ok()?;
        if resp.status() != StatusCode::OK {
            return None;
        }
        let body = Limited::new(resp.into_body(), MAX_BYTES)
            .collect()
            .await
            .ok()?
            .to_bytes();
        String::from_utf8(body.to_vec()).ok()
    })
    .await
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_loopback_http_is_asked() {
        assert_eq!(fetch("https://127.0.0.1:1/metrics").await, None);
        assert_eq!(fetch("http://192.0.2.1:9180/metrics").await, None);
        assert_eq!(fetch("not a url").await, None);
    }
}

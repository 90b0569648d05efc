//! An attacker's client for moted on loopback: raw HTTP/1.1 over TLS from
//! any 127.0.0.0/8 source address (so one test can be many sources), no
//! pinning, nothing the real client would refuse to send; and moted started
//! with a fake PID 1 and chosen limits. Shared by the attack test binaries.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use moted::{Config, FakeInit, Limits};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Node {
    pub dir: tempfile::TempDir,
    pub fake: FakeInit,
    pub running: moted::Running,
    pub hash: String,
}

impl Node {
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }
    pub fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }
}

/// An argon2id hash of `pw` with `m` KiB and `t` passes.
pub fn hash_with(pw: &str, m: u32, t: u32) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(m, t, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    a.hash_password(pw.as_bytes(), &salt).unwrap().to_string()
}

/// A cheap hash of "secret" (8 KiB), for tests about anything but memory.
pub fn cheap() -> String {
    hash_with("secret", 8, 1)
}

pub struct Throttle {
    pub base: Duration,
    pub max: Duration,
}

pub const THROTTLE: Throttle = Throttle {
    base: Duration::from_millis(300),
    max: Duration::from_secs(30),
};

pub async fn start(hash: String, throttle: Throttle, limits: Limits) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let mut s = mote_config::NodeSettings::default();
    s.system.hostname = "node1".into();
    s.system.admin_password_hash = hash.clone();
    let image = dir.path().join("settings.json");
    std::fs::write(&image, serde_json::to_vec(&s).unwrap()).unwrap();
    let fake = FakeInit::new();
    let running = moted::start_with(
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: dir.path().join("state"),
            image_settings: image,
            token_ttl: Duration::from_secs(3600),
            throttle_base: throttle.base,
            throttle_max: throttle.max,
        },
        limits,
        Arc::new(fake.clone()),
    )
    .await
    .unwrap();
    Node {
        dir,
        fake,
        running,
        hash,
    }
}

pub async fn node() -> Node {
    start(cheap(), THROTTLE, Limits::default()).await
}

/// Source address number `n` on loopback (127.0.0.n+1… avoiding .1).
pub fn source(n: u16) -> IpAddr {
    IpAddr::from([127, 0, 1 + (n / 250) as u8, 2 + (n % 250) as u8])
}

pub const ME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[derive(Debug)]
struct AnyCert(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

pub fn connector() -> tokio_rustls::TlsConnector {
    let provider = rustls::crypto::ring::default_provider();
    let algs = provider.signature_verification_algorithms;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(algs)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A TCP connection to `to` from `from`.
pub async fn tcp(to: SocketAddr, from: IpAddr) -> std::io::Result<tokio::net::TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from, 0))?;
    s.connect(to).await
}

/// A TLS connection to `to` from `from`.
pub async fn tls(
    to: SocketAddr,
    from: IpAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let t = tcp(to, from).await?;
    connector()
        .connect(ServerName::try_from("node").unwrap(), t)
        .await
}

/// An answer: status, head (lowercase), body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {} {}", self.status, self.text()))
    }
    pub fn all(&self) -> String {
        format!("{}\n{}", self.head, self.text())
    }
}

/// Sends `head_and_body` (a whole HTTP/1.1 request) and reads the answer
/// until the server closes.
pub async fn exchange(to: SocketAddr, from: IpAddr, request: &[u8]) -> std::io::Result<Answer> {
    let mut s = tls(to, from).await?;
    s.write_all(request).await?;
    s.flush().await?;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf)).await;
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no answer: {buf:?}")))?;
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok(Answer { status, head, body })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let len = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if len == 0 || b.len() < nl + 2 + len {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + len]);
        b = &b[(nl + 4 + len).min(b.len())..];
    }
    out
}

/// One request, `Connection: close`.
pub async fn call(
    to: SocketAddr,
    from: IpAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: node\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    exchange(to, from, &bytes).await
}

/// A JSON request with a token.
pub async fn json_call(
    n: &Node,
    method: &str,
    path: &str,
    token: &str,
    body: Option<serde_json::Value>,
) -> Answer {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    let bytes = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    if !bytes.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    call(n.addr(), ME, method, path, &headers, &bytes)
        .await
        .unwrap()
}

/// `POST /v1/login` from `from`.
pub async fn login(n: &Node, from: IpAddr, password: &str) -> std::io::Result<Answer> {
    let body = serde_json::json!({"username": "admin", "password": password}).to_string();
    call(
        n.addr(),
        from,
        "POST",
        "/v1/login",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await
}

/// A token, or a panic.
pub async fn token(n: &Node, from: IpAddr, password: &str) -> String {
    let a = login(n, from, password).await.unwrap();
    assert_eq!(a.status, 200, "{}", a.text());
    a.json()["token"].as_str().unwrap().to_string()
}

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// This process's resident memory (moted runs in it), KiB.
pub fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// Its peak resident memory since [`reset_peak`], KiB.
pub fn peak_kib() -> u64 {
    status_kib("VmHWM:")
}

/// Resets the peak (`echo 5 > /proc/self/clear_refs`).
pub fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// The real `moted` binary, in a process of its own (so its memory is
/// measured alone), with no PID 1 (audit events are dropped with a
/// warning). Killed on drop.
pub struct Process {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Its resident memory, KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }
    /// Its peak resident memory, KiB.
    pub fn peak_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }
    fn status_kib(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }
    /// A node stand-in for the helpers that take one.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

pub fn spawn_moted(hash: &str) -> Process {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut s = mote_config::NodeSettings::default();
    s.system.hostname = "node1".into();
    s.system.admin_password_hash = hash.into();
    let image = dir.path().join("settings.json");
    std::fs::write(&image, serde_json::to_vec(&s).unwrap()).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_moted"))
        .args(["--listen", "127.0.0.1:0", "--state"])
        .arg(dir.path().join("state"))
        .arg("--image-settings")
        .arg(&image)
        .arg("--control")
        .arg(dir.path().join("no-pid1.sock"))
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines();
    let addr = loop {
        let line = lines.next().expect("moted printed its address").unwrap();
        if let Some(a) = line.strip_prefix("moted listening on ") {
            break a.parse().unwrap();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    Process { child, addr, dir }
}

/// `POST /v1/login` to `to` from `from`.
pub async fn login_to(to: SocketAddr, from: IpAddr, password: &str) -> std::io::Result<Answer> {
    let body = serde_json::json!({"username": "admin", "password": password}).to_string();
    call(
        to,
        from,
        "POST",
        "/v1/login",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await
}

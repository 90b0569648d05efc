//! mote-web probed as an attacker would (issue 10): raw sockets and a
//! hand-driven HTTP/2 client against the real binary on 127.0.0.1, each
//! test checking what the server did (status, headers, closed sockets,
//! memory and threads read from /proc), never what the client sent.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// A site with Basic auth on /admin, a redirect rule /old → /new and an
/// app at /api, on a fresh port.
fn guarded(extra_limits: &str) -> (Web, u16) {
    let (dir, root) = fixture();
    let port = free_port();
    let hash = mote_config::password::hash("s3cret").unwrap();
    let cfg = format!(
        r#"
[limits]
{extra_limits}
[[sites]]
name = "guarded"
root = "{root}"
bindings = [{{ scheme = "http", address = "127.0.0.1", port = {port} }}]
logging = {{ enabled = false }}
basic_auth = [{{ path = "/admin", users = {{ alice = "{hash}" }} }}]
redirects = [{{ from = "/old", to = "/new/", status = 301 }}]
"#,
        root = root.display()
    );
    (Web::start(dir, &cfg, &[port], &[]), port)
}

#[test]
fn regression_auth_is_required_however_the_path_is_spelled() {
    let (_web, port) = guarded("");
    assert_eq!(get(port, "/admin/secret.txt").status, 401);
    for p in [
        "//admin/secret.txt",
        "/./admin/secret.txt",
        "/%2fadmin/secret.txt",
        "/%2Fadmin/secret.txt",
        "/%2e/admin/secret.txt",
        "/admin//secret.txt",
        "/%61dmin/secret.txt",
        "///admin/./secret.txt",
    ] {
        let r = get(port, p);
        assert_eq!(r.status, 401, "{p} answered {}", r.status);
        assert!(r.h("www-authenticate").is_some(), "{p}: no challenge");
        assert!(
            !String::from_utf8_lossy(&r.body).contains("the secret"),
            "{p} leaked the file"
        );
    }
    // Spellings that could mean two things are refused outright.
    for p in [
        "/admin/../admin/secret.txt",
        "/x/%2e%2e/admin/secret.txt",
        "/x%2f..%2fadmin/secret.txt",
        "/admin%5csecret.txt",
        "/%252e/admin/secret.txt",
    ] {
        assert_eq!(get(port, p).status, 400, "{p}");
    }
    // With the credential, every spelling reaches the file.
    let auth = "Authorization: Basic YWxpY2U6czNjcmV0\r\n";
    for p in [
        "/admin/secret.txt",
        "//admin/secret.txt",
        "/%2fadmin/secret.txt",
    ] {
        let r = raw(
            port,
            &format!("GET {p} HTTP/1.1\r\nHost: a\r\n{auth}Connection: close\r\n\r\n"),
        );
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"the secret\n"[..]),
            "{p}"
        );
    }
}

#[test]
fn regression_redirect_rules_match_the_canonical_path() {
    let (_web, port) = guarded("");
    for p in ["/old/x", "//old/x", "/./old/x", "/%2fold/x", "/old//x"] {
        let r = get(port, p);
        assert_eq!(r.status, 301, "{p} was not redirected");
        assert_eq!(r.h("location"), Some("/new/x"), "{p}");
    }
    let r = get(port, "//old/a%20b?q=1");
    assert_eq!(r.h("location"), Some("/new/a%20b?q=1"));
}

#[test]
fn regression_no_open_redirect_to_another_host() {
    let (_web, port) = guarded("");
    for (p, want) in [
        ("//sub", "/sub/"),
        ("/%2Fsub", "/sub/"),
        ("//assets", "/assets/"),
        ("/%2Fassets", "/assets/"),
        ("/%2F%2Fassets", "/assets/"),
        ("/./assets?x=1", "/assets/?x=1"),
    ] {
        let r = get(port, p);
        assert_eq!(r.status, 301, "{p}");
        let loc = r.h("location").unwrap_or("");
        assert!(!loc.starts_with("//"), "{p} answered Location: {loc}");
        assert_eq!(loc, want, "{p}");
    }
}

#[test]
fn regression_host_is_checked_as_rfc_9112_asks() {
    let (_web, port) = guarded("");
    let ask = |head: &str| raw(port, &format!("{head}Connection: close\r\n\r\n")).status;
    assert_eq!(ask("GET /hello.txt HTTP/1.1\r\nHost: a.example\r\n"), 200);
    assert_eq!(ask("GET /hello.txt HTTP/1.1\r\n"), 400, "no Host");
    assert_eq!(
        ask("GET /hello.txt HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n"),
        400,
        "two Hosts"
    );
    for bad in ["a b", "a/b", "u@a.example", "a.example:x", "a..b", "[::1"] {
        assert_eq!(
            ask(&format!("GET /hello.txt HTTP/1.1\r\nHost: {bad}\r\n")),
            400,
            "Host: {bad}"
        );
    }
    // HTTP/1.0 may leave it out.
    assert_eq!(ask("GET /hello.txt HTTP/1.0\r\n"), 200);
}

#[test]
fn regression_absolute_form_routes_by_its_host() {
    let (dir, root) = fixture();
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("hello.txt"), "other site\n").unwrap();
    let port = free_port();
    let cfg = format!(
        r#"
[[sites]]
name = "main"
root = "{root}"
bindings = [{{ scheme = "http", address = "127.0.0.1", port = {port}, host = "main.example" }}]
logging = {{ enabled = false }}
[[sites]]
name = "other"
root = "{other}"
bindings = [{{ scheme = "http", address = "127.0.0.1", port = {port}, host = "other.example" }}]
logging = {{ enabled = false }}
"#,
        root = root.display(),
        other = other.display()
    );
    let _web = Web::start(dir, &cfg, &[port], &[]);
    let r = raw(
        port,
        "GET http://other.example/hello.txt HTTP/1.1\r\nHost: main.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"other site\n"[..]));
    let r = raw(
        port,
        "GET /hello.txt HTTP/1.1\r\nHost: main.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello world\n"[..]));
}

/// Writes `bytes` one at a time, `gap` apart, until the server closes the
/// connection; when it did, counted from `since`.
fn drip_until_closed(s: &mut TcpStream, bytes: &[u8], gap: Duration, since: Instant) -> Duration {
    for b in bytes.iter().cycle() {
        if s.write_all(&[*b]).is_err() {
            return since.elapsed();
        }
        std::thread::sleep(gap);
        assert!(since.elapsed() < Duration::from_secs(20), "never closed");
    }
    unreachable!()
}

#[test]
fn regression_the_header_timeout_counts_from_accept_across_the_sniff() {
    let (_web, port) = guarded("header_timeout_secs = 2");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let since = Instant::now();
    // The first byte late, then a slow drip of a head that never ends.
    std::thread::sleep(Duration::from_millis(1500));
    let took = drip_until_closed(
        &mut s,
        b"GET / HTTP/1.1\r\nX-A: b\r\n",
        Duration::from_millis(100),
        since,
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3200),
        "closed {took:?} after accept (timeout 2 s)"
    );
    // A head that arrives whole in time is answered.
    assert_eq!(get(port, "/hello.txt").status, 200);
}

/// A site on a fresh port whose root also holds `huge.bin`, a sparse file
/// of 1 GiB (far above the in-memory cache and any socket buffer).
fn huge_site(limits: &str) -> (Web, u16) {
    let (dir, root) = fixture();
    std::fs::File::create(root.join("huge.bin"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let port = free_port();
    let cfg = format!(
        r#"
[limits]
{limits}
[[sites]]
name = "huge"
root = "{root}"
bindings = [{{ scheme = "http", address = "127.0.0.1", port = {port} }}]
logging = {{ enabled = false }}
compression = {{ enabled = false }}
"#,
        root = root.display()
    );
    (Web::start(dir, &cfg, &[port], &[]), port)
}

/// A line of /proc/PID/status, as a number (kB for VmRSS).
fn proc_status(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn regression_a_client_that_stops_reading_http1_is_cut_at_the_send_timeout() {
    let (web, port) = huge_site("send_timeout_secs = 1");
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    // Read nothing for a while: the server's writes stall.
    std::thread::sleep(Duration::from_millis(3000));
    // Then take what there is: the answer ends well short of 1 GiB.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    let t = Instant::now();
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
        assert!(t.elapsed() < Duration::from_secs(20), "still sending");
    };
    assert!(closed, "the connection stayed open ({got} bytes read)");
    assert!(got < 1 << 30, "the whole file came: {got}");
    // The server serves on.
    assert_eq!(get(port, "/hello.txt").status, 200);
    drop(web);
}

#[test]
fn regression_past_max_connections_a_client_gets_503() {
    let (web, port) = guarded("max_connections = 3");
    let pid = web.child.id();
    // Three connections that send nothing hold every place. Each is
    // kept once the server holds it too (not answered at once: the probe
    // of `Web::start` may still hold a place for a moment).
    let mut held = Vec::new();
    let t = Instant::now();
    while held.len() < 3 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        if s.read(&mut [0u8; 1]).is_err() {
            held.push(s);
        }
        assert!(t.elapsed() < Duration::from_secs(10), "places never held");
    }
    let r = get(port, "/hello.txt");
    assert_eq!(r.status, 503);
    assert_eq!(r.h("retry-after"), Some("5"));
    assert!(String::from_utf8_lossy(&r.body).contains("too many connections"));
    let files = open_files(pid);
    // A place freed is a place taken.
    drop(held);
    let t = Instant::now();
    loop {
        let r = get(port, "/hello.txt");
        if r.status == 200 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "still {}", r.status);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(files < 64, "{files} descriptors open");
}

/// HTTP/2 with prior knowledge over a socket whose reads can be stopped
/// (`paused`): an attacker that stops reading once its requests are out.
mod h2c {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::TcpStream;

    pub struct Gate {
        pub io: TcpStream,
        pub paused: Arc<AtomicBool>,
    }

    impl AsyncRead for Gate {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.paused.load(Ordering::Relaxed) {
                return Poll::Pending;
            }
            Pin::new(&mut self.io).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Gate {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.io).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.io).poll_shutdown(cx)
        }
    }

    /// An h2c client on 127.0.0.1:`port` with `window` bytes of
    /// flow-control window per stream and on the connection; its
    /// connection task, and the switch that stops its reads.
    pub async fn connect(
        port: u16,
        window: u32,
    ) -> (
        h2::client::SendRequest<bytes::Bytes>,
        tokio::task::JoinHandle<Result<(), h2::Error>>,
        Arc<AtomicBool>,
    ) {
        let io = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let paused = Arc::new(AtomicBool::new(false));
        let gate = Gate {
            io,
            paused: paused.clone(),
        };
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(window)
            .initial_connection_window_size(window)
            .handshake(gate)
            .await
            .unwrap();
        (send, tokio::spawn(conn), paused)
    }

    pub fn get(path: &str, authority: &str) -> hyper::http::Request<()> {
        hyper::http::Request::get(format!("http://{authority}{path}"))
            .body(())
            .unwrap()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn regression_idle_h2c_connections_are_closed_at_the_header_timeout() {
    let (_web, port) = guarded("header_timeout_secs = 1");
    rt().block_on(async {
        // Preface and SETTINGS, then silence.
        let t = Instant::now();
        let (_send, conn, _) = h2c::connect(port, 65_535).await;
        let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
        assert!(
            ended.is_ok(),
            "an idle h2c connection is still open after 10 s"
        );
        let took = t.elapsed();
        assert!(took < Duration::from_millis(3500), "closed after {took:?}");
        // One that asks something is answered, then let go when idle.
        let (mut send, conn, _) = h2c::connect(port, 65_535).await;
        let (resp, _) = send
            .send_request(h2c::get("/hello.txt", "localhost"), true)
            .unwrap();
        assert_eq!(resp.await.unwrap().status(), 200);
        let t = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
        assert!(ended.is_ok(), "still open 10 s after its answer");
        assert!(
            t.elapsed() >= Duration::from_millis(700),
            "{:?}",
            t.elapsed()
        );
    });
}

#[test]
fn regression_h2_authority_and_host_must_agree_and_paths_are_canonical() {
    let (_web, port) = guarded("");
    rt().block_on(async {
        let (mut send, _conn, _) = h2c::connect(port, 65_535).await;
        let mut req = h2c::get("/hello.txt", "a.example");
        req.headers_mut()
            .insert("host", hyper::http::HeaderValue::from_static("b.example"));
        let (resp, _) = send.send_request(req, true).unwrap();
        assert_eq!(resp.await.unwrap().status(), 400);
        let mut req = h2c::get("/hello.txt", "a.example");
        req.headers_mut()
            .insert("host", hyper::http::HeaderValue::from_static("a.example"));
        let (resp, _) = send.send_request(req, true).unwrap();
        assert_eq!(resp.await.unwrap().status(), 200);
        // HTTP/2's :path is the same canonical path.
        for p in [
            "//admin/secret.txt",
            "/%2fadmin/secret.txt",
            "/./admin/secret.txt",
        ] {
            let (resp, _) = send.send_request(h2c::get(p, "a.example"), true).unwrap();
            assert_eq!(resp.await.unwrap().status(), 401, "{p}");
        }
    });
}

#[test]
fn regression_an_h2_client_that_opens_no_window_is_cut_at_the_send_timeout() {
    let (_web, port) = huge_site("send_timeout_secs = 1\nheader_timeout_secs = 30");
    rt().block_on(async {
        // The default 64 KiB window, never given back: the server is
        // blocked by flow control, not by the socket.
        let (mut send, conn, _) = h2c::connect(port, 65_535).await;
        let (resp, _) = send
            .send_request(h2c::get("/huge.bin", "localhost"), true)
            .unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        let _body = resp.into_body(); // held, never read
        let t = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
        assert!(
            ended.is_ok(),
            "a stalled h2 connection is still open after 10 s"
        );
        assert!(
            t.elapsed() < Duration::from_millis(4000),
            "{:?}",
            t.elapsed()
        );
    });
}

#[test]
fn regression_h2_streams_that_are_not_read_hold_bounded_memory() {
    let (web, port) = huge_site("");
    let pid = web.child.id();
    // Warm up, then the idle figure.
    assert_eq!(get(port, "/hello.txt").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let idle_kb = proc_status(pid, "VmRSS:");
    let rt = rt();
    let clients = rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..5 {
            // Huge windows, so only the socket and the server's own
            // buffers hold the data back, then reads stop.
            let (mut send, conn, paused) = h2c::connect(port, 1 << 30).await;
            let mut resps = Vec::new();
            // More than the 100 streams a connection may have open: the
            // client waits for room past them.
            for _ in 0..100 {
                let s = send.clone().ready().await.unwrap();
                send = s;
                let (r, _) = send
                    .send_request(h2c::get("/huge.bin", "localhost"), true)
                    .unwrap();
                resps.push(r);
            }
            let first = resps.remove(0).await.unwrap();
            assert_eq!(first.status(), 200);
            paused.store(true, std::sync::atomic::Ordering::Relaxed);
            clients.push((send, conn, resps, first));
        }
        clients
    });
    std::thread::sleep(Duration::from_secs(3));
    let (rss_kb, threads, files) = (
        proc_status(pid, "VmRSS:"),
        proc_status(pid, "Threads:"),
        open_files(pid),
    );
    eprintln!(
        "mote-web: idle {idle_kb} kB, with 5 h2 connections x 100 unread streams {rss_kb} kB, \
         {threads} threads, {files} descriptors"
    );
    assert!(
        rss_kb < idle_kb + 64 * 1024,
        "RSS went from {idle_kb} kB to {rss_kb} kB"
    );
    assert!(threads <= 16, "{threads} threads");
    drop(clients);
    drop(rt);
    // The server still answers, and lets go of what the streams held.
    assert_eq!(get(port, "/hello.txt").status, 200);
    let t = Instant::now();
    while open_files(pid) > 64 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{} descriptors",
            open_files(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    eprintln!(
        "mote-web: after the clients left {} kB",
        proc_status(pid, "VmRSS:")
    );
}

#[test]
fn regression_http1_clients_that_do_not_read_hold_bounded_memory() {
    let (web, port) = huge_site("");
    let pid = web.child.id();
    assert_eq!(get(port, "/hello.txt").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    let idle_kb = proc_status(pid, "VmRSS:");
    let clients: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /huge.bin HTTP/1.1\r\nHost: a\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let (rss_kb, threads) = (proc_status(pid, "VmRSS:"), proc_status(pid, "Threads:"));
    eprintln!(
        "mote-web: idle {idle_kb} kB, with 300 HTTP/1 clients not reading a 1 GiB file \
         {rss_kb} kB, {threads} threads"
    );
    assert!(
        rss_kb < idle_kb + 64 * 1024,
        "RSS went from {idle_kb} kB to {rss_kb} kB"
    );
    assert!(threads <= 16, "{threads} threads");
    drop(clients);
    assert_eq!(get(port, "/hello.txt").status, 200);
}

/// A TLS client that takes any certificate (mote-web's self-signed one)
/// and offers `h2` by ALPN.
mod tls {
    use std::sync::Arc;

    use tokio_rustls::rustls::client::danger::{
        HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
    };
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use tokio_rustls::rustls::{self, DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    struct AnyCert;

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
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    pub async fn connect_h2(port: u16) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert))
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        s
    }
}

#[test]
fn regression_idle_h2_connections_over_tls_are_closed_at_the_header_timeout() {
    let (dir, root) = fixture();
    let port = free_port();
    let cfg = format!(
        r#"
[limits]
header_timeout_secs = 1
[[sites]]
name = "tls"
root = "{root}"
bindings = [{{ scheme = "https", address = "127.0.0.1", port = {port} }}]
tls = {{ self_signed = true }}
logging = {{ enabled = false }}
"#,
        root = root.display()
    );
    let _web = Web::start(dir, &cfg, &[port], &[]);
    rt().block_on(async {
        let io = tls::connect_h2(port).await;
        let t = Instant::now();
        let (mut send, conn) = h2::client::handshake(io).await.unwrap();
        let conn = tokio::spawn(conn);
        let (resp, _) = send
            .send_request(h2c::get("/hello.txt", "localhost"), true)
            .unwrap();
        assert_eq!(resp.await.unwrap().status(), 200);
        let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
        assert!(
            ended.is_ok(),
            "an idle h2 connection over TLS is still open after 10 s"
        );
        assert!(
            t.elapsed() < Duration::from_millis(4000),
            "{:?}",
            t.elapsed()
        );
    });
}

#[test]
fn regression_many_idle_h2c_connections_do_not_keep_their_descriptors() {
    let (web, port) = guarded("header_timeout_secs = 1");
    let pid = web.child.id();
    let before = open_files(pid);
    // The preface and an empty SETTINGS frame, then silence, 300 times.
    let hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(hello).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let held = open_files(pid);
    assert!(
        held >= before + 250,
        "{held} descriptors with 300 connections open"
    );
    let t = Instant::now();
    while open_files(pid) > before + 5 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{} descriptors still open ({before} before)",
            open_files(pid)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    drop(idle);
    assert_eq!(get(port, "/hello.txt").status, 200);
}

#[test]
fn a_request_head_over_64_kib_is_431() {
    let (_web, port) = guarded("");
    let big = "a".repeat(70 * 1024);
    let r = raw(
        port,
        &format!("GET /hello.txt HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 431);
    let fits = "a".repeat(60 * 1024);
    let r = raw(
        port,
        &format!(
            "GET /hello.txt HTTP/1.1\r\nHost: a\r\nX-Big: {fits}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(r.status, 200);
}

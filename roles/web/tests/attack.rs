//! mote-web probed as an attacker would (issue 10): raw sockets and a
//! hand-driven HTTP/2 client against the real binary on 127.0.0.1, each
//! test checking what the server did (status, headers, closed sockets,
//! memory and threads read from /proc), never what the client sent.

use std::io::Write;
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

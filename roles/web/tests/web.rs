//! Integration tests: the real `mote-web` binary, real clients (curl, and
//! raw sockets for the upgrade), and nginx serving the same tree.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::*;

#[test]
fn static_content_filtering_logging_metrics() {
    let (dir, root) = fixture();
    let (port, mport) = (free_port(), free_port());
    let cfg = format!(
        r#"
[[sites]]
name = "main"
root = "{root}"
bindings = [{{ scheme = "http", address = "127.0.0.1", port = {port} }}]
error_pages = {{ "404" = "errors/404.html" }}
logging = {{ dir = "{logs}" }}
[sites.request_filtering]
max_url_length = 200
max_body_bytes = 1000
"#,
        root = root.display(),
        logs = dir.path().join("logs").display()
    );
    let maddr = format!("127.0.0.1:{mport}");
    let web = Web::start(dir, &cfg, &[port, mport], &["--metrics", &maddr]);

    let r = curl(&[&url(port, "/hello.txt")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.h("content-type"), Some("text/plain"));
    assert_eq!(r.h("content-length"), Some("12"));
    assert_eq!(r.h("accept-ranges"), Some("bytes"));
    assert_eq!(r.text(), "hello world\n");
    let etag = r.h("etag").unwrap().to_owned();
    let lm = r.h("last-modified").unwrap().to_owned();

    // Conditional requests.
    let r = curl(&[
        "-H",
        &format!("If-None-Match: {etag}"),
        &url(port, "/hello.txt"),
    ]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = curl(&[
        "-H",
        &format!("If-Modified-Since: {lm}"),
        &url(port, "/hello.txt"),
    ]);
    assert_eq!(r.status, 304);
    let r = curl(&["-H", "If-None-Match: \"other\"", &url(port, "/hello.txt")]);
    assert_eq!(r.status, 200);

    // Ranges.
    let r = curl(&["-r", "0-4", &url(port, "/hello.txt")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.h("content-range"), Some("bytes 0-4/12"));
    assert_eq!(r.text(), "hello");
    let r = curl(&["-r", "100-", &url(port, "/hello.txt")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.h("content-range"), Some("bytes */12"));
    let r = curl(&["-r", "500000-500009", &url(port, "/big.bin")]);
    assert_eq!(r.status, 206);
    let want: Vec<u8> = (500_000..500_010u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(r.body, want);

    // Large file streamed whole.
    let r = curl(&[&url(port, "/big.bin")]);
    assert_eq!(r.body.len(), 600_000);
    assert_eq!(r.h("content-type"), Some("application/octet-stream"));

    // HEAD.
    let r = curl(&["-I", &url(port, "/big.bin")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.h("content-length"), Some("600000"));

    // Default documents, directory redirect, browsing off, custom 404.
    assert_eq!(curl(&[&url(port, "/")]).text(), "<h1>home</h1>\n");
    assert_eq!(curl(&[&url(port, "/sub/")]).text(), "sub index\n");
    let r = curl(&[&url(port, "/sub")]);
    assert_eq!(r.status, 301);
    assert_eq!(r.h("location"), Some("/sub/"));
    assert_eq!(curl(&[&url(port, "/browse/")]).status, 403);
    let r = curl(&[&url(port, "/nope.txt")]);
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "custom not found\n");
    assert_eq!(
        curl(&[&url(port, "/sub/deeper/a.json")]).h("content-type"),
        Some("application/json")
    );

    // Compression: on the fly (gzip, br), precompressed sibling, Vary.
    let r = curl(&["-H", "Accept-Encoding: gzip", &url(port, "/style.css")]);
    assert_eq!(r.h("content-encoding"), Some("gzip"));
    assert_eq!(r.h("vary"), Some("Accept-Encoding"));
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut plain)
        .unwrap();
    assert_eq!(plain, "body { color: red; }\n".repeat(200));
    let r = curl(&["-H", "Accept-Encoding: br, gzip", &url(port, "/app.js")]);
    assert_eq!(r.h("content-encoding"), Some("br"));
    let mut out = Vec::new();
    brotli::Decompressor::new(&r.body[..], 4096)
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, "console.log(1);\n".repeat(100).as_bytes());
    let r = curl(&["-H", "Accept-Encoding: gzip", &url(port, "/pre.txt")]);
    assert_eq!(r.h("content-encoding"), Some("gzip"));
    assert_eq!(r.text(), "GZ-SIBLING");
    let r = curl(&[&url(port, "/style.css")]);
    assert_eq!(r.h("content-encoding"), None);

    // Request filtering and traversal.
    assert_eq!(curl(&[&url(port, "/../etc/passwd")]).status, 400);
    assert_eq!(curl(&[&url(port, "/%2e%2e/%2e%2e/etc/passwd")]).status, 400);
    assert_eq!(curl(&[&url(port, "/%252e%252e/etc/passwd")]).status, 400);
    assert_eq!(curl(&[&url(port, "/.git/config")]).status, 404);
    assert_eq!(curl(&[&url(port, "/web.config")]).status, 404);
    assert_eq!(curl(&["-X", "TRACE", &url(port, "/")]).status, 405);
    let long = format!("/{}", "a".repeat(300));
    assert_eq!(curl(&[&url(port, &long)]).status, 414);
    let body = "x".repeat(2000);
    assert_eq!(curl(&["--data", &body, &url(port, "/")]).status, 413);

    // Metrics.
    let m = curl(&[&format!("http://{maddr}/metrics")]).text();
    assert!(m.contains("mote_web_requests_total{site=\"main\"}"), "{m}");
    assert!(m.contains("mote_web_responses_total{site=\"main\",class=\"4xx\"}"));
    assert!(m.contains("mote_web_request_duration_seconds_bucket"));

    // W3C log (flushed within a second).
    let text = wait_log(&web.path().join("logs/main"), " 404 8 0 ");
    assert!(text.starts_with("#Software: mote-web"), "{text}");
    assert!(text.contains("#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken"));
    assert!(
        text.contains(&format!(" GET /hello.txt - {port} - 127.0.0.1 curl/")),
        "{text}"
    );
    assert!(text.contains(" /.git/config - "));
    assert!(text.contains(" 404 8 0 "), "{text}");
}

#[test]
fn https_h2_hsts_redirects_auth_ip() {
    let (dir, root) = fixture();
    let (http, https, other) = (free_port(), free_port(), free_port());
    let hash = mote_config::password::hash("s3cret").unwrap();
    let cfg = format!(
        r#"
[[sites]]
name = "secure"
root = "{root}"
bindings = [
  {{ scheme = "http", address = "127.0.0.1", port = {http} }},
  {{ scheme = "https", address = "127.0.0.1", port = {https} }},
]
https_redirect = true
hsts = {{ max_age = 600 }}
tls = {{ self_signed = true }}
logging = {{ enabled = false }}
directory_browsing = true
basic_auth = [{{ path = "/sub", users = {{ alice = "{hash}" }} }}]
redirects = [{{ from = "/old", to = "/new", status = 308 }}]

[[sites]]
name = "closed"
root = "{root}"
bindings = [{{ scheme = "http", address = "127.0.0.1", port = {other} }}]
logging = {{ enabled = false }}
ip = {{ deny = ["127.0.0.0/8"] }}
"#,
        root = root.display()
    );
    let _web = Web::start(dir, &cfg, &[http, https, other], &[]);
    let s = |p: &str| format!("https://127.0.0.1:{https}{p}");

    let r = curl(&[&url(http, "/hello.txt?x=1")]);
    assert_eq!(r.status, 301);
    assert_eq!(
        r.h("location"),
        Some(format!("https://127.0.0.1:{https}/hello.txt?x=1").as_str())
    );
    let r = curl(&["-k", "--http1.1", &s("/hello.txt")]);
    assert_eq!((r.status, r.text().as_str()), (200, "hello world\n"));
    assert_eq!(r.h("strict-transport-security"), Some("max-age=600"));
    let r = curl(&["-k", "--http2", &s("/hello.txt")]);
    assert_eq!(r.version, "HTTP/2");
    assert_eq!(r.status, 200);
    let r = curl(&[
        "-k",
        "--resolve",
        &format!("example.test:{https}:127.0.0.1"),
        &format!("https://example.test:{https}/"),
    ]);
    assert_eq!(r.status, 200);

    let r = curl(&["-k", &s("/old/page?q=2")]);
    assert_eq!(r.status, 308);
    assert_eq!(r.h("location"), Some("/new/page?q=2"));

    let r = curl(&["-k", &s("/sub/")]);
    assert_eq!(r.status, 401);
    assert!(r
        .h("www-authenticate")
        .unwrap()
        .starts_with("Basic realm=\"mote\""));
    assert_eq!(curl(&["-k", "-u", "alice:wrong", &s("/sub/")]).status, 401);
    let r = curl(&["-k", "-u", "alice:s3cret", &s("/sub/")]);
    assert_eq!((r.status, r.text().as_str()), (200, "sub index\n"));
    assert_eq!(curl(&["-k", "-u", "alice:s3cret", &s("/sub/")]).status, 200);

    // Directory browsing on, names escaped.
    let r = curl(&["-k", &s("/browse/")]);
    assert_eq!(r.status, 200);
    let t = r.text();
    assert!(
        t.contains("one.txt") && t.contains("two &lt;b&gt;.txt"),
        "{t}"
    );

    assert_eq!(curl(&[&url(other, "/hello.txt")]).status, 403);
}

fn app_config(root: &Path, port: u16, extra: &str) -> String {
    format!(
        r#"
[[sites]]
name = "apps"
root = "{root}"
bindings = [{{ scheme = "http", address = "127.0.0.1", port = {port} }}]
logging = {{ enabled = false }}
[[sites.apps]]
path = "/app"
program = "{APP}"
processes = 2
request_timeout_secs = 1
stdout_log = "{log}"
{extra}
"#,
        root = root.display(),
        log = root.parent().unwrap().join("app.log").display()
    )
}

/// The text of the one log file in `dir` once it holds `needle` (the
/// writer flushes about a second after the last line; at most 15 s).
fn wait_log(dir: &Path, needle: &str) -> String {
    let t = Instant::now();
    loop {
        let text = std::fs::read_dir(dir)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no {needle:?} in the log in {}:\n{text}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (at most 15 s) until the app under `/app` answers.
fn wait_app(port: u16) {
    let t = Instant::now();
    while curl(&[&url(port, "/app/pid")]).status != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the app did not come up"
        );
    }
}

#[test]
fn regression_a_chunked_body_over_the_limit_is_refused_with_413() {
    let (dir, root) = fixture();
    let port = free_port();
    let cfg = app_config(
        &root,
        port,
        "[sites.request_filtering]\nmax_body_bytes = 1000",
    );
    let _web = Web::start(dir, &cfg, &[port], &[]);
    wait_app(port);
    let small = "x".repeat(500);
    let big = "x".repeat(5000);
    let chunked = ["-H", "Transfer-Encoding: chunked", "--data-binary"];
    let ok = curl(&[
        chunked[0],
        chunked[1],
        chunked[2],
        &small,
        &url(port, "/app/echo"),
    ]);
    assert_eq!((ok.status, ok.text().len()), (200, 500));
    let refused = curl(&[
        chunked[0],
        chunked[1],
        chunked[2],
        &big,
        &url(port, "/app/echo"),
    ]);
    assert_eq!(refused.status, 413);
}

#[test]
fn app_backends_proxy_upgrade_timeout_restart() {
    let (dir, root) = fixture();
    let port = free_port();
    let cfg = app_config(&root, port, "");
    let web = Web::start(dir, &cfg, &[port], &[]);
    // Wait for both processes.
    let t = Instant::now();
    let mut pids = std::collections::HashSet::new();
    while pids.len() < 2 {
        assert!(t.elapsed() < Duration::from_secs(15), "{pids:?}");
        let r = curl(&[&url(port, "/app/pid")]);
        if r.status == 200 {
            pids.insert(r.text());
        }
    }
    let r = curl(&[&url(port, "/app")]);
    assert_eq!(r.status, 404, "the app sees the full path");
    let r = curl(&["--data-binary", "ping body", &url(port, "/app/echo")]);
    assert_eq!((r.status, r.text().as_str()), (200, "ping body"));
    let r = curl(&[&url(port, "/app/headers")]);
    let t = r.text();
    assert!(
        t.contains("x-forwarded-for: 127.0.0.1") && t.contains("x-forwarded-proto: http"),
        "{t}"
    );
    // Static content beside the app.
    assert_eq!(curl(&[&url(port, "/hello.txt")]).status, 200);

    // Keep-alive to the backends: sequential requests reuse a connection
    // per process and worker (2 × 2 here) instead of opening one each.
    let peers: std::collections::HashSet<String> = (0..12)
        .map(|_| curl(&[&url(port, "/app/peer")]).text())
        .collect();
    assert!(peers.len() <= 5, "no reuse: {peers:?}");
    // Bodies larger than one read stream through both ways.
    let big = curl(&[&url(port, "/app/big")]);
    assert_eq!(big.body.len(), 1_000_000);
    assert!(big
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == b'a' + (i % 26) as u8));
    let upload = "0123456789".repeat(30_000);
    let file = web.path().join("upload.txt");
    std::fs::write(&file, &upload).unwrap();
    let at = format!("@{}", file.display());
    let r = curl(&["--data-binary", &at, &url(port, "/app/echo")]);
    assert_eq!((r.status, r.body.len()), (200, upload.len()));
    assert_eq!(r.text(), upload);
    // A backend that closes after answering: the next requests go out on
    // new connections.
    assert_eq!(curl(&[&url(port, "/app/close")]).text(), "closing");
    for _ in 0..4 {
        assert_eq!(curl(&[&url(port, "/app/pid")]).status, 200);
    }
    // HTTP/2 (absolute-form URI inside) becomes an HTTP/1.1 origin-form
    // request with the Host header.
    let r = curl(&["--http2-prior-knowledge", &url(port, "/app/headers")]);
    assert_eq!((r.status, r.version.as_str()), (200, "HTTP/2"));
    assert!(
        r.text().contains(&format!("host: 127.0.0.1:{port}")),
        "{}",
        r.text()
    );

    // Request timeout → 504.
    assert_eq!(curl(&[&url(port, "/app/sleep")]).status, 504);

    // Upgrade pass-through (raw bytes echoed after 101).
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /app/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(b"frame-1").unwrap();
    let n = s.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"frame-1");

    // Kill one process: it is restarted, requests keep working.
    let _ = curl(&[&url(port, "/app/exit")]);
    let t = Instant::now();
    let mut new = std::collections::HashSet::new();
    while new.len() < 2 || new == pids {
        assert!(t.elapsed() < Duration::from_secs(15), "{new:?}");
        let r = curl(&[&url(port, "/app/pid")]);
        if r.status == 200 {
            new.insert(r.text());
        }
        if new.len() > 2 {
            break;
        }
    }
    let log = std::fs::read_to_string(web.path().join("app.log")).unwrap();
    assert!(log.contains("mote-web-testapp listening on"), "{log}");
}

#[test]
fn app_that_never_starts_gives_503() {
    let (dir, root) = fixture();
    let port = free_port();
    let cfg = app_config(
        &root,
        port,
        "startup_time_limit_secs = 1\nstartup_retries = 1\nenv = { MOTE_TESTAPP_FAIL = \"1\" }",
    );
    let _web = Web::start(dir, &cfg, &[port], &[]);
    assert_eq!(curl(&[&url(port, "/app/")]).status, 503);
}

#[test]
fn sighup_reload_adds_listener_keeps_connections() {
    let (dir, root) = fixture();
    let (a, b) = (free_port(), free_port());
    let site = |ports: &[u16]| {
        let binds: Vec<String> = ports
            .iter()
            .map(|p| format!("{{ scheme = \"http\", address = \"127.0.0.1\", port = {p} }}"))
            .collect();
        format!(
            "[[sites]]\nname = \"r\"\nroot = \"{}\"\nlogging = {{ enabled = false }}\nbindings = [{}]\n",
            root.display(),
            binds.join(", ")
        )
    };
    let web = Web::start(dir, &site(&[a]), &[a], &[]);
    // An open keep-alive connection across the reload.
    let mut s = TcpStream::connect(("127.0.0.1", a)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(req).unwrap();
    let mut buf = [0u8; 4096];
    assert!(s.read(&mut buf).unwrap() > 0);
    let hup = || {
        let st = Command::new("kill")
            .args(["-HUP", &web.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    std::fs::write(web.path().join("web.toml"), site(&[a, b])).unwrap();
    hup();
    wait_port(b);
    assert_eq!(curl(&[&url(b, "/hello.txt")]).status, 200);
    // The connection opened before the reload is still served.
    s.write_all(req).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // A binding removed: its listener closes.
    std::fs::write(web.path().join("web.toml"), site(&[b])).unwrap();
    hup();
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", a)).is_ok() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "old listener still open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A bad file is refused and the running settings kept.
    std::fs::write(web.path().join("web.toml"), "[[sites]]\nbogus = 1\n").unwrap();
    Command::new("kill")
        .args(["-HUP", &web.child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(curl(&[&url(b, "/hello.txt")]).status, 200);

    // Regression: valid settings naming a port that is taken fail the
    // reload as a whole; the new deny rule on the served site must not
    // slip in.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = taken.local_addr().unwrap().port();
    let denied = site(&[b, c]).replace(
        "logging = { enabled = false }",
        "logging = { enabled = false }\nip = { deny = [\"127.0.0.1/32\"] }",
    );
    std::fs::write(web.path().join("web.toml"), denied).unwrap();
    hup();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(curl(&[&url(b, "/hello.txt")]).status, 200);
    drop(taken);

    // A binding that changes scheme on the same port: https from then on.
    let https = site(&[b])
        .replace("scheme = \"http\"", "scheme = \"https\"")
        .replace(
            "logging = { enabled = false }",
            "logging = { enabled = false }\ntls = { self_signed = true }",
        );
    std::fs::write(web.path().join("web.toml"), https).unwrap();
    hup();
    let t = Instant::now();
    loop {
        let r = curl(&["-k", &format!("https://127.0.0.1:{b}/hello.txt")]);
        if r.status == 200 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "no https on {b}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn same_answers_as_nginx() {
    let (dir, root) = fixture();
    let ndir = tempfile::tempdir().unwrap();
    let (mine, theirs) = (free_port(), free_port());
    let mut nginx = start_nginx(ndir.path(), &root, theirs);
    let cfg = format!(
        "[[sites]]\nname = \"cmp\"\nroot = \"{}\"\nlogging = {{ enabled = false }}\nbindings = [{{ scheme = \"http\", address = \"127.0.0.1\", port = {mine} }}]\n",
        root.display()
    );
    let _web = Web::start(dir, &cfg, &[mine], &[]);
    let lm_hello = curl(&[&url(theirs, "/hello.txt")])
        .h("last-modified")
        .unwrap()
        .to_owned();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("file", vec!["/hello.txt".into()]),
        ("css", vec!["/style.css".into()]),
        ("json", vec!["/sub/deeper/a.json".into()]),
        ("big", vec!["/big.bin".into()]),
        ("index", vec!["/".into()]),
        ("sub index", vec!["/sub/".into()]),
        ("404", vec!["/missing.html".into()]),
        (
            "range",
            vec!["-r".into(), "2-6".into(), "/hello.txt".into()],
        ),
        (
            "suffix range",
            vec!["-r".into(), "-3".into(), "/hello.txt".into()],
        ),
        (
            "open range",
            vec!["-r".into(), "599990-".into(), "/big.bin".into()],
        ),
        ("416", vec!["-r".into(), "900-".into(), "/hello.txt".into()]),
        // One path however it is spelled (issue 10).
        ("double slash", vec!["//hello.txt".into()]),
        ("dot segment", vec!["/./hello.txt".into()]),
        ("encoded slash", vec!["/%2fsub/index.htm".into()]),
        ("encoded dot", vec!["/%2e/hello.txt".into()]),
        ("inner slashes", vec!["/sub//deeper/a.json".into()]),
        ("encoded dot-dot", vec!["/%2e%2e/hello.txt".into()]),
        ("HEAD", vec!["-I".into(), "/hello.txt".into()]),
        ("HEAD big", vec!["-I".into(), "/big.bin".into()]),
        (
            "304 date",
            vec![
                "-H".into(),
                format!("If-Modified-Since: {lm_hello}"),
                "/hello.txt".into(),
            ],
        ),
    ];
    let mut diffs = Vec::new();
    for (name, args) in &cases {
        let run = |port: u16| {
            let mut a: Vec<String> = args.clone();
            let last = a.pop().unwrap();
            a.push(url(port, &last));
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            curl(&refs)
        };
        let (m, n) = (run(mine), run(theirs));
        let mut check = |what: &str, a: Option<&str>, b: Option<&str>| {
            if a != b {
                diffs.push(format!("{name}: {what}: mote-web {a:?}, nginx {b:?}"));
            }
        };
        check(
            "status",
            Some(&m.status.to_string()),
            Some(&n.status.to_string()),
        );
        for h in ["last-modified", "accept-ranges", "content-range"] {
            check(h, m.h(h), n.h(h));
        }
        // Error pages name the server, so only success lengths compare.
        if n.status < 400 {
            check(
                "content-length",
                m.h("content-length"),
                n.h("content-length"),
            );
        }
        if n.status < 400 {
            check("content-type", m.h("content-type"), n.h("content-type"));
        }
        check(
            "etag present",
            m.h("etag").map(|_| "yes"),
            n.h("etag").map(|_| "yes"),
        );
        if m.status < 400 && !args.iter().any(|a| a == "-I") {
            check(
                "body",
                Some(&format!("{:?}", m.body)),
                Some(&format!("{:?}", n.body)),
            );
        }
    }
    // A directory spelled oddly is redirected to its one spelling, on this
    // site (nginx's Location is absolute, ours a path).
    for p in ["//sub", "/%2Fsub", "/./sub", "/%2e/sub"] {
        let (m, n) = (curl(&[&url(mine, p)]), curl(&[&url(theirs, p)]));
        let (ml, nl) = (m.h("location").unwrap_or(""), n.h("location").unwrap_or(""));
        if m.status != n.status || ml != "/sub/" || !nl.ends_with(&format!(":{theirs}/sub/")) {
            diffs.push(format!(
                "{p}: mote-web {} {ml:?}, nginx {} {nl:?}",
                m.status, n.status
            ));
        }
    }
    // Host as RFC 9112 §3.2 asks, nginx as the reference: none (HTTP/1.1),
    // two, or an invalid one is 400; HTTP/1.0 may go without.
    for (what, head) in [
        ("no Host", "GET /hello.txt HTTP/1.1\r\n"),
        (
            "two Hosts",
            "GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
        ),
        ("Host with /", "GET /hello.txt HTTP/1.1\r\nHost: a/b\r\n"),
        ("HTTP/1.0 without Host", "GET /hello.txt HTTP/1.0\r\n"),
        ("one Host", "GET /hello.txt HTTP/1.1\r\nHost: a\r\n"),
    ] {
        let req = format!("{head}Connection: close\r\n\r\n");
        let (m, n) = (raw(mine, &req).status, raw(theirs, &req).status);
        if m != n {
            diffs.push(format!("{what}: mote-web {m}, nginx {n}"));
        }
    }
    // 304 on our own ETag as nginx does on its own.
    for port in [mine, theirs] {
        let e = curl(&[&url(port, "/hello.txt")])
            .h("etag")
            .unwrap()
            .to_owned();
        let r = curl(&[
            "-H",
            &format!("If-None-Match: {e}"),
            &url(port, "/hello.txt"),
        ]);
        if r.status != 304 {
            diffs.push(format!("If-None-Match on port {port}: {}", r.status));
        }
    }
    stop(&mut nginx);
    let _ = nginx.kill();
    let _ = nginx.wait();
    assert!(
        diffs.is_empty(),
        "differences from nginx:\n{}",
        diffs.join("\n")
    );
}

fn wait_closed(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "port {port} still open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn disabled_sites_do_not_listen_and_reload_flips_them() {
    let (dir, root) = fixture();
    let (a, b) = (free_port(), free_port());
    let cfg = |on: bool, off: bool| {
        format!(
            "[[sites]]\nname = \"on\"\nenabled = {on}\nroot = \"{r}\"\nlogging = {{ enabled = false }}\n\
             bindings = [{{ scheme = \"http\", address = \"127.0.0.1\", port = {a} }}]\n\
             [[sites]]\nname = \"off\"\nenabled = {off}\nroot = \"{r}\"\nlogging = {{ enabled = false }}\n\
             bindings = [{{ scheme = \"http\", address = \"127.0.0.1\", port = {b} }}]\n",
            r = root.display()
        )
    };
    let web = Web::start(dir, &cfg(true, false), &[a], &[]);
    assert_eq!(curl(&[&url(a, "/hello.txt")]).status, 200);
    assert!(
        TcpStream::connect(("127.0.0.1", b)).is_err(),
        "a disabled site's binding listens"
    );
    let hup = || {
        let st = Command::new("kill")
            .args(["-HUP", &web.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    };
    // Enabling opens its listener.
    std::fs::write(web.path().join("web.toml"), cfg(true, true)).unwrap();
    hup();
    wait_port(b);
    assert_eq!(curl(&[&url(b, "/hello.txt")]).status, 200);
    // Disabling closes it; the other site keeps serving.
    std::fs::write(web.path().join("web.toml"), cfg(false, true)).unwrap();
    hup();
    wait_closed(a);
    assert_eq!(curl(&[&url(b, "/hello.txt")]).status, 200);
}

#[test]
fn slow_headers_and_idle_keep_alive_are_cut_at_the_header_timeout() {
    let (dir, root) = fixture();
    let port = free_port();
    let cfg = format!(
        r#"
[limits]
header_timeout_secs = 1
[[sites]]
name = "main"
root = "{root}"
bindings = [{{ scheme = "http", address = "127.0.0.1", port = {port} }}]
logging = {{ enabled = false }}
"#,
        root = root.display()
    );
    let _web = Web::start(dir, &cfg, &[port], &[]);

    // A head that never ends (slowloris): the connection is closed.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .unwrap();
    let took = time_to_close(&mut slow);
    assert!(
        took > Duration::from_millis(500) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );

    // A whole request in time is answered; left idle, the keep-alive
    // connection is closed too.
    let mut ok = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ok.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    ok.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    let n = ok.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let took = time_to_close(&mut ok);
    assert!(
        took > Duration::from_millis(500) && took < Duration::from_secs(5),
        "idle closed after {took:?}"
    );
}

#[test]
fn bad_limits_are_refused_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("web.toml");
    std::fs::write(&cfg, "[limits]\nheader_timeout_secs = 0\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("limits.header_timeout_secs"), "{err}");
}

#[test]
fn time_taken_covers_the_whole_body() {
    let (dir, root) = fixture();
    let port = free_port();
    let logs = dir.path().join("logs");
    let cfg = app_config(&root, port, "").replace(
        "logging = { enabled = false }",
        &format!("logging = {{ dir = \"{}\" }}", logs.display()),
    );
    let _web = Web::start(dir, &cfg, &[port], &[]);
    wait_app(port);
    // The head comes at once; the body takes 600 ms more.
    let r = curl(&[&url(port, "/app/drip")]);
    assert_eq!(r.text(), "drip\ndrip\ndrip\n");
    let text = wait_log(&logs.join("apps"), " /app/drip ");
    let line = text
        .lines()
        .find(|l| l.contains(" /app/drip "))
        .unwrap_or_else(|| panic!("no line for /app/drip in\n{text}"));
    let ms: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((550..5000).contains(&ms), "time-taken {ms} ms: {line}");
}

#[test]
fn check_is_silent_on_good_settings_and_names_file_and_key_of_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str| {
        let f = dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        let out = Command::new(BIN).arg("--check").arg(&f).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (f, out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    // Good, as JSON (what moted writes) and as TOML: exit 0, no output. The
    // root is not opened (it does not exist here).
    let (_, code, out, err) = check(
        "good.json",
        r#"{"sites":[{"name":"main","root":"/nonexistent/www","bindings":[{"scheme":"http","port":8080}]}]}"#,
    );
    assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "", ""));
    let (_, code, out, err) = check(
        "good.toml",
        "[[sites]]\nname = \"main\"\nroot = \"/srv/www\"\nbindings = [{ scheme = \"http\", port = 80 }]\n",
    );
    assert_eq!((code, out.as_str(), err.as_str()), (Some(0), "", ""));
    // A validation error: exit 1, `mote-web: FILE: key: message`.
    let (f, code, out, err) = check("limits.json", r#"{"limits":{"header_timeout_secs":0}}"#);
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert_eq!(
        err,
        format!(
            "mote-web: {}: limits.header_timeout_secs: from 1 to 3600 seconds\n",
            f.display()
        )
    );
    // A value of the wrong type and an unknown key: the same shape.
    let (f, code, _, err) = check(
        "port.json",
        r#"{"sites":[{"name":"main","root":"/srv","bindings":[{"scheme":"http","port":70000}]}]}"#,
    );
    assert_eq!(code, Some(1), "{err}");
    let want = format!(
        "mote-web: {}: sites[0].bindings[0].port: invalid value: integer `70000`, expected u16",
        f.display()
    );
    assert!(err.starts_with(&want), "{err}");
    let (f, code, _, err) = check("key.toml", "[limit]\nheader_timeout_secs = 5\n");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with(&format!("mote-web: {}: limit: unknown field", f.display())),
        "{err}"
    );
    // A file that cannot be read is bad too; --check stands alone.
    let missing = dir.path().join("missing.json");
    let out = Command::new(BIN)
        .arg("--check")
        .arg(&missing)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot read") && err.contains("missing.json"),
        "{err}"
    );
    let out = Command::new(BIN)
        .args(["--check", "a.json", "--workers", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("--check FILE"));
}

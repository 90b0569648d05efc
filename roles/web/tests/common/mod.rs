//! What the integration tests share: the mote-web binary under test, curl,
//! the test tree, nginx.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mote-web");
pub const APP: &str = env!("CARGO_BIN_EXE_mote-web-testapp");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16) {
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "port {port} never opened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running mote-web, killed on drop.
pub struct Web {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

/// SIGTERM, then SIGKILL after 5 s.
pub fn stop(child: &mut Child) {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        stop(&mut self.child);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Web {
    pub fn start(dir: tempfile::TempDir, config: &str, ports: &[u16], extra: &[&str]) -> Web {
        let cfg = dir.path().join("web.toml");
        std::fs::write(&cfg, config).unwrap();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&cfg)
            .args(["--workers", "2"])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        for p in ports {
            wait_port(*p);
        }
        Web { child, dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A curl response: status, lower-cased headers, body.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub version: String,
}

impl Resp {
    pub fn h(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn curl(args: &[&str]) -> Resp {
    let d = tempfile::tempdir().unwrap();
    let hdr = d.path().join("h");
    let out = Command::new("curl")
        .args(["-s", "-g", "--path-as-is", "--max-time", "20", "-D"])
        .arg(&hdr)
        .args(args)
        .output()
        .expect("curl must be installed: apt-get install curl");
    let text = std::fs::read_to_string(&hdr).unwrap_or_default();
    // The last header block (after any 100/101 interim ones).
    let block = text
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or("");
    let mut lines = block.lines();
    let first = lines.next().unwrap_or("");
    let mut parts = first.split_whitespace();
    let version = parts.next().unwrap_or("").to_owned();
    let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Resp {
        status,
        headers,
        body: out.stdout,
        version,
    }
}

/// A temporary directory with the test tree under `www`.
pub fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    tree(&root);
    (dir, root)
}

pub fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(root.join("browse")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(root.join("errors")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>\n").unwrap();
    std::fs::write(root.join("hello.txt"), "hello world\n").unwrap();
    std::fs::write(root.join("style.css"), "body { color: red; }\n".repeat(200)).unwrap();
    std::fs::write(root.join("app.js"), "console.log(1);\n".repeat(100)).unwrap();
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(root.join("sub/index.htm"), "sub index\n").unwrap();
    std::fs::write(root.join("sub/deeper/a.json"), "{\"a\":1}\n").unwrap();
    std::fs::write(root.join("browse/one.txt"), "1").unwrap();
    std::fs::write(root.join("browse/two <b>.txt"), "2").unwrap();
    std::fs::write(root.join(".git/config"), "secret").unwrap();
    std::fs::write(root.join("web.config"), "secret").unwrap();
    std::fs::write(root.join("errors/404.html"), "custom not found\n").unwrap();
    std::fs::write(root.join("pre.txt"), "plain version ".repeat(50)).unwrap();
    std::fs::write(root.join("pre.txt.gz"), "GZ-SIBLING").unwrap();
    std::fs::create_dir_all(root.join("admin")).unwrap();
    std::fs::write(root.join("admin/secret.txt"), "the secret\n").unwrap();
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::write(root.join("assets/a.css"), "a {}\n").unwrap();
    std::fs::create_dir_all(root.join("old")).unwrap();
    std::fs::write(root.join("old/x"), "old x\n").unwrap();
}

pub fn url(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

pub fn nginx_bin() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("nginx is required for the comparison test: apt-get install nginx-light");
}

/// Starts nginx serving `root` on `port` from a generated config in `dir`.
pub fn start_nginx(dir: &Path, root: &Path, port: u16) -> Child {
    let conf = dir.join("nginx.conf");
    let mime = ["/etc/nginx/mime.types"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .map(|p| format!("include {p};"))
        .unwrap_or_default();
    std::fs::write(
        &conf,
        format!(
            "user root;\ndaemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 256; }}\nhttp {{\n {mime}\n default_type application/octet-stream;\n access_log off;\n client_body_temp_path {d};\n proxy_temp_path {d};\n fastcgi_temp_path {d};\n uwsgi_temp_path {d};\n scgi_temp_path {d};\n server {{ listen 127.0.0.1:{port}; root {root}; index index.html index.htm; }}\n}}\n",
            d = dir.display(),
            root = root.display()
        ),
    )
    .unwrap();
    let child = Command::new(nginx_bin())
        .arg("-c")
        .arg(&conf)
        .arg("-p")
        .arg(dir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    child
}

/// Reads until the server closes `s`; how long that took.
pub fn time_to_close(s: &mut TcpStream) -> Duration {
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return t.elapsed(),
            Ok(_) => {}
        }
    }
}

/// An answer read off a raw socket: status, lower-cased headers, body.
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn h(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` as is on a new connection to 127.0.0.1:`port` and reads
/// one answer (to its `Content-Length`, or to the close).
pub fn raw(port: u16, request: &str) -> Raw {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => panic!(
                "no answer head to {request:?}: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = buf[head_end + 4..].to_vec();
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let head_only = request.starts_with("HEAD ") || status == 304 || status == 204;
    while !head_only && len.is_none_or(|l| body.len() < l) {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Raw {
        status,
        headers,
        body,
    }
}

/// `GET path` with `Host: localhost` and `Connection: close`.
pub fn get(port: u16, path: &str) -> Raw {
    raw(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
    )
}

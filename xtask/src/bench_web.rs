//! `cargo xtask bench web`: wrk against mote-web and nginx on loopback,
//! serving the same tree with the same worker count, in one run.
//!
//! Cases: a small file, a 100 KB file, a 404, the small file without
//! keep-alive (`Connection: close`), the small file over HTTPS (the same
//! self-signed ECDSA certificate for both), and `mote-web-testapp` behind
//! each proxy (mote-web's managed app against nginx `proxy_pass` to a copy
//! started on a fixed port; nginx is told to pass what mote-web passes:
//! the client's Host and X-Forwarded-For/-Proto/-Host, as a production
//! proxy does). Each case runs `--rounds` times (default 5) per server for
//! `--seconds` (default 4) with wrk `-t2 -c64`, alternating which server
//! goes first; the medians of req/s and p99 and their ratios are printed,
//! and each server's peak RSS under load (VmRSS from /proc, summed over
//! nginx's processes).
//!
//! A last case holds 1,000 idle HTTP/2 connections (h2c with prior
//! knowledge: the preface and an empty SETTINGS frame, then silence) open
//! on each server while wrk loads the small file over HTTP/1, and prints the
//! server's RSS beside the throughput: idle clients must neither starve the
//! rest nor cost much memory. nginx takes h2c on a `listen … http2` port of
//! its own; mote-web tells h2c from HTTP/1 on its one port.
//!
//! mote-web runs with `--workers 2`, nginx with `worker_processes 2`.
//! Everything is on 127.0.0.1, in a temporary directory removed at the end;
//! nginx runs as root with `daemon off` and its pid file in that directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

const USAGE: &str = "usage: cargo xtask bench web [--seconds N] [--rounds N]

  wrk against mote-web and nginx (same files, 2 workers each): small file,
  100 KB file, 404, without keep-alive, HTTPS, an app behind the proxy, and
  the small file while 1,000 idle HTTP/2 connections are held open";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut secs = 4u64;
    let mut rounds = 5usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => secs = number(it.next(), "--seconds", 60)?,
            "--rounds" => rounds = number(it.next(), "--rounds", 15)? as usize,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    for (tool, hint) in [
        ("wrk", "apt-get install wrk"),
        ("openssl", "apt-get install openssl"),
    ] {
        if Command::new(tool).arg("--version").output().is_err()
            && Command::new(tool).arg("version").output().is_err()
        {
            bail!("{tool} is required: {hint}");
        }
    }
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("nginx is required: apt-get install nginx-light")?;

    let st = Command::new("cargo")
        .args(["build", "--release", "-p", "mote-web"])
        .status()?;
    if !st.success() {
        bail!("cargo build --release -p mote-web failed");
    }
    let bin = target_dir()?.join("x86_64-unknown-linux-gnu/release");
    let web_bin = bin.join("mote-web");
    let app_bin = bin.join("mote-web-testapp");

    let tmp = tempfile::tempdir()?;
    let d = tmp.path();
    let root = d.join("www");
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("small.html"), "<h1>hello, bench</h1>\n")?;
    let big: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(root.join("100k.bin"), big)?;
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("openssl could not make a certificate");
    }

    let ports: Vec<u16> = (0..7).map(|_| free_port()).collect::<anyhow::Result<_>>()?;
    let (w_http, w_https, n_http, n_https, n_proxy, app_port, n_h2c) = (
        ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6],
    );

    let cfg = format!(
        r#"[[sites]]
name = "bench"
root = "{root}"
bindings = [
  {{ scheme = "http", address = "127.0.0.1", port = {w_http} }},
  {{ scheme = "https", address = "127.0.0.1", port = {w_https} }},
]
compression = {{ enabled = false }}
logging = {{ enabled = false }}
tls = {{ cert = "{d}/cert.pem", key = "{d}/key.pem" }}
[[sites.apps]]
path = "/app"
program = "{app}"
"#,
        root = root.display(),
        d = d.display(),
        app = app_bin.display()
    );
    std::fs::write(d.join("web.toml"), cfg)?;
    std::fs::write(
        d.join("nginx.conf"),
        format!(
            "user root;\ndaemon off;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 4096; }}\nhttp {{\n include /etc/nginx/mime.types;\n access_log off;\n sendfile on;\n tcp_nopush on;\n keepalive_requests 100000;\n client_body_temp_path {d};\n proxy_temp_path {d};\n fastcgi_temp_path {d};\n uwsgi_temp_path {d};\n scgi_temp_path {d};\n upstream app {{ server 127.0.0.1:{app_port}; keepalive 64; }}\n server {{ listen 127.0.0.1:{n_http}; root {root}; }}\n server {{ listen 127.0.0.1:{n_h2c} http2; root {root}; }}\n server {{ listen 127.0.0.1:{n_https} ssl http2; root {root}; ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; }}\n server {{ listen 127.0.0.1:{n_proxy}; location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host $http_host; proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $http_host; }} }}\n}}\n",
            d = d.display(),
            root = root.display()
        ),
    )?;

    let mut procs = Procs(Vec::new());
    procs.0.push(
        Command::new(&app_bin)
            .env("PORT", app_port.to_string())
            .stdout(Stdio::null())
            .spawn()?,
    );
    procs.0.push(
        Command::new(nginx)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-p")
            .arg(d)
            .stderr(Stdio::null())
            .spawn()?,
    );
    procs.0.push(
        Command::new(&web_bin)
            .arg("--config")
            .arg(d.join("web.toml"))
            .args(["--workers", "2"])
            .stderr(Stdio::null())
            .spawn()?,
    );
    let nginx_pid = procs.0[1].id();
    let web_pid = procs.0[2].id();
    for p in [app_port, n_http, n_https, n_proxy, n_h2c, w_http, w_https] {
        wait_port(p)?;
    }
    // The managed app comes up in the background.
    wait_ok(&format!("http://127.0.0.1:{w_http}/app/"))?;

    let cases: [(&str, &str, &[&str], u16, u16); 6] = [
        ("small file", "/small.html", &[], w_http, n_http),
        ("100 KB file", "/100k.bin", &[], w_http, n_http),
        ("404", "/missing", &[], w_http, n_http),
        (
            "small, Connection: close",
            "/small.html",
            &["-H", "Connection: close"],
            w_http,
            n_http,
        ),
        ("small, HTTPS", "/small.html", &[], w_https, n_https),
        ("app behind proxy", "/app/", &[], w_http, n_proxy),
    ];
    println!(
        "{secs} s per run, {rounds} rounds per case (alternating which server goes first); medians\n"
    );
    println!(
        "{:<26} {:>12} {:>9} {:>12} {:>9} {:>7} {:>7} {:>10}",
        "case", "mote req/s", "p99 ms", "nginx req/s", "p99 ms", "ratio", "p99 ×", "per round"
    );
    let (mut rss_web, mut rss_nginx) = (0u64, 0u64);
    for (name, path, extra, wp, np) in cases {
        let scheme = |p: u16| {
            if p == w_https || p == n_https {
                "https"
            } else {
                "http"
            }
        };
        let web_url = format!("{}://127.0.0.1:{wp}{path}", scheme(wp));
        let nginx_url = format!("{}://127.0.0.1:{np}{path}", scheme(np));
        let (mut m, mut n) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate the order so drift on the machine hits both alike.
            for first_web in [round % 2 == 0, round % 2 == 1] {
                if first_web {
                    m.push(wrk(&web_url, extra, secs, web_pid, &mut rss_web, false)?);
                } else {
                    n.push(wrk(
                        &nginx_url,
                        extra,
                        secs,
                        nginx_pid,
                        &mut rss_nginx,
                        true,
                    )?);
                }
            }
        }
        let (m_rps, m_p99) = medians(&m);
        let (n_rps, n_p99) = medians(&n);
        // Each round's ratio, to show how much the machine wanders.
        let (lo, hi) = m
            .iter()
            .zip(&n)
            .map(|(a, b)| a.0 / b.0.max(1.0))
            .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
        println!(
            "{:<26} {:>12.0} {:>9.2} {:>12.0} {:>9.2} {:>7.2} {:>7.2} {:>5.2}–{:.2}",
            name,
            m_rps,
            m_p99,
            n_rps,
            n_p99,
            m_rps / n_rps.max(1.0),
            m_p99 / n_p99.max(0.001),
            lo,
            hi
        );
    }
    println!(
        "peak RSS under load: mote-web {:.1} MB, nginx (master + workers) {:.1} MB",
        rss_web as f64 / 1024.0,
        rss_nginx as f64 / 1024.0
    );

    // 1,000 idle HTTP/2 connections held open on each server under load.
    let idle = 1000;
    let (mut m, mut n) = (Vec::new(), Vec::new());
    let (mut idle_rss_web, mut idle_rss_nginx) = (0u64, 0u64);
    let (mut held_web, mut held_nginx) = (0usize, 0usize);
    for round in 0..rounds {
        for first_web in [round % 2 == 0, round % 2 == 1] {
            let (port, url, pid, tree) = if first_web {
                (
                    w_http,
                    format!("http://127.0.0.1:{w_http}/small.html"),
                    web_pid,
                    false,
                )
            } else {
                (
                    n_h2c,
                    format!("http://127.0.0.1:{n_http}/small.html"),
                    nginx_pid,
                    true,
                )
            };
            let conns = hold_idle_h2c(port, idle)?;
            std::thread::sleep(Duration::from_millis(300));
            let (result, rss, held) = if first_web {
                (&mut m, &mut idle_rss_web, &mut held_web)
            } else {
                (&mut n, &mut idle_rss_nginx, &mut held_nginx)
            };
            result.push(wrk(&url, &[], secs, pid, rss, tree)?);
            *held = (*held).max(still_open(&conns));
        }
    }
    let (m_rps, m_p99) = medians(&m);
    let (n_rps, n_p99) = medians(&n);
    println!(
        "\n{idle} idle HTTP/2 connections + load on the small file:\n{:<26} {:>12.0} {:>9.2} {:>12.0} {:>9.2} {:>7.2} {:>7.2}",
        "small, 1,000 idle h2",
        m_rps,
        m_p99,
        n_rps,
        n_p99,
        m_rps / n_rps.max(1.0),
        m_p99 / n_p99.max(0.001),
    );
    println!(
        "peak RSS with them: mote-web {:.1} MB, nginx {:.1} MB; idle connections still open at the end of a run: mote-web {held_web}, nginx {held_nginx}",
        idle_rss_web as f64 / 1024.0,
        idle_rss_nginx as f64 / 1024.0
    );
    drop(procs);
    Ok(())
}

/// Open `count` HTTP/2 connections with prior knowledge on `port`: each
/// sends the client preface and an empty SETTINGS frame, then nothing.
fn hold_idle_h2c(port: u16, count: usize) -> anyhow::Result<Vec<std::net::TcpStream>> {
    use std::io::Write;
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    (0..count)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))
                .with_context(|| format!("holding idle HTTP/2 connections on {port}"))?;
            s.write_all(PREFACE)?;
            Ok(s)
        })
        .collect()
}

/// How many of `conns` the server has not closed (a read that would block
/// means open; 0 bytes or an error means closed). Reads what the server
/// sent (its SETTINGS, a GOAWAY) along the way.
fn still_open(conns: &[std::net::TcpStream]) -> usize {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    conns
        .iter()
        .filter(|s| {
            let mut s: &std::net::TcpStream = s;
            let _ = s.set_nonblocking(true);
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
        })
        .count()
}

/// The value of `flag`: a whole number from 1 to `max`.
fn number(v: Option<&String>, flag: &str, max: u64) -> anyhow::Result<u64> {
    v.and_then(|n| n.parse().ok())
        .filter(|n| (1..=max).contains(n))
        .with_context(|| format!("{flag} takes 1 to {max}"))
}

/// Median req/s and median p99 of some runs.
fn medians(runs: &[(f64, f64)]) -> (f64, f64) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    (
        median(runs.iter().map(|r| r.0).collect()),
        median(runs.iter().map(|r| r.1).collect()),
    )
}

/// Child processes terminated (SIGTERM, then wait) on drop.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in self.0.iter_mut().rev() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn target_dir() -> anyhow::Result<PathBuf> {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(t));
    }
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("xtask has no parent directory")?
        .join("target"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_port(p: u16) -> anyhow::Result<()> {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("nothing listens on 127.0.0.1:{p} after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn wait_ok(url: &str) -> anyhow::Result<()> {
    let t = Instant::now();
    loop {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "2",
                url,
            ])
            .output()?;
        if out.stdout == b"200" {
            return Ok(());
        }
        if t.elapsed() > Duration::from_secs(15) {
            bail!("{url} did not answer 200 within 15 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// VmRSS (kB) of `pid`, plus its children when `tree`.
fn rss_kb(pid: u32, tree: bool) -> u64 {
    let one = |p: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{p}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    };
    let mut total = one(&pid.to_string());
    if tree {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        total += children.split_whitespace().map(one).sum::<u64>();
    }
    total
}

/// Runs wrk; returns (req/s, p99 ms) and samples RSS midway.
fn wrk(
    url: &str,
    extra: &[&str],
    secs: u64,
    pid: u32,
    peak: &mut u64,
    tree: bool,
) -> anyhow::Result<(f64, f64)> {
    let child = Command::new("wrk")
        .args(["-t2", "-c64", "--latency", "-d"])
        .arg(format!("{secs}s"))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(secs * 500));
    *peak = (*peak).max(rss_kb(pid, tree));
    let out = child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("wrk {url}: no Requests/sec in\n{text}"))?;
    let p99 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map(|v| parse_ms(v.trim()))
        .unwrap_or(f64::NAN);
    if text.contains("Non-2xx") && !url.ends_with("/missing") {
        eprintln!("warning: {url}: non-2xx answers");
    }
    Ok((rps, p99))
}

/// wrk's latency ("1.23ms", "850.00us", "1.02s") in ms.
fn parse_ms(v: &str) -> f64 {
    let (num, mul) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().map_or(f64::NAN, |n| n * mul)
}

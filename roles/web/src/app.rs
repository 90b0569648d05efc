//! Managed app backends (IIS's HttpPlatformHandler) and the reverse proxy.
//!
//! Job: keep `processes` copies of a program running, each on its own free
//! loopback port given in `PORT` and `HTTP_PLATFORM_PORT`, and proxy the
//! requests under the app's path to them round-robin.
//!
//! Lifecycle of one process slot (a task each):
//! 1. pick a free port (bind 127.0.0.1:0, read it, close);
//! 2. spawn the program, stdout and stderr appended to `stdout_log`;
//! 3. poll-connect until it listens, at most `startup_time_limit_secs`; if it
//!    exits or times out, kill it and retry up to `startup_retries` times in
//!    a row (then give up);
//! 4. serve until it exits, then record the failure time; more than
//!    `rapid_fails_per_minute` exits in the last minute stop relaunching;
//!    otherwise go to 1.
//!
//! Dropping the pool (a reload that removes or changes the app, or
//! shutdown) aborts the tasks; children are killed on drop.
//!
//! Proxying: [`backend`]'s HTTP/1.1 exchange in the request's own task, on
//! connections kept per process in a LIFO idle list (a connection returns
//! when its answer has been read to the end; a bodiless request an idle
//! connection never took is sent again on a new one),
//! hop-by-hop headers removed, `X-Forwarded-For/-Proto/-Host` added, bodies
//! streamed both ways, `request_timeout_secs` to the response head → 504,
//! no ready process → 503, connection failure → 502. `Upgrade` requests
//! (WebSocket) are passed through: after the backend's 101 both upgraded
//! connections are spliced with `copy_bidirectional`.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::{Body as _, Incoming};
use hyper::header;
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use crate::backend::{self, Failure};
use crate::body::Body;
use crate::config::App;
use crate::workers;

/// One process slot as the proxy sees it: the port of its ready process
/// and the idle keep-alive connections to it.
pub(crate) struct Slot {
    /// 0 while not ready.
    pub(crate) port: AtomicU16,
    /// Idle connections per worker ([`workers::index`]): a connection is
    /// registered with the driver of the worker that opened it, so it is
    /// only used there. Newest last (taken newest first: the likeliest to
    /// be alive), with when each went idle.
    idle: Box<[Mutex<Idle>]>,
}

type Idle = VecDeque<(backend::Conn, Instant)>;

/// Idle connections kept per process.
const MAX_IDLE: usize = 256;
/// Idle connections older than this are closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

impl Slot {
    pub(crate) fn new() -> Self {
        Self {
            port: AtomicU16::new(0),
            idle: (0..=workers::count())
                .map(|_| Mutex::new(VecDeque::new()))
                .collect(),
        }
    }

    /// This worker's idle connections.
    fn idle(&self) -> std::sync::MutexGuard<'_, Idle> {
        let mine = workers::index().min(self.idle.len() - 1);
        lock(&self.idle[mine])
    }

    /// Takes the newest idle connection.
    pub(crate) fn take(&self) -> Option<backend::Conn> {
        self.idle().pop_back().map(|(c, _)| c)
    }

    /// Returns a connection whose last answer was read to the end.
    pub(crate) fn put(&self, conn: backend::Conn) {
        if self.port.load(Ordering::Acquire) == 0 {
            return;
        }
        let now = Instant::now();
        let mut idle = self.idle();
        drop_stale(&mut idle, now);
        if idle.len() < MAX_IDLE {
            idle.push_back((conn, now));
        }
    }

    /// Closes the connections idle longer than [`IDLE_TIMEOUT`].
    fn sweep(&self) {
        let now = Instant::now();
        self.idle.iter().for_each(|i| drop_stale(&mut lock(i), now));
    }

    /// Forgets the idle connections (the process is gone).
    fn clear(&self) {
        self.idle.iter().for_each(|i| lock(i).clear());
    }
}

fn lock(idle: &Mutex<Idle>) -> std::sync::MutexGuard<'_, Idle> {
    idle.lock().unwrap_or_else(|e| e.into_inner())
}

/// Drops the idle connections (oldest first) past [`IDLE_TIMEOUT`].
fn drop_stale(idle: &mut Idle, now: Instant) {
    while idle
        .front()
        .is_some_and(|(_, t)| now.duration_since(*t) > IDLE_TIMEOUT)
    {
        idle.pop_front();
    }
}

/// Sends the request on an idle connection of `slot`, or on a new one,
/// and reads the answer's head. A bodiless request that an idle connection
/// never took (the app had closed it) goes out again on a new connection.
async fn exchange(
    slot: &Slot,
    port: u16,
    parts: &Parts,
    forwarded: &backend::Forwarded<'_>,
    mut body: Option<Incoming>,
    max_body: u64,
    until: tokio::time::Instant,
) -> Result<(backend::Head, backend::Conn), Failure> {
    loop {
        let (mut conn, reused) = match slot.take() {
            Some(c) => (c, true),
            None => match tokio::time::timeout_at(until, backend::Conn::open(port)).await {
                Err(_) => return Err(Failure::Timeout),
                Ok(Err(_)) => return Err(Failure::Backend),
                Ok(Ok(c)) => (c, false),
            },
        };
        let r = conn
            .exchange(parts, forwarded, body.as_mut(), max_body, until)
            .await;
        match r {
            Ok(head) => return Ok((head, conn)),
            Err(Failure::NotTaken) if reused && body.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
}

pub(crate) struct AppPool {
    pub config: App,
    slots: Vec<Arc<Slot>>,
    next: AtomicUsize,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for AppPool {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl AppPool {
    /// Starts the processes (in the background) and the client.
    pub(crate) fn start(config: App, site: &str) -> Arc<Self> {
        let fails = Arc::new(Mutex::new(VecDeque::new()));
        let mut slots = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..config.processes {
            let slot = Arc::new(Slot::new());
            slots.push(slot.clone());
            let c = config.clone();
            let name = format!("{site}{}#{i}", config.path);
            tasks.push(tokio::spawn(supervise(c, slot, fails.clone(), name)));
        }
        // Idle connections are also trimmed on every return; this closes
        // them when the app gets no more requests at all.
        let swept = slots.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(IDLE_TIMEOUT);
            loop {
                tick.tick().await;
                swept.iter().for_each(|s| s.sweep());
            }
        }));
        Arc::new(Self {
            config,
            slots,
            next: AtomicUsize::new(0),
            tasks,
        })
    }

    /// The next ready process, round-robin: its slot and port.
    fn pick(&self) -> Option<(&Arc<Slot>, u16)> {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.slots[(start + i) % n])
            .map(|s| (s, s.port.load(Ordering::Acquire)))
            .find(|(_, p)| *p != 0)
    }

    /// Waits (bounded) until a process is ready; for tests and first requests.
    pub(crate) async fn ready(&self, limit: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if self.pick().is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Proxies `req` to a backend process. `target`, when given, replaces
    /// the request's path and query (the canonical path the site's rules
    /// matched, when the client spelled it otherwise).
    pub(crate) async fn proxy(
        &self,
        mut req: Request<hyper::body::Incoming>,
        target: Option<hyper::Uri>,
        client_ip: std::net::IpAddr,
        https: bool,
        max_body: u64,
    ) -> Response<Body> {
        let (slot, port) = match self.pick() {
            Some(p) => p,
            None => {
                // Just (re)started: give it the startup limit to come up.
                let limit = Duration::from_secs(self.config.startup_time_limit_secs);
                if !self.ready(limit).await {
                    return status(StatusCode::SERVICE_UNAVAILABLE);
                }
                match self.pick() {
                    Some(x) => x,
                    None => return status(StatusCode::SERVICE_UNAVAILABLE),
                }
            }
        };
        let upgrade = req.headers().get(header::UPGRADE).cloned();
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let authority;
        let host = match parts.headers.get(header::HOST) {
            Some(h) => Some(h.as_bytes()),
            None => {
                authority = parts.uri.authority().map(|a| a.as_str().to_owned());
                authority.as_deref().map(str::as_bytes)
            }
        };
        let forwarded = backend::Forwarded {
            host,
            client_ip,
            https,
            upgrade: upgrade.as_ref(),
        };
        // Origin form (`/path?query`); HTTP/2 requests come in absolute form.
        if let Some(t) = target {
            parts.uri = t;
        } else if parts.uri.authority().is_some() {
            parts.uri = parts
                .uri
                .path_and_query()
                .cloned()
                .map_or_else(|| hyper::Uri::from_static("/"), hyper::Uri::from);
        }
        let body = (!body.is_end_stream()).then_some(body);
        let until =
            tokio::time::Instant::now() + Duration::from_secs(self.config.request_timeout_secs);
        let (head, conn) = match exchange(slot, port, &parts, &forwarded, body, max_body, until)
            .await
        {
            Err(Failure::Timeout) => return status(StatusCode::GATEWAY_TIMEOUT),
            Err(Failure::TooLarge) => return status(StatusCode::PAYLOAD_TOO_LARGE),
            Err(Failure::Client) => return status(StatusCode::BAD_REQUEST),
            Err(Failure::NotTaken | Failure::Backend) => return status(StatusCode::BAD_GATEWAY),
            Ok(r) => r,
        };
        let body = if head.status == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_up) = client_upgrade else {
                return status(StatusCode::BAD_GATEWAY);
            };
            let (early, mut backend) = conn.into_upgraded();
            tokio::spawn(async move {
                if let Ok(c) = client_up.await {
                    let mut c = TokioIo::new(c);
                    if !early.is_empty() && c.write_all(&early).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut backend).await;
                }
            });
            Body::empty()
        } else {
            backend::body_of(&head, conn, slot)
        };
        let mut r = Response::new(body);
        *r.status_mut() = head.status;
        *r.headers_mut() = head.headers;
        r
    }
}

fn status(s: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = s;
    r
}

fn free_port() -> Option<u16> {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .ok()
}

fn log_stdio(path: Option<&Path>) -> (Stdio, Stdio) {
    if let Some(p) = path {
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            if let Ok(f2) = f.try_clone() {
                return (Stdio::from(f), Stdio::from(f2));
            }
        }
    }
    (Stdio::null(), Stdio::null())
}

/// The life of one process slot (see the module docs).
async fn supervise(c: App, slot: Arc<Slot>, fails: Arc<Mutex<VecDeque<Instant>>>, name: String) {
    let limit = Duration::from_secs(c.startup_time_limit_secs);
    let mut retries = 0u32;
    loop {
        let Some(port) = free_port() else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        let (out, err) = log_stdio(c.stdout_log.as_deref());
        let mut cmd = tokio::process::Command::new(&c.program);
        cmd.args(&c.args)
            .envs(&c.env)
            .env("PORT", port.to_string())
            .env("HTTP_PLATFORM_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours;
        // it makes the kernel kill the child if mote-web itself dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(ch) => ch,
            Err(e) => {
                eprintln!(
                    "mote-web: app {name}: cannot start {}: {e}",
                    c.program.display()
                );
                retries += 1;
                if retries > c.startup_retries {
                    eprintln!("mote-web: app {name}: giving up after {retries} failed starts");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let t = Instant::now();
        let mut up = false;
        while t.elapsed() < limit {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if !up {
            let _ = child.kill().await;
            retries += 1;
            eprintln!("mote-web: app {name}: did not listen on {port} (attempt {retries})");
            if retries > c.startup_retries {
                eprintln!("mote-web: app {name}: giving up after {retries} failed starts");
                return;
            }
            continue;
        }
        retries = 0;
        slot.port.store(port, Ordering::Release);
        let _ = child.wait().await;
        slot.port.store(0, Ordering::Release);
        slot.clear();
        let now = Instant::now();
        let rapid = {
            let mut f = fails.lock().unwrap_or_else(|e| e.into_inner());
            f.push_back(now);
            while f
                .front()
                .is_some_and(|x| now.duration_since(*x) > Duration::from_secs(60))
            {
                f.pop_front();
            }
            f.len() as u32
        };
        if rapid > c.rapid_fails_per_minute {
            eprintln!("mote-web: app {name}: {rapid} exits in a minute; not restarting");
            return;
        }
        eprintln!("mote-web: app {name}: exited; restarting");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_connections_past_the_timeout_are_closed_oldest_first() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let now = Instant::now();
        let mut idle = VecDeque::new();
        for age in [
            IDLE_TIMEOUT * 2,
            IDLE_TIMEOUT + Duration::from_secs(1),
            Duration::ZERO,
        ] {
            let conn = backend::Conn::open(port).await.unwrap();
            idle.push_back((conn, now - age));
        }
        drop_stale(&mut idle, now);
        assert_eq!(idle.len(), 1);
        assert_eq!(idle[0].1, now);
    }
}

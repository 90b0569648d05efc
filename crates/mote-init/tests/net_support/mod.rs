//! Shared by the `net_*` integration tests: network namespaces the test
//! creates (and deletes), a veth pair between them, running code or commands
//! inside one, and prerequisites that fail loudly when missing.
//!
//! These tests need root (network namespaces) and iproute2. No address
//! outside loopback or the tests' own namespaces is ever touched.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod servers;

/// The path of a program, or a panic saying what to install.
pub fn require(program: &str, install: &str) -> PathBuf {
    for dir in [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
    ] {
        let path = Path::new(dir).join(program);
        if path.exists() {
            return path;
        }
    }
    panic!("this test needs `{program}`: install it with `apt-get install {install}`");
}

/// Fail clearly when not root: namespaces and netlink changes need it.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "the net_* tests create network namespaces and need root (run them as root)"
    );
}

/// A named network namespace (`ip netns add`), deleted on drop along with
/// every interface in it.
pub struct Netns {
    pub name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Netns {
    pub fn new(tag: &str) -> Self {
        require_root();
        require("ip", "iproute2");
        let name = format!(
            "mote-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let netns = Self { name };
        netns.sh(&["ip", "link", "set", "lo", "up"]);
        netns
    }

    /// Run a command inside the namespace; panics unless it succeeds.
    pub fn sh(&self, argv: &[&str]) -> String {
        let output = self.output(argv);
        assert!(
            output.status.success(),
            "`{}` in {} failed: {}{}",
            argv.join(" "),
            self.name,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Run a command inside the namespace, whatever its outcome.
    pub fn output(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"))
    }

    /// Start a long-running command inside the namespace; killed on drop.
    pub fn spawn(&self, argv: &[&str]) -> Killed {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {argv:?}: {e}"));
        Killed(child)
    }

    /// `ip -j ARGS` inside the namespace, parsed.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        ip_json_in(&self.name, args)
    }

    /// Run `f` on a thread that has entered this namespace, inside a
    /// current-thread tokio runtime like PID 1's. Sockets, `/proc/sys/net`
    /// and spawned tasks all live in the namespace.
    pub fn run<T: Send + 'static>(&self, f: impl AsyncFnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(f())
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Like [`Netns::run`] but without a runtime.
    pub fn run_sync<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Read a sysctl of this namespace.
    pub fn sysctl(&self, path: &str) -> String {
        self.sh(&["cat", path]).trim().to_owned()
    }
}

/// Move the calling thread (only it) into the namespace at `path`.
pub fn enter(path: &str) {
    let file = File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    // SAFETY: `file` is an open namespace file; setns only changes this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A child process killed and reaped on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run a host command; panics unless it succeeds.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A veth pair: `left` in `a`, `right` in `b`, both down.
pub fn veth(a: &Netns, left: &str, b: &Netns, right: &str) {
    run(
        "ip",
        &[
            "link", "add", left, "netns", &a.name, "type", "veth", "peer", "name", right, "netns",
            &b.name,
        ],
    );
}

/// Poll `check` every 100 ms until it returns `Some`, or panic with `what`
/// after `limit`.
pub fn wait_until<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `ping` to use: iputils' or busybox's.
pub fn ping_command() -> Vec<String> {
    for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        if Path::new(dir).join("ping").exists() {
            return vec![format!("{dir}/ping")];
        }
    }
    let busybox = require("busybox", "iputils-ping (or busybox)");
    vec![busybox.display().to_string(), "ping".into()]
}

/// Ping `address` once from inside `netns`; true when it answered.
pub fn ping(netns: &Netns, address: &str) -> bool {
    let mut argv = ping_command();
    argv.extend(["-c", "1", "-W", "1", address].map(String::from));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    netns.output(&argv).status.success()
}

/// `ip -j ARGS` inside the namespace named `netns`, parsed. For code that
/// runs inside [`Netns::run`], where the `Netns` itself cannot be borrowed.
pub fn ip_json_in(netns: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new("ip")
        .args(["netns", "exec", netns, "ip", "-j"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip -j {args:?}: {e}"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "`ip -j {}` in {netns} failed: {text}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}: {text}"))
}

/// Whether a UDP socket of the calling thread's network namespace is bound
/// to `port` (any address), from `/proc/thread-self/net/udp`. Call it from
/// inside [`Netns::run`]: `/proc/self/net` would show the main thread's.
pub fn udp_port_bound_here(port: u16) -> bool {
    udp_sockets_here(port) > 0
}

/// How many UDP sockets of the calling thread's network namespace are
/// bound to `port`; see [`udp_port_bound_here`].
pub fn udp_sockets_here(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/thread-self/net/udp")
        .unwrap_or_else(|e| panic!("/proc/thread-self/net/udp: {e}"));
    let wanted = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter(|local| local.ends_with(&wanted))
        .count()
}

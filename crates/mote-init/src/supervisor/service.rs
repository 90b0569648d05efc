//! One supervised service: start it when its dependencies are ready, watch
//! readiness, restart it with backoff by its policy, give up after too many
//! rapid failures, stop it in order.

use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mote_config::{Protocol, RestartPolicy, Service};
use tokio::sync::watch;

use super::logs;
use super::reaper::{Exit, Reaper};
use crate::events::{now_ms, Events, Level};

/// Figures of a service beyond its state, shared with the supervisor.
#[derive(Debug, Default)]
pub struct Meta {
    /// When the current state began, ms since the Unix epoch.
    pub since_ms: AtomicU64,
    /// Restarts since it was (last) started.
    pub restarts: AtomicU32,
}

/// Where a service is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Waiting for dependencies.
    Waiting,
    /// Process started, not yet ready.
    Starting {
        /// Process id.
        pid: u32,
    },
    /// Process started and listening on its ports.
    Ready {
        /// Process id.
        pid: u32,
    },
    /// Exited; restarting after a pause.
    Backoff,
    /// Given up on: too many rapid failures, a failed dependency, or a policy
    /// that does not restart.
    Failed(String),
    /// Exited cleanly under a policy that does not restart it.
    Exited,
    /// Stopped on request.
    Stopped,
}

impl State {
    /// Ready, or ended for good: nothing more to wait for at boot.
    pub fn settled(&self) -> bool {
        matches!(
            self,
            State::Ready { .. } | State::Failed(_) | State::Exited | State::Stopped
        )
    }
}

/// Restart pacing.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// First pause before a restart; doubles each time.
    pub backoff_start: Duration,
    /// Longest pause.
    pub backoff_max: Duration,
    /// A run this long resets the backoff.
    pub healthy_after: Duration,
    /// This many failures within `window`…
    pub rapid_failures: usize,
    /// …and the service is given up on.
    pub window: Duration,
    /// How long a started process may take to listen on its ports.
    pub ready_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            backoff_start: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            healthy_after: Duration::from_secs(10),
            rapid_failures: 5,
            window: Duration::from_secs(60),
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// Everything one service task needs.
pub struct Runner {
    /// Service name, the events' source.
    pub name: String,
    /// Its definition.
    pub spec: Service,
    /// States of the services it comes after.
    pub deps: Vec<(String, watch::Receiver<State>)>,
    /// Where to publish its own state.
    pub state: watch::Sender<State>,
    /// Becomes true when it must stop.
    pub stop: watch::Receiver<bool>,
    /// Shared child registry.
    pub reaper: Arc<Reaper>,
    /// Event sink.
    pub events: Events,
    /// Restart pacing.
    pub limits: Limits,
    /// Since when, and how many restarts.
    pub meta: Arc<Meta>,
    /// The cgroup directory the process is put in before it runs, if any.
    pub cgroup: Option<PathBuf>,
}

impl Runner {
    /// Publish a new state and note when it began.
    fn set(&self, state: State) {
        self.meta.since_ms.store(now_ms(), Ordering::Relaxed);
        self.state.send_replace(state);
    }

    /// Run until stopped or given up on.
    pub async fn run(mut self) {
        self.meta.since_ms.store(now_ms(), Ordering::Relaxed);
        let mut stop = self.stop.clone();
        let waited = tokio::select! {
            waited = self.wait_for_dependencies() => waited,
            _ = stop.wait_for(|s| *s) => {
                self.set(State::Stopped);
                return;
            }
        };
        if let Err(reason) = waited {
            self.events.error(&self.name, &reason);
            self.set(State::Failed(reason));
            return;
        }
        let mut failures: Vec<Instant> = Vec::new();
        let mut backoff = self.limits.backoff_start;
        loop {
            if *self.stop.borrow() {
                self.set(State::Stopped);
                return;
            }
            let started = Instant::now();
            let exit = match self.run_once().await {
                Ok(Some(exit)) => exit,
                Ok(None) => {
                    self.set(State::Stopped);
                    return;
                }
                Err(e) => {
                    self.events.error(
                        &self.name,
                        format!("cannot start {}: {e}", self.spec.argv[0]),
                    );
                    Exit::Code(127)
                }
            };
            let restart = match self.spec.restart {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !exit.success(),
                RestartPolicy::Never => false,
            };
            if !restart {
                let level = if exit.success() {
                    Level::Info
                } else {
                    Level::Warn
                };
                self.events.emit(
                    &self.name,
                    level,
                    format!("exited ({exit}); restart policy says stay down"),
                );
                self.set(if exit.success() {
                    State::Exited
                } else {
                    State::Failed(exit.to_string())
                });
                return;
            }
            let now = Instant::now();
            if now.duration_since(started) >= self.limits.healthy_after {
                backoff = self.limits.backoff_start;
            }
            failures.retain(|t| now.duration_since(*t) < self.limits.window);
            failures.push(now);
            if failures.len() >= self.limits.rapid_failures {
                let reason = format!(
                    "{} failures within {} s (last: {exit}); not restarting it again",
                    failures.len(),
                    self.limits.window.as_secs()
                );
                self.events.error(&self.name, &reason);
                self.set(State::Failed(reason));
                return;
            }
            self.events.warn(
                &self.name,
                format!("exited ({exit}); restarting in {} ms", backoff.as_millis()),
            );
            self.set(State::Backoff);
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.stop.changed() => {}
            }
            backoff = (backoff * 2).min(self.limits.backoff_max);
            self.meta.restarts.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn wait_for_dependencies(&mut self) -> Result<(), String> {
        for (dep, rx) in &mut self.deps {
            let state = rx
                .wait_for(|s| {
                    matches!(
                        s,
                        State::Ready { .. } | State::Failed(_) | State::Exited | State::Stopped
                    )
                })
                .await
                .map_err(|_| format!("dependency {dep} went away"))?
                .clone();
            if let State::Failed(why) = state {
                return Err(format!("not started: dependency {dep} failed ({why})"));
            }
        }
        Ok(())
    }

    /// Start the process and wait for it to exit (Some) or for a stop request
    /// (None, after stopping it).
    async fn run_once(&mut self) -> std::io::Result<Option<Exit>> {
        let (mut child, mut exited) = self.reaper.spawn(&mut self.command())?;
        let pid = child.id();
        self.events.info(&self.name, format!("started pid {pid}"));
        self.set(State::Starting { pid });
        if let Some(out) = child.stdout.take() {
            logs::forward(
                out.into(),
                self.name.clone(),
                Level::Info,
                self.events.clone(),
            );
        }
        if let Some(err) = child.stderr.take() {
            logs::forward(
                err.into(),
                self.name.clone(),
                Level::Warn,
                self.events.clone(),
            );
        }
        let ports: Vec<u16> = self
            .spec
            .ports
            .iter()
            .filter(|p| p.protocol == Protocol::Tcp)
            .map(|p| p.number)
            .collect();
        let ready = wait_listening(ports, self.limits.ready_timeout);
        tokio::pin!(ready);
        let mut is_ready = false;
        loop {
            tokio::select! {
                exit = &mut exited => return Ok(Some(exit.unwrap_or(Exit::Code(-1)))),
                ok = &mut ready, if !is_ready => {
                    is_ready = true;
                    if ok {
                        self.set(State::Ready { pid });
                    } else {
                        self.events.warn(&self.name, "not listening on its ports yet; counting it as started");
                        self.set(State::Ready { pid });
                    }
                }
                _ = self.stop.changed() => {
                    self.terminate(pid, &mut exited).await;
                    return Ok(None);
                }
            }
        }
    }

    /// SIGTERM the service's process group, SIGKILL it after the stop timeout.
    async fn terminate(&self, pid: u32, exited: &mut tokio::sync::oneshot::Receiver<Exit>) {
        let group = -(pid as i32);
        // SAFETY: kill takes plain integers; the group is the service's own.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let timeout = Duration::from_secs(u64::from(self.spec.stop_timeout_secs));
        match tokio::time::timeout(timeout, &mut *exited).await {
            Ok(exit) => {
                let exit = exit.map_or_else(|_| "unknown".to_owned(), |e| e.to_string());
                self.events.info(&self.name, format!("stopped ({exit})"));
            }
            Err(_) => {
                // SAFETY: as above.
                unsafe { libc::kill(group, libc::SIGKILL) };
                let _ = exited.await;
                self.events.warn(
                    &self.name,
                    format!("did not stop within {} s; killed", timeout.as_secs()),
                );
            }
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.spec.argv[0]);
        command
            .args(&self.spec.argv[1..])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/")
            .envs(&self.spec.environment)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let wanted = self.spec.open_files() as libc::rlim_t;
        let ceiling = crate::system::open_files_ceiling();
        let open_files = wanted.min(ceiling);
        if open_files < wanted {
            self.events.warn(
                &self.name,
                format!("open_files {wanted} is above this machine's ceiling; {open_files} it is"),
            );
        }
        // A service starts with every signal at its default and none
        // blocked, whatever PID 1 (or whoever started it, such as nohup
        // ignoring SIGHUP) inherited: an ignored SIGHUP would survive exec
        // and the service could never take its reload signal.
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls signal and sigprocmask, which are async-signal-safe,
        // on a set on its stack.
        unsafe {
            command.pre_exec(|| {
                for signal in 1..32 {
                    if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                        libc::signal(signal, libc::SIG_DFL);
                    }
                }
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                Ok(())
            });
        }
        // SAFETY: the closure runs in the child between fork and exec and
        // only calls setrlimit on a struct on its stack. The hard limit may
        // only be lowered once the child has become its user: PID 1 raised
        // its own (inherited) ceiling at boot for that, and the value is
        // clamped to that ceiling above, so this does not fail.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: open_files,
                    rlim_max: open_files,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        if let Some(procs) = self.cgroup.as_ref().and_then(|dir| {
            CString::new(
                dir.join("cgroup.procs")
                    .into_os_string()
                    .into_encoded_bytes(),
            )
            .ok()
        }) {
            // SAFETY: the closure runs in the child between fork and exec and
            // only makes async-signal-safe calls (getpid, open, write, close)
            // on memory prepared before the fork; a failure leaves the
            // process in PID 1's cgroup, which is harmless.
            unsafe {
                command.pre_exec(move || {
                    join_cgroup(&procs);
                    Ok(())
                });
            }
        }
        if let Ok((uid, gid)) = mote_config::parse_user(&self.spec.user) {
            let caps = super::caps::numbers(&self.spec.capabilities);
            if (uid != 0 || gid != 0) && !caps.is_empty() {
                // SAFETY: `switch_user_keeping` only makes system calls on
                // integers and stack memory (the Vec was made before the
                // fork); it runs after the cgroup closure, still as root.
                unsafe {
                    command.pre_exec(move || super::caps::switch_user_keeping(uid, gid, &caps));
                }
            } else if uid != 0 || gid != 0 {
                // std drops supplementary groups, then sets gid and uid.
                command.uid(uid).gid(gid);
            }
        }
        command
    }
}

/// Write the calling process's pid into `procs` (a `cgroup.procs` file).
/// Async-signal-safe: no allocation, only system calls.
fn join_cgroup(procs: &CString) {
    // SAFETY: getpid has no preconditions.
    let mut pid = unsafe { libc::getpid() } as u32;
    let mut digits = [0u8; 10];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (pid % 10) as u8;
        pid /= 10;
        if pid == 0 || at == 0 {
            break;
        }
    }
    // SAFETY: `procs` is a valid NUL-terminated path; the buffer outlives the write.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::write(fd, digits[at..].as_ptr().cast(), digits.len() - at);
            libc::close(fd);
        }
    }
}

/// Resolve when something accepts TCP connections on every port on loopback
/// (true), or when `timeout` passes (false). No ports: ready at once.
async fn wait_listening(ports: Vec<u16>, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    for port in ports {
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    true
}

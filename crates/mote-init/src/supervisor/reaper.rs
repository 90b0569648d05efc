//! The one place that waits for children.
//!
//! PID 1 inherits every orphan on the node and must reap them, so it waits on
//! any child (`waitpid(-1)`); that rules out per-child waiting (tokio's
//! process API would lose statuses to it). Instead every spawn goes through
//! [`Reaper::spawn`], which records the pid under the same lock the reaper
//! holds while it waits, so no exit can slip between fork and registration.
//! Exits of registered children go to their owner; orphans are just reaped.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `exit(code)`
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl Exit {
    /// A clean `exit(0)`.
    pub fn success(self) -> bool {
        self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// Children waiting for their exit. One per process, like the kernel's own
/// child table: any reaper task may collect any child and hands the exit to
/// whoever registered it.
static WAITING: Mutex<Option<HashMap<i32, oneshot::Sender<Exit>>>> = Mutex::new(None);

fn waiting() -> std::sync::MutexGuard<'static, Option<HashMap<i32, oneshot::Sender<Exit>>>> {
    // A poisoned lock only means a panic elsewhere; the map is still sound.
    WAITING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Handle to the process's child registry.
#[derive(Default)]
pub struct Reaper {
    _private: (),
}

impl Reaper {
    /// Start the reaper task (reaps on every SIGCHLD) and return its handle.
    pub fn start() -> std::io::Result<Arc<Self>> {
        let reaper = Arc::new(Self::default());
        let mut sigchld = signal(SignalKind::child())?;
        let task = Arc::clone(&reaper);
        tokio::spawn(async move {
            loop {
                task.reap();
                if sigchld.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok(reaper)
    }

    /// Spawn `command`; the receiver yields its exit.
    pub fn spawn(
        &self,
        command: &mut Command,
    ) -> std::io::Result<(Child, oneshot::Receiver<Exit>)> {
        let mut waiting = waiting();
        let child = command.spawn()?;
        let (tx, rx) = oneshot::channel();
        waiting
            .get_or_insert_with(HashMap::new)
            .insert(child.id() as i32, tx);
        Ok((child, rx))
    }

    /// Collect every exited child now. As PID 1 that means any child, orphans
    /// included; in any other process (tests) only the registered ones, so
    /// children waited for elsewhere are left alone.
    pub fn reap(&self) {
        let mut waiting = waiting();
        let waiting = waiting.get_or_insert_with(HashMap::new);
        if std::process::id() == 1 {
            while let Some((pid, exit)) = wait(-1) {
                if let Some(tx) = waiting.remove(&pid) {
                    let _ = tx.send(exit);
                }
            }
        } else {
            let exited: Vec<(i32, Exit)> = waiting.keys().filter_map(|&pid| wait(pid)).collect();
            for (pid, exit) in exited {
                if let Some(tx) = waiting.remove(&pid) {
                    let _ = tx.send(exit);
                }
            }
        }
    }
}

/// `waitpid(pid, WNOHANG)`: the exit of `pid` (or any child for -1), if one
/// has ended.
fn wait(pid: i32) -> Option<(i32, Exit)> {
    let mut status = 0;
    // SAFETY: waitpid writes the status into our local integer.
    let pid = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    let exit = if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    };
    Some((pid, exit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn exit_codes_and_signals_reach_the_owner() {
        let reaper = Reaper::start().unwrap();
        let (_child, rx) = reaper
            .spawn(Command::new("/bin/sh").args(["-c", "exit 3"]))
            .unwrap();
        assert_eq!(rx.await.unwrap(), Exit::Code(3));
        let (_child, rx) = reaper
            .spawn(Command::new("/bin/sh").args(["-c", "kill -9 $$"]))
            .unwrap();
        assert_eq!(rx.await.unwrap(), Exit::Signal(9));
    }
}

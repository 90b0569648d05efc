//! Lines for the node's console, written by their own thread.
//!
//! A console can stall (a serial line nobody reads, flow control, a UART
//! without a working interrupt); PID 1 must not stall with it. Callers queue
//! a line and go on; when the queue is full, lines are dropped and counted,
//! and the count is reported once the console drains.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::OnceLock;

static QUEUE: OnceLock<SyncSender<String>> = OnceLock::new();
static DROPPED: AtomicU64 = AtomicU64::new(0);
const DEPTH: usize = 1024;

/// Start the writer thread; until then (and in tests) lines go straight to
/// standard error.
pub fn start() {
    let (tx, rx) = sync_channel::<String>(DEPTH);
    let spawned = std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            let mut out = std::io::stdout();
            for line in rx {
                let dropped = DROPPED.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    let _ = writeln!(out, "mote: console was stalled; {dropped} lines dropped");
                }
                let _ = out
                    .write_all(line.as_bytes())
                    .and_then(|()| out.write_all(b"\n"));
                let _ = out.flush();
            }
        });
    if spawned.is_ok() {
        let _ = QUEUE.set(tx);
    }
}

/// Queue one line for the console; never blocks.
pub fn line(text: String) {
    match QUEUE.get() {
        Some(tx) => match tx.try_send(text) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
            }
        },
        None => eprintln!("{text}"),
    }
}

/// Wait (bounded) until queued lines are written, before power-off.
pub fn drain() {
    let Some(tx) = QUEUE.get() else { return };
    for _ in 0..100 {
        // A full send succeeds only when the writer has room; an empty
        // queue cannot be observed directly, so probe with capacity.
        if tx.try_send(String::new()).is_ok() {
            std::thread::sleep(std::time::Duration::from_millis(20));
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

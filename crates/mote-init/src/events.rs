//! Structured node events: time, source, level, message.
//!
//! Every part of PID 1 and every service's stdout/stderr ends up here. Events
//! go to an in-memory ring (for the management API later), to the console
//! when they are warnings or worse, and to `events.jsonl` on the state disk,
//! which is capped in size: past the cap the file is rotated to
//! `events.1.jsonl`, so the log never fills the disk.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Severity of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Detail for debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something is off but the node carries on.
    Warn,
    /// Something failed.
    Error,
}

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// `init`, `net`, `firewall`, `dhcp`, or a service name.
    pub source: String,
    /// Severity.
    pub level: Level,
    /// What happened, one line.
    pub message: String,
}

/// Longest message kept; longer lines are cut and marked.
pub const MAX_MESSAGE: usize = 4096;
const RING: usize = 2048;
/// Size at which `events.jsonl` is rotated.
pub const MAX_LOG_BYTES: u64 = 8 << 20;

struct Sink {
    ring: VecDeque<Event>,
    file: Option<(PathBuf, File, u64)>,
    console: Option<Level>,
}

/// A cheap, cloneable handle for emitting events.
#[derive(Clone)]
pub struct Events {
    sink: Arc<Mutex<Sink>>,
}

impl Default for Events {
    fn default() -> Self {
        Self::new(true)
    }
}

impl Events {
    /// Events kept in memory, and echoed to the console (warnings and worse)
    /// when `console`.
    pub fn new(console: bool) -> Self {
        let console = console.then_some(Level::Warn);
        let sink = Sink {
            ring: VecDeque::new(),
            file: None,
            console,
        };
        Self {
            sink: Arc::new(Mutex::new(sink)),
        }
    }

    /// Echo events of `level` and worse to the console from now on.
    pub fn set_console_level(&self, level: Level) {
        self.sink().console = Some(level);
    }

    fn sink(&self) -> MutexGuard<'_, Sink> {
        // A poisoned lock only means a panic elsewhere; the data is still usable.
        self.sink.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on, also append events to `dir/events.jsonl` (the state disk),
    /// first writing out what was kept in memory before the disk was there.
    pub fn persist_to(&self, dir: &Path) -> std::io::Result<()> {
        let path = dir.join("events.jsonl");
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut size = file.metadata()?.len();
        let mut sink = self.sink();
        for event in &sink.ring {
            if let Ok(mut line) = serde_json::to_vec(event) {
                line.push(b'\n');
                size += line.len() as u64;
                file.write_all(&line)?;
            }
        }
        sink.file = Some((path, file, size));
        Ok(())
    }

    /// Record an event.
    pub fn emit(&self, source: &str, level: Level, message: impl Into<String>) {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" …[truncated]");
        }
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let event = Event {
            time_ms,
            source: source.to_owned(),
            level,
            message,
        };
        let mut sink = self.sink();
        if let Some((path, file, size)) = sink.file.as_mut() {
            if let Ok(mut line) = serde_json::to_vec(&event) {
                line.push(b'\n');
                if *size + line.len() as u64 > MAX_LOG_BYTES {
                    let _ = std::fs::rename(&*path, path.with_file_name("events.1.jsonl"));
                    if let Ok(fresh) = OpenOptions::new().create(true).append(true).open(&*path) {
                        *file = fresh;
                        *size = 0;
                    }
                }
                if file.write_all(&line).is_ok() {
                    *size += line.len() as u64;
                }
            }
        }
        if sink.console.is_some_and(|min| level >= min) {
            crate::console::line(format!(
                "mote: {} {:?}: {}",
                event.source, event.level, event.message
            ));
        }
        if sink.ring.len() == RING {
            sink.ring.pop_front();
        }
        sink.ring.push_back(event);
    }

    /// `emit` at info level.
    pub fn info(&self, source: &str, message: impl Into<String>) {
        self.emit(source, Level::Info, message);
    }

    /// `emit` at warn level.
    pub fn warn(&self, source: &str, message: impl Into<String>) {
        self.emit(source, Level::Warn, message);
    }

    /// `emit` at error level.
    pub fn error(&self, source: &str, message: impl Into<String>) {
        self.emit(source, Level::Error, message);
    }

    /// The events kept in memory, oldest first.
    pub fn recent(&self) -> Vec<Event> {
        self.sink().ring.iter().cloned().collect()
    }

    /// Flush the log file to disk (before power-off).
    pub fn sync(&self) {
        if let Some((_, file, _)) = self.sink().file.as_mut() {
            let _ = file.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let events = Events::new(false);
        events.info("t", "é".repeat(MAX_MESSAGE));
        let kept = &events.recent()[0].message;
        assert!(kept.ends_with("…[truncated]"));
        assert!(kept.len() <= MAX_MESSAGE + "…[truncated]".len() + 1);
    }

    #[test]
    fn events_written_before_the_disk_are_persisted_then_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let events = Events::new(false);
        events.info("early", "before disk");
        events.persist_to(dir.path()).unwrap();
        events.info("late", "after disk");
        let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
        assert!(text.contains("before disk") && text.contains("after disk"));
        let big = "x".repeat(MAX_MESSAGE - 100);
        for _ in 0..(MAX_LOG_BYTES as usize / big.len() + 2) {
            events.info("bulk", big.clone());
        }
        assert!(dir.path().join("events.1.jsonl").exists());
        assert!(
            std::fs::metadata(dir.path().join("events.jsonl"))
                .unwrap()
                .len()
                < MAX_LOG_BYTES
        );
    }
}

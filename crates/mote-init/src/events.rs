//! Structured node events: time, source, level, message.
//!
//! Every part of PID 1 and every service's stdout/stderr ends up here. Events
//! go to an in-memory ring (for the management API later), to the console
//! when they are warnings or worse, and to `events.jsonl` on the state disk,
//! which is capped in size: past the cap the file is rotated to
//! `events.1.jsonl`, so the log never fills the disk.
//!
//! The events of the boot (up to the ready line, at most [`BOOT_RING`]) are
//! kept apart from the ring, so no later flood (of audit refusals, say) can
//! push out what the node said while it came up.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

pub use mote_api::events::{Event, EventQuery, Level};

/// Longest message kept; longer lines are cut and marked.
pub const MAX_MESSAGE: usize = 4096;
const RING: usize = 2048;
/// Events of the boot kept apart from the ring.
pub const BOOT_RING: usize = 512;
/// Events a follower may fall behind by before it is dropped.
const FOLLOW_BACKLOG: usize = 1024;
/// Default and largest number of events one query returns.
pub const QUERY_LIMIT: usize = 1000;
/// Size at which `events.jsonl` is rotated.
pub const MAX_LOG_BYTES: u64 = 8 << 20;

struct Sink {
    /// The boot's events, until [`Events::end_boot`].
    boot: Vec<Event>,
    booting: bool,
    ring: VecDeque<Event>,
    file: Option<(PathBuf, File, u64)>,
    console: Option<Level>,
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A cheap, cloneable handle for emitting events.
#[derive(Clone)]
pub struct Events {
    sink: Arc<Mutex<Sink>>,
    follow: broadcast::Sender<Event>,
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
            boot: Vec::new(),
            booting: true,
            ring: VecDeque::new(),
            file: None,
            console,
        };
        let (follow, _) = broadcast::channel(FOLLOW_BACKLOG);
        Self {
            sink: Arc::new(Mutex::new(sink)),
            follow,
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
        for event in sink.boot.iter().chain(&sink.ring) {
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
        let time_ms = now_ms();
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
        // Sent under the lock, so followers see events in order. A
        // broadcast send never waits: a follower that falls behind by
        // FOLLOW_BACKLOG events is told it lagged, and is dropped.
        if self.follow.receiver_count() > 0 {
            let _ = self.follow.send(event.clone());
        }
        if sink.booting && sink.boot.len() < BOOT_RING {
            sink.boot.push(event);
            return;
        }
        if sink.ring.len() == RING {
            sink.ring.pop_front();
        }
        sink.ring.push_back(event);
    }

    /// The node is ready: later events go to the ring, and the boot's stay.
    pub fn end_boot(&self) {
        self.sink().booting = false;
    }

    /// Every event from now on, for `Follow`. The receiver reports
    /// `Lagged` if its reader falls behind; the reader then gives up.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.follow.subscribe()
    }

    /// Recorded events matching `query`, oldest first, at most its limit
    /// (default and cap [`QUERY_LIMIT`]), the newest kept. When `since_ms`
    /// reaches back past the oldest event in memory, the log files on the
    /// state disk (`events.1.jsonl`, then `events.jsonl`; each capped at
    /// [`MAX_LOG_BYTES`]) supply the older ones.
    pub fn query(&self, query: &EventQuery) -> Vec<Event> {
        let limit = query.limit.unwrap_or(QUERY_LIMIT).min(QUERY_LIMIT);
        let mut found: VecDeque<Event> = VecDeque::new();
        let (boot, ring, file) = {
            let sink = self.sink();
            let boot: Vec<Event> = sink
                .boot
                .iter()
                .filter(|e| query.matches(e))
                .cloned()
                .collect();
            let ring: Vec<Event> = sink.ring.iter().cloned().collect();
            let file = sink.file.as_ref().map(|(path, _, _)| path.clone());
            (boot, ring, file)
        };
        let oldest_in_ring = ring.first().map_or(u64::MAX, |e| e.time_ms);
        let wants_older = query.since_ms.is_some_and(|t| t < oldest_in_ring);
        match (wants_older, file) {
            // The files hold the boot's events too, in order.
            (true, Some(path)) => {
                for path in [path.with_file_name("events.1.jsonl"), path] {
                    for event in read_log(&path) {
                        if event.time_ms < oldest_in_ring && query.matches(&event) {
                            push_bounded(&mut found, event, limit);
                        }
                    }
                }
            }
            _ => {
                for event in boot {
                    push_bounded(&mut found, event, limit);
                }
            }
        }
        for event in ring {
            if query.matches(&event) {
                push_bounded(&mut found, event, limit);
            }
        }
        found.into()
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

    /// The events kept in memory, oldest first (the boot's, then the ring).
    pub fn recent(&self) -> Vec<Event> {
        let sink = self.sink();
        sink.boot.iter().chain(&sink.ring).cloned().collect()
    }

    /// Flush the log file to disk (before power-off).
    pub fn sync(&self) {
        if let Some((_, file, _)) = self.sink().file.as_mut() {
            let _ = file.sync_all();
        }
    }
}

fn push_bounded(found: &mut VecDeque<Event>, event: Event, limit: usize) {
    if limit == 0 {
        return;
    }
    if found.len() == limit {
        found.pop_front();
    }
    found.push_back(event);
}

/// The events of one log file; unreadable lines are skipped. Reads at most
/// [`MAX_LOG_BYTES`] (plus one line), the file's own cap.
fn read_log(path: &Path) -> impl Iterator<Item = Event> {
    let reader = File::open(path).ok().map(|f| {
        use std::io::Read;
        BufReader::new(f.take(MAX_LOG_BYTES + MAX_MESSAGE as u64 * 2))
    });
    reader
        .into_iter()
        .flat_map(|r| r.split(b'\n'))
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_slice::<Event>(&line).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood after boot (issue 17: two events per refused request pushed
    /// the boot out of the buffer) leaves the boot's events in place.
    #[test]
    fn the_boot_events_outlive_a_flood() {
        let events = Events::new(false);
        events.info("init", "boot timeline: modules@200");
        events.error("init", "stored settings version 3 is invalid");
        events.end_boot();
        for i in 0..RING * 3 {
            events.warn("audit", format!("refused {i}"));
        }
        let all = events.query(&EventQuery::default());
        assert!(all.len() <= QUERY_LIMIT);
        let init = events.query(&EventQuery {
            source: Some("init".into()),
            ..EventQuery::default()
        });
        assert_eq!(init.len(), 2, "{init:?}");
        assert!(init[1].message.contains("version 3"));
        let recent = events.recent();
        assert_eq!(recent[0].message, "boot timeline: modules@200");
        assert_eq!(recent.len(), 2 + RING);
        assert_eq!(
            recent.last().map(|e| e.message.as_str()),
            Some(format!("refused {}", RING * 3 - 1).as_str())
        );
    }

    #[test]
    fn queries_filter_limit_and_reach_into_the_log_files() {
        let dir = tempfile::tempdir().unwrap();
        let old = |t: u64, msg: &str| {
            serde_json::to_string(&Event {
                time_ms: t,
                source: "old".into(),
                level: Level::Info,
                message: msg.into(),
            })
            .unwrap()
                + "\n"
        };
        std::fs::write(dir.path().join("events.1.jsonl"), old(1, "first")).unwrap();
        std::fs::write(
            dir.path().join("events.jsonl"),
            old(2, "second") + "not json\n",
        )
        .unwrap();
        let events = Events::new(false);
        events.persist_to(dir.path()).unwrap();
        events.info("web", "hello");
        events.warn("web", "slow");
        events.info("db", "up");

        let all = events.query(&EventQuery::default());
        assert_eq!(all.len(), 3, "memory only without since_ms: {all:?}");
        let web_warn = events.query(&EventQuery {
            source: Some("web".into()),
            level: Some(Level::Warn),
            ..Default::default()
        });
        assert_eq!(web_warn.len(), 1);
        assert_eq!(web_warn[0].message, "slow");
        let from_disk = events.query(&EventQuery {
            since_ms: Some(0),
            ..Default::default()
        });
        let messages: Vec<&str> = from_disk.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["first", "second", "hello", "slow", "up"]);
        let newest = events.query(&EventQuery {
            since_ms: Some(0),
            limit: Some(2),
            ..Default::default()
        });
        assert_eq!(newest[0].message, "slow");
        assert_eq!(newest.len(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn followers_get_new_events_and_lag_instead_of_blocking() {
        let events = Events::new(false);
        events.info("t", "before");
        let mut rx = events.subscribe();
        events.info("t", "after");
        assert_eq!(rx.recv().await.unwrap().message, "after");
        for i in 0..(FOLLOW_BACKLOG + 10) {
            events.info("t", format!("flood {i}"));
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
    }

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

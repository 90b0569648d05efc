//! The audit log: one JSON line per change (`STATE/audit.jsonl`), bounded.
//!
//! - The file is rotated by size: past `max_bytes` it becomes
//!   `audit.jsonl.1` (the previous `.1` becomes `.2`, and so on), and only
//!   `files` files are kept, so the log takes at most about
//!   `files × max_bytes` of the state disk whatever clients send.
//! - What a line says is cut at [`MAX_WHAT`] characters (a 16 KB path is
//!   not written whole).
//! - Refusals of unauthenticated callers are sampled ([`Sampler`]): the
//!   first from a source in each window is written, at most
//!   [`MAX_PER_WINDOW`] in all, with how many were refused and not written
//!   before it; the rest are only counted.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mote_api::api::{AuditEntry, AuditQuery};

/// The longest `what` written, in characters.
pub const MAX_WHAT: usize = 256;

/// `s` cut to at most `max` characters, saying how long it was.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((end, _)) => format!("{}… ({} bytes)", &s[..end], s.len()),
    }
}

/// The log file and its rotated predecessors.
pub struct AuditLog {
    path: PathBuf,
    max_bytes: u64,
    files: usize,
    lock: Mutex<()>,
}

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

impl AuditLog {
    /// The log at `path`, rotated past `max_bytes`, `files` files kept
    /// (the live one among them; at least 1).
    pub fn new(path: PathBuf, max_bytes: u64, files: usize) -> Self {
        Self {
            path,
            max_bytes,
            files: files.max(1),
            lock: Mutex::new(()),
        }
    }

    /// Every file of the log, oldest first.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = (1..self.files)
            .rev()
            .map(|n| rotated(&self.path, n))
            .collect();
        v.push(self.path.clone());
        v
    }

    fn rotate(&self) -> std::io::Result<()> {
        if self.files == 1 {
            return std::fs::remove_file(&self.path);
        }
        for n in (1..self.files - 1).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))
    }

    /// Appends one entry (its `what` cut to [`MAX_WHAT`]) and syncs it;
    /// rotates the file when it is full.
    pub fn append(&self, entry: &AuditEntry) -> std::io::Result<()> {
        let _g = self.lock.lock();
        let mut entry = entry.clone();
        entry.what = truncate(&entry.what, MAX_WHAT);
        entry.result = truncate(&entry.result, 2 * MAX_WHAT);
        let mut line = serde_json::to_vec(&entry)?;
        line.push(b'\n');
        let size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        if size > 0 && size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        f.write_all(&line)?;
        f.sync_data()
    }

    /// Entries matching `q`, oldest first.
    pub fn query(&self, q: &AuditQuery) -> std::io::Result<Vec<AuditEntry>> {
        let _g = self.lock.lock();
        let mut out = Vec::new();
        for path in self.paths() {
            let f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.extend(
                BufReader::new(f)
                    .lines()
                    .map_while(Result::ok)
                    .filter_map(|l| serde_json::from_str(&l).ok())
                    .filter(|e: &AuditEntry| q.since.is_none_or(|s| e.time_ms >= s)),
            );
        }
        let limit = q.limit.unwrap_or(1000);
        if out.len() > limit {
            out.drain(..out.len() - limit);
        }
        Ok(out)
    }
}

/// Sources a sampler keeps apart; past it, the rest share one record.
pub const MAX_SOURCES: usize = 1024;

/// Refusals written per window from all sources together; past it, they
/// are counted only (a botnet of many addresses writes no more).
pub const MAX_PER_WINDOW: u64 = 60;

/// Samples refusals by source: one written per source per window, and at
/// most [`MAX_PER_WINDOW`] in all.
pub struct Sampler {
    window: Duration,
    sources: Mutex<HashMap<Option<IpAddr>, (Instant, u64)>>,
    /// This window's start, lines written in it, and refusals not written
    /// for the cap (told in the next line written).
    all: Mutex<(Instant, u64, u64)>,
}

impl Sampler {
    /// One per source per `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            sources: Mutex::new(HashMap::new()),
            all: Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// Whether to write a refusal from `ip` now: `Some(n)` with the number
    /// refused and not written before it, or `None` (counted only).
    pub fn sample(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let skipped = self.by_source(ip, now)?;
        let Ok(mut all) = self.all.lock() else {
            return Some(skipped);
        };
        let (start, written, over) = &mut *all;
        if now.duration_since(*start) >= self.window {
            *start = now;
            *written = 0;
        }
        if *written >= MAX_PER_WINDOW {
            *over += 1 + skipped;
            return None;
        }
        *written += 1;
        Some(skipped + std::mem::take(over))
    }

    fn by_source(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let Ok(mut m) = self.sources.lock() else {
            return Some(0);
        };
        let window = self.window;
        if m.len() >= MAX_SOURCES && !m.contains_key(&Some(ip)) {
            m.retain(|_, (start, n)| *n > 0 || now.duration_since(*start) < window);
        }
        let key = if m.len() >= MAX_SOURCES && !m.contains_key(&Some(ip)) {
            None
        } else {
            Some(ip)
        };
        match m.get_mut(&key) {
            Some((start, n)) if now.duration_since(*start) < window => {
                *n += 1;
                None
            }
            Some((start, n)) => {
                let skipped = *n;
                *start = now;
                *n = 0;
                Some(skipped)
            }
            None => {
                m.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(what: &str) -> AuditEntry {
        AuditEntry {
            time_ms: 1,
            who: "-".into(),
            source: "10.0.0.1:1".into(),
            what: what.into(),
            result: "401".into(),
        }
    }

    #[test]
    fn the_log_rotates_and_keeps_its_cap() {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::new(d.path().join("audit.jsonl"), 1000, 2);
        for i in 0..100 {
            log.append(&entry(&format!("POST /x/{i}"))).unwrap();
        }
        let total: u64 = log
            .paths()
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        assert!(total <= 2000, "{total}");
        assert!(!d.path().join("audit.jsonl.2").exists());
        let all = log.query(&AuditQuery::default()).unwrap();
        assert_eq!(all.last().unwrap().what, "POST /x/99");
        assert!(all.len() > 5);
    }

    #[test]
    fn long_whats_are_cut() {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::new(d.path().join("audit.jsonl"), 1 << 20, 2);
        log.append(&entry(&"é".repeat(16_000))).unwrap();
        let e = &log.query(&AuditQuery::default()).unwrap()[0];
        assert!(e.what.chars().count() < MAX_WHAT + 30, "{}", e.what);
        assert!(e.what.ends_with("(32000 bytes)"));
    }

    #[test]
    fn refusals_are_sampled_per_source_and_window() {
        let s = Sampler::new(Duration::from_secs(60));
        let now = Instant::now();
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        assert_eq!(s.sample(a, now), Some(0));
        assert_eq!(s.sample(a, now), None);
        assert_eq!(s.sample(a, now), None);
        assert_eq!(s.sample(b, now), Some(0));
        assert_eq!(s.sample(a, now + Duration::from_secs(61)), Some(2));
    }

    #[test]
    fn many_sources_write_at_most_the_cap_per_window() {
        let s = Sampler::new(Duration::from_secs(60));
        let now = Instant::now();
        let written = (0..1000u32)
            .filter(|i| s.sample(IpAddr::from(i.to_be_bytes()), now).is_some())
            .count();
        assert_eq!(written as u64, MAX_PER_WINDOW);
        // The next window's first line tells how many were left out.
        let later = now + Duration::from_secs(61);
        assert_eq!(s.sample(IpAddr::from([9, 9, 9, 9]), later), Some(940));
    }
}

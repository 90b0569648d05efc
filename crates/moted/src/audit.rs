//! The audit log: one JSON line per change (`STATE/audit.jsonl`).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use mote_api::api::{AuditEntry, AuditQuery};

/// The log file.
pub struct AuditLog {
    path: PathBuf,
    lock: Mutex<()>,
}

impl AuditLog {
    /// The log at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            lock: Mutex::new(()),
        }
    }

    /// Appends one entry and syncs it.
    pub fn append(&self, entry: &AuditEntry) -> std::io::Result<()> {
        let _g = self.lock.lock();
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
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
        let f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out: Vec<AuditEntry> = BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .filter(|e: &AuditEntry| q.since.is_none_or(|s| e.time_ms >= s))
            .collect();
        let limit = q.limit.unwrap_or(1000);
        if out.len() > limit {
            out.drain(..out.len() - limit);
        }
        Ok(out)
    }
}

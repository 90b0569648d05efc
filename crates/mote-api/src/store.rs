//! The settings store: `current.json` and `history/NNNNNN.json` under the
//! state directory's `settings/` (`/state/mote/settings` on a node).
//!
//! One record type, [`Stored`], and one reader, [`read_committed`], shared by
//! the two processes that touch the store: `moted` writes it (every settings
//! change is a new version) and PID 1 reads it at boot, so the node boots
//! exactly what moted last committed. (Before they shared this module, PID 1
//! read `current.json` as bare settings, failed on the version fields, and
//! silently booted the image's settings.)
//!
//! Every write goes to a temporary file in the same directory (`.NAME.tmp`),
//! is fsynced, renamed over the target, and the directory is fsynced, so a
//! power cut leaves either the old or the new file, and at worst a leftover
//! temporary file that is ignored. A new version is written to the history
//! first, then to `current.json`; on load, the newest readable version wins,
//! wherever it is (the cut fell between the two), and an unreadable file is
//! reported, never used.
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use mote_config::NodeSettings;
use serde::{Deserialize, Serialize};

use crate::api::{HistoryEntry, VersionedSettings};

/// Where the store lives on a node.
pub const DIR: &str = "/state/mote/settings";

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system call failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A stored file does not parse.
    #[error("{path} is not valid settings")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// No such version in the history.
    #[error("no settings version {0}")]
    NoVersion(u64),
}

impl StoreError {
    /// Did it fail because the state disk is full?
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull
            || source.raw_os_error() == Some(28 /* ENOSPC */))
    }
}

/// One stored version (a history file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// Version, time, author, reason.
    #[serde(flatten)]
    pub entry: HistoryEntry,
    /// The settings.
    pub settings: NodeSettings,
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Versions the history keeps by default; older ones are deleted as new
/// ones are stored ([`Store::set_history_depth`]).
pub const HISTORY_DEPTH: usize = 100;

/// The store, as moted holds it: the version in force and the files.
pub struct Store {
    dir: PathBuf,
    current: Stored,
    depth: usize,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `data` to `path` so that a power cut leaves the old or new file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{}.tmp", name.unwrap_or_default()));
    let written = fs::File::create(&tmp)
        .map_err(io("create", &tmp))
        .and_then(|mut f| {
            f.write_all(data).map_err(io("write", &tmp))?;
            f.sync_all().map_err(io("fsync", &tmp))
        })
        .and_then(|()| fs::rename(&tmp, path).map_err(io("rename", path)));
    if let Err(e) = written {
        // A half-written temporary file would only take the room a full
        // disk lacks; it is never read.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", dir))?;
    Ok(())
}

fn read(path: &Path) -> Result<Stored, StoreError> {
    let bytes = fs::read(path).map_err(io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

/// What [`read_committed`] found: the newest readable version, and every
/// stored file that could not be read (which a node reports at error level).
#[derive(Debug)]
pub struct Committed {
    /// The newest readable version; `None` when nothing was ever stored.
    pub newest: Option<Stored>,
    /// Files that exist but do not read or parse, with why.
    pub problems: Vec<StoreError>,
}

fn version_files(history: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut v: Vec<(u64, PathBuf)> = match fs::read_dir(history) {
        Ok(dir) => dir
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let version = name.strip_suffix(".json")?.parse().ok()?;
                Some((version, e.path()))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io("list", history)(e)),
    };
    v.sort_unstable_by_key(|(version, _)| *version);
    Ok(v)
}

/// The settings moted last committed in the store at `dir`: the newest
/// readable version of `current.json` and the history. This is what a node
/// runs; PID 1 calls it at boot and moted when it opens the store, so the
/// two can never disagree on what was committed.
pub fn read_committed(dir: &Path) -> Result<Committed, StoreError> {
    let mut problems = Vec::new();
    let mut newest: Option<Stored> = None;
    let current = dir.join("current.json");
    if current.exists() {
        match read(&current) {
            Ok(s) => newest = Some(s),
            Err(e) => problems.push(e),
        }
    }
    // Newest first: the first readable history file newer than
    // current.json is the one to use; older ones need not be read.
    for (version, path) in version_files(&dir.join("history"))?.into_iter().rev() {
        if newest.as_ref().is_some_and(|n| n.entry.version >= version) {
            break;
        }
        match read(&path) {
            Ok(s) => {
                newest = Some(s);
                break;
            }
            Err(e) => problems.push(e),
        }
    }
    Ok(Committed { newest, problems })
}

impl Store {
    /// Opens the store in `dir`, or makes it with `initial` as version 1.
    /// Files that could not be read are returned beside it, to be reported.
    pub fn open(
        dir: &Path,
        initial: impl FnOnce() -> NodeSettings,
    ) -> Result<(Self, Vec<StoreError>), StoreError> {
        let history = dir.join("history");
        fs::create_dir_all(&history).map_err(io("create", &history))?;
        let Committed { newest, problems } = read_committed(dir)?;
        let current = match newest {
            Some(stored) => stored,
            None => {
                let next = version_files(&history)?.last().map_or(0, |(v, _)| *v) + 1;
                let first = Stored {
                    entry: HistoryEntry {
                        version: next,
                        time_ms: now_ms(),
                        who: "image".into(),
                        what: "settings of the image".into(),
                    },
                    settings: initial(),
                };
                let store = Self {
                    dir: dir.to_path_buf(),
                    current: first,
                    depth: HISTORY_DEPTH,
                };
                store.write(&store.current)?;
                return Ok((store, problems));
            }
        };
        Ok((
            Self {
                dir: dir.to_path_buf(),
                current,
                depth: HISTORY_DEPTH,
            },
            problems,
        ))
    }

    fn history_path(&self, version: u64) -> PathBuf {
        self.dir.join("history").join(format!("{version:06}.json"))
    }

    /// Version numbers in the history, ascending (temporary files ignored).
    pub fn versions(&self) -> Result<Vec<u64>, StoreError> {
        Ok(version_files(&self.dir.join("history"))?
            .into_iter()
            .map(|(v, _)| v)
            .collect())
    }

    /// One stored version.
    pub fn load(&self, version: u64) -> Result<Stored, StoreError> {
        let p = self.history_path(version);
        if !p.exists() {
            return Err(StoreError::NoVersion(version));
        }
        read(&p)
    }

    fn write(&self, s: &Stored) -> Result<(), StoreError> {
        let data = serde_json::to_vec_pretty(s).map_err(|source| StoreError::Corrupt {
            path: self.history_path(s.entry.version),
            source,
        })?;
        let history = self.history_path(s.entry.version);
        write_atomic(&history, &data)?;
        if let Err(e) = write_atomic(&self.dir.join("current.json"), &data) {
            // Not committed after all (the caller says so and rolls back):
            // take the history file back too, or the next boot, which runs
            // the newest version, would run it.
            let _ = fs::remove_file(&history);
            return Err(e);
        }
        Ok(())
    }

    /// The settings in force.
    pub fn current(&self) -> VersionedSettings {
        VersionedSettings {
            version: self.current.entry.version,
            settings: self.current.settings.clone(),
        }
    }

    /// The settings in force, without a copy.
    pub fn settings(&self) -> &NodeSettings {
        &self.current.settings
    }

    /// Keeps at most `depth` versions (at least 1) in the history from the
    /// next [`Store::save`] on.
    pub fn set_history_depth(&mut self, depth: usize) {
        self.depth = depth.max(1);
    }

    /// Deletes the oldest history files beyond the depth (never the
    /// version in force). Best effort: a file that cannot be deleted now
    /// is deleted by a later save.
    fn prune(&self) {
        let Ok(versions) = self.versions() else {
            return;
        };
        let excess = versions.len().saturating_sub(self.depth);
        for v in versions.into_iter().take(excess) {
            if v != self.current.entry.version {
                let _ = fs::remove_file(self.history_path(v));
            }
        }
    }

    /// The version the next [`Store::save`] will write.
    pub fn next_version(&self) -> Result<u64, StoreError> {
        Ok(self
            .versions()?
            .last()
            .copied()
            .unwrap_or(0)
            .max(self.current.entry.version)
            + 1)
    }

    /// Stores `settings` as the next version.
    pub fn save(
        &mut self,
        settings: NodeSettings,
        who: &str,
        what: &str,
    ) -> Result<VersionedSettings, StoreError> {
        let next = self.next_version()?;
        let s = Stored {
            entry: HistoryEntry {
                version: next,
                time_ms: now_ms(),
                who: who.into(),
                what: what.into(),
            },
            settings,
        };
        self.write(&s)?;
        self.current = s;
        self.prune();
        Ok(self.current())
    }

    /// Every stored version's entry, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        self.versions()?
            .into_iter()
            .map(|v| self.load(v).map(|s| s.entry))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(host: &str) -> NodeSettings {
        let mut s = NodeSettings::default();
        s.system.hostname = host.into();
        s
    }

    #[test]
    fn the_history_keeps_its_depth_and_numbers_go_on() {
        let d = tempfile::tempdir().unwrap();
        let mut st = Store::open(d.path(), || settings("a")).unwrap().0;
        st.set_history_depth(3);
        for i in 0..10 {
            st.save(settings(&format!("h{i}")), "admin", "test")
                .unwrap();
        }
        assert_eq!(st.versions().unwrap(), vec![9, 10, 11]);
        assert_eq!(st.current().version, 11);
        let st = Store::open(d.path(), || settings("x")).unwrap().0;
        assert_eq!(st.current().version, 11);
        assert_eq!(st.next_version().unwrap(), 12);
        assert!(matches!(st.load(2), Err(StoreError::NoVersion(2))));
    }

    #[test]
    fn versions_count_up_and_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        let mut st = Store::open(d.path(), || settings("a")).unwrap().0;
        assert_eq!(st.current().version, 1);
        st.save(settings("b"), "admin", "test").unwrap();
        let st = Store::open(d.path(), || settings("ignored")).unwrap().0;
        assert_eq!(st.current().version, 2);
        assert_eq!(st.current().settings.system.hostname, "b");
        assert_eq!(st.history().unwrap().len(), 2);
    }

    #[test]
    fn leftover_temp_files_from_a_power_cut_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        let mut st = Store::open(d.path(), || settings("a")).unwrap().0;
        st.save(settings("b"), "admin", "test").unwrap();
        fs::write(d.path().join(".current.json.tmp"), b"{\"half").unwrap();
        fs::write(d.path().join("history/.000003.json.tmp"), b"{").unwrap();
        let st = Store::open(d.path(), || settings("x")).unwrap().0;
        assert_eq!(st.current().version, 2);
        assert_eq!(st.versions().unwrap(), vec![1, 2]);
    }

    #[test]
    fn a_cut_between_history_and_current_keeps_the_newest_version() {
        let d = tempfile::tempdir().unwrap();
        let mut st = Store::open(d.path(), || settings("a")).unwrap().0;
        st.save(settings("b"), "admin", "test").unwrap();
        // Roll current.json back to version 1, as if the cut came before its rename.
        let v1 = fs::read(d.path().join("history/000001.json")).unwrap();
        fs::write(d.path().join("current.json"), v1).unwrap();
        let st = Store::open(d.path(), || settings("x")).unwrap().0;
        assert_eq!(st.current().version, 2);
    }

    #[test]
    fn what_moted_commits_is_what_a_booting_node_reads() {
        // The settings-loss defect: PID 1 read current.json as bare settings
        // and fell back to the image's on the version fields.
        let d = tempfile::tempdir().unwrap();
        let mut st = Store::open(d.path(), || settings("a")).unwrap().0;
        st.save(settings("web01"), "admin", "PATCH").unwrap();
        let committed = read_committed(d.path()).unwrap();
        assert!(committed.problems.is_empty(), "{:?}", committed.problems);
        let newest = committed.newest.unwrap();
        assert_eq!(newest.entry.version, 2);
        assert_eq!(newest.settings.system.hostname, "web01");
    }

    #[test]
    fn an_unreadable_current_is_reported_and_the_newest_readable_version_used() {
        let d = tempfile::tempdir().unwrap();
        let mut st = Store::open(d.path(), || settings("a")).unwrap().0;
        st.save(settings("b"), "admin", "test").unwrap();
        fs::write(d.path().join("current.json"), b"{\"half").unwrap();
        let committed = read_committed(d.path()).unwrap();
        assert_eq!(committed.newest.unwrap().entry.version, 2);
        assert_eq!(committed.problems.len(), 1);
        assert!(committed.problems[0].to_string().contains("current.json"));
        // Version 2's history file gone too: version 1 is the newest readable.
        fs::write(d.path().join("history/000002.json"), b"").unwrap();
        let committed = read_committed(d.path()).unwrap();
        assert_eq!(committed.newest.unwrap().entry.version, 1);
        assert_eq!(committed.problems.len(), 2);
        let (st, problems) = Store::open(d.path(), || settings("x")).unwrap();
        assert_eq!(st.current().settings.system.hostname, "a");
        assert_eq!(problems.len(), 2);
    }

    #[test]
    fn an_empty_store_has_nothing_committed() {
        let d = tempfile::tempdir().unwrap();
        let committed = read_committed(&d.path().join("absent")).unwrap();
        assert!(committed.newest.is_none() && committed.problems.is_empty());
    }
}

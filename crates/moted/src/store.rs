//! The settings store: `current.json` and `history/NNNNNN.json` under the
//! state directory's `settings/`.
//!
//! Every write goes to a temporary file in the same directory (`.NAME.tmp`),
//! is fsynced, renamed over the target, and the directory is fsynced, so a
//! power cut leaves either the old or the new file, and at worst a leftover
//! temporary file that [`Store::open`] ignores. A new version is written to
//! the history first, then to `current.json`; on load, the newest history
//! entry wins if `current.json` is older (the cut fell between the two).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use mote_api::api::{HistoryEntry, VersionedSettings};
use mote_api::control::NodeSettings;
use serde::{Deserialize, Serialize};

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

/// One stored version (a history file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    /// Version, time, author, reason.
    #[serde(flatten)]
    pub entry: HistoryEntry,
    /// The settings.
    pub settings: NodeSettings,
}

/// The store.
pub struct Store {
    dir: PathBuf,
    current: Stored,
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
    let mut f = fs::File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(data).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("fsync", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io("rename", path))?;
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

impl Store {
    /// Opens the store in `dir`, or makes it with `initial` as version 1.
    pub fn open(dir: &Path, initial: impl FnOnce() -> NodeSettings) -> Result<Self, StoreError> {
        let history = dir.join("history");
        fs::create_dir_all(&history).map_err(io("create", &history))?;
        let mut store = Self {
            dir: dir.to_path_buf(),
            current: Stored {
                entry: HistoryEntry {
                    version: 0,
                    time_ms: 0,
                    who: String::new(),
                    what: String::new(),
                },
                settings: NodeSettings::default(),
            },
        };
        let current_path = dir.join("current.json");
        let newest = store.versions()?.last().copied();
        let current = if current_path.exists() {
            Some(read(&current_path)?)
        } else {
            None
        };
        store.current = match (current, newest) {
            (Some(c), Some(n)) if n > c.entry.version => store.load(n)?,
            (Some(c), _) => c,
            (None, Some(n)) => store.load(n)?,
            (None, None) => {
                let first = Stored {
                    entry: HistoryEntry {
                        version: 1,
                        time_ms: crate::now_ms(),
                        who: "image".into(),
                        what: "settings of the image".into(),
                    },
                    settings: initial(),
                };
                store.write(&first)?;
                first
            }
        };
        Ok(store)
    }

    fn history_path(&self, version: u64) -> PathBuf {
        self.dir.join("history").join(format!("{version:06}.json"))
    }

    /// Version numbers in the history, ascending (temporary files ignored).
    pub fn versions(&self) -> Result<Vec<u64>, StoreError> {
        let h = self.dir.join("history");
        let mut v: Vec<u64> = fs::read_dir(&h)
            .map_err(io("list", &h))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json")?.parse().ok()
            })
            .collect();
        v.sort_unstable();
        Ok(v)
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
        write_atomic(&self.history_path(s.entry.version), &data)?;
        write_atomic(&self.dir.join("current.json"), &data)
    }

    /// The settings in force.
    pub fn current(&self) -> VersionedSettings {
        VersionedSettings {
            version: self.current.entry.version,
            settings: self.current.settings.clone(),
        }
    }

    /// Stores `settings` as the next version.
    pub fn save(
        &mut self,
        settings: NodeSettings,
        who: &str,
        what: &str,
    ) -> Result<VersionedSettings, StoreError> {
        let next = self
            .versions()?
            .last()
            .copied()
            .unwrap_or(0)
            .max(self.current.entry.version)
            + 1;
        let s = Stored {
            entry: HistoryEntry {
                version: next,
                time_ms: crate::now_ms(),
                who: who.into(),
                what: what.into(),
            },
            settings,
        };
        self.write(&s)?;
        self.current = s;
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
    fn versions_count_up_and_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        let mut st = Store::open(d.path(), || settings("a")).unwrap();
        assert_eq!(st.current().version, 1);
        st.save(settings("b"), "admin", "test").unwrap();
        let st = Store::open(d.path(), || settings("ignored")).unwrap();
        assert_eq!(st.current().version, 2);
        assert_eq!(st.current().settings.system.hostname, "b");
        assert_eq!(st.history().unwrap().len(), 2);
    }

    #[test]
    fn leftover_temp_files_from_a_power_cut_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        let mut st = Store::open(d.path(), || settings("a")).unwrap();
        st.save(settings("b"), "admin", "test").unwrap();
        fs::write(d.path().join(".current.json.tmp"), b"{\"half").unwrap();
        fs::write(d.path().join("history/.000003.json.tmp"), b"{").unwrap();
        let st = Store::open(d.path(), || settings("x")).unwrap();
        assert_eq!(st.current().version, 2);
        assert_eq!(st.versions().unwrap(), vec![1, 2]);
    }

    #[test]
    fn a_cut_between_history_and_current_keeps_the_newest_version() {
        let d = tempfile::tempdir().unwrap();
        let mut st = Store::open(d.path(), || settings("a")).unwrap();
        st.save(settings("b"), "admin", "test").unwrap();
        // Roll current.json back to version 1, as if the cut came before its rename.
        let v1 = fs::read(d.path().join("history/000001.json")).unwrap();
        fs::write(d.path().join("current.json"), v1).unwrap();
        let st = Store::open(d.path(), || settings("x")).unwrap();
        assert_eq!(st.current().version, 2);
    }
}

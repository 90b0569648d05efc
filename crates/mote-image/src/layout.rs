//! What goes into each initramfs segment, decided before anything is
//! written: a sorted map from image path (no leading `/`) to entry, so that
//! parents come before children and the order never depends on the host.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::elf::check_static;
use crate::error::io_error;
use crate::ImageBuildError;

/// One entry of an archive.
#[derive(Debug)]
pub(crate) struct Entry {
    pub kind: Kind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Where it came from, for collision messages.
    pub origin: String,
}

#[derive(Debug)]
pub(crate) enum Kind {
    Dir,
    File { content: Content, size: u64 },
    Symlink(String),
    CharDevice { major: u32, minor: u32 },
}

#[derive(Debug)]
pub(crate) enum Content {
    /// Streamed from a host file at write time.
    Host(PathBuf),
    /// Made by the builder (or decompressed).
    Bytes(Vec<u8>),
}

/// The entries of one archive.
#[derive(Debug, Default)]
pub(crate) struct Layout {
    pub entries: BTreeMap<String, Entry>,
}

impl Entry {
    pub fn dir(mode: u32, origin: &str) -> Self {
        Self {
            kind: Kind::Dir,
            uid: 0,
            gid: 0,
            mode,
            origin: origin.into(),
        }
    }

    pub fn bytes(bytes: Vec<u8>, mode: u32, origin: &str) -> Self {
        let size = bytes.len() as u64;
        Self {
            kind: Kind::File {
                content: Content::Bytes(bytes),
                size,
            },
            uid: 0,
            gid: 0,
            mode,
            origin: origin.into(),
        }
    }
}

impl Layout {
    /// Adds an entry; a directory already there stays as it is, anything
    /// else already there is a collision.
    pub fn insert(&mut self, path: String, entry: Entry) -> Result<(), ImageBuildError> {
        if let Some(existing) = self.entries.get(&path) {
            if matches!((&existing.kind, &entry.kind), (Kind::Dir, Kind::Dir)) {
                return Ok(());
            }
            return Err(ImageBuildError::Collision {
                destination: format!("/{path}"),
                first: existing.origin.clone(),
            });
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    /// Adds root-owned 0755 directories for every missing ancestor of every
    /// entry, except those `outside` (an earlier archive) already has.
    pub fn add_parents(&mut self, outside: Option<&Layout>) {
        let mut missing = Vec::new();
        for path in self.entries.keys() {
            let mut at = path.as_str();
            while let Some((parent, _)) = at.rsplit_once('/') {
                let known = self.entries.contains_key(parent)
                    || outside.is_some_and(|o| o.entries.contains_key(parent));
                if !known {
                    missing.push(parent.to_string());
                }
                at = parent;
            }
        }
        for path in missing {
            self.entries
                .entry(path)
                .or_insert_with(|| Entry::dir(0o755, "a parent directory"));
        }
    }

    /// Regular files with their sizes and modes, for the report.
    pub fn files(&self) -> impl Iterator<Item = (&str, u64, u32)> {
        self.entries.iter().filter_map(|(path, e)| match e.kind {
            Kind::File { size, .. } => Some((path.as_str(), size, e.mode)),
            _ => None,
        })
    }

    /// Whether `path` (absolute) names an executable file, following
    /// symbolic links inside the image.
    pub fn is_executable(&self, path: &str) -> bool {
        let mut at = path.trim_start_matches('/').to_string();
        for _ in 0..8 {
            match self.entries.get(&at).map(|e| (&e.kind, e.mode)) {
                Some((Kind::File { .. }, mode)) => return mode & 0o111 != 0,
                Some((Kind::Symlink(target), _)) => {
                    at = if let Some(absolute) = target.strip_prefix('/') {
                        absolute.to_string()
                    } else {
                        let parent = at.rsplit_once('/').map_or("", |(p, _)| p);
                        match normalize(&format!("/{parent}/{target}")) {
                            Some(p) => p,
                            None => return false,
                        }
                    };
                }
                _ => return false,
            }
        }
        false
    }
}

/// An absolute image path as a key: no leading `/`, no empty, `.` or `..`
/// parts; `None` when it is not absolute or not plain.
pub(crate) fn normalize(destination: &str) -> Option<String> {
    let rest = destination.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        return None;
    }
    Some(parts.join("/"))
}

/// What mote puts at `path`, if it is one of mote's own.
pub(crate) fn reserved(path: &str) -> Option<&'static str> {
    let under = |dir: &str| path == dir || path.starts_with(&format!("{dir}/"));
    match path {
        "init" => Some("/init is mote-init, the node's PID 1"),
        "etc/passwd" | "etc/group" => {
            Some("mote writes the node's users and groups (root, www-data and nobody)")
        }
        "etc/hostname" => Some("mote writes it from [system] hostname"),
        "dev/console" => Some("/dev/console is the console device node the kernel gives PID 1"),
        _ if under("etc/mote") => {
            Some("/etc/mote holds the node settings and module list mote writes")
        }
        _ if under("lib/modules") => {
            Some("/lib/modules holds the kernel's modules, chosen with [kernel] drivers")
        }
        _ => None,
    }
}

/// Ownership and mode applied to what one `[[files]]` entry copies.
pub(crate) struct Copy<'a> {
    pub uid: u32,
    pub gid: u32,
    /// Mode for regular files; their source's mode when `None`.
    pub mode: Option<u32>,
    /// The entry's destination as written, for messages.
    pub destination: &'a str,
    pub origin: String,
}

impl Copy<'_> {
    /// Adds `source` (a file or a directory, recursively) at `path`.
    pub fn add(
        &self,
        layout: &mut Layout,
        source: &Path,
        path: String,
    ) -> Result<(), ImageBuildError> {
        let metadata = std::fs::metadata(source).map_err(|e| self.source_error(source, e))?;
        if metadata.is_dir() {
            self.add_dir(layout, source, path, metadata.permissions().mode())
        } else if metadata.is_file() {
            self.add_file(
                layout,
                source,
                path,
                metadata.len(),
                metadata.permissions().mode(),
            )
        } else {
            Err(ImageBuildError::UnsupportedFileType {
                path: source.to_path_buf(),
            })
        }
    }

    fn add_file(
        &self,
        layout: &mut Layout,
        source: &Path,
        path: String,
        size: u64,
        mode: u32,
    ) -> Result<(), ImageBuildError> {
        self.check_reserved(&path)?;
        let file = File::open(source).map_err(|e| self.source_error(source, e))?;
        check_static(source, &file)?;
        let entry = Entry {
            kind: Kind::File {
                content: Content::Host(source.to_path_buf()),
                size,
            },
            uid: self.uid,
            gid: self.gid,
            mode: self.mode.unwrap_or(mode & 0o7777),
            origin: self.origin.clone(),
        };
        layout.insert(path, entry)
    }

    /// A directory and what it holds; symbolic links inside are kept as links.
    fn add_dir(
        &self,
        layout: &mut Layout,
        source: &Path,
        path: String,
        mode: u32,
    ) -> Result<(), ImageBuildError> {
        self.check_reserved(&path)?;
        let entry = Entry {
            kind: Kind::Dir,
            uid: self.uid,
            gid: self.gid,
            mode: mode & 0o7777,
            origin: self.origin.clone(),
        };
        layout.insert(path.clone(), entry)?;
        let listing = std::fs::read_dir(source).map_err(|e| self.source_error(source, e))?;
        let mut children = listing
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.source_error(source, e))?;
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let child_source = child.path();
            let name = child.file_name();
            let name = name.to_str().ok_or_else(|| ImageBuildError::NonUtf8Name {
                path: child_source.clone(),
            })?;
            let child_path = format!("{path}/{name}");
            let metadata = std::fs::symlink_metadata(&child_source)
                .map_err(|e| self.source_error(&child_source, e))?;
            let file_type = metadata.file_type();
            if file_type.is_dir() {
                self.add_dir(
                    layout,
                    &child_source,
                    child_path,
                    metadata.permissions().mode(),
                )?;
            } else if file_type.is_file() {
                self.add_file(
                    layout,
                    &child_source,
                    child_path,
                    metadata.len(),
                    metadata.permissions().mode(),
                )?;
            } else if file_type.is_symlink() {
                self.check_reserved(&child_path)?;
                let target = std::fs::read_link(&child_source)
                    .map_err(io_error("reading link", &child_source))?;
                let target = target
                    .to_str()
                    .ok_or_else(|| ImageBuildError::NonUtf8Name {
                        path: child_source.clone(),
                    })?
                    .to_string();
                let entry = Entry {
                    kind: Kind::Symlink(target),
                    uid: self.uid,
                    gid: self.gid,
                    mode: 0o777,
                    origin: self.origin.clone(),
                };
                layout.insert(child_path, entry)?;
            } else {
                return Err(ImageBuildError::UnsupportedFileType { path: child_source });
            }
        }
        Ok(())
    }

    fn check_reserved(&self, path: &str) -> Result<(), ImageBuildError> {
        match reserved(path) {
            Some(reason) => Err(ImageBuildError::ReservedDestination {
                destination: format!("/{path}"),
                reason,
            }),
            None => Ok(()),
        }
    }

    fn source_error(&self, path: &Path, source: std::io::Error) -> ImageBuildError {
        ImageBuildError::Source {
            destination: self.destination.to_string(),
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_destinations() {
        assert_eq!(normalize("/usr//bin/app/").as_deref(), Some("usr/bin/app"));
        for bad in ["usr/bin", "/", "", "/a/../b", "/./a"] {
            assert_eq!(normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn knows_what_is_reserved() {
        for path in [
            "init",
            "etc/mote",
            "etc/mote/settings.json",
            "etc/passwd",
            "lib/modules/6.1/x.ko",
            "dev/console",
        ] {
            assert!(reserved(path).is_some(), "{path}");
        }
        for path in ["etc/motel", "initrd", "usr/bin/init", "etc", "lib"] {
            assert!(reserved(path).is_none(), "{path}");
        }
    }

    #[test]
    fn parents_are_added_once_and_sorted_first() {
        let mut outer = Layout::default();
        outer
            .insert("lib".into(), Entry::dir(0o755, "mote"))
            .unwrap();
        let mut layout = Layout::default();
        layout
            .insert(
                "lib/modules/6.1/kernel/a.ko".into(),
                Entry::bytes(vec![1], 0o644, "m"),
            )
            .unwrap();
        layout
            .insert(
                "lib/modules/6.1/kernel/b.ko".into(),
                Entry::bytes(vec![2], 0o644, "m"),
            )
            .unwrap();
        layout.add_parents(Some(&outer));
        let paths: Vec<&str> = layout.entries.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "lib/modules",
                "lib/modules/6.1",
                "lib/modules/6.1/kernel",
                "lib/modules/6.1/kernel/a.ko",
                "lib/modules/6.1/kernel/b.ko"
            ]
        );
    }

    #[test]
    fn collisions_name_the_first_owner() {
        let mut layout = Layout::default();
        layout
            .insert("usr".into(), Entry::dir(0o755, "mote"))
            .unwrap();
        layout
            .insert("usr".into(), Entry::dir(0o700, "other"))
            .unwrap();
        assert_eq!(layout.entries["usr"].mode, 0o755);
        layout
            .insert("usr/app".into(), Entry::bytes(vec![], 0o755, "[[files]] a"))
            .unwrap();
        let err = layout
            .insert("usr/app".into(), Entry::bytes(vec![], 0o755, "b"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "[[files]] /usr/app: already in the image from [[files]] a"
        );
    }

    #[test]
    fn executables_are_found_through_links() {
        let mut layout = Layout::default();
        layout
            .insert("usr/bin/app".into(), Entry::bytes(vec![], 0o755, "x"))
            .unwrap();
        layout
            .insert("usr/bin/data".into(), Entry::bytes(vec![], 0o644, "x"))
            .unwrap();
        let link = |target: &str| Entry {
            kind: Kind::Symlink(target.into()),
            ..Entry::dir(0o777, "x")
        };
        layout.insert("bin".into(), link("usr/bin")).unwrap();
        layout.insert("usr/bin/rel".into(), link("app")).unwrap();
        layout
            .insert("usr/bin/abs".into(), link("/usr/bin/app"))
            .unwrap();
        layout.insert("usr/bin/loop".into(), link("loop")).unwrap();
        assert!(layout.is_executable("/usr/bin/app"));
        assert!(layout.is_executable("/usr/bin/rel"));
        assert!(layout.is_executable("/usr/bin/abs"));
        assert!(!layout.is_executable("/usr/bin/data"));
        assert!(!layout.is_executable("/usr/bin/loop"));
        assert!(!layout.is_executable("/usr/bin/none"));
    }
}

//! The package archive: `.mpkg` files, built reproducibly and opened with
//! suspicion.
//!
//! # Layout
//! A zstd-compressed tar (GNU headers, so long names work):
//!
//! 1. `package.toml`, byte for byte as written, always the first entry;
//! 2. `files/PATH` for each `[[files]]` destination `/PATH`, sorted by path:
//!    a regular file with the declared mode and owner, or a symbolic link
//!    whose target stays inside `files/`.
//!
//! No directories, no hard links, no devices: an installer makes parents
//! itself. Every time is the build's `mtime` (0 unless the caller passes
//! `SOURCE_DATE_EPOCH`), owners are the declared `uid:gid` with no names,
//! and compression is single-threaded at a fixed level, so the same package
//! directory always gives the same bytes and so the same signature digest.
//!
//! # Why tar and zstd
//! tar is the container every tool reads (`tar --zstd -tvf hello.mpkg`
//! lists a package on any Linux host), the `tar` crate writes it byte-stable
//! and reads GNU and PAX names, and zstd is already the workspace's
//! compressor for initramfs images. cpio (the image's format) has no
//! well-kept reading crate; zip keeps names twice (local headers and the
//! central directory), the classic source of parser disagreements.
//!
//! # Opening
//! [`open`] holds the whole package in memory within fixed limits
//! ([`MAX_ARCHIVE_BYTES`], [`MAX_UNPACKED_BYTES`], [`MAX_ENTRIES`]) and refuses
//! absolute paths, `.`/`..` parts, entries outside `files/`, duplicates,
//! links that escape, other entry types, files `package.toml` does not
//! declare (or declares with another mode or owner), declared files that are
//! missing, and dynamically linked executables.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::elf;
use crate::manifest::{archive_path, ManifestError, PackageManifest, MANIFEST_FILE};

/// Largest package archive [`open`] reads.
pub const MAX_ARCHIVE_BYTES: usize = 256 << 20;
/// Largest total of a package's unpacked tar stream.
pub const MAX_UNPACKED_BYTES: u64 = 1 << 30;
/// Most entries in one package.
pub const MAX_ENTRIES: usize = 4096;
/// Largest `package.toml`.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 10;

/// zstd level. Measured on the 1.4 MB static mote-hello: level 6 packs it to
/// 640 KB, 9 to 634 KB in 1.7 times as long, 19 to 569 KB in 17 times as
/// long. Build and sign together should stay under 100 ms (issue 11).
const ZSTD_LEVEL: i32 = 6;

/// Options of [`build`].
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Where `bin:NAME` sources are found (the workspace's static release
    /// binaries); a `bin:` source without it is an error.
    pub bin_dir: Option<PathBuf>,
    /// Modification time of every entry, seconds since the epoch.
    pub mtime: u64,
}

/// An opened, checked package.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    /// Its `package.toml`, parsed.
    pub manifest: PackageManifest,
    /// Its files, in archive order.
    pub files: Vec<PackageFile>,
    /// SHA-256 of the archive, hex.
    pub sha256: String,
}

/// A file a package installs.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageFile {
    /// Absolute path on the node.
    pub destination: String,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// What it holds.
    pub content: Content,
}

/// A file's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// A regular file's bytes.
    File(Vec<u8>),
    /// A symbolic link's relative target.
    Symlink(String),
}

/// What can go wrong building a package.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `package.toml` is wrong.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A `bin:` source with no bin dir given.
    #[error("files {destination}: source bin:{name} needs the directory of mote's static binaries; pass --bin-dir DIR (or MOTE_BIN_DIR), after `cargo build --release`")]
    NoBinDir {
        /// The destination of the entry.
        destination: String,
        /// The binary's name.
        name: String,
    },
    /// A source is not a regular file or a symbolic link.
    #[error("files {destination}: source {} is not a regular file or a symbolic link; list each file of a directory on its own", path.display())]
    UnsupportedSource {
        /// The destination of the entry.
        destination: String,
        /// The source, resolved.
        path: PathBuf,
    },
    /// A dynamically linked executable.
    #[error(
        "{}: dynamically linked (it asks for {interpreter}); mote nodes have no shared libraries: \
         link it statically (RUSTFLAGS='-C target-feature=+crt-static')",
        path.display()
    )]
    DynamicElf {
        /// The source file.
        path: PathBuf,
        /// Its PT_INTERP.
        interpreter: String,
    },
    /// A file that starts like ELF but does not parse.
    #[error("{}: malformed ELF file: {source}", path.display())]
    BadElf {
        /// The source file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: elf::MalformedElf,
    },
    /// A symbolic link whose target leaves the package.
    #[error("files {destination}: source {} is a link to {target:?}, outside the package; a package's links must be relative and stay among its files", path.display())]
    EscapingLink {
        /// The destination of the entry.
        destination: String,
        /// The source link.
        path: PathBuf,
        /// Its target.
        target: String,
    },
    /// A file or the whole package is larger than [`open`] accepts.
    #[error("{}: {size} bytes; a package holds at most {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The tar or zstd writer failed (in memory: should not happen).
    #[error("writing the archive")]
    Write(#[source] std::io::Error),
}

/// What is wrong with a package archive.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Over [`MAX_ARCHIVE_BYTES`] or [`MAX_UNPACKED_BYTES`] or [`MAX_ENTRIES`].
    #[error("the package is too large: {what} over the limit of {limit}")]
    TooLarge {
        /// Which limit.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// Not zstd, or not tar inside.
    #[error("not a mote package (a zstd-compressed tar made by `mote package build`)")]
    NotAnArchive(#[source] std::io::Error),
    /// The first entry is not `package.toml`.
    #[error("the package has no package.toml as its first entry (found {found:?}); build it with `mote package build`")]
    NoManifest {
        /// The first entry's path, if any.
        found: Option<String>,
    },
    /// `package.toml` is wrong.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// An entry path that is absolute, has `.`/`..` parts, is not UTF-8 or
    /// lies outside `files/`.
    #[error("entry {path:?}: unsafe path; entries are package.toml and files/… with plain relative names")]
    UnsafePath {
        /// The path as stored (lossy UTF-8).
        path: String,
    },
    /// A link whose target is absolute or leaves `files/`.
    #[error("entry {path:?}: link to {target:?} leaves the package")]
    EscapingLink {
        /// The link's path.
        path: String,
        /// Its target.
        target: String,
    },
    /// A directory, hard link, device, FIFO…
    #[error(
        "entry {path:?}: {kind} entries are not allowed; only regular files and relative links"
    )]
    UnsupportedEntry {
        /// The entry's path.
        path: String,
        /// Its tar type.
        kind: String,
    },
    /// The same path twice.
    #[error("entry {path:?} appears twice")]
    Duplicate {
        /// The path.
        path: String,
    },
    /// A file `package.toml` does not list.
    #[error("entry {path:?} is not declared in package.toml [[files]]")]
    Undeclared {
        /// The path.
        path: String,
    },
    /// A declared file that is not in the archive.
    #[error("{destination} is declared in package.toml [[files]] but missing from the archive")]
    Missing {
        /// The node path.
        destination: String,
    },
    /// An entry whose mode or owner differs from its declaration.
    #[error("entry {path:?}: {what} {found} differs from package.toml's {declared}")]
    Mismatch {
        /// The path.
        path: String,
        /// `mode` or `owner`.
        what: &'static str,
        /// In the archive.
        found: String,
        /// In package.toml.
        declared: String,
    },
    /// A dynamically linked executable, or ELF that does not parse.
    #[error("entry {path:?}: {problem}; mote nodes run static executables only")]
    NotStatic {
        /// The path.
        path: String,
        /// What was found.
        problem: String,
    },
}

/// Builds the package in `dir` (its `package.toml` and the files it names)
/// into archive bytes. The same directory and options give the same bytes.
pub fn build(dir: &Path, options: &BuildOptions) -> Result<Vec<u8>, BuildError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = read_limited(&manifest_path, MAX_MANIFEST_BYTES)?;
    let text_str = String::from_utf8(text.clone()).map_err(|_| {
        BuildError::Manifest(ManifestError::Schema {
            path: manifest_path.clone(),
            message: "not UTF-8 text".into(),
        })
    })?;
    let manifest = PackageManifest::parse(&text_str, &manifest_path)?;

    let mut entries: BTreeMap<String, (PackageFile, PathBuf)> = BTreeMap::new();
    let mut total = text.len() as u64;
    for file in &manifest.files {
        let destination = file.destination.clone();
        // Checked by validate; kept as errors rather than panics.
        let path_in_archive = archive_path(&destination).unwrap_or_default();
        let (uid, gid) = mote_config::parse_owner(&file.owner).unwrap_or((0, 0));
        let mode = file
            .mode
            .as_deref()
            .and_then(|m| mote_config::parse_mode(m).ok())
            .unwrap_or(0o644);
        let source = match file.source.strip_prefix("bin:") {
            Some(name) => match &options.bin_dir {
                Some(bin_dir) => bin_dir.join(name),
                None => {
                    return Err(BuildError::NoBinDir {
                        destination,
                        name: name.into(),
                    })
                }
            },
            None => dir.join(&file.source),
        };
        let meta = fs::symlink_metadata(&source).map_err(|e| BuildError::Read {
            path: source.clone(),
            source: e,
        })?;
        let content = if meta.file_type().is_symlink() {
            let target = fs::read_link(&source).map_err(|e| BuildError::Read {
                path: source.clone(),
                source: e,
            })?;
            let target = target.to_string_lossy().into_owned();
            if !link_stays_inside(&path_in_archive, &target) {
                return Err(BuildError::EscapingLink {
                    destination,
                    path: source,
                    target,
                });
            }
            Content::Symlink(target)
        } else if meta.is_file() {
            let bytes = read_limited(&source, MAX_UNPACKED_BYTES)?;
            match elf::interpreter(&bytes[..]) {
                Ok(None) => {}
                Ok(Some(interpreter)) => {
                    return Err(BuildError::DynamicElf {
                        path: source,
                        interpreter,
                    })
                }
                Err(e) => {
                    return Err(BuildError::BadElf {
                        path: source,
                        source: e,
                    })
                }
            }
            Content::File(bytes)
        } else {
            return Err(BuildError::UnsupportedSource {
                destination,
                path: source,
            });
        };
        if let Content::File(bytes) = &content {
            total += bytes.len() as u64 + 1024;
        }
        if total > MAX_UNPACKED_BYTES {
            return Err(BuildError::TooLarge {
                path: dir.to_path_buf(),
                size: total,
                limit: MAX_UNPACKED_BYTES,
            });
        }
        let entry = PackageFile {
            destination,
            mode,
            uid,
            gid,
            content,
        };
        entries.insert(path_in_archive, (entry, source));
    }

    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    let header = |kind: tar::EntryType, size: u64, mode: u32, uid: u32, gid: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        h.set_mtime(options.mtime);
        h
    };
    let mut h = header(tar::EntryType::Regular, text.len() as u64, 0o644, 0, 0);
    tar.append_data(&mut h, MANIFEST_FILE, &text[..])
        .map_err(BuildError::Write)?;
    for (path, (file, _)) in &entries {
        match &file.content {
            Content::File(bytes) => {
                let mut h = header(
                    tar::EntryType::Regular,
                    bytes.len() as u64,
                    file.mode,
                    file.uid,
                    file.gid,
                );
                tar.append_data(&mut h, path, &bytes[..])
                    .map_err(BuildError::Write)?;
            }
            Content::Symlink(target) => {
                let mut h = header(tar::EntryType::Symlink, 0, 0o777, file.uid, file.gid);
                tar.append_link(&mut h, path, target)
                    .map_err(BuildError::Write)?;
            }
        }
    }
    let tar = tar.into_inner().map_err(BuildError::Write)?;
    zstd::stream::encode_all(&tar[..], ZSTD_LEVEL).map_err(BuildError::Write)
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, BuildError> {
    let read_error = |source| BuildError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(BuildError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Whether a link at archive path `link` (`files/usr/bin/x`) pointing to
/// `target` resolves, lexically, to a path still under `files/`.
fn link_stays_inside(link: &str, target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return false;
    }
    // The link's directory, below `files/`.
    let mut parts: Vec<&str> = link.split('/').skip(1).collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return false;
                }
            }
            name => parts.push(name),
        }
    }
    !parts.is_empty()
}

/// Reads and checks package archive bytes; see the module docs for what is
/// refused.
pub fn open(bytes: &[u8]) -> Result<Package, OpenError> {
    if bytes.len() > MAX_ARCHIVE_BYTES {
        return Err(OpenError::TooLarge {
            what: "the archive",
            limit: MAX_ARCHIVE_BYTES as u64,
        });
    }
    let decoder = zstd::stream::Decoder::new(bytes).map_err(OpenError::NotAnArchive)?;
    let mut tar_bytes = Vec::new();
    decoder
        .take(MAX_UNPACKED_BYTES + 1)
        .read_to_end(&mut tar_bytes)
        .map_err(OpenError::NotAnArchive)?;
    if tar_bytes.len() as u64 > MAX_UNPACKED_BYTES {
        return Err(OpenError::TooLarge {
            what: "the unpacked archive",
            limit: MAX_UNPACKED_BYTES,
        });
    }

    let mut archive = tar::Archive::new(&tar_bytes[..]);
    let mut manifest: Option<PackageManifest> = None;
    let mut found: BTreeMap<String, PackageFile> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let entries = archive.entries().map_err(OpenError::NotAnArchive)?;
    for (index, entry) in entries.enumerate() {
        if index >= MAX_ENTRIES {
            return Err(OpenError::TooLarge {
                what: "the number of entries",
                limit: MAX_ENTRIES as u64,
            });
        }
        let mut entry = entry.map_err(OpenError::NotAnArchive)?;
        let raw = entry.path_bytes();
        let path = std::str::from_utf8(&raw)
            .map_err(|_| OpenError::UnsafePath {
                path: String::from_utf8_lossy(&raw).into_owned(),
            })?
            .to_string();
        let header = entry.header();
        let kind = header.entry_type();
        if index == 0 {
            if path != MANIFEST_FILE || !kind.is_file() {
                return Err(OpenError::NoManifest { found: Some(path) });
            }
            if entry.size() > MAX_MANIFEST_BYTES {
                return Err(OpenError::TooLarge {
                    what: "package.toml",
                    limit: MAX_MANIFEST_BYTES,
                });
            }
            let mut text = String::new();
            (&mut entry)
                .take(MAX_MANIFEST_BYTES)
                .read_to_string(&mut text)
                .map_err(OpenError::NotAnArchive)?;
            let origin = Path::new("package.toml (in the archive)");
            manifest = Some(PackageManifest::parse(&text, origin)?);
            continue;
        }
        if !is_plain_files_path(&path) {
            return Err(OpenError::UnsafePath { path });
        }
        let mode = header.mode().map_err(OpenError::NotAnArchive)? & 0o7777;
        let uid = header.uid().map_err(OpenError::NotAnArchive)?;
        let gid = header.gid().map_err(OpenError::NotAnArchive)?;
        let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
            return Err(OpenError::UnsafePath { path });
        };
        let content = if kind.is_file() {
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(OpenError::NotAnArchive)?;
            match elf::interpreter(&data[..]) {
                Ok(None) => {}
                Ok(Some(interpreter)) => {
                    return Err(OpenError::NotStatic {
                        path,
                        problem: format!("dynamically linked (it asks for {interpreter})"),
                    })
                }
                Err(e) => {
                    return Err(OpenError::NotStatic {
                        path,
                        problem: format!("malformed ELF file: {e}"),
                    })
                }
            }
            Content::File(data)
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|t| String::from_utf8_lossy(&t).into_owned())
                .unwrap_or_default();
            if !link_stays_inside(&path, &target) {
                return Err(OpenError::EscapingLink { path, target });
            }
            Content::Symlink(target)
        } else {
            return Err(OpenError::UnsupportedEntry {
                path,
                kind: format!("{kind:?}"),
            });
        };
        let file = PackageFile {
            destination: format!("/{}", path.trim_start_matches("files/")),
            mode,
            uid,
            gid,
            content,
        };
        if found.insert(path.clone(), file).is_some() {
            return Err(OpenError::Duplicate { path });
        }
        order.push(path);
    }
    let manifest = manifest.ok_or(OpenError::NoManifest { found: None })?;

    for declared in &manifest.files {
        let path = archive_path(&declared.destination).unwrap_or_default();
        let Some(file) = found.get(&path) else {
            return Err(OpenError::Missing {
                destination: declared.destination.clone(),
            });
        };
        let owner = mote_config::parse_owner(&declared.owner).unwrap_or((0, 0));
        if (file.uid, file.gid) != owner {
            return Err(OpenError::Mismatch {
                path,
                what: "owner",
                found: format!("{}:{}", file.uid, file.gid),
                declared: format!("{}:{}", owner.0, owner.1),
            });
        }
        let mode = declared
            .mode
            .as_deref()
            .and_then(|m| mote_config::parse_mode(m).ok())
            .unwrap_or(0o644);
        if matches!(file.content, Content::File(_)) && file.mode != mode {
            return Err(OpenError::Mismatch {
                path,
                what: "mode",
                found: format!("{:04o}", file.mode),
                declared: format!("{mode:04o}"),
            });
        }
    }
    if found.len() != manifest.files.len() {
        let declared: Vec<String> = manifest
            .files
            .iter()
            .filter_map(|f| archive_path(&f.destination))
            .collect();
        if let Some(path) = order.iter().find(|p| !declared.contains(p)) {
            return Err(OpenError::Undeclared { path: path.clone() });
        }
    }
    let files = order.iter().filter_map(|path| found.remove(path)).collect();
    Ok(Package {
        manifest,
        files,
        sha256: hex::encode(Sha256::digest(bytes)),
    })
}

/// `files/a/b`: relative, under `files/`, no empty, `.` or `..` parts.
fn is_plain_files_path(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("files/") else {
        return false;
    };
    !rest.is_empty()
        && rest
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains('\\'))
}

#[cfg(test)]
mod tests;

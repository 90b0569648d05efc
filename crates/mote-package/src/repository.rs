//! Package repositories: a directory of package files with a signed index.
//!
//! ```text
//! repo/index.json            {"packages":[{"name","version","file","sha256",…}]}
//! repo/index.json.minisig    the index signed by the repository's key
//! repo/hello-0.1.0.mpkg      each package (and its own .minisig, for
//! repo/hello-0.1.0.mpkg.minisig   installing it online)
//! ```
//!
//! The index's signature covers every package's SHA-256, so a package
//! taken through a trusted index is authenticated by its digest; a file
//! that does not match it is refused.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::{open, verify, PublicKey, VerifyError, EXTENSION, SIGNATURE_EXTENSION};

/// The index file's name in a repository.
pub const INDEX_FILE: &str = "index.json";

/// A repository's index.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// Every package, sorted by name then version.
    pub packages: Vec<Entry>,
}

/// One package of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Package name.
    pub name: String,
    /// Its version.
    pub version: semver::Version,
    /// The archive, relative to the repository.
    pub file: String,
    /// SHA-256 of the archive, hex.
    pub sha256: String,
    /// What it is.
    pub description: String,
    /// Name → version requirement.
    #[serde(default)]
    pub dependencies: std::collections::BTreeMap<String, semver::VersionReq>,
}

/// Why a repository cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The index is not signed by a trusted key, or was changed.
    #[error("{path}: {source}")]
    Untrusted {
        /// The index.
        path: PathBuf,
        /// Which check failed.
        source: VerifyError,
    },
    /// The index does not parse, or a package in the directory does not
    /// open.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A package file does not match the digest its index gives.
    #[error("{path}: its SHA-256 is {found}, but the signed index says {expected}: the file was changed or replaced; get it again from the repository")]
    Digest {
        /// The file.
        path: PathBuf,
        /// What the index says.
        expected: String,
        /// What the file has.
        found: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RepositoryError + '_ {
    move |source| RepositoryError::Io {
        path: path.to_owned(),
        source,
    }
}

/// SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

impl Index {
    /// The index of every `*.mpkg` in `dir`, each opened (a file that does
    /// not open is an error naming it); sorted, so the same directory gives
    /// the same index.
    pub fn of_directory(dir: &Path) -> Result<Self, RepositoryError> {
        let mut packages = Vec::new();
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == EXTENSION))
            .collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let package = open(&bytes).map_err(|e| RepositoryError::Invalid {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let m = package.manifest;
            packages.push(Entry {
                file: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sha256: package.sha256,
                name: m.name,
                version: m.version,
                description: m.description,
                dependencies: m.dependencies,
            });
        }
        packages.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        Ok(Self { packages })
    }

    /// Reads `dir/index.json` and checks its signature against `trusted`.
    pub fn read_trusted(dir: &Path, trusted: &[PublicKey]) -> Result<Self, RepositoryError> {
        let path = dir.join(INDEX_FILE);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let sig_path = signature_path(&path);
        let signature = std::fs::read_to_string(&sig_path).ok();
        verify(&bytes, signature.as_deref(), trusted).map_err(|source| {
            RepositoryError::Untrusted {
                path: path.clone(),
                source,
            }
        })?;
        serde_json::from_slice(&bytes).map_err(|e| RepositoryError::Invalid {
            path,
            message: format!("not a repository index: {e}"),
        })
    }

    /// The highest version of `name` that `requirement` accepts.
    pub fn best(&self, name: &str, requirement: &semver::VersionReq) -> Option<&Entry> {
        self.packages
            .iter()
            .filter(|e| e.name == name && requirement.matches(&e.version))
            .max_by(|a, b| a.version.cmp(&b.version))
    }

    /// The highest version of `name`.
    pub fn latest(&self, name: &str) -> Option<&Entry> {
        self.best(name, &semver::VersionReq::STAR)
    }

    /// The JSON text of the index, as written to `index.json`.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

impl Entry {
    /// Reads the entry's file from the repository `dir` and checks it
    /// against the index's digest.
    pub fn read(&self, dir: &Path) -> Result<Vec<u8>, RepositoryError> {
        let path = dir.join(&self.file);
        if Path::new(&self.file).components().count() != 1 {
            return Err(RepositoryError::Invalid {
                path,
                message: "an index file name must be a plain file in the repository".into(),
            });
        }
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let found = sha256_hex(&bytes);
        if found != self.sha256 {
            return Err(RepositoryError::Digest {
                path,
                expected: self.sha256.clone(),
                found,
            });
        }
        Ok(bytes)
    }
}

/// `FILE.minisig`.
pub fn signature_path(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.{SIGNATURE_EXTENSION}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(dir: &Path, version: &str) -> Vec<u8> {
        let src = tempfile::tempdir().unwrap();
        std::fs::write(
            src.path().join("package.toml"),
            format!("name = \"app\"\nversion = \"{version}\"\ndescription = \"x\"\n"),
        )
        .unwrap();
        let bytes = crate::build(src.path(), &Default::default()).unwrap();
        std::fs::write(dir.join(format!("app-{version}.mpkg")), &bytes).unwrap();
        bytes
    }

    #[test]
    fn a_signed_index_finds_the_best_version_and_checks_digests() {
        let repo = tempfile::tempdir().unwrap();
        package(repo.path(), "1.0.0");
        package(repo.path(), "1.2.0");
        package(repo.path(), "2.0.0");
        let index = Index::of_directory(repo.path()).unwrap();
        assert_eq!(index.packages.len(), 3);
        let keys = crate::generate_key().unwrap();
        let secret = crate::SecretKey::parse(&keys.secret, "k", None).unwrap();
        let public = PublicKey::parse(&keys.public, "k.pub").unwrap();
        let text = index.to_json();
        std::fs::write(repo.path().join(INDEX_FILE), &text).unwrap();

        // Unsigned: refused.
        let e = Index::read_trusted(repo.path(), std::slice::from_ref(&public)).unwrap_err();
        assert!(matches!(
            e,
            RepositoryError::Untrusted {
                source: VerifyError::Unsigned,
                ..
            }
        ));
        let sig = crate::sign(text.as_bytes(), &secret, "index").unwrap();
        std::fs::write(signature_path(&repo.path().join(INDEX_FILE)), sig).unwrap();
        let read = Index::read_trusted(repo.path(), std::slice::from_ref(&public)).unwrap();
        assert_eq!(read, index);
        let best = read.best("app", &"^1".parse().unwrap()).unwrap();
        assert_eq!(best.version.to_string(), "1.2.0");
        assert!(read.best("app", &"^3".parse().unwrap()).is_none());
        assert!(best.read(repo.path()).is_ok());

        // A replaced file: its digest no longer matches.
        std::fs::copy(
            repo.path().join("app-2.0.0.mpkg"),
            repo.path().join("app-1.2.0.mpkg"),
        )
        .unwrap();
        assert!(matches!(
            best.read(repo.path()),
            Err(RepositoryError::Digest { .. })
        ));

        // A changed index: its signature no longer matches.
        std::fs::write(repo.path().join(INDEX_FILE), text.replace("1.2.0", "1.9.0")).unwrap();
        let e = Index::read_trusted(repo.path(), &[public]).unwrap_err();
        assert!(matches!(
            e,
            RepositoryError::Untrusted {
                source: VerifyError::Tampered { .. },
                ..
            }
        ));
    }
}

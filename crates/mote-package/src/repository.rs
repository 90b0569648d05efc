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
//!
//! A repository is a directory or the same files served over HTTP(S)
//! ([`Source`]); HTTPS is checked against the system's trust store
//! (`SSL_CERT_FILE` names another bundle). The transport needs no trust of
//! its own: the index's signature and the digests carry it.

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
    /// An HTTP(S) repository could not be read.
    #[error("{url}: {message}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// Why it failed.
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

/// Where a repository's files are: a directory, or an `http://` or
/// `https://` base URL (feature `http`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local directory.
    Dir(PathBuf),
    /// A base URL, without its trailing `/`.
    Url(String),
}

/// The largest index fetched (a repository of thousands of packages is
/// far below it).
const MAX_INDEX: u64 = 16 << 20;
/// The largest package fetched.
const MAX_PACKAGE: u64 = 1 << 30;

impl Source {
    /// `text` as a manifest or a command line names a repository; a
    /// relative directory is taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Self {
        if text.starts_with("http://") || text.starts_with("https://") {
            Self::Url(text.trim_end_matches('/').to_owned())
        } else {
            Self::Dir(base.join(text))
        }
    }

    /// Where `file` of the repository is, for messages.
    pub fn locate(&self, file: &str) -> PathBuf {
        match self {
            Self::Dir(dir) => dir.join(file),
            Self::Url(url) => PathBuf::from(format!("{url}/{file}")),
        }
    }

    /// The bytes of `file` (at most `limit`); `Ok(None)` when the
    /// repository has no such file.
    fn fetch(&self, file: &str, limit: u64) -> Result<Option<Vec<u8>>, RepositoryError> {
        match self {
            Self::Dir(dir) => {
                let path = dir.join(file);
                match std::fs::read(&path) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(io(&path)(e)),
                }
            }
            Self::Url(url) => http_get(&format!("{url}/{file}"), limit),
        }
    }

    /// The text of `file`'s signature (`FILE.minisig`), if the repository
    /// has one.
    pub fn fetch_signature(&self, file: &str) -> Result<Option<String>, RepositoryError> {
        Ok(self
            .fetch(&format!("{file}.{SIGNATURE_EXTENSION}"), MAX_INDEX)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Like [`Self::fetch`], a missing file an error.
    fn fetch_required(&self, file: &str, limit: u64) -> Result<Vec<u8>, RepositoryError> {
        self.fetch(file, limit)?.ok_or_else(|| RepositoryError::Io {
            path: self.locate(file),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        })
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(dir) => write!(f, "{}", dir.display()),
            Self::Url(url) => f.write_str(url),
        }
    }
}

/// GET `url`: its body, `None` on 404 or 410.
#[cfg(feature = "http")]
fn http_get(url: &str, limit: u64) -> Result<Option<Vec<u8>>, RepositoryError> {
    use std::sync::OnceLock;
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    let agent = AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .timeout_connect(Some(std::time::Duration::from_secs(10)))
            .timeout_global(Some(std::time::Duration::from_secs(300)))
            .http_status_as_error(false)
            .user_agent(concat!("mote/", env!("CARGO_PKG_VERSION")))
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build()
            .into()
    });
    let failed = |message: String| RepositoryError::Fetch {
        url: url.to_owned(),
        message,
    };
    let mut response = agent.get(url).call().map_err(|e| failed(e.to_string()))?;
    match response.status().as_u16() {
        200 => {}
        404 | 410 => return Ok(None),
        code => {
            return Err(failed(format!(
                "the server answered {code} {}",
                response.status().canonical_reason().unwrap_or("")
            )))
        }
    }
    response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map(Some)
        .map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(n) => failed(format!(
                "the file is larger than {n} bytes, the most mote reads"
            )),
            e => failed(e.to_string()),
        })
}

#[cfg(not(feature = "http"))]
fn http_get(url: &str, _limit: u64) -> Result<Option<Vec<u8>>, RepositoryError> {
    Err(RepositoryError::Fetch {
        url: url.to_owned(),
        message: "this program reads repositories from directories only (mote-package built \
                  without its `http` feature)"
            .into(),
    })
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

    /// Reads the repository's `index.json` and checks its signature
    /// against `trusted`.
    pub fn read_trusted(source: &Source, trusted: &[PublicKey]) -> Result<Self, RepositoryError> {
        let (bytes, signature) = Self::fetch(source)?;
        let path = source.locate(INDEX_FILE);
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

    /// Reads the repository's `index.json` without checking a signature
    /// (for a client that hands the package to a node that checks it).
    pub fn read_unverified(source: &Source) -> Result<Self, RepositoryError> {
        let (bytes, _) = Self::fetch(source)?;
        serde_json::from_slice(&bytes).map_err(|e| RepositoryError::Invalid {
            path: source.locate(INDEX_FILE),
            message: format!("not a repository index: {e}"),
        })
    }

    /// The index's bytes and its signature's text, if it has one.
    fn fetch(source: &Source) -> Result<(Vec<u8>, Option<String>), RepositoryError> {
        let bytes = source.fetch_required(INDEX_FILE, MAX_INDEX)?;
        let sig_file = format!("{INDEX_FILE}.{SIGNATURE_EXTENSION}");
        let signature = source
            .fetch(&sig_file, MAX_INDEX)?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        Ok((bytes, signature))
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
    /// Reads the entry's file from the repository and checks it against
    /// the index's digest.
    pub fn read(&self, source: &Source) -> Result<Vec<u8>, RepositoryError> {
        let path = source.locate(&self.file);
        if Path::new(&self.file).components().count() != 1
            || !self
                .file
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'%' && b != b'?')
        {
            return Err(RepositoryError::Invalid {
                path,
                message: "an index file name must be a plain file in the repository".into(),
            });
        }
        let bytes = source.fetch_required(&self.file, MAX_PACKAGE)?;
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
        let e = Index::read_trusted(
            &Source::Dir(repo.path().to_owned()),
            std::slice::from_ref(&public),
        )
        .unwrap_err();
        assert!(matches!(
            e,
            RepositoryError::Untrusted {
                source: VerifyError::Unsigned,
                ..
            }
        ));
        let sig = crate::sign(text.as_bytes(), &secret, "index").unwrap();
        std::fs::write(signature_path(&repo.path().join(INDEX_FILE)), sig).unwrap();
        let read = Index::read_trusted(
            &Source::Dir(repo.path().to_owned()),
            std::slice::from_ref(&public),
        )
        .unwrap();
        assert_eq!(read, index);
        let best = read.best("app", &"^1".parse().unwrap()).unwrap();
        assert_eq!(best.version.to_string(), "1.2.0");
        assert!(read.best("app", &"^3".parse().unwrap()).is_none());
        assert!(best.read(&Source::Dir(repo.path().to_owned())).is_ok());

        // A replaced file: its digest no longer matches.
        std::fs::copy(
            repo.path().join("app-2.0.0.mpkg"),
            repo.path().join("app-1.2.0.mpkg"),
        )
        .unwrap();
        assert!(matches!(
            best.read(&Source::Dir(repo.path().to_owned())),
            Err(RepositoryError::Digest { .. })
        ));

        // A changed index: its signature no longer matches.
        std::fs::write(repo.path().join(INDEX_FILE), text.replace("1.2.0", "1.9.0")).unwrap();
        let e = Index::read_trusted(&Source::Dir(repo.path().to_owned()), &[public]).unwrap_err();
        assert!(matches!(
            e,
            RepositoryError::Untrusted {
                source: VerifyError::Tampered { .. },
                ..
            }
        ));
    }
}

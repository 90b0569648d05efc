//! Offline servicing: the packages a manifest installs, found, checked
//! against the trusted keys, resolved with their dependencies, and laid
//! into the image.
//!
//! Where a package comes from, for each entry of `packages`:
//! - a path (`./app.mpkg`, relative to the manifest): the archive, with
//!   its signature beside it (`./app.mpkg.minisig`), which must be made by
//!   one of `[packages] trusted_keys` unless `allow_unsigned = true`;
//! - a name: one of the roles this mote was built with (`mote-roles`),
//!   taken from the signed repository beside the binaries
//!   ([`crate::roles`], `BIN/roles`), checked against the key it names
//!   (`BIN/roles/mote.pub`, mote's own key, as apt trusts its archive
//!   key) or one of `[packages] trusted_keys`. Without that repository a
//!   role is packed from the bin dir, unsigned, and only
//!   `allow_unsigned = true` lets it in;
//! - a name that is not a role: the first of `[packages] repositories`
//!   (directories or HTTP(S) URLs) whose signed index lists it.
//!
//! What the image gets, per package in dependency order: its files (a
//! `[[files]]` entry of the manifest at the same path wins), its
//! `package.toml` in [`mote_config::paths::IMAGE_PACKAGES`], its users and
//! groups in `/etc/passwd` and `/etc/group`, its kernel modules, its name
//! in the settings' `packages`, and its role's default section when the
//! manifest has none. The trusted keys (and mote's own key, when the bin
//! dir has one) go to [`mote_config::paths::TRUST`] so that the node
//! checks online installs against the same keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mote_config::{Manifest, NodeSettings, Packages, Role};
use mote_package::{Candidate, Content, Installed, Package, PackageManifest, PublicKey, Request};
use serde::{Deserialize, Serialize};

use crate::error::io_error;
use crate::layout::{Entry, Kind, Layout};
use crate::ImageBuildError;

/// A package as the build found and checked it.
#[derive(Debug)]
pub(crate) struct Found {
    pub package: Package,
    /// The archive bytes (for `build.json`'s digest and the state disk).
    pub origin: Origin,
}

/// Where a package came from and why it is trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Origin {
    /// A role of this mote (only its `package.toml` read, for a check).
    Builtin,
    /// A role of this mote from its signed repository beside the
    /// binaries.
    Role {
        /// The package file.
        path: PathBuf,
        /// The signer's key id (mote's own key, or a trusted one).
        key_id: String,
    },
    /// A package file signed by a trusted key.
    Signed {
        /// The file.
        path: PathBuf,
        /// The signer's key id.
        key_id: String,
    },
    /// A package of a repository whose signed index lists it with this
    /// file's digest.
    Repository {
        /// The repository, as `[packages] repositories` names it.
        repository: String,
        /// The file in it.
        file: String,
    },
    /// A package file let in by `allow_unsigned`.
    Unsigned {
        /// The file.
        path: PathBuf,
        /// Why it did not verify.
        reason: String,
    },
}

/// One installed package in `build.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageReport {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// SHA-256 of its archive.
    pub sha256: String,
    /// Where it came from.
    pub origin: Origin,
}

/// How [`find`] treats the roles built with mote.
#[derive(Clone, Copy)]
pub(crate) enum Builtins<'a> {
    /// From the signed repository in the bin dir (or, with
    /// `allow_unsigned`, packed from their package directory and the bin
    /// dir), for an image.
    Pack { bin_dir: &'a Path, mtime: u32 },
    /// Only their `package.toml` is read, for a check.
    ManifestOnly,
}

/// The packages of `manifest`, checked and in install order (dependencies
/// first).
pub(crate) fn find(
    manifest: &Manifest,
    manifest_dir: &Path,
    builtins: Builtins<'_>,
) -> Result<Vec<Found>, ImageBuildError> {
    let packages = &manifest.packages;
    let trusted: Vec<PublicKey> = trusted_keys(packages, manifest_dir)?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut found = Vec::new();
    for entry in &packages.install {
        found.push(if Packages::is_file(entry) {
            from_file(
                &manifest_dir.join(entry),
                entry,
                &trusted,
                packages.allow_unsigned,
            )?
        } else if mote_roles::builtin(entry).is_none() && !packages.repositories.is_empty() {
            from_repositories(entry, &packages.repositories, manifest_dir, &trusted)?
        } else {
            builtin(entry, builtins, &trusted, packages.allow_unsigned)?
        });
    }
    let candidates: Vec<Candidate> = found
        .iter()
        .map(|f| Candidate::from(&f.package.manifest))
        .collect();
    let requests: Vec<Request> = candidates
        .iter()
        .map(|c| Request {
            name: c.name.clone(),
            requirement: semver::VersionReq::STAR,
        })
        .collect();
    for (i, c) in candidates.iter().enumerate() {
        if let Some(j) = candidates[..i].iter().position(|o| o.name == c.name) {
            return Err(ImageBuildError::Package {
                entry: packages.install[i].clone(),
                problem: format!(
                    "is package {} {}, which {:?} already installs; name each package once",
                    c.name, c.version, packages.install[j]
                ),
            });
        }
    }
    let order: Vec<String> = mote_package::resolve(&requests, &candidates)
        .map_err(|e| ImageBuildError::Package {
            entry: "packages".into(),
            problem: e.to_string(),
        })?
        .into_iter()
        .map(|c| c.name.clone())
        .collect();
    let mut by_name: BTreeMap<String, Found> = found
        .into_iter()
        .map(|f| (f.package.manifest.name.clone(), f))
        .collect();
    Ok(order
        .iter()
        .filter_map(|name| by_name.remove(name))
        .collect())
}

/// The public keys `[packages] trusted_keys` names, read and parsed,
/// each with its file's text.
fn trusted_keys(
    packages: &Packages,
    dir: &Path,
) -> Result<Vec<(PublicKey, String)>, ImageBuildError> {
    packages
        .trusted_keys
        .iter()
        .map(|p| {
            let path = dir.join(p);
            let text = std::fs::read_to_string(&path).map_err(io_error("reading", &path))?;
            let key = PublicKey::parse(&text, &p.display().to_string()).map_err(|e| {
                ImageBuildError::Package {
                    entry: format!("trusted_keys {}", p.display()),
                    problem: e.to_string(),
                }
            })?;
            Ok((key, text))
        })
        .collect()
}

/// A package file and its signature.
fn from_file(
    path: &Path,
    entry: &str,
    trusted: &[PublicKey],
    allow_unsigned: bool,
) -> Result<Found, ImageBuildError> {
    let bytes = std::fs::read(path).map_err(io_error("reading the package", path))?;
    let sig_path = PathBuf::from(format!(
        "{}.{}",
        path.display(),
        mote_package::SIGNATURE_EXTENSION
    ));
    let signature = match std::fs::read_to_string(&sig_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_error("reading the signature", &sig_path)(e)),
    };
    let origin = match mote_package::verify(&bytes, signature.as_deref(), trusted) {
        Ok(signer) => Origin::Signed {
            path: path.to_owned(),
            key_id: signer.key_id,
        },
        Err(e) if allow_unsigned => Origin::Unsigned {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        Err(e) => {
            use mote_package::VerifyError as V;
            let problem = match e {
                V::Unsigned => format!(
                    "the package is not signed (no {}); sign it with `mote package sign {entry} \
                     --key KEY` and list KEY.pub in [packages] trusted_keys, or set \
                     allow_unsigned = true for development",
                    sig_path.display()
                ),
                V::Untrusted { key_id, trusted } => format!(
                    "signed by key {key_id}, which [packages] trusted_keys does not list \
                     (trusted: {}); add that key's .pub if you trust its owner",
                    if trusted.is_empty() {
                        "none".into()
                    } else {
                        trusted.join(", ")
                    }
                ),
                V::Tampered { key_id } => format!(
                    "tampered: the file does not match its signature by key {key_id} (it was \
                     changed after signing, or the signature belongs to another file); get the \
                     package again from its publisher"
                ),
                V::Malformed { reason } => {
                    format!(
                        "the signature {} is malformed ({reason}); sign the package again",
                        sig_path.display()
                    )
                }
            };
            return Err(ImageBuildError::Package {
                entry: entry.into(),
                problem,
            });
        }
    };
    let package = mote_package::open(&bytes).map_err(|e| ImageBuildError::Package {
        entry: entry.into(),
        problem: e.to_string(),
    })?;
    Ok(Found { package, origin })
}

/// The highest version of `name` in the first repository (in the order
/// `[packages] repositories` gives) whose index, signed by a trusted key,
/// lists it.
fn from_repositories(
    name: &str,
    repositories: &[String],
    manifest_dir: &Path,
    trusted: &[PublicKey],
) -> Result<Found, ImageBuildError> {
    use mote_package::repository::Index;
    let problem = |problem: String| ImageBuildError::Package {
        entry: name.into(),
        problem,
    };
    let mut looked = Vec::new();
    for repo in repositories {
        let source = mote_package::repository::Source::parse(repo, manifest_dir);
        let index = Index::read_trusted(&source, trusted).map_err(|e| {
            problem(format!(
                "repository {repo}: {e}; its index must be signed by a key in [packages] \
                 trusted_keys (`mote package index DIR --key KEY` writes and signs it)"
            ))
        })?;
        let Some(entry) = index.latest(name) else {
            looked.push(repo.clone());
            continue;
        };
        let bytes = entry
            .read(&source)
            .map_err(|e| problem(format!("repository {repo}: {e}")))?;
        let package = mote_package::open(&bytes)
            .map_err(|e| problem(format!("repository {repo}: {}: {e}", entry.file)))?;
        if package.manifest.name != entry.name || package.manifest.version != entry.version {
            return Err(problem(format!(
                "repository {repo}: {} holds {}, but the index says {} {}",
                entry.file,
                package.manifest.id(),
                entry.name,
                entry.version
            )));
        }
        return Ok(Found {
            package,
            origin: Origin::Repository {
                repository: repo.clone(),
                file: entry.file.clone(),
            },
        });
    }
    let known: Vec<String> = mote_roles::BUILTIN
        .iter()
        .map(|b| format!("{:?}", b.name))
        .collect();
    Err(problem(format!(
        "no such package: not a role built with mote ({}) and not in the repositories {}",
        known.join(", "),
        looked.join(", ")
    )))
}

/// A role of this mote: from the signed repository in the bin dir (or
/// only its manifest read, for a check).
fn builtin(
    name: &str,
    builtins: Builtins<'_>,
    trusted: &[PublicKey],
    allow_unsigned: bool,
) -> Result<Found, ImageBuildError> {
    let problem = |problem: String| ImageBuildError::Package {
        entry: name.into(),
        problem,
    };
    let Some(b) = mote_roles::builtin(name) else {
        let known: Vec<String> = mote_roles::BUILTIN
            .iter()
            .map(|b| format!("{:?}", b.name))
            .collect();
        return Err(problem(format!(
            "no such package: the packages built with mote are {}; a package of your own is \
             named by its file, such as \"./{name}.mpkg\"",
            known.join(", ")
        )));
    };
    let Builtins::Pack { bin_dir, mtime } = builtins else {
        let text = std::str::from_utf8(b.files[0].1).unwrap_or_default();
        let manifest = mote_package::PackageManifest::parse(text, Path::new("package.toml"))
            .map_err(|e| problem(e.to_string()))?;
        let package = Package {
            manifest,
            files: Vec::new(),
            sha256: String::new(),
        };
        return Ok(Found {
            package,
            origin: Origin::Builtin,
        });
    };
    let roles = crate::roles::RolesDir::in_bin_dir(bin_dir);
    if roles.exists() {
        let (package, path, key_id) = roles.take(name, trusted).map_err(problem)?;
        return Ok(Found {
            package,
            origin: Origin::Role { path, key_id },
        });
    }
    if !allow_unsigned {
        return Err(problem(format!(
            "the role has no signed package: {} holds none (the build makes it: `cargo xtask \
             demo` or `cargo xtask test`, or `mote package roles --key KEY --bin-dir {}`); set \
             allow_unsigned = true in [packages] to pack it unsigned for development",
            roles.dir.display(),
            bin_dir.display()
        )));
    }
    let bytes = crate::roles::pack(b, bin_dir, mtime).map_err(problem)?;
    let package = mote_package::open(&bytes).map_err(|e| problem(e.to_string()))?;
    Ok(Found {
        package,
        origin: Origin::Unsigned {
            path: bin_dir.to_owned(),
            reason: format!(
                "packed from the bin dir: {} holds no signed roles",
                roles.dir.display()
            ),
        },
    })
}

/// Lays the packages into `layout` (skipping paths `[[files]]` already
/// fill), records them in `settings` and returns the extra `/etc/passwd`
/// and `/etc/group` lines.
pub(crate) fn install(
    found: &[Found],
    layout: &mut Layout,
    settings: &mut NodeSettings,
    roles: &[&dyn Role],
) -> Result<(String, String), ImageBuildError> {
    let mut passwd = String::new();
    let mut group = String::new();
    for f in found {
        let m = &f.package.manifest;
        let origin = format!("package {}", m.id());
        for file in &f.package.files {
            let Some(path) = crate::layout::normalize(&file.destination) else {
                continue;
            };
            if layout.entries.contains_key(&path) {
                continue;
            }
            let kind = match &file.content {
                Content::File(bytes) => Kind::File {
                    size: bytes.len() as u64,
                    content: crate::layout::Content::Bytes(bytes.clone()),
                },
                Content::Symlink(target) => Kind::Symlink(target.clone()),
            };
            layout.insert(
                path,
                Entry {
                    kind,
                    uid: file.uid,
                    gid: file.gid,
                    mode: file.mode,
                    origin: origin.clone(),
                },
            )?;
        }
        let text = toml::to_string(m).map_err(|e| ImageBuildError::Package {
            entry: m.name.clone(),
            problem: format!("cannot write its package.toml: {e}"),
        })?;
        let record = format!(
            "{}/{}.toml",
            mote_config::paths::IMAGE_PACKAGES.trim_start_matches('/'),
            m.name
        );
        layout.insert(record, Entry::bytes(text.into_bytes(), 0o644, &origin))?;
        for user in &m.users {
            let gid = user.gid.unwrap_or(user.uid);
            passwd.push_str(&format!(
                "{}:x:{}:{gid}:{}:/nonexistent:/nonexistent\n",
                user.name, user.uid, user.name
            ));
        }
        for g in &m.groups {
            group.push_str(&format!("{}:x:{}:\n", g.name, g.gid));
        }
    }
    let manifests: Vec<&PackageManifest> = found.iter().map(|f| &f.package.manifest).collect();
    settle(&manifests, settings, roles)?;
    Ok((passwd, group))
}

/// The settings that installing `packages` (in install order) gives:
/// their names in `packages`, each role's default section where the
/// manifest has none; a service named twice or a section no package reads
/// is an error.
fn settle(
    packages: &[&PackageManifest],
    settings: &mut NodeSettings,
    roles: &[&dyn Role],
) -> Result<(), ImageBuildError> {
    settings.packages.clear();
    for m in packages {
        for name in m.services.keys() {
            if settings.services.contains_key(name) {
                return Err(ImageBuildError::Package {
                    entry: m.name.clone(),
                    problem: format!(
                        "runs a service {name:?}, and [services.{name}] names one too; rename yours"
                    ),
                });
            }
        }
        if let Some(section) = &m.settings {
            if !settings.roles.contains_key(section) {
                if let Some(role) = roles.iter().find(|r| r.name() == section) {
                    settings.roles.insert(section.clone(), role.defaults());
                }
            }
        }
        settings.packages.push(m.name.clone());
    }
    let sections: Vec<&String> = packages
        .iter()
        .filter_map(|m| m.settings.as_ref())
        .collect();
    if let Some(orphan) = settings.roles.keys().find(|k| !sections.contains(k)) {
        return Err(ImageBuildError::Package {
            entry: format!("roles.{orphan}"),
            problem: format!(
                "no installed package reads [roles.{orphan}]; add the package that does to \
                 packages, or remove the section"
            ),
        });
    }
    Ok(())
}

/// What a node built from `manifest` would have installed, and its
/// settings, without building anything: package files are verified and
/// resolved as for an image, roles built with mote are read from their
/// `package.toml`. For `mote check`.
pub fn installed(
    manifest: &Manifest,
    manifest_dir: &Path,
    roles: &[&dyn Role],
) -> Result<(Installed, NodeSettings), ImageBuildError> {
    let found = find(manifest, manifest_dir, Builtins::ManifestOnly)?;
    let manifests: Vec<&PackageManifest> = found.iter().map(|f| &f.package.manifest).collect();
    let mut settings = manifest.settings();
    settle(&manifests, &mut settings, roles)?;
    let installed = Installed {
        packages: found
            .into_iter()
            .map(|f| (f.package.manifest.name.clone(), f.package.manifest))
            .collect(),
    };
    Ok((installed, settings))
}

/// `build.json`'s line for each package.
pub(crate) fn reports(found: &[Found]) -> Vec<PackageReport> {
    found
        .iter()
        .map(|f| PackageReport {
            name: f.package.manifest.name.clone(),
            version: f.package.manifest.version.to_string(),
            sha256: f.package.sha256.clone(),
            origin: f.origin.clone(),
        })
        .collect()
}

/// The trusted keys and the unsigned switch, as files under
/// [`mote_config::paths::TRUST`].
pub(crate) fn trust_files(
    packages: &Packages,
    manifest_dir: &Path,
    bin_dir: &Path,
    layout: &mut Layout,
) -> Result<(), ImageBuildError> {
    let dir = mote_config::paths::TRUST.trim_start_matches('/');
    let mote_key = crate::roles::RolesDir::in_bin_dir(bin_dir)
        .key()
        .ok()
        .map(|(key, text)| (key, text, "mote's own key (the roles' signer)"));
    let listed = trusted_keys(packages, manifest_dir)?
        .into_iter()
        .map(|(key, text)| (key, text, "[packages] trusted_keys"));
    for (key, text, origin) in mote_key.into_iter().chain(listed) {
        let path = format!("{dir}/{}.pub", key.key_id());
        if layout.entries.contains_key(&path) {
            continue;
        }
        layout.insert(path, Entry::bytes(text.into_bytes(), 0o644, origin))?;
    }
    if packages.allow_unsigned {
        layout.insert(
            mote_config::paths::ALLOW_UNSIGNED
                .trim_start_matches('/')
                .into(),
            Entry::bytes(
                b"allow_unsigned = true in the manifest\n".to_vec(),
                0o644,
                "[packages] allow_unsigned",
            ),
        )?;
    }
    Ok(())
}

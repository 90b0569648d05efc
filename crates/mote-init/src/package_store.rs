//! Online servicing: packages installed on a running node.
//!
//! An installed package lives on the state disk as its archive and
//! signature ([`mote_config::paths::STATE_PACKAGES`]`/NAME.mpkg` and
//! `NAME.mpkg.minisig`); its files are unpacked onto `/` (rebuilt from the
//! image at every boot) and its record written beside the image's
//! ([`mote_config::paths::IMAGE_PACKAGES`]), where [`Installed::read`]
//! finds both alike. At boot, before the stored settings are applied, each
//! archive is verified again against the image's trusted keys and
//! unpacked again ([`Store::reinstate`]).
//!
//! A change is two steps, so that moted can make it one settings
//! transaction: [`Store::stage`] verifies, checks and unpacks, keeping the
//! archive as `NAME.mpkg.new`; [`Store::commit`] renames it into place
//! once the settings are stored, and [`Store::abort`] puts the previous
//! state back (the committed archive, or nothing). A power cut between the
//! two leaves a `.new` that the next boot deletes: the node comes back as
//! it was before the change.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mote_api::control::{ErrorKind, PackageInfo, PackageTrust};
use mote_package::{Content, Installed, Package, PackageManifest, PublicKey, VerifyError};

/// The name of [`mote_config::paths::ALLOW_UNSIGNED`] in the trust directory.
const ALLOW_UNSIGNED_FILE: &str = "allow-unsigned";

/// Why a package change was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// How moted should answer.
    pub kind: ErrorKind,
    /// What is wrong and what to do.
    pub message: String,
}

impl Refusal {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    fn io(what: &str, path: &Path, e: std::io::Error) -> Self {
        Self::new(ErrorKind::Failed, format!("{what} {}: {e}", path.display()))
    }
}

/// Where a node keeps, trusts and unpacks packages.
#[derive(Debug, Clone)]
pub struct Store {
    /// The root the files go under (`/` on a node).
    pub root: PathBuf,
    /// The archives (on the state disk).
    pub dir: PathBuf,
    /// Trusted keys (`ID.pub`) and the unsigned switch, from the image.
    pub trust: PathBuf,
    /// Package records, `NAME.toml`.
    pub records: PathBuf,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/"),
            dir: PathBuf::from(mote_config::paths::STATE_PACKAGES),
            trust: PathBuf::from(mote_config::paths::TRUST),
            records: PathBuf::from(mote_config::paths::IMAGE_PACKAGES),
        }
    }
}

/// A package unpacked by [`Store::stage`], not yet committed.
#[derive(Debug, Clone)]
pub struct Staged {
    /// Its manifest.
    pub manifest: PackageManifest,
    /// Who signed it.
    pub trust: PackageTrust,
    /// The manifest it replaced, for an upgrade.
    pub previous: Option<PackageManifest>,
}

impl Store {
    /// The node's paths under `root` (tests; `/` on a node).
    pub fn under(root: &Path) -> Self {
        let at = |p: &str| root.join(p.trim_start_matches('/'));
        Self {
            root: root.to_owned(),
            dir: at(mote_config::paths::STATE_PACKAGES),
            trust: at(mote_config::paths::TRUST),
            records: at(mote_config::paths::IMAGE_PACKAGES),
        }
    }

    fn archive(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.mpkg"))
    }
    fn signature(archive: &Path) -> PathBuf {
        PathBuf::from(format!(
            "{}.{}",
            archive.display(),
            mote_package::SIGNATURE_EXTENSION
        ))
    }
    fn pending(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.mpkg.new"))
    }
    fn under_root(&self, destination: &str) -> PathBuf {
        self.root.join(destination.trim_start_matches('/'))
    }

    /// The trusted keys and whether unsigned packages are let in.
    pub fn trusted(&self) -> (Vec<PublicKey>, bool) {
        let mut keys = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.trust) {
            let mut paths: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "pub"))
                .collect();
            paths.sort();
            for path in paths {
                let name = path.display().to_string();
                if let Some(key) = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|text| PublicKey::parse(&text, &name).ok())
                {
                    keys.push(key);
                }
            }
        }
        let unsigned = self.trust.join(ALLOW_UNSIGNED_FILE).exists();
        (keys, unsigned)
    }

    /// Verifies `bytes` with `signature` against the trusted keys and opens
    /// it; a refusal says which check failed.
    pub fn check(
        &self,
        bytes: &[u8],
        signature: Option<&str>,
    ) -> Result<(Package, PackageTrust), Refusal> {
        let (keys, allow_unsigned) = self.trusted();
        let trust = match mote_package::verify(bytes, signature, &keys) {
            Ok(signer) => PackageTrust::Signed {
                key_id: signer.key_id,
            },
            Err(e) if allow_unsigned => PackageTrust::Unsigned {
                reason: e.to_string(),
            },
            Err(e) => {
                let ids: Vec<String> = keys.iter().map(PublicKey::key_id).collect();
                let message =
                    match e {
                        VerifyError::Untrusted { key_id, .. } => format!(
                        "the package is signed by key {key_id}, which this node does not trust \
                         (trusted: {}); the image's [packages] trusted_keys decide",
                        if ids.is_empty() { "none".into() } else { ids.join(", ") }
                    ),
                        VerifyError::Unsigned => "the package is not signed; sign it with `mote \
                        package sign FILE --key KEY` using a key the image trusts"
                            .into(),
                        other => other.to_string(),
                    };
                return Err(Refusal::new(
                    ErrorKind::Invalid,
                    format!("{message}; nothing was changed"),
                ));
            }
        };
        let package = mote_package::open(bytes).map_err(|e| {
            Refusal::new(
                ErrorKind::Invalid,
                format!("the package does not open: {e}; nothing was changed"),
            )
        })?;
        Ok((package, trust))
    }

    /// A package installed online runs on the kernel as the image left
    /// it: each module it needs must be loaded (`/sys/module/NAME`) or
    /// built in ([`mote_config::paths::MODULES_BUILTIN`]). Images load
    /// every module they carry at boot, so a module missing here is one
    /// only a new image brings.
    fn check_modules(&self, m: &PackageManifest) -> Result<(), Refusal> {
        let builtin = std::fs::read_to_string(
            self.root
                .join(mote_config::paths::MODULES_BUILTIN.trim_start_matches('/')),
        )
        .unwrap_or_default();
        let missing: Vec<&str> = m
            .modules
            .iter()
            .map(String::as_str)
            .filter(|name| {
                let n = name.replace('-', "_");
                !self.root.join("sys/module").join(&n).exists() && !builtin.lines().any(|l| l == n)
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(Refusal::new(
            ErrorKind::Invalid,
            format!(
                "{} needs the kernel module{} {}, which this node's image does not carry; add \
                 {} to [kernel] drivers in its manifest and build a new image (or install the \
                 package offline, in [packages] install, which does that); nothing was changed",
                m.id(),
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                if missing.len() == 1 { "it" } else { "them" },
            ),
        ))
    }

    /// Verifies and unpacks a package (an install, or an upgrade of one
    /// installed online), keeping its archive as pending. `image` names the
    /// packages the image holds, which only a new image changes.
    pub fn stage(
        &self,
        bytes: &[u8],
        signature: Option<&str>,
        installed: &Installed,
        image: &BTreeSet<String>,
    ) -> Result<Staged, Refusal> {
        let (package, trust) = self.check(bytes, signature)?;
        let m = &package.manifest;
        if image.contains(&m.name) {
            return Err(Refusal::new(
                ErrorKind::Conflict,
                format!(
                    "{} is part of the node's image; change it with a new image (mote build), \
                     not online",
                    m.name
                ),
            ));
        }
        let previous = installed.packages.get(&m.name).cloned();
        check_fits(m, installed)?;
        self.check_modules(m)?;
        std::fs::create_dir_all(&self.dir).map_err(|e| Refusal::io("cannot make", &self.dir, e))?;
        let pending = self.pending(&m.name);
        write_synced(&pending, bytes).map_err(|e| Refusal::io("cannot write", &pending, e))?;
        let sig = Self::signature(&pending);
        match signature {
            Some(text) => write_synced(&sig, text.as_bytes())
                .map_err(|e| Refusal::io("cannot write", &sig, e))?,
            None => {
                let _ = std::fs::remove_file(&sig);
            }
        }
        if let Err(e) = self.unpack(&package, previous.as_ref()) {
            let _ = std::fs::remove_file(&pending);
            let _ = std::fs::remove_file(&sig);
            self.restore(&m.name, Some(m));
            return Err(e);
        }
        Ok(Staged {
            manifest: package.manifest,
            trust,
            previous,
        })
    }

    /// Makes a staged package the installed one: its archive replaces the
    /// previous one atomically.
    pub fn commit(&self, name: &str) -> Result<(), Refusal> {
        let pending = self.pending(name);
        let archive = self.archive(name);
        let (sig_pending, sig) = (Self::signature(&pending), Self::signature(&archive));
        if sig_pending.exists() {
            std::fs::rename(&sig_pending, &sig)
                .map_err(|e| Refusal::io("cannot rename", &sig_pending, e))?;
        } else {
            let _ = std::fs::remove_file(&sig);
        }
        std::fs::rename(&pending, &archive)
            .map_err(|e| Refusal::io("cannot rename", &pending, e))?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// Undoes [`Store::stage`]: the previous version's files and record
    /// when one was committed, else none of the package's.
    pub fn abort(&self, name: &str, staged: &PackageManifest) {
        let pending = self.pending(name);
        let _ = std::fs::remove_file(Self::signature(&pending));
        let _ = std::fs::remove_file(&pending);
        self.restore(name, Some(staged));
    }

    /// Removes a package installed online: its files, users, groups,
    /// record and archive.
    pub fn remove(&self, manifest: &PackageManifest) -> Result<(), Refusal> {
        self.remove_files(manifest, None);
        let record = self.records.join(format!("{}.toml", manifest.name));
        let _ = std::fs::remove_file(&record);
        let archive = self.archive(&manifest.name);
        let _ = std::fs::remove_file(Self::signature(&archive));
        match std::fs::remove_file(&archive) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Refusal::io("cannot remove", &archive, e)),
        }
        sync_dir(&self.dir);
        Ok(())
    }

    /// At boot: drops uncommitted changes, then verifies and unpacks every
    /// committed package. Returns what was reinstated and, for each archive
    /// left out (no longer trusted, damaged), why.
    pub fn reinstate(
        &self,
        image: &BTreeSet<String>,
    ) -> (Vec<(PackageManifest, PackageTrust)>, Vec<String>) {
        let mut done = Vec::new();
        let mut problems = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return (done, problems);
        };
        let mut archives = Vec::new();
        for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".new") {
                let _ = std::fs::remove_file(&path);
            } else if name.ends_with(".mpkg") {
                archives.push(path);
            }
        }
        archives.sort();
        for archive in archives {
            let bytes = match std::fs::read(&archive) {
                Ok(b) => b,
                Err(e) => {
                    problems.push(format!("{}: {e}", archive.display()));
                    continue;
                }
            };
            let signature = std::fs::read_to_string(Self::signature(&archive)).ok();
            let (package, trust) = match self.check(&bytes, signature.as_deref()) {
                Ok(found) => found,
                Err(r) => {
                    problems.push(format!("{}: {}", archive.display(), r.message));
                    continue;
                }
            };
            if image.contains(&package.manifest.name) {
                problems.push(format!(
                    "{}: {} is in the image, which wins",
                    archive.display(),
                    package.manifest.name
                ));
                continue;
            }
            match self.unpack(&package, None) {
                Ok(()) => done.push((package.manifest, trust)),
                Err(r) => problems.push(format!("{}: {}", archive.display(), r.message)),
            }
        }
        sync_dir(&self.dir);
        (done, problems)
    }

    /// Writes the package's files (each through a temporary file renamed
    /// into place), users, groups and record; files of `previous` that the
    /// package no longer has are removed.
    fn unpack(&self, package: &Package, previous: Option<&PackageManifest>) -> Result<(), Refusal> {
        for file in &package.files {
            let path = self.under_root(&file.destination);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Refusal::io("cannot make", parent, e))?;
            }
            let tmp = PathBuf::from(format!("{}.mote-new", path.display()));
            let _ = std::fs::remove_file(&tmp);
            let written = match &file.content {
                Content::File(bytes) => std::fs::write(&tmp, bytes).and_then(|()| {
                    std::os::unix::fs::lchown(&tmp, Some(file.uid), Some(file.gid))?;
                    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(file.mode))
                }),
                Content::Symlink(target) => std::os::unix::fs::symlink(target, &tmp),
            };
            written
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| Refusal::io("cannot write", &path, e))?;
        }
        if let Some(previous) = previous {
            self.remove_files(previous, Some(&package.manifest));
        }
        let m = &package.manifest;
        for user in &m.users {
            let gid = user.gid.unwrap_or(user.uid);
            let line = format!(
                "{}:x:{}:{gid}:{}:/nonexistent:/nonexistent",
                user.name, user.uid, user.name
            );
            self.add_line("etc/passwd", &user.name, &line)?;
        }
        for group in &m.groups {
            let line = format!("{}:x:{}:", group.name, group.gid);
            self.add_line("etc/group", &group.name, &line)?;
        }
        let text = toml::to_string(m).map_err(|e| {
            Refusal::new(ErrorKind::Failed, format!("cannot write its record: {e}"))
        })?;
        std::fs::create_dir_all(&self.records)
            .map_err(|e| Refusal::io("cannot make", &self.records, e))?;
        let record = self.records.join(format!("{}.toml", m.name));
        std::fs::write(&record, text).map_err(|e| Refusal::io("cannot write", &record, e))
    }

    /// The committed version of `name`, verified, with who signed it.
    pub fn committed(&self, name: &str) -> Option<(PackageManifest, PackageTrust)> {
        let archive = self.archive(name);
        let bytes = std::fs::read(&archive).ok()?;
        let signature = std::fs::read_to_string(Self::signature(&archive)).ok();
        self.check(&bytes, signature.as_deref())
            .ok()
            .map(|(p, t)| (p.manifest, t))
    }

    /// Puts back the committed version of `name` (its archive), or removes
    /// every trace of `staged` when none was committed.
    fn restore(&self, name: &str, staged: Option<&PackageManifest>) {
        let archive = self.archive(name);
        let committed = std::fs::read(&archive).ok().and_then(|bytes| {
            let signature = std::fs::read_to_string(Self::signature(&archive)).ok();
            self.check(&bytes, signature.as_deref()).ok()
        });
        match (committed, staged) {
            (Some((package, _)), staged) => {
                if let Some(staged) = staged {
                    self.remove_files(staged, Some(&package.manifest));
                }
                let _ = self.unpack(&package, None);
            }
            (None, Some(staged)) => {
                self.remove_files(staged, None);
                let _ = std::fs::remove_file(self.records.join(format!("{name}.toml")));
            }
            (None, None) => {}
        }
    }

    /// Removes the files, users and groups of `manifest` that `keep` does
    /// not also have.
    fn remove_files(&self, manifest: &PackageManifest, keep: Option<&PackageManifest>) {
        for file in &manifest.files {
            if keep.is_some_and(|k| k.files.iter().any(|f| f.destination == file.destination)) {
                continue;
            }
            let _ = std::fs::remove_file(self.under_root(&file.destination));
        }
        for user in &manifest.users {
            if !keep.is_some_and(|k| k.users.iter().any(|u| u.name == user.name)) {
                self.remove_line("etc/passwd", &user.name);
            }
        }
        for group in &manifest.groups {
            if !keep.is_some_and(|k| k.groups.iter().any(|g| g.name == group.name)) {
                self.remove_line("etc/group", &group.name);
            }
        }
    }

    /// Adds `line` to `file` unless an entry for `name` is there: the same
    /// line is fine, another one a conflict.
    fn add_line(&self, file: &str, name: &str, line: &str) -> Result<(), Refusal> {
        let path = self.root.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let prefix = format!("{name}:");
        if let Some(existing) = text.lines().find(|l| l.starts_with(&prefix)) {
            if existing == line {
                return Ok(());
            }
            return Err(Refusal::new(
                ErrorKind::Conflict,
                format!("/{file} has {existing:?}, and the package wants {line:?}"),
            ));
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Refusal::io("cannot open", &path, e))?;
        writeln!(f, "{line}").map_err(|e| Refusal::io("cannot write", &path, e))
    }

    fn remove_line(&self, file: &str, name: &str) {
        let path = self.root.join(file);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        let prefix = format!("{name}:");
        let kept: String = text
            .lines()
            .filter(|l| !l.starts_with(&prefix))
            .map(|l| format!("{l}\n"))
            .collect();
        let _ = std::fs::write(&path, kept);
    }
}

/// The package fits the installed set: its dependencies are installed in
/// fitting versions, the packages that depend on it accept its version,
/// and no other package runs a service of the same name.
fn check_fits(m: &PackageManifest, installed: &Installed) -> Result<(), Refusal> {
    for (dep, req) in &m.dependencies {
        match installed.packages.get(dep) {
            Some(d) if req.matches(&d.version) => {}
            Some(d) => {
                return Err(Refusal::new(
                    ErrorKind::Conflict,
                    format!(
                        "{} needs {dep} {req}, but {} is installed; install a fitting {dep} first",
                        m.id(),
                        d.id()
                    ),
                ))
            }
            None => {
                return Err(Refusal::new(
                    ErrorKind::Conflict,
                    format!(
                        "{} needs {dep} {req}, which is not installed; install it first",
                        m.id()
                    ),
                ))
            }
        }
    }
    for other in installed.packages.values().filter(|o| o.name != m.name) {
        if let Some(req) = other.dependencies.get(&m.name) {
            if !req.matches(&m.version) {
                return Err(Refusal::new(
                    ErrorKind::Conflict,
                    format!(
                        "{} needs {} {req}, which {} is not; upgrade {} too, or pick a fitting version",
                        other.id(),
                        m.name,
                        m.version,
                        other.name
                    ),
                ));
            }
        }
        if let Some(service) = other.services.keys().find(|s| m.services.contains_key(*s)) {
            return Err(Refusal::new(
                ErrorKind::Conflict,
                format!(
                    "{} runs a service {service:?}, and {} runs one too; rename one",
                    m.id(),
                    other.id()
                ),
            ));
        }
    }
    Ok(())
}

/// What moted shows of an installed package.
pub fn info(
    m: &PackageManifest,
    in_image: bool,
    active: bool,
    trust: Option<PackageTrust>,
) -> PackageInfo {
    PackageInfo {
        name: m.name.clone(),
        version: m.version.to_string(),
        description: m.description.clone(),
        in_image,
        active,
        services: m.services.keys().cloned().collect(),
        ports: m.open_ports().iter().map(ToString::to_string).collect(),
        settings: m.settings.clone(),
        trust,
        dependencies: m
            .dependencies
            .iter()
            .map(|(name, req)| format!("{name} {req}"))
            .collect(),
        metrics: m
            .metrics
            .as_ref()
            .map(|x| format!("http://127.0.0.1:{}{}", x.port, x.path)),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Node {
        _dir: tempfile::TempDir,
        store: Store,
        secret: mote_package::SecretKey,
    }

    /// A node root with one trusted key.
    fn node() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::under(dir.path());
        std::fs::create_dir_all(&store.trust).unwrap();
        std::fs::create_dir_all(store.root.join("etc")).unwrap();
        std::fs::write(
            store.root.join("etc/passwd"),
            "root:x:0:0:root:/:/nonexistent\n",
        )
        .unwrap();
        let keys = mote_package::generate_key().unwrap();
        std::fs::write(store.trust.join("me.pub"), &keys.public).unwrap();
        let secret = mote_package::SecretKey::parse(&keys.secret, "k", None).unwrap();
        Node {
            _dir: dir,
            store,
            secret,
        }
    }

    /// A package `app` at `version` with `conf` in /etc/app.conf (and, when
    /// `extra`, /etc/app-extra.conf).
    fn package(version: &str, conf: &str, extra: bool) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let mut text = format!(
            "name = \"app\"\nversion = \"{version}\"\ndescription = \"x\"\n\
             [[files]]\nsource = \"app.conf\"\ndestination = \"/etc/app.conf\"\nmode = \"0640\"\n\
             [[users]]\nname = \"app\"\nuid = 900\n"
        );
        if extra {
            text.push_str(
                "[[files]]\nsource = \"app.conf\"\ndestination = \"/etc/app-extra.conf\"\nmode = \"0644\"\n",
            );
        }
        std::fs::write(dir.path().join("package.toml"), text).unwrap();
        std::fs::write(dir.path().join("app.conf"), conf).unwrap();
        mote_package::build(dir.path(), &Default::default()).unwrap()
    }

    fn sign(node: &Node, bytes: &[u8]) -> String {
        mote_package::sign(bytes, &node.secret, "app").unwrap()
    }

    fn read(node: &Node, path: &str) -> Option<String> {
        std::fs::read_to_string(node.store.root.join(path)).ok()
    }

    fn installed(node: &Node) -> Installed {
        Installed::read(&node.store.records).0
    }

    #[test]
    fn install_commit_reboot_upgrade_abort_and_remove() {
        let n = node();
        let none = BTreeSet::new();
        let v1 = package("1.0.0", "one\n", true);
        let staged = n
            .store
            .stage(&v1, Some(&sign(&n, &v1)), &installed(&n), &none)
            .unwrap();
        assert!(matches!(staged.trust, PackageTrust::Signed { .. }));
        assert!(staged.previous.is_none());
        assert_eq!(read(&n, "etc/app.conf").as_deref(), Some("one\n"));
        assert!(read(&n, "etc/passwd").unwrap().contains("\napp:x:900:900:"));
        n.store.commit("app").unwrap();

        // A reboot: / comes back from the image, the archive is unpacked again.
        std::fs::remove_file(n.store.root.join("etc/app.conf")).unwrap();
        std::fs::remove_dir_all(&n.store.records).unwrap();
        let (done, problems) = n.store.reinstate(&none);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(done[0].0.name, "app");
        assert_eq!(read(&n, "etc/app.conf").as_deref(), Some("one\n"));
        assert_eq!(installed(&n).packages["app"].version.to_string(), "1.0.0");

        // An upgrade that is aborted puts 1.0.0 back, extra file included.
        let v2 = package("2.0.0", "two\n", false);
        let staged = n
            .store
            .stage(&v2, Some(&sign(&n, &v2)), &installed(&n), &none)
            .unwrap();
        assert_eq!(staged.previous.unwrap().version.to_string(), "1.0.0");
        assert_eq!(read(&n, "etc/app.conf").as_deref(), Some("two\n"));
        assert!(read(&n, "etc/app-extra.conf").is_none());
        n.store.abort("app", &staged.manifest);
        assert_eq!(read(&n, "etc/app.conf").as_deref(), Some("one\n"));
        assert!(read(&n, "etc/app-extra.conf").is_some());
        assert_eq!(installed(&n).packages["app"].version.to_string(), "1.0.0");

        // Staged but not committed when the power goes: the boot drops it.
        n.store
            .stage(&v2, Some(&sign(&n, &v2)), &installed(&n), &none)
            .unwrap();
        let (done, _) = n.store.reinstate(&none);
        assert_eq!(done[0].0.version.to_string(), "1.0.0");
        assert!(!n.store.pending("app").exists());

        // Removed: files, user, record and archive gone.
        n.store.remove(&installed(&n).packages["app"]).unwrap();
        assert!(read(&n, "etc/app.conf").is_none());
        assert!(!read(&n, "etc/passwd").unwrap().contains("app:"));
        assert!(installed(&n).packages.is_empty());
        assert_eq!(n.store.reinstate(&none).0.len(), 0);
    }

    #[test]
    fn a_package_needs_its_modules_loaded_or_built_in() {
        let n = node();
        let none = BTreeSet::new();
        std::fs::create_dir_all(n.store.root.join("sys/module/nf_nat")).unwrap();
        std::fs::create_dir_all(n.store.root.join("etc/mote")).unwrap();
        std::fs::write(
            n.store.root.join("etc/mote/modules.builtin"),
            "unix\nvirtio_net\n",
        )
        .unwrap();
        let with_modules = |modules: &str| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(
                dir.path().join("package.toml"),
                format!(
                    "name = \"app\"\nversion = \"1.0.0\"\ndescription = \"x\"\n\
                     modules = [{modules}]\n[[files]]\nsource = \"app.conf\"\n\
                     destination = \"/etc/app.conf\"\nmode = \"0644\"\n"
                ),
            )
            .unwrap();
            std::fs::write(dir.path().join("app.conf"), "x").unwrap();
            mote_package::build(dir.path(), &Default::default()).unwrap()
        };

        let missing = with_modules("\"nf_nat\", \"dummy\", \"tun\"");
        let e = n
            .store
            .stage(&missing, Some(&sign(&n, &missing)), &installed(&n), &none)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(
            e.message.contains("modules dummy, tun,") && e.message.contains("[kernel] drivers"),
            "{}",
            e.message
        );
        assert!(read(&n, "etc/app.conf").is_none(), "nothing was changed");
        assert!(!n.store.pending("app").exists());

        // Loaded (nf_nat) or built in (virtio-net, spelled with '-'): taken.
        let fine = with_modules("\"nf_nat\", \"virtio-net\"");
        n.store
            .stage(&fine, Some(&sign(&n, &fine)), &installed(&n), &none)
            .unwrap();
        assert_eq!(read(&n, "etc/app.conf").as_deref(), Some("x"));
    }

    #[test]
    fn unsigned_tampered_untrusted_and_image_packages_are_refused_with_nothing_changed() {
        let n = node();
        let none = BTreeSet::new();
        let v1 = package("1.0.0", "one\n", false);
        let refused = |bytes: &[u8], sig: Option<&str>, image: &BTreeSet<String>| {
            let r = n
                .store
                .stage(bytes, sig, &installed(&n), image)
                .unwrap_err();
            assert!(read(&n, "etc/app.conf").is_none(), "{r:?}");
            assert!(!n.store.pending("app").exists());
            r
        };
        let r = refused(&v1, None, &none);
        assert_eq!(r.kind, ErrorKind::Invalid);
        assert!(r.message.contains("not signed"), "{r:?}");
        let mut tampered = v1.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let r = refused(&tampered, Some(&sign(&n, &v1)), &none);
        assert!(r.message.contains("changed after signing"), "{r:?}");
        let other = mote_package::generate_key().unwrap();
        let other = mote_package::SecretKey::parse(&other.secret, "o", None).unwrap();
        let r = refused(
            &v1,
            Some(&mote_package::sign(&v1, &other, "x").unwrap()),
            &none,
        );
        assert!(r.message.contains("does not trust"), "{r:?}");
        let image: BTreeSet<String> = ["app".to_string()].into();
        let r = refused(&v1, Some(&sign(&n, &v1)), &image);
        assert_eq!(r.kind, ErrorKind::Conflict);

        // allow-unsigned lets an unsigned one in, and says so.
        std::fs::write(n.store.trust.join("allow-unsigned"), "").unwrap();
        let staged = n.store.stage(&v1, None, &installed(&n), &none).unwrap();
        assert!(matches!(staged.trust, PackageTrust::Unsigned { .. }));
    }

    #[test]
    fn a_missing_dependency_names_both_packages() {
        let n = node();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("package.toml"),
            "name = \"app\"\nversion = \"1.0.0\"\ndescription = \"x\"\n[dependencies]\ndb = \"^2\"\n",
        )
        .unwrap();
        let bytes = mote_package::build(dir.path(), &Default::default()).unwrap();
        let r = n
            .store
            .stage(
                &bytes,
                Some(&sign(&n, &bytes)),
                &installed(&n),
                &BTreeSet::new(),
            )
            .unwrap_err();
        assert_eq!(r.kind, ErrorKind::Conflict);
        assert!(r.message.contains("app 1.0.0 needs db ^2"), "{r:?}");
    }
}

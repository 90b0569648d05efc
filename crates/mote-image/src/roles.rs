//! The roles this mote was built with, as signed packages.
//!
//! The build (`cargo xtask`, or `mote package roles`) packs each role of
//! [`mote_roles::BUILTIN`] from its package directory and the bin dir,
//! signs it with the workspace key and writes a signed repository beside
//! the binaries:
//!
//! ```text
//! BIN/roles/NAME-VERSION.mpkg(.minisig) each role, signed
//! BIN/roles/index.json(.minisig)       the repository's signed index
//! BIN/roles/mote.pub                   the key that signed them
//! ```
//!
//! Images take roles from there, checked like any package: the index's
//! signature, then each archive's digest. `mote.pub` is mote's own key,
//! shipped with the binaries as apt ships its archive key; a node built
//! by this mote trusts it too, so the same repository installs a role
//! online (`mote -n NODE package install NAME --repository BIN/roles`).

use std::path::{Path, PathBuf};

use mote_package::repository::{signature_path, Index, Source, INDEX_FILE};
use mote_package::{Package, PublicKey, SecretKey};

use crate::error::io_error;
use crate::ImageBuildError;

/// Writes `path` whole or not at all.
fn write(path: &Path, bytes: &[u8]) -> Result<(), ImageBuildError> {
    crate::compose::write_atomic(path, |file, tmp| {
        std::io::Write::write_all(file, bytes).map_err(io_error("writing", tmp))
    })
}

/// The repository's directory under the bin dir.
pub const ROLES_DIR: &str = "roles";
/// The signer's public key in it.
pub const KEY_FILE: &str = "mote.pub";

/// A bin dir's role repository.
#[derive(Debug, Clone)]
pub struct RolesDir {
    /// `BIN/roles`.
    pub dir: PathBuf,
}

/// One role as [`pack_all`] wrote it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PackedRole {
    /// Package name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The archive.
    pub file: PathBuf,
    /// SHA-256 of the archive, hex.
    pub sha256: String,
}

impl RolesDir {
    /// `bin_dir/roles`.
    pub fn in_bin_dir(bin_dir: &Path) -> Self {
        Self {
            dir: bin_dir.join(ROLES_DIR),
        }
    }

    /// Whether the build made it (its index is there).
    pub fn exists(&self) -> bool {
        self.dir.join(INDEX_FILE).is_file()
    }

    /// mote's own key and its text.
    pub fn key(&self) -> Result<(PublicKey, String), String> {
        let path = self.dir.join(KEY_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let key =
            PublicKey::parse(&text, &path.display().to_string()).map_err(|e| e.to_string())?;
        Ok((key, text))
    }

    /// The role `name`: its package, file and signer, checked against
    /// mote's own key and `trusted`.
    pub fn take(
        &self,
        name: &str,
        trusted: &[PublicKey],
    ) -> Result<(Package, PathBuf, String), String> {
        let rebuild = "build the roles again (`cargo xtask demo`, or `mote package roles`)";
        let (key, _) = self.key().map_err(|e| format!("{e}; {rebuild}"))?;
        let mut keys = vec![key];
        keys.extend(trusted.iter().cloned());
        let source = Source::Dir(self.dir.clone());
        let index = Index::read_trusted(&source, &keys).map_err(|e| format!("{e}; {rebuild}"))?;
        let entry = index.latest(name).ok_or_else(|| {
            format!(
                "{} has no package {name:?}; {rebuild}",
                self.dir.join(INDEX_FILE).display()
            )
        })?;
        let bytes = entry.read(&source).map_err(|e| format!("{e}; {rebuild}"))?;
        let path = source.locate(&entry.file);
        let signature = std::fs::read_to_string(signature_path(&path)).ok();
        let signer = mote_package::verify(&bytes, signature.as_deref(), &keys)
            .map_err(|e| format!("{}: {e}; {rebuild}", path.display()))?;
        let package = mote_package::open(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        if package.manifest.name != name {
            return Err(format!(
                "{} holds {}, not the role {name}; {rebuild}",
                path.display(),
                package.manifest.id()
            ));
        }
        Ok((package, path, signer.key_id))
    }
}

/// Packs the role `b` from its package directory and the bin dir.
pub(crate) fn pack(b: &mote_roles::Builtin, bin_dir: &Path, mtime: u32) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("making a temporary directory: {e}"))?;
    for (file, bytes) in b.files {
        let path = dir.path().join(file);
        std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let options = mote_package::BuildOptions {
        bin_dir: Some(bin_dir.to_owned()),
        mtime: u64::from(mtime),
    };
    mote_package::build(dir.path(), &options).map_err(|e| {
        format!("{e} (the package built with mote; `cargo build --release` makes its binaries)")
    })
}

/// Packs every role from `bin_dir`, signs each and the index with `key`,
/// and writes the repository to `out` (its earlier packages replaced),
/// with `public` (the key's `.pub` text) as [`KEY_FILE`].
pub fn pack_all(
    bin_dir: &Path,
    key: &SecretKey,
    public: &str,
    out: &Path,
) -> Result<Vec<PackedRole>, ImageBuildError> {
    let failed = |entry: &str, problem: String| ImageBuildError::Package {
        entry: entry.into(),
        problem,
    };
    let parsed = PublicKey::parse(public, KEY_FILE).map_err(|e| failed(KEY_FILE, e.to_string()))?;
    if parsed.key_id() != key.key_id() {
        return Err(failed(
            KEY_FILE,
            format!(
                "the public key is {}, but the secret key is {}: give the .pub of the same pair",
                parsed.key_id(),
                key.key_id()
            ),
        ));
    }
    std::fs::create_dir_all(out).map_err(io_error("making", out))?;
    for entry in std::fs::read_dir(out).map_err(io_error("listing", out))? {
        let path = entry.map_err(io_error("listing", out))?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".mpkg") || name.ends_with(".mpkg.minisig") {
            std::fs::remove_file(&path).map_err(io_error("removing", &path))?;
        }
    }
    let mtime = crate::compose::source_date_epoch();
    let mut packed = Vec::new();
    for b in mote_roles::BUILTIN {
        let bytes = pack(b, bin_dir, mtime).map_err(|e| failed(b.name, e))?;
        let package = mote_package::open(&bytes).map_err(|e| failed(b.name, e.to_string()))?;
        let id = package.manifest.id();
        let file = out.join(format!(
            "{}-{}.{}",
            package.manifest.name,
            package.manifest.version,
            mote_package::EXTENSION
        ));
        let signature = mote_package::sign(&bytes, key, &format!("package:{id}"))
            .map_err(|e| failed(b.name, e.to_string()))?;
        write(&file, &bytes)?;
        write(&signature_path(&file), signature.as_bytes())?;
        packed.push(PackedRole {
            name: package.manifest.name,
            version: package.manifest.version.to_string(),
            file,
            sha256: package.sha256,
        });
    }
    let index = Index::of_directory(out).map_err(|e| failed(ROLES_DIR, e.to_string()))?;
    let text = index.to_json();
    let signature = mote_package::sign(text.as_bytes(), key, "mote roles index")
        .map_err(|e| failed(ROLES_DIR, e.to_string()))?;
    let index_path = out.join(INDEX_FILE);
    write(&index_path, text.as_bytes())?;
    write(&signature_path(&index_path), signature.as_bytes())?;
    write(&out.join(KEY_FILE), public.as_bytes())?;
    Ok(packed)
}

//! The kernel cache: one directory per fetched package version.
//!
//! ```text
//! ROOT/kernels/linux-image-6.1.0-56-cloud-amd64_6.1.192-2/
//!     mote-kernel.json        what this is (written last: no file, no entry)
//!     boot/vmlinuz-6.1.0-56-cloud-amd64
//!     lib/modules/6.1.0-56-cloud-amd64/…
//! ROOT/kernels/.partial-…     a fetch under way (or interrupted; swept later)
//! ```

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::KernelError;

const META: &str = "mote-kernel.json";
pub(crate) const PARTIAL_PREFIX: &str = ".partial-";

/// Where fetched kernels are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCache {
    root: PathBuf,
}

/// A kernel in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedKernel {
    /// The package that holds the kernel (`linux-image-6.1.0-56-cloud-amd64`).
    pub package: String,
    /// Its Debian version (`6.1.192-2`).
    pub package_version: String,
    /// The package the manifest named (often a metapackage).
    pub requested: String,
    /// The kernel release (`6.1.0-56-cloud-amd64`).
    pub version: String,
    /// Seconds since the epoch when it was fetched.
    pub fetched_unix: u64,
    /// The entry's directory.
    pub dir: PathBuf,
    /// The kernel image.
    pub vmlinuz: PathBuf,
    /// Its `lib/modules/VERSION` directory.
    pub modules_dir: PathBuf,
}

/// What `mote-kernel.json` holds; paths relative to the entry.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    package: String,
    package_version: String,
    requested: String,
    version: String,
    fetched_unix: u64,
    vmlinuz: PathBuf,
    modules_dir: PathBuf,
}

impl KernelCache {
    /// A cache rooted at `root` (the mote cache directory; kernels live in
    /// its `kernels/`).
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// `$MOTE_CACHE_DIR`, else `$XDG_CACHE_HOME/mote`, else `~/.cache/mote`.
    pub fn default_location() -> Result<Self, KernelError> {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(dir) = var("MOTE_CACHE_DIR") {
            return Ok(Self::new(dir));
        }
        if let Some(dir) = var("XDG_CACHE_HOME").filter(|d| d.is_absolute()) {
            return Ok(Self::new(dir.join("mote")));
        }
        let home = dirs::home_dir().ok_or(KernelError::NoCacheDir)?;
        Ok(Self::new(home.join(".cache").join("mote")))
    }

    /// The cache's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every complete kernel in the cache, sorted by package and version.
    /// Unreadable entries are left out.
    pub fn cached(&self) -> Vec<CachedKernel> {
        let Ok(entries) = std::fs::read_dir(self.kernels_dir()) else {
            return Vec::new();
        };
        let mut found: Vec<CachedKernel> = entries
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| load(&e.path()))
            .collect();
        found.sort_by(|a, b| {
            (&a.package, &a.package_version).cmp(&(&b.package, &b.package_version))
        });
        found
    }

    pub(crate) fn kernels_dir(&self) -> PathBuf {
        self.root.join("kernels")
    }

    pub(crate) fn entry_dir(&self, package: &str, package_version: &str) -> PathBuf {
        // An epoch's colon is spelled as apt spells it in .deb file names.
        self.kernels_dir()
            .join(format!("{package}_{}", package_version.replace(':', "%3a")))
    }

    /// The entry for exactly this package version.
    pub(crate) fn lookup(&self, package: &str, package_version: &str) -> Option<CachedKernel> {
        load(&self.entry_dir(package, package_version))
    }

    /// The most recently fetched entry for a package name as the manifest
    /// gave it (a metapackage or a real one), for when apt cannot say which
    /// version it means.
    pub(crate) fn latest_for(&self, requested: &str) -> Option<CachedKernel> {
        self.cached()
            .into_iter()
            .filter(|k| k.requested == requested || k.package == requested)
            .max_by_key(|k| k.fetched_unix)
    }

    /// Writes an entry's description into `tree` (about to become the entry).
    pub(crate) fn describe(
        tree: &Path,
        package: &str,
        package_version: &str,
        requested: &str,
        version: &str,
        vmlinuz: &Path,
        modules_dir: &Path,
    ) -> Result<(), KernelError> {
        let meta = Meta {
            package: package.into(),
            package_version: package_version.into(),
            requested: requested.into(),
            version: version.into(),
            fetched_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            vmlinuz: vmlinuz.into(),
            modules_dir: modules_dir.into(),
        };
        let path = tree.join(META);
        let text = serde_json::to_string_pretty(&meta).unwrap_or_default();
        std::fs::write(&path, text).map_err(|source| KernelError::Io {
            action: "writing",
            path,
            source,
        })
    }
}

/// Reads an entry, or `None` when it is incomplete or not one.
fn load(dir: &Path) -> Option<CachedKernel> {
    let text = std::fs::read_to_string(dir.join(META)).ok()?;
    let meta: Meta = serde_json::from_str(&text).ok()?;
    let kernel = CachedKernel {
        package: meta.package,
        package_version: meta.package_version,
        requested: meta.requested,
        version: meta.version,
        fetched_unix: meta.fetched_unix,
        dir: dir.to_path_buf(),
        vmlinuz: dir.join(meta.vmlinuz),
        modules_dir: dir.join(meta.modules_dir),
    };
    (kernel.vmlinuz.is_file() && kernel.modules_dir.is_dir()).then_some(kernel)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Puts a fake complete entry into a cache.
    pub(crate) fn fake_entry(
        cache: &KernelCache,
        package: &str,
        package_version: &str,
        requested: &str,
    ) -> PathBuf {
        let dir = cache.entry_dir(package, package_version);
        let version = "6.1.0-99-test";
        std::fs::create_dir_all(dir.join("boot")).unwrap();
        std::fs::create_dir_all(dir.join("lib/modules").join(version)).unwrap();
        std::fs::write(
            dir.join("boot").join(format!("vmlinuz-{version}")),
            b"kernel",
        )
        .unwrap();
        KernelCache::describe(
            &dir,
            package,
            package_version,
            requested,
            version,
            &Path::new("boot").join(format!("vmlinuz-{version}")),
            &Path::new("lib/modules").join(version),
        )
        .unwrap();
        dir
    }

    #[test]
    fn lists_complete_entries_only() {
        let root = tempfile::tempdir().unwrap();
        let cache = KernelCache::new(root.path().to_path_buf());
        assert!(cache.cached().is_empty());
        fake_entry(&cache, "linux-image-x", "1:2.0-1", "linux-image-meta");
        std::fs::create_dir_all(cache.kernels_dir().join("half-done/boot")).unwrap();
        std::fs::create_dir_all(cache.kernels_dir().join(".partial-y")).unwrap();
        let cached = cache.cached();
        assert_eq!(cached.len(), 1);
        assert_eq!(cached[0].package_version, "1:2.0-1");
        assert!(cached[0].dir.ends_with("linux-image-x_1%3a2.0-1"));
        assert!(cached[0].vmlinuz.ends_with("boot/vmlinuz-6.1.0-99-test"));
        assert_eq!(
            cache.lookup("linux-image-x", "1:2.0-1").as_ref(),
            Some(&cached[0])
        );
        assert_eq!(
            cache.latest_for("linux-image-meta").as_ref(),
            Some(&cached[0])
        );
        assert!(cache.latest_for("linux-image-other").is_none());
    }
}

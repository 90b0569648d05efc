//! Getting the kernel a manifest asks for: a local one, a cached package, or
//! a package fetched with apt.
//!
//! For a package, `apt-cache show` (offline: it reads apt's local lists)
//! resolves the name to the real kernel package and version, following a
//! metapackage's `linux-image-*` dependency. A cache hit ends there. A miss
//! runs `apt-get download PACKAGE=VERSION` and `dpkg-deb -x` in a
//! `.partial-*` directory inside the cache, writes the entry's description
//! last, and renames the tree into place: an interrupted fetch leaves no
//! entry, only a partial directory that a later fetch sweeps away.
//!
//! `apt-cache` takes most of a second where apt keeps no binary cache (as in
//! container images), so its answer is remembered in `kernels/resolved.json`
//! against a fingerprint of apt's lists and configuration, and asked again
//! only when those change.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache::{CachedKernel, PARTIAL_PREFIX};
use crate::error::io_error;
use crate::{KernelCache, KernelError};

/// A kernel ready to go into an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedKernel {
    /// The kernel release (`6.1.0-56-cloud-amd64`): the modules directory's name.
    pub version: String,
    /// `"PACKAGE VERSION"` of the Debian package; `None` for a local kernel.
    pub package: Option<String>,
    /// The kernel image.
    pub vmlinuz: PathBuf,
    /// Its `lib/modules/VERSION` directory.
    pub modules_dir: PathBuf,
    /// Whether it came from the cache without a fetch.
    pub from_cache: bool,
}

impl ResolvedKernel {
    fn cached(kernel: CachedKernel, from_cache: bool) -> Self {
        Self {
            version: kernel.version,
            package: Some(format!("{} {}", kernel.package, kernel.package_version)),
            vmlinuz: kernel.vmlinuz,
            modules_dir: kernel.modules_dir,
            from_cache,
        }
    }
}

/// The programs used to fetch packages; tests point them elsewhere.
pub(crate) struct Apt {
    pub apt_get: PathBuf,
    pub apt_cache: PathBuf,
    pub dpkg_deb: PathBuf,
    /// Files and directories whose change may change apt's answers.
    pub state_files: Vec<PathBuf>,
}

impl Apt {
    fn system() -> Self {
        Self {
            apt_get: "apt-get".into(),
            apt_cache: "apt-cache".into(),
            dpkg_deb: "dpkg-deb".into(),
            state_files: [
                "/var/lib/apt/lists",
                "/etc/apt/sources.list",
                "/etc/apt/sources.list.d",
                "/etc/apt/preferences",
                "/etc/apt/preferences.d",
                "/etc/apt/apt.conf.d",
            ]
            .map(PathBuf::from)
            .to_vec(),
        }
    }
}

/// Obtains the kernel of a manifest's `[kernel]` section. Local paths are
/// relative to `manifest_dir`. A package kernel comes from `cache`, fetched
/// into it first when missing; `progress` hears what is happening.
pub fn obtain(
    kernel: &mote_config::Kernel,
    manifest_dir: &Path,
    cache: &KernelCache,
    progress: &mut dyn FnMut(&str),
) -> Result<ResolvedKernel, KernelError> {
    obtain_with(kernel, manifest_dir, cache, &Apt::system(), progress)
}

pub(crate) fn obtain_with(
    kernel: &mote_config::Kernel,
    manifest_dir: &Path,
    cache: &KernelCache,
    apt: &Apt,
    progress: &mut dyn FnMut(&str),
) -> Result<ResolvedKernel, KernelError> {
    match (&kernel.path, &kernel.modules) {
        (Some(path), modules) => local(manifest_dir, path, modules.as_deref(), progress),
        (None, Some(modules)) => Err(KernelError::LocalPathUnset {
            modules: manifest_dir.join(modules),
        }),
        (None, None) => package(&kernel.package, cache, apt, progress),
    }
}

fn local(
    manifest_dir: &Path,
    path: &Path,
    modules: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<ResolvedKernel, KernelError> {
    let vmlinuz = manifest_dir.join(path);
    let modules = modules.ok_or_else(|| KernelError::LocalModulesUnset {
        path: vmlinuz.clone(),
    })?;
    let modules_dir = manifest_dir.join(modules);
    let metadata =
        std::fs::metadata(&vmlinuz).map_err(|source| KernelError::LocalKernelMissing {
            path: vmlinuz.clone(),
            source,
        })?;
    if !metadata.is_file() {
        let source = std::io::Error::other("not a regular file");
        return Err(KernelError::LocalKernelMissing {
            path: vmlinuz,
            source,
        });
    }
    let version = std::fs::canonicalize(&modules_dir)
        .ok()
        .filter(|p| p.is_dir())
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .ok_or_else(|| KernelError::LocalModulesMissing {
            path: modules_dir.clone(),
        })?;
    progress(&format!("kernel {version} (local, {})", vmlinuz.display()));
    Ok(ResolvedKernel {
        version,
        package: None,
        vmlinuz,
        modules_dir,
        from_cache: false,
    })
}

fn package(
    requested: &str,
    cache: &KernelCache,
    apt: &Apt,
    progress: &mut dyn FnMut(&str),
) -> Result<ResolvedKernel, KernelError> {
    let (package, version) = match resolve_remembered(apt, cache, requested) {
        Ok(found) => found,
        Err(error) => {
            // apt-cache cannot say which version: any cached one will do.
            let Some(kernel) = cache.latest_for(requested) else {
                return Err(error);
            };
            progress(&format!(
                "kernel {} (cached; apt could not check for a newer one: {error})",
                kernel.version
            ));
            return Ok(ResolvedKernel::cached(kernel, true));
        }
    };
    if let Some(kernel) = cache.lookup(&package, &version) {
        progress(&format!("kernel {} (cached)", kernel.version));
        return Ok(ResolvedKernel::cached(kernel, true));
    }
    progress(&format!("fetching {package} ({version})…"));
    let kernel = fetch(apt, cache, requested, &package, &version)?;
    Ok(ResolvedKernel::cached(kernel, false))
}

/// What `resolve` answered, for as long as apt's state stays the same.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Remembered {
    entries: BTreeMap<String, RememberedEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RememberedEntry {
    apt_state: u64,
    package: String,
    version: String,
}

/// `resolve`, remembered in the cache against a fingerprint of apt's lists
/// and configuration: `apt-cache` takes most of a second where apt keeps no
/// binary cache (container images), and its answer only changes when those
/// files do.
fn resolve_remembered(
    apt: &Apt,
    cache: &KernelCache,
    requested: &str,
) -> Result<(String, String), KernelError> {
    let path = cache.kernels_dir().join("resolved.json");
    let state = apt_state(&apt.state_files);
    let mut remembered: Remembered = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if let (Some(state), Some(entry)) = (state, remembered.entries.get(requested)) {
        if entry.apt_state == state {
            return Ok((entry.package.clone(), entry.version.clone()));
        }
    }
    let (package, version) = resolve(apt, requested)?;
    if let Some(apt_state) = state {
        let entry = RememberedEntry {
            apt_state,
            package: package.clone(),
            version: version.clone(),
        };
        remembered.entries.insert(requested.to_string(), entry);
        // Best effort: a memo that cannot be written costs only time.
        let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
        if std::fs::create_dir_all(cache.kernels_dir()).is_ok()
            && std::fs::write(&tmp, serde_json::to_vec(&remembered).unwrap_or_default()).is_ok()
            && std::fs::rename(&tmp, &path).is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok((package, version))
}

/// A fingerprint (names, sizes, modification times) of the files apt's
/// answers depend on, or `None` when apt has no lists.
fn apt_state(paths: &[PathBuf]) -> Option<u64> {
    let mut hasher = std::hash::DefaultHasher::new();
    let mut any_list = false;
    for path in paths {
        let mut files: Vec<(PathBuf, std::fs::Metadata)> = match std::fs::read_dir(path) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .filter_map(|e| Some((e.path(), e.metadata().ok()?)))
                .collect(),
            Err(_) => std::fs::metadata(path)
                .map(|m| vec![(path.clone(), m)])
                .unwrap_or_default(),
        };
        files.sort_by(|a, b| a.0.cmp(&b.0));
        for (file, metadata) in files {
            any_list |= file.to_string_lossy().ends_with("_Packages")
                || file.to_string_lossy().contains("_Packages.");
            file.hash(&mut hasher);
            metadata.len().hash(&mut hasher);
            metadata.modified().ok().hash(&mut hasher);
        }
    }
    any_list.then(|| hasher.finish())
}

/// The real kernel package and version behind a name, from apt's lists.
fn resolve(apt: &Apt, requested: &str) -> Result<(String, String), KernelError> {
    let mut name = requested.to_string();
    let mut pinned: Option<String> = None;
    // A metapackage depends on the real one; allow a short chain of them.
    for _ in 0..4 {
        let output = run(
            &apt.apt_cache,
            &["show", "--no-all-versions", &name],
            None,
            requested,
        )?;
        let text = String::from_utf8_lossy(&output.stdout);
        let Some(stanza) = text.split("\n\n").find(|s| s.contains("Package:")) else {
            return Err(KernelError::PackageUnknown { package: name });
        };
        let field = |key: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|v| v.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            })
        };
        let next = field("Depends").and_then(|depends| kernel_dependency(&depends));
        match next {
            // A real kernel package is named after its release and pinned by
            // its metapackage: no need to ask apt about it again.
            Some((dep, Some(version)))
                if dep["linux-image-".len()..].starts_with(|c: char| c.is_ascii_digit()) =>
            {
                return Ok((dep, version));
            }
            Some((dep, dep_version)) if dep != name => {
                name = dep;
                pinned = dep_version;
            }
            _ => {
                let version =
                    pinned
                        .or_else(|| field("Version"))
                        .ok_or(KernelError::PackageUnknown {
                            package: name.clone(),
                        })?;
                return Ok((name, version));
            }
        }
    }
    Err(KernelError::PackageUnknown { package: name })
}

/// The first `linux-image-*` dependency of a Depends field, with its `(= V)`
/// version when pinned.
fn kernel_dependency(depends: &str) -> Option<(String, Option<String>)> {
    depends.split(',').find_map(|group| {
        let first = group.split('|').next()?.trim();
        let (name, rest) = first.split_once(' ').unwrap_or((first, ""));
        let name = name.split(':').next()?; // drop an architecture qualifier
        if !name.starts_with("linux-image-") {
            return None;
        }
        let version = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.trim().strip_prefix('='))
            .map(|v| v.trim().to_string());
        Some((name.to_string(), version))
    })
}

/// Removes itself (a partial fetch) when dropped.
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fetch(
    apt: &Apt,
    cache: &KernelCache,
    requested: &str,
    package: &str,
    package_version: &str,
) -> Result<CachedKernel, KernelError> {
    let kernels = cache.kernels_dir();
    std::fs::create_dir_all(&kernels).map_err(io_error("creating", &kernels))?;
    sweep_partials(&kernels);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let partial = Partial(kernels.join(format!(
        "{PARTIAL_PREFIX}{package}-{}-{nanos}",
        std::process::id()
    )));
    std::fs::create_dir(&partial.0).map_err(io_error("creating", &partial.0))?;

    run(
        &apt.apt_get,
        &["download", &format!("{package}={package_version}")],
        Some(&partial.0),
        requested,
    )?;
    let deb = std::fs::read_dir(&partial.0)
        .map_err(io_error("listing", &partial.0))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension() == Some(OsStr::new("deb")))
        .ok_or_else(|| KernelError::AptFailed {
            command: format!("apt-get download {package}={package_version}"),
            status: "exit 0".into(),
            stderr: "it left no .deb file".into(),
        })?;
    let tree = partial.0.join("tree");
    run(
        &apt.dpkg_deb,
        &["-x", &deb.to_string_lossy(), &tree.to_string_lossy()],
        None,
        requested,
    )?;
    let _ = std::fs::remove_file(&deb);
    let _ = std::fs::remove_dir_all(tree.join("usr/share")); // docs, changelogs

    let (version, vmlinuz, modules_dir) =
        find_kernel(&tree).ok_or_else(|| KernelError::NotAKernel {
            package: package.to_string(),
        })?;
    KernelCache::describe(
        &tree,
        package,
        package_version,
        requested,
        &version,
        &vmlinuz,
        &modules_dir,
    )?;
    let entry = cache.entry_dir(package, package_version);
    if let Err(e) = std::fs::rename(&tree, &entry) {
        // Another fetch may have finished first; its entry is as good.
        if cache.lookup(package, package_version).is_none() {
            return Err(io_error("moving the fetched kernel to", &entry)(e));
        }
    }
    drop(partial);
    cache
        .lookup(package, package_version)
        .ok_or_else(|| KernelError::NotAKernel {
            package: package.to_string(),
        })
}

/// `boot/vmlinuz-V` with its `lib/modules/V` (or `usr/lib/modules/V`), as
/// paths relative to the extracted tree.
fn find_kernel(tree: &Path) -> Option<(String, PathBuf, PathBuf)> {
    let mut images: Vec<String> = std::fs::read_dir(tree.join("boot"))
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("vmlinuz-")
                .map(String::from)
        })
        .collect();
    images.sort();
    images.into_iter().find_map(|version| {
        ["lib/modules", "usr/lib/modules"].iter().find_map(|base| {
            let modules = Path::new(base).join(&version);
            tree.join(&modules).is_dir().then(|| {
                (
                    version.clone(),
                    Path::new("boot").join(format!("vmlinuz-{version}")),
                    modules,
                )
            })
        })
    })
}

/// Removes partial fetches older than a day (their process is long gone).
fn sweep_partials(kernels: &Path) {
    let Ok(entries) = std::fs::read_dir(kernels) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(24 * 3600));
        if old
            && entry
                .file_name()
                .to_string_lossy()
                .starts_with(PARTIAL_PREFIX)
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs a tool; a failure to start is `AptMissing`, a failing exit `AptFailed`
/// (or `PackageUnknown` when apt says so).
fn run(
    tool: &Path,
    args: &[&str],
    cwd: Option<&Path>,
    package: &str,
) -> Result<Output, KernelError> {
    let tool_name = tool.file_name().map_or_else(
        || tool.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut command = Command::new(tool);
    command.args(args).stdin(Stdio::null()).env("LC_ALL", "C");
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let output = command.output().map_err(|source| KernelError::AptMissing {
        tool: tool_name.clone(),
        package: package.to_string(),
        source,
    })?;
    if output.status.success() {
        return Ok(output);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No packages found") || stderr.contains("Unable to locate package") {
        let name = args
            .last()
            .map_or(package, |a| a.split('=').next().unwrap_or(a));
        return Err(KernelError::PackageUnknown {
            package: name.to_string(),
        });
    }
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("unsandboxed"))
        .collect();
    Err(KernelError::AptFailed {
        command: format!("{tool_name} {}", args.join(" ")),
        status: output.status.to_string(),
        stderr: lines[lines.len().saturating_sub(5)..].join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::tests::fake_entry;

    fn no_apt() -> Apt {
        Apt {
            apt_get: "/nonexistent/apt-get".into(),
            apt_cache: "/nonexistent/apt-cache".into(),
            dpkg_deb: "/nonexistent/dpkg-deb".into(),
            state_files: Vec::new(),
        }
    }

    /// Fake apt tools: shell scripts that log their calls to `calls`.
    fn fake_apt(dir: &Path, dpkg_fails: bool) -> Apt {
        use std::os::unix::fs::PermissionsExt;
        let script = |name: &str, body: &str| {
            let path = dir.join(name);
            let log = dir.join("calls");
            std::fs::write(
                &path,
                format!("#!/bin/sh\necho {name} \"$@\" >> {}\n{body}", log.display()),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let lists = dir.join("lists");
        std::fs::create_dir_all(&lists).unwrap();
        std::fs::write(
            lists.join("deb_dists_x_main_binary-amd64_Packages.lz4"),
            "v1",
        )
        .unwrap();
        Apt {
            apt_cache: script(
                "apt-cache",
                "case \"$3\" in linux-image-meta) printf 'Package: linux-image-meta\\nVersion: 2\\nDepends: linux-image-6.9.0-1-test (= 6.9.1-1)\\n\\n';; \
                 *) echo 'E: No packages found' >&2; exit 100;; esac",
            ),
            apt_get: script("apt-get", "echo deb > \"${2%%=*}_amd64.deb\""),
            dpkg_deb: script(
                "dpkg-deb",
                if dpkg_fails {
                    "mkdir -p \"$3/boot\"; echo 'dpkg-deb: error: unexpected end of file' >&2; exit 2"
                } else {
                    "mkdir -p \"$3/boot\" \"$3/lib/modules/6.9.0-1-test/kernel\" \"$3/usr/share/doc\" && echo k > \"$3/boot/vmlinuz-6.9.0-1-test\""
                },
            ),
            state_files: vec![lists],
        }
    }

    fn calls(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn fetches_once_then_uses_the_cache_without_apt() {
        let tools = tempfile::tempdir().unwrap();
        let apt = fake_apt(tools.path(), false);
        let cache = KernelCache::new(tools.path().join("cache"));
        let kernel = mote_config::Kernel {
            package: "linux-image-meta".into(),
            ..Default::default()
        };
        let mut said = Vec::new();
        let first = obtain_with(&kernel, Path::new("."), &cache, &apt, &mut |m| {
            said.push(m.to_string())
        })
        .unwrap();
        assert!(!first.from_cache);
        assert_eq!(
            first.package.as_deref(),
            Some("linux-image-6.9.0-1-test 6.9.1-1")
        );
        assert_eq!(first.version, "6.9.0-1-test");
        assert!(first.vmlinuz.is_file() && first.modules_dir.is_dir());
        assert!(!first
            .vmlinuz
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("usr/share")
            .exists());
        assert_eq!(said, ["fetching linux-image-6.9.0-1-test (6.9.1-1)…"]);
        assert_eq!(calls(tools.path()).len(), 3, "{:?}", calls(tools.path()));
        assert!(
            calls(tools.path())[1].starts_with("apt-get download linux-image-6.9.0-1-test=6.9.1-1")
        );

        said.clear();
        let second = obtain_with(&kernel, Path::new("."), &cache, &apt, &mut |m| {
            said.push(m.to_string())
        })
        .unwrap();
        assert!(second.from_cache);
        assert_eq!(second.vmlinuz, first.vmlinuz);
        assert_eq!(said, ["kernel 6.9.0-1-test (cached)"]);
        assert_eq!(
            calls(tools.path()).len(),
            3,
            "apt-cache's answer is remembered"
        );

        // New apt lists: ask apt-cache again (and only it).
        std::fs::write(
            tools
                .path()
                .join("lists/deb_dists_x_main_binary-amd64_Packages.lz4"),
            "v22",
        )
        .unwrap();
        obtain_with(&kernel, Path::new("."), &cache, &apt, &mut |_| {}).unwrap();
        assert_eq!(calls(tools.path()).len(), 4);
        assert!(calls(tools.path())[3].starts_with("apt-cache show"));
        assert_eq!(cache.cached().len(), 1);
    }

    #[test]
    fn a_failed_fetch_leaves_no_entry() {
        let tools = tempfile::tempdir().unwrap();
        let apt = fake_apt(tools.path(), true);
        let cache = KernelCache::new(tools.path().join("cache"));
        let kernel = mote_config::Kernel {
            package: "linux-image-meta".into(),
            ..Default::default()
        };
        let err = obtain_with(&kernel, Path::new("."), &cache, &apt, &mut |_| {}).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("dpkg-deb -x") && message.contains("unexpected end of file"),
            "{message}"
        );
        assert!(
            message.contains("set [kernel] path and modules"),
            "{message}"
        );
        assert!(cache.cached().is_empty());
        let left: Vec<_> = std::fs::read_dir(cache.kernels_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "resolved.json")
            .collect();
        assert!(left.is_empty(), "{left:?}");

        let unknown = mote_config::Kernel {
            package: "linux-image-nope".into(),
            ..Default::default()
        };
        let err = obtain_with(&unknown, Path::new("."), &cache, &apt, &mut |_| {}).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("apt knows no package linux-image-nope: run `apt-get update`"),
            "{err}"
        );
    }

    #[test]
    fn finds_the_pinned_kernel_dependency() {
        assert_eq!(
            kernel_dependency("linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)"),
            Some((
                "linux-image-6.1.0-56-cloud-amd64".into(),
                Some("6.1.192-2".into())
            ))
        );
        assert_eq!(
            kernel_dependency(
                "kmod, linux-image-6.1.0-56-amd64-unsigned | linux-image-6.1.0-56-amd64"
            ),
            Some(("linux-image-6.1.0-56-amd64-unsigned".into(), None))
        );
        assert_eq!(
            kernel_dependency("kmod, linux-base (>= 4.3~), initramfs-tools | linux-initramfs-tool"),
            None
        );
    }

    #[test]
    fn without_apt_a_cached_kernel_is_used() {
        let root = tempfile::tempdir().unwrap();
        let cache = KernelCache::new(root.path().to_path_buf());
        fake_entry(
            &cache,
            "linux-image-6.1.0-99-test",
            "6.1.1-1",
            "linux-image-cloud-amd64",
        );
        let mut said = Vec::new();
        let kernel = obtain_with(
            &mote_config::Kernel::default(),
            Path::new("."),
            &cache,
            &no_apt(),
            &mut |m| said.push(m.to_string()),
        )
        .unwrap();
        assert!(kernel.from_cache);
        assert_eq!(kernel.version, "6.1.0-99-test");
        assert_eq!(
            kernel.package.as_deref(),
            Some("linux-image-6.1.0-99-test 6.1.1-1")
        );
        assert!(
            said[0].starts_with("kernel 6.1.0-99-test (cached"),
            "{said:?}"
        );
    }

    #[test]
    fn without_apt_and_cache_the_error_says_what_to_do() {
        let root = tempfile::tempdir().unwrap();
        let cache = KernelCache::new(root.path().to_path_buf());
        let err = obtain_with(
            &mote_config::Kernel::default(),
            Path::new("."),
            &cache,
            &no_apt(),
            &mut |_| {},
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot run `apt-cache` to fetch linux-image-cloud-amd64: install apt, or set [kernel] path and modules to a local kernel"
        );
    }

    #[test]
    fn local_kernel_paths_are_relative_to_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("k/lib/modules/6.9.0-local")).unwrap();
        std::fs::write(dir.path().join("k/vmlinuz"), b"kernel").unwrap();
        let kernel = mote_config::Kernel {
            path: Some("k/vmlinuz".into()),
            modules: Some("k/lib/modules/6.9.0-local/".into()),
            ..Default::default()
        };
        let cache = KernelCache::new(dir.path().join("cache"));
        let resolved = obtain_with(&kernel, dir.path(), &cache, &no_apt(), &mut |_| {}).unwrap();
        assert_eq!(resolved.version, "6.9.0-local");
        assert_eq!(resolved.package, None);
        assert_eq!(resolved.vmlinuz, dir.path().join("k/vmlinuz"));
        assert!(!resolved.from_cache);

        let no_modules = mote_config::Kernel {
            modules: None,
            ..kernel.clone()
        };
        let err = obtain_with(&no_modules, dir.path(), &cache, &no_apt(), &mut |_| {}).unwrap_err();
        assert!(
            matches!(err, KernelError::LocalModulesUnset { .. }),
            "{err}"
        );

        let bad_modules = mote_config::Kernel {
            modules: Some("k/nothing".into()),
            ..kernel.clone()
        };
        let err =
            obtain_with(&bad_modules, dir.path(), &cache, &no_apt(), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("k/nothing"), "{err}");

        let bad_path = mote_config::Kernel {
            path: Some("k/none".into()),
            ..kernel
        };
        let err = obtain_with(&bad_path, dir.path(), &cache, &no_apt(), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("k/none"), "{err}");
    }
}

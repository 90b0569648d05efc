//! The module tree of a kernel (`lib/modules/VERSION`) and the dependency
//! closure of the modules an image asks for.
//!
//! Names compare with `-` and `_` equal, as the kernel does. A name listed in
//! `modules.builtin` is satisfied with no file. Dependencies come from
//! `modules.dep` when the tree has one (a kernel installed with depmod), else
//! from each module's `.modinfo` (`depends=`, plus `softdep=pre:` names that
//! are module files; aliases such as `crc32c` are not resolved).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::error::io_error;
use crate::modinfo::{self, split_module_file_name, Compression};
use crate::{normalize, KernelError};

/// A module file to put into an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Its name, with `_` for `-` (`virtio_rng`).
    pub name: String,
    /// The file on the host.
    pub path: PathBuf,
    /// Its path inside `lib/modules/VERSION`, as on the host (compression
    /// suffix included).
    pub relative: PathBuf,
}

impl Module {
    /// Its path inside `lib/modules/VERSION` once decompressed: `relative`
    /// with a `.xz` or `.zst` suffix dropped. Images hold modules
    /// uncompressed, since the kernel may not load compressed ones.
    pub fn image_relative(&self) -> PathBuf {
        match self.compression() {
            Compression::None => self.relative.clone(),
            Compression::Xz | Compression::Zstd => self.relative.with_extension(""),
        }
    }

    /// Whether the host file is compressed.
    pub fn is_compressed(&self) -> bool {
        self.compression() != Compression::None
    }

    /// The module's bytes, decompressed.
    pub fn read(&self) -> Result<Vec<u8>, KernelError> {
        modinfo::read_module(&self.path)
    }

    fn compression(&self) -> Compression {
        let file_name = self
            .relative
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        split_module_file_name(file_name).map_or(Compression::None, |(_, c)| c)
    }
}

/// Resolves module names against a kernel's modules directory: the full
/// dependency closure in load order (dependencies before their dependents),
/// each module once, built-ins skipped.
///
/// A name that is neither a module file nor built in fails with
/// [`KernelError::UnknownModule`], naming the nearest real modules.
pub fn resolve_modules(modules_dir: &Path, names: &[String]) -> Result<Vec<Module>, KernelError> {
    Tree::scan(modules_dir)?.closure(names)
}

/// The names of all module files under a modules directory, sorted; for
/// listing what a kernel offers.
pub fn available_modules(modules_dir: &Path) -> Result<Vec<String>, KernelError> {
    Ok(Tree::scan(modules_dir)?.files.into_keys().collect())
}

/// The names of the modules built into the kernel (normalized, sorted),
/// from `modules.builtin` or `modules.builtin.modinfo`; empty when it has
/// neither.
pub fn builtin_modules(modules_dir: &Path) -> Result<Vec<String>, KernelError> {
    Ok(read_builtin(modules_dir)?.into_iter().collect())
}

/// One kernel's modules, by normalized name.
struct Tree {
    dir: PathBuf,
    /// Module files: name → path relative to `dir`.
    files: BTreeMap<String, PathBuf>,
    /// Names built into the kernel.
    builtin: BTreeSet<String>,
    /// The graph from `modules.dep`, when the tree has one.
    dep: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    InProgress,
    Done,
}

impl Tree {
    fn scan(dir: &Path) -> Result<Self, KernelError> {
        std::fs::metadata(dir).map_err(io_error("reading modules directory", dir))?;
        let builtin = read_builtin(dir)?;
        let dep_path = dir.join("modules.dep");
        let (files, dep) = match std::fs::read_to_string(&dep_path) {
            Ok(text) => {
                let (files, dep) = parse_modules_dep(&dep_path, dir, &text)?;
                (files, Some(dep))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut files = BTreeMap::new();
                walk(dir, Path::new(""), &mut files)?;
                (files, None)
            }
            Err(e) => return Err(io_error("reading", &dep_path)(e)),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            builtin,
            dep,
        })
    }

    fn closure(&self, names: &[String]) -> Result<Vec<Module>, KernelError> {
        let mut state = HashMap::new();
        let mut stack = Vec::new();
        let mut order = Vec::new();
        for name in names {
            let n = normalize(name);
            if self.files.contains_key(&n) {
                self.visit(&n, &mut state, &mut stack, &mut order)?;
            } else if !self.builtin.contains(&n) {
                return Err(KernelError::UnknownModule {
                    name: name.clone(),
                    suggestions: self.suggest(&n),
                });
            }
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        state: &mut HashMap<String, Visit>,
        stack: &mut Vec<String>,
        order: &mut Vec<Module>,
    ) -> Result<(), KernelError> {
        match state.get(name) {
            Some(Visit::Done) => return Ok(()),
            Some(Visit::InProgress) => {
                let start = stack.iter().position(|s| s == name).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(name.to_string());
                return Err(KernelError::DependencyCycle { cycle });
            }
            None => {}
        }
        state.insert(name.to_string(), Visit::InProgress);
        stack.push(name.to_string());
        let (hard, soft) = self.dependencies(name)?;
        for dep in hard {
            if self.files.contains_key(&dep) {
                self.visit(&dep, state, stack, order)?;
            } else if !self.builtin.contains(&dep) {
                return Err(KernelError::MissingDependency {
                    module: name.to_string(),
                    dependency: dep,
                });
            }
        }
        for dep in soft {
            // Soft dependencies are best effort: absent or cyclic ones are skipped.
            if self.files.contains_key(&dep) && state.get(&dep) != Some(&Visit::InProgress) {
                self.visit(&dep, state, stack, order)?;
            }
        }
        stack.pop();
        state.insert(name.to_string(), Visit::Done);
        let relative = self.files[name].clone();
        order.push(Module {
            name: name.to_string(),
            path: self.dir.join(&relative),
            relative,
        });
        Ok(())
    }

    /// Hard and soft dependencies of a module file, normalized.
    fn dependencies(&self, name: &str) -> Result<(Vec<String>, Vec<String>), KernelError> {
        if let Some(dep) = &self.dep {
            return Ok((dep.get(name).cloned().unwrap_or_default(), Vec::new()));
        }
        let path = self.dir.join(&self.files[name]);
        let bytes = modinfo::read_module(&path)?;
        let info = modinfo::modinfo(&path, &bytes)?;
        let norm = |v: Vec<String>| {
            v.iter()
                .map(|d| normalize(d))
                .filter(|d| d != name)
                .collect()
        };
        Ok((norm(info.depends), norm(info.soft_pre)))
    }

    /// Up to three real module names nearest to `name`.
    fn suggest(&self, name: &str) -> Vec<String> {
        let mut scored: Vec<(f64, &String)> = self
            .files
            .keys()
            .chain(&self.builtin)
            .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
            .filter(|(score, _)| *score >= 0.75)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        scored.dedup_by(|a, b| a.1 == b.1);
        scored.into_iter().take(3).map(|(_, n)| n.clone()).collect()
    }
}

/// Built-in names from `modules.builtin`, else `modules.builtin.modinfo`.
fn read_builtin(dir: &Path) -> Result<BTreeSet<String>, KernelError> {
    let read = |name: &str| match std::fs::read(dir.join(name)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KernelError::Io {
            action: "reading",
            path: dir.join(name),
            source,
        }),
    };
    if let Some(bytes) = read("modules.builtin")? {
        return Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| {
                Path::new(line.trim())
                    .file_name()?
                    .to_str()
                    .map(String::from)
            })
            .filter_map(|file| split_module_file_name(&file).map(|(stem, _)| normalize(stem)))
            .collect());
    }
    if let Some(bytes) = read("modules.builtin.modinfo")? {
        return Ok(bytes
            .split(|b| *b == 0)
            .filter_map(|entry| entry.split(|b| *b == b'.').next())
            .filter(|name| !name.is_empty())
            .map(|name| normalize(&String::from_utf8_lossy(name)))
            .collect());
    }
    Ok(BTreeSet::new())
}

/// Module files of the tree (`kernel/`, `updates/`, `extra/`…), not following
/// symbolic links (`build` and `source` point at headers). When a name
/// appears twice, `updates/` wins, then the first in path order.
fn walk(
    root: &Path,
    relative: &Path,
    files: &mut BTreeMap<String, PathBuf>,
) -> Result<(), KernelError> {
    let dir = root.join(relative);
    let io = |source| KernelError::Io {
        action: "listing",
        path: dir.clone(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let file_type = entry.file_type().map_err(io)?;
        let child = relative.join(entry.file_name());
        if file_type.is_dir() {
            walk(root, &child, files)?;
        } else if file_type.is_file() {
            let file_name = entry.file_name();
            let Some((stem, _)) = file_name.to_str().and_then(split_module_file_name) else {
                continue;
            };
            let name = normalize(stem);
            let preferred = child.starts_with("updates");
            if preferred || !files.contains_key(&name) {
                files.insert(name, child);
            }
        }
    }
    Ok(())
}

type DepGraph = (BTreeMap<String, PathBuf>, BTreeMap<String, Vec<String>>);

/// Parses `modules.dep`: `kernel/a.ko: kernel/b.ko kernel/c.ko` per line,
/// paths relative to the modules directory (or absolute under it).
fn parse_modules_dep(path: &Path, dir: &Path, text: &str) -> Result<DepGraph, KernelError> {
    let mut files = BTreeMap::new();
    let mut graph = BTreeMap::new();
    let module_name = |p: &str| -> Option<(String, PathBuf)> {
        let relative = Path::new(p)
            .strip_prefix(dir)
            .unwrap_or(Path::new(p))
            .to_path_buf();
        let file_name = relative.file_name()?.to_str()?;
        let (stem, _) = split_module_file_name(file_name)?;
        Some((normalize(stem), relative))
    };
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || KernelError::BadModulesDep {
            path: path.to_path_buf(),
            line: index + 1,
            text: line.to_string(),
        };
        let (module, deps) = line.split_once(':').ok_or_else(bad)?;
        let (name, relative) = module_name(module.trim()).ok_or_else(bad)?;
        let deps = deps
            .split_whitespace()
            .map(|d| module_name(d).map(|(n, _)| n).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()?;
        files.insert(name.clone(), relative);
        graph.insert(name, deps);
    }
    Ok((files, graph))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::module_elf;

    /// A modules directory holding fake modules: (relative path, deps).
    fn tree(modules: &[(&str, &[&str])], builtin: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (relative, deps) in modules {
            let path = dir.path().join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let stem = split_module_file_name(path.file_name().unwrap().to_str().unwrap())
                .unwrap()
                .0;
            let elf = module_elf(&normalize(stem), deps);
            let bytes = if relative.ends_with(".zst") {
                zstd::encode_all(&elf[..], 1).unwrap()
            } else {
                elf
            };
            std::fs::write(path, bytes).unwrap();
        }
        let builtin: String = builtin.iter().map(|b| format!("kernel/{b}.ko\n")).collect();
        std::fs::write(dir.path().join("modules.builtin"), builtin).unwrap();
        dir
    }

    fn names(modules: &[Module]) -> Vec<&str> {
        modules.iter().map(|m| m.name.as_str()).collect()
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dependencies_come_first_and_once() {
        // Diamond: top needs left and right, both need base; base needs a built-in.
        let dir = tree(
            &[
                ("kernel/top.ko", &["left", "right"]),
                ("kernel/a/left.ko", &["base"]),
                ("kernel/b/right.ko.zst", &["base", "crc32c_generic"]),
                ("kernel/base.ko", &["ext4"]),
                ("kernel/other-thing.ko", &[]),
            ],
            &["ext4", "crc32c_generic"],
        );
        let modules = resolve_modules(
            dir.path(),
            &strings(&["top", "other_thing", "right", "ext4"]),
        )
        .unwrap();
        assert_eq!(
            names(&modules),
            ["base", "left", "right", "top", "other_thing"]
        );
        let right = &modules[2];
        assert_eq!(right.relative, Path::new("kernel/b/right.ko.zst"));
        assert_eq!(right.image_relative(), Path::new("kernel/b/right.ko"));
        assert!(right.is_compressed());
        assert_eq!(
            right.read().unwrap(),
            module_elf("right", &["base", "crc32c_generic"])
        );
        assert_eq!(modules[4].relative, Path::new("kernel/other-thing.ko"));
    }

    #[test]
    fn cycles_are_rejected() {
        let dir = tree(
            &[
                ("kernel/a.ko", &["b"]),
                ("kernel/b.ko", &["c"]),
                ("kernel/c.ko", &["a"]),
            ],
            &[],
        );
        let err = resolve_modules(dir.path(), &strings(&["a"])).unwrap_err();
        assert!(
            matches!(&err, KernelError::DependencyCycle { cycle } if cycle == &["a", "b", "c", "a"])
        );
        assert_eq!(err.to_string(), "module dependency cycle: a -> b -> c -> a");
    }

    #[test]
    fn missing_dependency_is_named() {
        let dir = tree(&[("kernel/a.ko", &["ghost"])], &[]);
        let err = resolve_modules(dir.path(), &strings(&["a"])).unwrap_err();
        assert!(
            err.to_string().contains("module a depends on ghost"),
            "{err}"
        );
    }

    #[test]
    fn typo_gets_suggestions() {
        let dir = tree(
            &[
                ("kernel/virtio_net.ko", &[]),
                ("kernel/virtio_pci.ko", &[]),
                ("kernel/virtio-rng.ko", &[]),
                ("kernel/nf_tables.ko", &[]),
            ],
            &["virtio_console"],
        );
        let err = resolve_modules(dir.path(), &strings(&["virtio_nett"])).unwrap_err();
        let KernelError::UnknownModule { name, suggestions } = &err else {
            panic!("{err}")
        };
        assert_eq!(name, "virtio_nett");
        assert_eq!(suggestions.first().map(String::as_str), Some("virtio_net"));
        assert!(suggestions.len() <= 3);
        let message = err.to_string();
        assert!(
            message
                .starts_with("module `virtio_nett` is not in this kernel (did you mean virtio_net"),
            "{message}"
        );
        assert!(message.contains("find DIR -name '*.ko*'"), "{message}");
    }

    #[test]
    fn bundle_members_missing_say_so() {
        let dir = tree(&[("kernel/virtio_net.ko", &[])], &[]);
        let err =
            resolve_modules(dir.path(), &crate::expand_drivers(&strings(&["e1000"]))).unwrap_err();
        assert!(
            err.to_string().contains("the `e1000` bundle asks for it"),
            "{err}"
        );
    }

    #[test]
    fn modules_dep_is_used_when_present() {
        let dir = tempfile::tempdir().unwrap();
        // No module files at all: the graph and paths come from modules.dep alone.
        std::fs::write(
            dir.path().join("modules.dep"),
            "kernel/net/nft_ct.ko.xz: kernel/net/nf_tables.ko.xz kernel/net/nf_conntrack.ko.xz kernel/lib/libcrc32c.ko.xz\n\
             kernel/net/nf_tables.ko.xz: kernel/lib/libcrc32c.ko.xz\n\
             kernel/net/nf_conntrack.ko.xz: kernel/lib/libcrc32c.ko.xz\n\
             kernel/lib/libcrc32c.ko.xz:\n\n",
        )
        .unwrap();
        let modules = resolve_modules(dir.path(), &strings(&["nft-ct"])).unwrap();
        assert_eq!(
            names(&modules),
            ["libcrc32c", "nf_tables", "nf_conntrack", "nft_ct"]
        );
        assert_eq!(
            modules[3].image_relative(),
            Path::new("kernel/net/nft_ct.ko")
        );
        assert_eq!(
            available_modules(dir.path()).unwrap(),
            ["libcrc32c", "nf_conntrack", "nf_tables", "nft_ct"]
        );
    }

    #[test]
    fn malformed_modules_dep_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("modules.dep"),
            "kernel/a.ko:\ngarbage line\n",
        )
        .unwrap();
        let err = resolve_modules(dir.path(), &strings(&["a"])).unwrap_err();
        assert!(
            matches!(err, KernelError::BadModulesDep { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn builtin_modinfo_is_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("modules.builtin.modinfo"),
            b"ext4.license=GPL\0ext4.alias=fs-ext4\0af_packet.x=y\0",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("kernel")).unwrap();
        assert!(
            resolve_modules(dir.path(), &strings(&["ext4", "af-packet"]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn missing_directory_is_named() {
        let err = resolve_modules(Path::new("/nonexistent/lib/modules/1.0"), &[]).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/lib/modules/1.0"),
            "{err}"
        );
    }
}

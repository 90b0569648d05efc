//! `build`: plan both initramfs segments, then write the outputs.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::cpio::{self, Meta};
use crate::error::io_error;
use crate::layout::{self, Content, Copy, Entry, Kind, Layout};
use crate::report::{BuildReport, FileReport, KernelReport, ManifestReport, Sizes};
use crate::{kernel_cmdline, packages, ImageBuildError, NODE_MODULES};

/// zstd level of both segments: level 9 packs within ~3 % of level 15 at
/// about seven times its speed; higher levels cost seconds per build.
const ZSTD_LEVEL: i32 = 9;

/// Everything a build reads.
#[derive(Debug, Clone, Copy)]
pub struct BuildInputs<'a> {
    /// The parsed manifest.
    pub manifest: &'a mote_config::Manifest,
    /// Its path: `[[files]]` sources are relative to its directory.
    pub manifest_path: &'a Path,
    /// Its text, hashed into the report.
    pub manifest_text: &'a str,
    /// Directory of the static node binaries: `mote-init` and `bin:NAME` sources.
    pub bin_dir: &'a Path,
    /// The kernel, from `mote_kernel::obtain`.
    pub kernel: &'a mote_kernel::ResolvedKernel,
}

/// Builds the image into `out_dir` (created if missing): `vmlinuz`,
/// `initrd.img`, `cmdline` and `build.json`, each written to a temporary
/// file and renamed into place. Everything is checked before anything is
/// written. The same inputs give byte-identical `vmlinuz` and `initrd.img`.
pub fn build(
    inputs: &BuildInputs,
    out_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<BuildReport, ImageBuildError> {
    let started = Instant::now();
    let mtime = source_date_epoch();
    let kernel = inputs.kernel;

    let manifest_dir = inputs.manifest_path.parent().unwrap_or(Path::new(""));
    let packages = packages::find(
        inputs.manifest,
        manifest_dir,
        packages::Builtins::Pack {
            bin_dir: inputs.bin_dir,
            mtime,
        },
    )?;
    let mut names = mote_kernel::expand_drivers(&inputs.manifest.kernel.drivers);
    names.extend(NODE_MODULES.iter().map(|m| m.to_string()));
    for p in &packages {
        names.extend(p.package.manifest.modules.iter().cloned());
    }
    let modules = mote_kernel::resolve_modules(&kernel.modules_dir, &names).map_err(|source| {
        ImageBuildError::Modules {
            modules_dir: kernel.modules_dir.clone(),
            source,
        }
    })?;
    let module_list: String = modules
        .iter()
        .map(|m| format!("{}\n", m.image_relative().display()))
        .collect();

    let builtin = mote_kernel::builtin_modules(&kernel.modules_dir).map_err(|source| {
        ImageBuildError::Modules {
            modules_dir: kernel.modules_dir.clone(),
            source,
        }
    })?;
    let builtin_list: String = builtin.iter().map(|m| format!("{m}\n")).collect();
    let userland = plan_userland(inputs, [module_list, builtin_list], &packages)?;
    check_programs(inputs.manifest, &userland)?;
    let module_layout = plan_modules(&kernel.version, &modules, &userland)?;
    progress(&format!(
        "packing {} files and {} modules",
        userland.files().count(),
        modules.len()
    ));

    std::fs::create_dir_all(out_dir).map_err(io_error("creating", out_dir))?;
    let mut sizes = write_atomic(&out_dir.join("initrd.img"), |file, path| {
        write_initrd(file, &userland, &module_layout, mtime).map_err(io_error("writing", path))
    })?;
    sizes.kernel = write_atomic(&out_dir.join("vmlinuz"), |file, path| {
        let mut source =
            File::open(&kernel.vmlinuz).map_err(io_error("reading", &kernel.vmlinuz))?;
        io::copy(&mut source, file).map_err(io_error("writing", path))
    })?;
    let cmdline = kernel_cmdline(inputs.manifest);
    write_atomic(&out_dir.join("cmdline"), |file, path| {
        file.write_all(format!("{cmdline}\n").as_bytes())
            .map_err(io_error("writing", path))
    })?;

    let outputs = crate::outputs::write(
        &crate::outputs::Parts {
            name: &inputs.manifest.image.name,
            out_dir,
            vmlinuz: &out_dir.join("vmlinuz"),
            initrd: &out_dir.join("initrd.img"),
            cmdline: &cmdline,
            kernel_version: &kernel.version,
            epoch: u64::from(mtime),
            secure_boot: inputs
                .manifest
                .image
                .secure_boot
                .as_ref()
                .map(|sb| (manifest_dir.join(&sb.key), manifest_dir.join(&sb.cert))),
        },
        &inputs.manifest.image.outputs,
        progress,
    )?;
    let report = BuildReport {
        manifest: ManifestReport {
            path: inputs.manifest_path.to_path_buf(),
            sha256: hex::encode(Sha256::digest(inputs.manifest_text.as_bytes())),
        },
        kernel: KernelReport {
            version: kernel.version.clone(),
            package: kernel.package.clone(),
            bytes: sizes.kernel,
        },
        packages: packages::reports(&packages),
        cmdline,
        files: userland
            .files()
            .map(|(path, bytes, mode)| FileReport {
                destination: format!("/{path}"),
                bytes,
                mode: format!("{mode:04o}"),
            })
            .collect(),
        modules: modules.iter().map(|m| m.name.clone()).collect(),
        sizes,
        outputs,
        build_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
    write_atomic(&out_dir.join("build.json"), |file, path| {
        file.write_all(&json)
            .and_then(|()| file.write_all(b"\n"))
            .map_err(io_error("writing", path))
    })?;
    progress(&format!(
        "wrote {} (initramfs {} KiB: userland {} KiB, modules {} KiB)",
        out_dir.display(),
        sizes.initramfs / 1024,
        sizes.userland_compressed / 1024,
        sizes.modules_compressed / 1024
    ));
    Ok(report)
}

/// `SOURCE_DATE_EPOCH` when set to a number, else 0.
pub(crate) fn source_date_epoch() -> u32 {
    mtime_from(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref())
}

fn mtime_from(value: Option<&str>) -> u32 {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(0, |secs| u32::try_from(secs).unwrap_or(u32::MAX))
}

/// The first segment: mote's own files and directories plus `[[files]]`.
fn plan_userland(
    inputs: &BuildInputs,
    [module_list, builtin_list]: [String; 2],
    packages: &[packages::Found],
) -> Result<Layout, ImageBuildError> {
    let manifest = inputs.manifest;
    let mut layout = Layout::default();
    let mote = "mote";
    let dirs = [
        "dev",
        "proc",
        "sys",
        "run",
        "state",
        "etc",
        "etc/mote",
        "usr",
        "usr/bin",
        "var",
        "lib",
        "lib/modules",
    ];
    for dir in dirs {
        layout.insert(dir.into(), Entry::dir(0o755, mote))?;
    }
    layout.insert("tmp".into(), Entry::dir(0o1777, mote))?;
    layout.insert(
        format!("lib/modules/{}", inputs.kernel.version),
        Entry::dir(0o755, mote),
    )?;
    let console = Entry {
        kind: Kind::CharDevice { major: 5, minor: 1 },
        ..Entry::dir(0o600, mote)
    };
    layout.insert("dev/console".into(), console)?;

    let init = inputs.bin_dir.join("mote-init");
    let init_meta = std::fs::metadata(&init)
        .ok()
        .filter(|m| m.is_file())
        .ok_or_else(|| ImageBuildError::MissingInit { path: init.clone() })?;
    crate::elf::check_static(
        &init,
        &File::open(&init).map_err(io_error("reading", &init))?,
    )?;
    let init_entry = Entry {
        kind: Kind::File {
            content: Content::Host(init.clone()),
            size: init_meta.len(),
        },
        ..Entry::dir(0o755, "mote-init")
    };
    layout.insert("init".into(), init_entry)?;

    // [management]: the HTTPS agent, run by PID 1 as the service `moted`.
    if manifest.management.enabled {
        let moted = inputs.bin_dir.join("moted");
        let moted_meta = std::fs::metadata(&moted)
            .ok()
            .filter(|m| m.is_file())
            .ok_or_else(|| ImageBuildError::MissingMoted {
                path: moted.clone(),
            })?;
        crate::elf::check_static(
            &moted,
            &File::open(&moted).map_err(io_error("reading", &moted))?,
        )?;
        let moted_entry = Entry {
            kind: Kind::File {
                content: Content::Host(moted.clone()),
                size: moted_meta.len(),
            },
            ..Entry::dir(0o755, "[management]")
        };
        layout.insert("usr/bin/moted".into(), moted_entry)?;
    }

    let manifest_dir = inputs.manifest_path.parent().unwrap_or(Path::new(""));
    for copy in &manifest.files {
        let destination = copy.destination.as_str();
        let bad_value = |key, source| ImageBuildError::BadValue {
            destination: destination.to_string(),
            key,
            source,
        };
        // TODO: owner "root"/"nobody" names, if mote_config::parse_owner grows them.
        let (uid, gid) =
            mote_config::parse_owner(&copy.owner).map_err(|e| bad_value("owner", e))?;
        let mode = copy
            .mode
            .as_deref()
            .map(mote_config::parse_mode)
            .transpose()
            .map_err(|e| bad_value("mode", e))?;
        let source = match copy.source.strip_prefix("bin:") {
            Some(name) => {
                let path = inputs.bin_dir.join(name);
                if name.is_empty() || name.contains('/') || !path.exists() {
                    return Err(ImageBuildError::MissingBin {
                        destination: destination.into(),
                        name: name.into(),
                        path,
                    });
                }
                path
            }
            None => manifest_dir.join(&copy.source),
        };
        let mut written = destination.to_string();
        if written.ends_with('/') {
            if let Some(name) = source.file_name() {
                written.push_str(&name.to_string_lossy());
            }
        }
        let path = layout::normalize(&written).ok_or_else(|| ImageBuildError::BadDestination {
            destination: destination.into(),
        })?;
        let origin = format!("[[files]] source {:?}", copy.source);
        Copy {
            uid,
            gid,
            mode,
            destination,
            origin,
        }
        .add(&mut layout, &source, path)?;
    }
    // Packages after [[files]]: a file of the manifest at a package's path wins.
    let mut node_settings = manifest.settings();
    let (package_users, package_groups) =
        packages::install(packages, &mut layout, &mut node_settings, mote_roles::ALL)?;
    packages::trust_files(
        &manifest.packages,
        manifest_dir,
        inputs.bin_dir,
        &mut layout,
    )?;
    let mut settings = serde_json::to_vec_pretty(&node_settings).unwrap_or_default();
    settings.push(b'\n');
    let passwd = format!(
        "root:x:0:0:root:/:/nonexistent\n{package_users}nobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n"
    );
    let group = format!("root:x:0:\n{package_groups}nobody:x:65534:\n");
    let hostname = format!("{}\n", manifest.system.hostname);
    for (path, bytes) in [
        ("etc/mote/settings.json", settings),
        ("etc/mote/modules", module_list.into_bytes()),
        (
            mote_config::paths::MODULES_BUILTIN.trim_start_matches('/'),
            builtin_list.into_bytes(),
        ),
        ("etc/passwd", passwd.into_bytes()),
        ("etc/group", group.into_bytes()),
        ("etc/hostname", hostname.into_bytes()),
    ] {
        layout.insert(path.into(), Entry::bytes(bytes, 0o644, mote))?;
    }
    layout.add_parents(None);
    Ok(layout)
}

/// The second segment: the module files under `lib/modules/VERSION`,
/// decompressed.
fn plan_modules(
    version: &str,
    modules: &[mote_kernel::Module],
    userland: &Layout,
) -> Result<Layout, ImageBuildError> {
    let mut layout = Layout::default();
    for module in modules {
        let path = format!(
            "lib/modules/{version}/{}",
            module.image_relative().display()
        );
        let entry = if module.is_compressed() {
            let bytes = module.read().map_err(|source| ImageBuildError::Modules {
                modules_dir: module.path.parent().unwrap_or(Path::new("")).to_path_buf(),
                source,
            })?;
            Entry::bytes(bytes, 0o644, &module.name)
        } else {
            let size = std::fs::metadata(&module.path)
                .map_err(io_error("reading", &module.path))?
                .len();
            Entry {
                kind: Kind::File {
                    content: Content::Host(module.path.clone()),
                    size,
                },
                ..Entry::dir(0o644, &module.name)
            }
        };
        layout.insert(path, entry)?;
    }
    layout.add_parents(Some(userland));
    Ok(layout)
}

/// Each service's and first-boot command's program must be in the image.
fn check_programs(
    manifest: &mote_config::Manifest,
    layout: &Layout,
) -> Result<(), ImageBuildError> {
    let services = manifest
        .services
        .iter()
        .map(|(name, s)| (format!("services.{name}.argv"), &s.argv));
    let first_boot = manifest
        .first_boot
        .iter()
        .enumerate()
        .map(|(i, f)| (format!("first_boot[{i}].argv"), &f.argv));
    for (key, argv) in services.chain(first_boot) {
        if let Some(program) = argv.first() {
            if !layout.is_executable(program) {
                return Err(ImageBuildError::MissingProgram {
                    key,
                    program: program.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Counts what passes through to the file: the compressed sizes.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Two zstd frames, each a whole cpio archive: userland, then modules.
fn write_initrd(
    file: &mut File,
    userland: &Layout,
    modules: &Layout,
    mtime: u32,
) -> io::Result<Sizes> {
    let mut out = Counting {
        inner: BufWriter::with_capacity(1 << 18, file),
        count: 0,
    };
    let (userland_uncompressed, next_inode) = write_segment(&mut out, userland, mtime, 1)?;
    let userland_compressed = out.count;
    let (modules_uncompressed, _) = write_segment(&mut out, modules, mtime, next_inode)?;
    out.flush()?;
    Ok(Sizes {
        kernel: 0,
        initramfs: out.count,
        userland_compressed,
        userland_uncompressed,
        modules_compressed: out.count - userland_compressed,
        modules_uncompressed,
    })
}

/// One zstd-compressed archive; returns its uncompressed size and the next
/// free inode number.
fn write_segment(
    out: &mut impl Write,
    layout: &Layout,
    mtime: u32,
    first_inode: u32,
) -> io::Result<(u64, u32)> {
    let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
    encoder.include_checksum(true)?;
    let mut archive = cpio::Writer::with_first_inode(
        Counting {
            inner: encoder,
            count: 0,
        },
        first_inode,
    );
    for (path, entry) in &layout.entries {
        let meta = Meta {
            uid: entry.uid,
            gid: entry.gid,
            mode: entry.mode,
            mtime,
        };
        match &entry.kind {
            Kind::Dir => archive.dir(path, meta)?,
            Kind::Symlink(target) => archive.symlink(path, meta, target)?,
            Kind::CharDevice { major, minor } => archive.char_device(path, meta, *major, *minor)?,
            Kind::File {
                content: Content::Bytes(bytes),
                ..
            } => archive.file_bytes(path, meta, bytes)?,
            Kind::File {
                content: Content::Host(source),
                size,
            } => {
                let mut file = File::open(source).map_err(|e| annotate(e, source))?;
                archive
                    .file(path, meta, *size, &mut file)
                    .map_err(|e| annotate(e, source))?;
            }
        }
    }
    let next_inode = archive.next_inode();
    let counted = archive.finish()?;
    counted.inner.finish()?;
    Ok((counted.count, next_inode))
}

/// Names the host file in an I/O error met while adding it.
fn annotate(error: io::Error, source: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", source.display()))
}

/// Writes `path` through a temporary file beside it, renamed into place only
/// when `write` succeeds.
pub(crate) fn write_atomic<T>(
    path: &Path,
    write: impl FnOnce(&mut File, &Path) -> Result<T, ImageBuildError>,
) -> Result<T, ImageBuildError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = File::create(&tmp).map_err(io_error("creating", &tmp))?;
    let result = write(&mut file, &tmp)
        .and_then(|value| {
            file.set_permissions(std::fs::Permissions::from_mode(0o644))
                .map_err(io_error("writing", &tmp))?;
            Ok(value)
        })
        .and_then(|value| {
            std::fs::rename(&tmp, path)
                .map(|()| value)
                .map_err(io_error("renaming into place", path))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_date_epoch_sets_every_time() {
        assert_eq!(mtime_from(None), 0);
        assert_eq!(mtime_from(Some("1700000000")), 1_700_000_000);
        assert_eq!(mtime_from(Some(" 42\n")), 42);
        assert_eq!(mtime_from(Some("yesterday")), 0);
        assert_eq!(mtime_from(Some("99999999999")), u32::MAX);
    }

    #[test]
    fn counting_counts_what_passes() {
        let mut out = Counting {
            inner: Vec::new(),
            count: 0,
        };
        out.write_all(b"hello").unwrap();
        assert_eq!((out.count, out.inner.len()), (5, 5));
    }
}

//! `mote image edit DISK --set KEY=VALUE --add-file SRC:DEST`: change the
//! settings a disk boots with and add files to it, without booting it
//! (Nano Server's `Edit-NanoServerImage`).
//!
//! The UKI's initramfs gets one more archive holding the new
//! `/etc/mote/settings.json` and the added files: the kernel unpacks
//! archives in order and a later file replaces an earlier one, so nothing
//! already there is rewritten. (Removing a file would need the archives
//! rewritten; it is not offered.) The new settings are checked as the node checks a settings
//! change (types, then every rule and each role's section), the UKI is
//! assembled again from the stub and its sections, and written over the
//! old one in the ESP. A qcow2 or VHDX is edited through a raw copy and
//! converted back. The state partition is not touched: a node that has
//! already stored settings of its own keeps them (change those over the
//! API).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use mote_config::NodeSettings;
use serde::Serialize;
use serde_json::Value;
use sha2::Digest;

use crate::uki::{Payload, Section};

/// One setting changed.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    /// Dotted key.
    pub key: String,
    /// Before (null when unset).
    pub old: Value,
    /// After.
    pub new: Value,
}

/// A file to add: the host file `source` at `destination` on the node,
/// with the source's mode, owned by root.
#[derive(Debug, Clone)]
pub struct AddFile {
    /// On this host.
    pub source: PathBuf,
    /// Absolute path on the node.
    pub destination: String,
}

/// A file to add, read and checked: (path in the archive, mode, bytes).
type Added = (String, u32, Vec<u8>);

/// Reads and checks each file to add: a plain absolute destination that is
/// not one of mote's own, a regular source file, static if an executable.
fn read_added(files: &[AddFile]) -> Result<Vec<Added>, String> {
    use std::os::unix::fs::PermissionsExt;
    files
        .iter()
        .map(|f| {
            let what = format!("--add-file {}:{}", f.source.display(), f.destination);
            let dest = crate::layout::normalize(&f.destination).ok_or_else(|| {
                format!("{what}: the destination must be an absolute path without . or ..")
            })?;
            if let Some(why) = crate::layout::reserved(&dest) {
                return Err(format!("{what}: {why}; change settings with --set"));
            }
            let file = std::fs::File::open(&f.source).map_err(|e| format!("{what}: {e}"))?;
            let meta = file.metadata().map_err(|e| format!("{what}: {e}"))?;
            if !meta.is_file() {
                return Err(format!("{what}: the source is not a regular file"));
            }
            crate::elf::check_static(&f.source, &file).map_err(|e| format!("{what}: {e}"))?;
            let bytes = std::fs::read(&f.source).map_err(|e| format!("{what}: {e}"))?;
            Ok((dest, meta.permissions().mode() & 0o7777, bytes))
        })
        .collect()
}

/// Apply `sets` (dotted key, value) to the settings of the disk at `path`
/// and add `files`; `sign` (key, certificate) signs the new UKI when the
/// old one was signed. Returns what changed (settings by dotted key, files
/// by path).
pub fn edit(
    path: &Path,
    sets: &[(String, Value)],
    files: &[AddFile],
    sign: Option<(&Path, &Path)>,
) -> Result<Vec<Change>, String> {
    let added = read_added(files)?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (raw, convert_back) = match ext {
        "raw" | "img" | "vhd" => (path.to_path_buf(), None),
        "qcow2" | "vhdx" => {
            let raw = work.path().join("disk.raw");
            crate::inspect::to_raw(path, &raw)?;
            (raw, Some(ext))
        }
        _ => {
            return Err(format!(
                "{}: give a disk (.raw, .qcow2, .vhdx, .vhd) that mote build wrote",
                path.display()
            ))
        }
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&raw)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let (start, len) = crate::inspect::esp(&mut file, path)?;
    let slice = crate::disk::Slice::new(&mut file, start, len).map_err(|e| e.to_string())?;
    let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new())
        .map_err(|e| format!("{}: the ESP is not FAT ({e})", path.display()))?;
    let boot_path = crate::disk::BOOT_PATH.join("/");
    let mut uki = Vec::new();
    fs.root_dir()
        .open_file(&boot_path)
        .and_then(|mut f| f.read_to_end(&mut uki))
        .map_err(|e| format!("{}: no {boot_path} ({e})", path.display()))?;
    let signed = crate::inspect::is_signed(&uki);
    if signed && sign.is_none() {
        return Err(format!(
            "{}: its UKI is signed for Secure Boot and an edit would void the signature; pass \
             --secure-boot-key KEY --secure-boot-cert CERT to sign it again",
            path.display()
        ));
    }
    let sections = crate::uki::sections(&uki).ok_or("the boot file is not a PE image")?;
    let section = |name: &str| -> Vec<u8> {
        sections
            .iter()
            .find(|s| s.0 == name)
            .and_then(|s| uki.get(s.2 as usize..s.2 as usize + s.1 as usize))
            .unwrap_or_default()
            .to_vec()
    };
    let mut initrd = section(".initrd");
    let mut unpacked = Vec::new();
    zstd::stream::read::Decoder::new(initrd.as_slice())
        .and_then(|mut d| d.read_to_end(&mut unpacked))
        .map_err(|e| format!("the UKI's initramfs does not decompress: {e}"))?;
    let entries = crate::cpio::entries(&unpacked)?;
    let old: Value = entries
        .iter()
        .rev()
        .find(|e| e.name == "etc/mote/settings.json")
        .and_then(|e| serde_json::from_slice(&e.data).ok())
        .ok_or("the image has no /etc/mote/settings.json")?;

    let mut new = old.clone();
    for (key, value) in sets {
        let patch = mote_config::json::dotted_patch(key, value.clone())
            .ok_or_else(|| format!("{key:?} is not a dotted key such as system.hostname"))?;
        mote_config::json::merge_patch(&mut new, &patch);
    }
    let typed: NodeSettings = serde_path_to_error::deserialize(&new)
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
    typed.validate_with(mote_roles::ALL).map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let mut changes: Vec<Change> = sets
        .iter()
        .map(|(key, _)| Change {
            key: key.clone(),
            old: mote_config::json::lookup(&old, key)
                .cloned()
                .unwrap_or_default(),
            new: mote_config::json::lookup(&new, key)
                .cloned()
                .unwrap_or_default(),
        })
        .filter(|c| c.old != c.new)
        .collect();
    let settings_changed = !changes.is_empty();
    let size = |bytes: usize| Value::String(format!("{bytes} bytes"));
    for (dest, _, bytes) in &added {
        let old = entries
            .iter()
            .rev()
            .find(|e| e.name == *dest)
            .map_or(Value::Null, |e| size(e.data.len()));
        changes.push(Change {
            key: format!("/{dest}"),
            old,
            new: size(bytes.len()),
        });
    }
    if changes.is_empty() {
        return Ok(changes);
    }

    let mut overlay = crate::cpio::Writer::new(Vec::new());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0);
    let meta = |mode: u32| {
        let mut meta = crate::cpio::Meta::new(mode);
        meta.mtime = epoch;
        meta
    };
    if settings_changed {
        let text = serde_json::to_vec_pretty(&new).map_err(|e| e.to_string())?;
        overlay
            .file_bytes("etc/mote/settings.json", meta(0o644), &text)
            .map_err(|e| e.to_string())?;
    }
    // Parents first, as the kernel's unpacker needs them (0755, root).
    let mut known: std::collections::HashSet<&str> =
        entries.iter().map(|e| e.name.as_str()).collect();
    for (dest, mode, bytes) in &added {
        for (end, _) in dest.match_indices('/') {
            let parent = &dest[..end];
            if known.insert(parent) {
                overlay
                    .dir(parent, meta(0o755))
                    .map_err(|e| e.to_string())?;
            }
        }
        overlay
            .file_bytes(dest, meta(*mode), bytes)
            .map_err(|e| e.to_string())?;
    }
    let archive = overlay.finish().map_err(|e| e.to_string())?;
    let compressed = zstd::stream::encode_all(archive.as_slice(), 19).map_err(|e| e.to_string())?;
    // Archives start on 4-byte boundaries.
    initrd.resize(initrd.len().next_multiple_of(4), 0);
    initrd.extend_from_slice(&compressed);

    let (osrel, cmdline, uname, linux) = (
        section(".osrel"),
        section(".cmdline"),
        section(".uname"),
        section(".linux"),
    );
    let parts = [
        (".osrel", &osrel),
        (".cmdline", &cmdline),
        (".uname", &uname),
        (".initrd", &initrd),
        (".linux", &linux),
    ];
    let new_uki = work.path().join("new.efi");
    let sections: Vec<Section<'_>> = parts
        .iter()
        .map(|(name, data)| Section {
            name,
            payload: Payload::Bytes(data),
        })
        .collect();
    crate::uki::write(Path::new(crate::uki::STUB), &sections, &new_uki)
        .map_err(|e| e.to_string())?;
    if let (true, Some((key, cert))) = (signed, sign) {
        crate::sign::sign(&new_uki, key, cert, u64::from(epoch)).map_err(|e| e.to_string())?;
    }
    let bytes = std::fs::read(&new_uki).map_err(|e| e.to_string())?;
    {
        let mut target = fs
            .root_dir()
            .create_file(&boot_path)
            .map_err(|e| format!("{}: {boot_path}: {e}", path.display()))?;
        target.truncate().map_err(|e| e.to_string())?;
        target
            .write_all(&bytes)
            .and_then(|()| target.flush())
            .map_err(|e| format!("{}: writing the new UKI into the ESP: {e}", path.display()))?;
    }
    fs.unmount().map_err(|e| e.to_string())?;
    drop(file);
    if let Some(format) = convert_back {
        let seed = hex::encode(sha2::Sha256::digest(&bytes));
        let out: PathBuf = work.path().join(format!("disk.{format}"));
        crate::formats::convert(&raw, format, &out, seed.as_bytes()).map_err(|e| e.to_string())?;
        std::fs::rename(&out, path)
            .or_else(|_| std::fs::copy(&out, path).map(|_| ()))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(changes)
}

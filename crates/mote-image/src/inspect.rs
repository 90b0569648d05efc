//! `mote image inspect DISK`: what a disk or a UKI holds, read without
//! booting it: the partitions, the UKI (signed or not, kernel, command
//! line, os-release), and from its initramfs the node's settings, its
//! packages and its files.
//!
//! A qcow2 or VHDX is read through `qemu-img convert` into a temporary raw
//! file; a raw disk and a fixed VHD (a raw disk with a footer) are read in
//! place.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde::Serialize;

/// What a disk holds.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The partitions, in table order (empty for a bare UKI).
    pub partitions: Vec<PartitionInfo>,
    /// The UKI that boots.
    pub uki: UkiInfo,
    /// `/etc/mote/settings.json` of the image: the settings it boots with
    /// until changed.
    pub settings: serde_json::Value,
    /// `/usr/lib/mote/packages/*.toml`: name and version of each package.
    pub packages: Vec<(String, String)>,
    /// Regular files in the initramfs.
    pub files: usize,
    /// Their bytes, uncompressed.
    pub file_bytes: u64,
}

/// One GPT partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionInfo {
    /// 1-based number.
    pub number: u32,
    /// GPT name.
    pub name: String,
    /// Start, bytes.
    pub start: u64,
    /// Size, bytes.
    pub size: u64,
}

/// The UKI's sections.
#[derive(Debug, Clone, Serialize)]
pub struct UkiInfo {
    /// Its size.
    pub bytes: u64,
    /// Whether it carries an Authenticode signature.
    pub signed: bool,
    /// `.uname`: the kernel release.
    pub kernel: String,
    /// `.cmdline`.
    pub cmdline: String,
    /// `.osrel`.
    pub os_release: String,
    /// The sections: name and size.
    pub sections: Vec<(String, u32)>,
}

fn err(what: impl std::fmt::Display) -> String {
    what.to_string()
}

/// Inspect `path`: a disk (`.raw`, `.qcow2`, `.vhdx`, `.vhd`) or a UKI
/// (`.efi`).
pub fn inspect(path: &Path) -> Result<Inspection, String> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let named = |e: io::Error| format!("{}: {e}", path.display());
    if ext == "efi" {
        let uki = std::fs::read(path).map_err(named)?;
        return from_uki(&uki, Vec::new());
    }
    let work = tempfile::tempdir().map_err(err)?;
    let raw_path = match ext {
        "raw" | "img" | "vhd" => path.to_path_buf(),
        "qcow2" | "vhdx" => {
            let raw = work.path().join("disk.raw");
            to_raw(path, &raw)?;
            raw
        }
        _ => {
            return Err(format!(
                "{}: give a disk (.raw, .qcow2, .vhdx, .vhd) or a UKI (.efi) that mote build wrote",
                path.display()
            ))
        }
    };
    let mut file = File::open(&raw_path).map_err(named)?;
    let table = gpt::GptConfig::new()
        .only_valid_headers(false)
        .open_from_device(&mut file)
        .map_err(|e| format!("{}: no GPT partition table ({e})", path.display()))?;
    let partitions: Vec<PartitionInfo> = table
        .partitions()
        .iter()
        .map(|(n, p)| PartitionInfo {
            number: *n,
            name: p.name.clone(),
            start: p.first_lba * 512,
            size: (p.last_lba + 1 - p.first_lba) * 512,
        })
        .collect();
    drop(table);
    let (start, len) = esp(&mut file, path)?;
    let slice = crate::disk::Slice::new(&mut file, start, len).map_err(named)?;
    let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new())
        .map_err(|e| format!("{}: the ESP is not FAT ({e})", path.display()))?;
    let mut uki = Vec::new();
    fs.root_dir()
        .open_file(&crate::disk::BOOT_PATH.join("/"))
        .and_then(|mut f| f.read_to_end(&mut uki))
        .map_err(|e| format!("{}: no /EFI/BOOT/BOOTX64.EFI ({e})", path.display()))?;
    from_uki(&uki, partitions)
}

/// `qemu-img convert` a qcow2 or VHDX at `disk` to a raw file `raw`.
pub(crate) fn to_raw(disk: &Path, raw: &Path) -> Result<(), String> {
    let qemu_img = crate::tools::find("qemu-img")
        .ok_or("qemu-img is needed to read a qcow2 or VHDX: apt-get install qemu-utils")?;
    let out = std::process::Command::new(qemu_img)
        .args(["convert", "-O", "raw"])
        .arg(disk)
        .arg(raw)
        .output()
        .map_err(err)?;
    if !out.status.success() {
        return Err(format!(
            "{}: qemu-img cannot read it: {}",
            disk.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Where the EFI system partition of the raw disk `file` is: (start, size)
/// in bytes. `path` names the disk in errors.
pub(crate) fn esp(file: &mut File, path: &Path) -> Result<(u64, u64), String> {
    let table = gpt::GptConfig::new()
        .only_valid_headers(false)
        .open_from_device(&mut *file)
        .map_err(|e| format!("{}: no GPT partition table ({e})", path.display()))?;
    table
        .partitions()
        .values()
        .find(|p| p.part_type_guid == gpt::partition_types::EFI)
        .map(|p| (p.first_lba * 512, (p.last_lba + 1 - p.first_lba) * 512))
        .ok_or_else(|| format!("{}: no EFI system partition", path.display()))
}

fn from_uki(uki: &[u8], partitions: Vec<PartitionInfo>) -> Result<Inspection, String> {
    let sections = crate::uki::sections(uki).ok_or("the boot file is not a PE image")?;
    let section = |name: &str| -> &[u8] {
        sections
            .iter()
            .find(|s| s.0 == name)
            .and_then(|s| uki.get(s.2 as usize..s.2 as usize + s.1 as usize))
            .unwrap_or_default()
    };
    let text = |name: &str| String::from_utf8_lossy(section(name)).trim().to_string();
    let mut initrd = Vec::new();
    zstd::stream::read::Decoder::new(section(".initrd"))
        .and_then(|mut d| d.read_to_end(&mut initrd))
        .map_err(|e| format!("the UKI's initramfs does not decompress: {e}"))?;
    let entries = crate::cpio::entries(&initrd)?;
    // The last entry of a path wins, as when the kernel unpacks them.
    let find = |path: &str| entries.iter().rev().find(|e| e.name == path);
    let settings = find("etc/mote/settings.json")
        .and_then(|e| serde_json::from_slice(&e.data).ok())
        .unwrap_or(serde_json::Value::Null);
    let packages = entries
        .iter()
        .filter(|e| e.name.starts_with("usr/lib/mote/packages/") && e.name.ends_with(".toml"))
        .filter_map(|e| {
            let doc: toml::Table = std::str::from_utf8(&e.data).ok()?.parse().ok()?;
            let get = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let package = doc.get("package").and_then(|p| p.as_table());
            let name =
                get("name").or_else(|| package?.get("name")?.as_str().map(str::to_string))?;
            let version = get("version")
                .or_else(|| package?.get("version")?.as_str().map(str::to_string))
                .unwrap_or_default();
            Some((name, version))
        })
        .collect();
    let regular: Vec<_> = entries
        .iter()
        .filter(|e| e.mode & 0o170000 == 0o100000)
        .collect();
    Ok(Inspection {
        partitions,
        uki: UkiInfo {
            bytes: uki.len() as u64,
            signed: is_signed(uki),
            kernel: text(".uname"),
            cmdline: text(".cmdline"),
            os_release: text(".osrel"),
            sections: sections.iter().map(|s| (s.0.clone(), s.1)).collect(),
        },
        settings,
        packages,
        files: regular.len(),
        file_bytes: regular.iter().map(|e| e.data.len() as u64).sum(),
    })
}

/// Whether the PE's certificate table (data directory 4) is set.
pub(crate) fn is_signed(pe: &[u8]) -> bool {
    let at = |i: usize| {
        pe.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let Some(header) = at(0x3c) else { return false };
    let optional = header as usize + 24;
    at(optional + 112 + 4 * 8 + 4).is_some_and(|size| size != 0)
}

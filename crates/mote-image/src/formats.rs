//! The raw disk in the formats hypervisors take: qcow2 and VHDX through
//! `qemu-img convert` (the reference writer of both, in Debian's
//! `qemu-utils`), then made reproducible; a fixed VHD written here (a raw
//! disk and a 512-byte footer, simpler than running a converter).
//!
//! qcow2 from `qemu-img` is already a pure function of its input. A VHDX
//! is not: `qemu-img` draws the file, data and log GUIDs, the virtual
//! disk's identity (its SCSI page 83 data) and the headers' sequence
//! numbers at random, and leaves the log entry it used while writing.
//! [`settle_vhdx`] replaces each with a value derived from the disk's
//! digest, clears the spent log (the headers' log GUID is zero: nothing to
//! replay) and recomputes the headers' CRC-32C, as the VHDX specification
//! (MS-VHDX §2.2) defines them.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::disk::derived_guid;

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// `qemu-img` is missing or failed.
    #[error("qemu-img: {0}")]
    QemuImg(String),
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// `qemu-img` wrote a VHDX this code does not recognise.
    #[error("{path}: unexpected VHDX layout ({why}); report the qemu-img version")]
    Vhdx {
        /// The file.
        path: PathBuf,
        /// What was unexpected.
        why: &'static str,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FormatError {
    let path = path.to_path_buf();
    move |source| FormatError::Io {
        action,
        path,
        source,
    }
}

/// `qemu-img convert -f raw -O FORMAT raw out` (through `out.partial`).
pub fn convert(raw: &Path, format: &str, out: &Path, seed: &[u8]) -> Result<(), FormatError> {
    let qemu_img = crate::tools::find("qemu-img")
        .ok_or_else(|| FormatError::QemuImg("not installed: apt-get install qemu-utils".into()))?;
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut command = Command::new(&qemu_img);
    command.args(["convert", "-q", "-f", "raw", "-O", format]);
    if format == "vhdx" {
        command.args(["-o", "subformat=dynamic"]);
    }
    let result = (|| {
        let done = command
            .arg(raw)
            .arg(&partial)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| FormatError::QemuImg(format!("running {}: {e}", qemu_img.display())))?;
        if !done.status.success() {
            return Err(FormatError::QemuImg(
                String::from_utf8_lossy(&done.stderr).trim().to_string(),
            ));
        }
        if format == "vhdx" {
            settle_vhdx(&partial, seed)?;
        }
        std::fs::rename(&partial, out).map_err(io_err("rename", &partial))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

const KIB64: u64 = 64 * 1024;
/// The region table's entry for the metadata region.
const METADATA_REGION: uuid::Uuid = uuid::uuid!("8B7CA206-4790-4B9A-B8FE-575F050F886E");
/// The metadata item holding the virtual disk's SCSI identity.
const PAGE83_ITEM: uuid::Uuid = uuid::uuid!("BECA12AB-B2E6-4523-93EF-C309E000C746");

/// A GUID as VHDX stores it (the Windows layout: the first three fields
/// little-endian).
fn guid_bytes(guid: uuid::Uuid) -> [u8; 16] {
    guid.to_bytes_le()
}

fn crc32c(data: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISCSI).checksum(data)
}

/// Make a `qemu-img` VHDX reproducible (see the module docs).
pub fn settle_vhdx(path: &Path, seed: &[u8]) -> Result<(), FormatError> {
    let bad = |why| FormatError::Vhdx {
        path: path.to_path_buf(),
        why,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    let read_at = |file: &mut File, at: u64, len: usize| -> Result<Vec<u8>, FormatError> {
        let mut buf = vec![0u8; len];
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.read_exact(&mut buf))
            .map_err(io_err("read", path))?;
        Ok(buf)
    };
    let mut headers = [
        read_at(&mut file, KIB64, 4096)?,
        read_at(&mut file, 2 * KIB64, 4096)?,
    ];
    if headers.iter().any(|h| &h[..4] != b"head") {
        return Err(bad("no header signatures"));
    }
    let seq = |h: &[u8]| u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
    let first_is_newer = seq(&headers[0]) > seq(&headers[1]);
    let log_offset = u64::from_le_bytes(headers[0][72..80].try_into().unwrap_or_default());
    let log_length = u32::from_le_bytes(headers[0][68..72].try_into().unwrap_or_default());
    if headers.iter().any(|h| h[48..64] != [0u8; 16]) {
        return Err(bad("the log is not empty"));
    }
    for (i, header) in headers.iter_mut().enumerate() {
        let newer = (i == 0) == first_is_newer;
        header[8..16].copy_from_slice(&(1 + u64::from(newer)).to_le_bytes());
        header[16..32].copy_from_slice(&guid_bytes(derived_guid(seed, "vhdx file write")));
        header[32..48].copy_from_slice(&guid_bytes(derived_guid(seed, "vhdx data write")));
        header[4..8].fill(0);
        let sum = crc32c(header);
        header[4..8].copy_from_slice(&sum.to_le_bytes());
    }
    let write_at = |file: &mut File, at: u64, data: &[u8]| {
        file.seek(SeekFrom::Start(at))
            .and_then(|_| file.write_all(data))
            .map_err(io_err("write", path))
    };
    write_at(&mut file, KIB64, &headers[0])?;
    write_at(&mut file, 2 * KIB64, &headers[1])?;
    if log_offset >= KIB64 && log_length > 0 {
        let zeros = vec![0u8; log_length as usize];
        write_at(&mut file, log_offset, &zeros)?;
    }

    // The region table (at 192 KiB) says where the metadata region is; its
    // table lists the page 83 item.
    let regions = read_at(&mut file, 3 * KIB64, 4096)?;
    if &regions[..4] != b"regi" {
        return Err(bad("no region table"));
    }
    let count = u32::from_le_bytes(regions[8..12].try_into().unwrap_or_default()) as usize;
    let metadata = (0..count.min(100))
        .map(|i| &regions[16 + 32 * i..48 + 32 * i])
        .find(|e| uuid::Uuid::from_slice_le(&e[..16]).ok() == Some(METADATA_REGION))
        .map(|e| u64::from_le_bytes(e[16..24].try_into().unwrap_or_default()))
        .ok_or(bad("no metadata region"))?;
    let table = read_at(&mut file, metadata, KIB64 as usize)?;
    if &table[..8] != b"metadata" {
        return Err(bad("no metadata table"));
    }
    let entries = u16::from_le_bytes([table[10], table[11]]) as usize;
    let page83 = (0..entries.min(2047))
        .map(|i| &table[32 + 32 * i..64 + 32 * i])
        .find(|e| uuid::Uuid::from_slice_le(&e[..16]).ok() == Some(PAGE83_ITEM))
        .map(|e| u32::from_le_bytes(e[16..20].try_into().unwrap_or_default()))
        .ok_or(bad("no page 83 item"))?;
    write_at(
        &mut file,
        metadata + u64::from(page83),
        &guid_bytes(derived_guid(seed, "vhdx disk id")),
    )?;
    file.sync_all().map_err(io_err("sync", path))
}

/// Seconds from 1970 to 2000-01-01, the VHD epoch.
const VHD_EPOCH: u64 = 946_684_800;

/// The 512-byte footer of a fixed VHD of `size` bytes (Microsoft's VHD
/// specification: "Hard Disk Footer Format").
pub fn vhd_footer(size: u64, guid: uuid::Uuid, epoch: u64) -> [u8; 512] {
    let mut f = [0u8; 512];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: reserved bit
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[16..24].copy_from_slice(&u64::MAX.to_be_bytes()); // fixed: no header
    let stamp = epoch.saturating_sub(VHD_EPOCH).min(u64::from(u32::MAX)) as u32;
    f[24..28].copy_from_slice(&stamp.to_be_bytes());
    f[28..32].copy_from_slice(b"mote");
    f[32..36].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[36..40].copy_from_slice(b"Wi2k");
    f[40..48].copy_from_slice(&size.to_be_bytes());
    f[48..56].copy_from_slice(&size.to_be_bytes());
    let (c, h, s) = chs(size / 512);
    f[56..58].copy_from_slice(&c.to_be_bytes());
    f[58] = h;
    f[59] = s;
    f[60..64].copy_from_slice(&2u32.to_be_bytes()); // fixed disk
    f[68..84].copy_from_slice(guid.as_bytes());
    let sum = !f
        .iter()
        .fold(0u32, |acc, b| acc.wrapping_add(u32::from(*b)));
    f[64..68].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The specification's CHS geometry for `sectors`.
fn chs(sectors: u64) -> (u16, u8, u8) {
    let total = sectors.min(65_535 * 16 * 255);
    let (spt, heads, cyl_heads) = if total >= 65_535 * 16 * 63 {
        (255, 16, total / 255)
    } else {
        let mut spt = 17;
        let mut cyl_heads = total / spt;
        let mut heads = cyl_heads.div_ceil(1024).max(4);
        if cyl_heads >= heads * 1024 || heads > 16 {
            spt = 31;
            heads = 16;
            cyl_heads = total / spt;
        }
        if cyl_heads >= heads * 1024 {
            spt = 63;
            heads = 16;
            cyl_heads = total / spt;
        }
        (spt, heads, cyl_heads)
    };
    ((cyl_heads / heads) as u16, heads as u8, spt as u8)
}

/// A fixed VHD: the raw disk, then its footer.
pub fn write_vhd(raw: &Path, out: &Path, seed: &[u8], epoch: u64) -> Result<(), FormatError> {
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = (|| {
        let size = std::fs::metadata(raw).map_err(io_err("read", raw))?.len();
        // A copy keeps the raw file's holes where the file system can.
        std::fs::copy(raw, &partial).map_err(io_err("copy into", &partial))?;
        let mut file = OpenOptions::new()
            .append(true)
            .open(&partial)
            .map_err(io_err("open", &partial))?;
        file.write_all(&vhd_footer(size, derived_guid(seed, "vhd"), epoch))
            .and_then(|()| file.sync_all())
            .map_err(io_err("write", &partial))?;
        std::fs::rename(&partial, out).map_err(io_err("rename", &partial))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhd_footer_fields_and_checksum() {
        let guid = derived_guid(b"s", "vhd");
        let f = vhd_footer(60 << 20, guid, VHD_EPOCH + 5);
        assert_eq!(&f[..8], b"conectix");
        assert_eq!(u64::from_be_bytes(f[48..56].try_into().unwrap()), 60 << 20);
        assert_eq!(u32::from_be_bytes(f[60..64].try_into().unwrap()), 2);
        assert_eq!(u32::from_be_bytes(f[24..28].try_into().unwrap()), 5);
        let mut zeroed = f;
        zeroed[64..68].fill(0);
        let sum = !zeroed
            .iter()
            .fold(0u32, |a, b| a.wrapping_add(u32::from(*b)));
        assert_eq!(u32::from_be_bytes(f[64..68].try_into().unwrap()), sum);
        assert_eq!(&f[68..84], guid.as_bytes());
    }

    #[test]
    fn chs_follows_the_specification_table() {
        // 60 MiB: 17 sectors per track, 8 heads.
        assert_eq!(chs(122_880), (903, 8, 17));
        // Large disks: 255 sectors per track, 16 heads.
        assert_eq!(chs(65_535 * 16 * 63).1, 16);
        assert_eq!(chs(65_535 * 16 * 63).2, 255);
        assert_eq!(chs(u64::MAX), (65_535, 16, 255));
    }

    #[test]
    fn vhdx_from_qemu_img_becomes_reproducible_and_stays_valid() {
        let Some(qemu_img) = crate::tools::find("qemu-img") else {
            eprintln!("skipped: qemu-img missing (apt-get install qemu-utils)");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("d.raw");
        let mut data = vec![0u8; 4 << 20];
        data[..13].copy_from_slice(b"hello, vhdx!\n");
        data[3 << 20] = 7;
        std::fs::write(&raw, &data).unwrap();
        let a = dir.path().join("a.vhdx");
        let b = dir.path().join("b.vhdx");
        convert(&raw, "vhdx", &a, b"seed").unwrap();
        convert(&raw, "vhdx", &b, b"seed").unwrap();
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
        let check = Command::new(&qemu_img)
            .arg("check")
            .arg(&a)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
        let back = dir.path().join("back.raw");
        let out = Command::new(&qemu_img)
            .args(["convert", "-O", "raw"])
            .arg(&a)
            .arg(&back)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(std::fs::read(&back).unwrap() == data);
    }
}

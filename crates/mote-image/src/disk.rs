//! The raw GPT disk: an EFI system partition holding the UKI, and the
//! state partition.
//!
//! | partition | type | size | holds |
//! | --- | --- | --- | --- |
//! | 1 `ESP` | EFI system | room for two UKIs, at least 34 MiB (FAT32's floor) | `/EFI/BOOT/BOOTX64.EFI`, the UKI (slot A); slot B's room |
//! | 2 `mote-state` | Linux file system | 16 MiB, grown by PID 1 to fill the disk | ext4 labelled `mote-state`, empty |
//!
//! A UKI is the whole operating system (kernel and root file system in one
//! file), so an A/B slot is a UKI, and both slots live in the ESP where the
//! firmware reads them; the ESP is made large enough for two.
//!
//! Parts: the `gpt` crate writes the protective MBR and both partition
//! tables, the `fatfs` crate formats the ESP (FAT32) and writes the UKI
//! into it, `mkfs.ext4` (e2fsprogs, on every Linux host) makes the state
//! file system in place. Every identifier is derived from the inputs'
//! digest (disk and partition GUIDs, the FAT serial, the ext4 UUID and hash
//! seed) and every time stamp is `SOURCE_DATE_EPOCH`, so the same inputs
//! give the same bytes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;
/// FAT32 needs 65,525 clusters; with 512-byte clusters and its two FATs
/// that is a little under 33 MiB.
const ESP_FLOOR: u64 = 34 * MIB;
/// The state partition as built: room for the journal and first settings.
pub const STATE_SIZE: u64 = 16 * MIB;
/// The state partition's ext4 label, which PID 1 looks for.
pub const STATE_LABEL: &str = "mote-state";
/// Where the firmware looks for a removable disk's boot loader on x86-64.
pub const BOOT_PATH: [&str; 3] = ["EFI", "BOOT", "BOOTX64.EFI"];

/// Why the disk could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The partition table could not be written.
    #[error("writing the partition table of {path}: {why}")]
    Gpt {
        /// The disk.
        path: PathBuf,
        /// The gpt crate's error.
        why: String,
    },
    /// `mkfs.ext4` is missing or failed.
    #[error("making the state file system: {0}")]
    Mkfs(String),
}

/// Where the partitions are, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Start of the ESP.
    pub esp_start: u64,
    /// Size of the ESP.
    pub esp_size: u64,
    /// Start of the state partition.
    pub state_start: u64,
    /// Size of the state partition.
    pub state_size: u64,
    /// The whole disk.
    pub disk_size: u64,
}

impl Layout {
    /// The layout for a UKI of `uki_len` bytes: 1 MiB for the MBR and the
    /// primary table, the ESP, the state partition, 1 MiB for the backup
    /// table; every partition on a 1 MiB boundary.
    pub fn for_uki(uki_len: u64) -> Self {
        let esp_size = (2 * uki_len + 2 * MIB).div_ceil(MIB) * MIB;
        let esp_size = esp_size.max(ESP_FLOOR);
        let esp_start = MIB;
        let state_start = esp_start + esp_size;
        Layout {
            esp_start,
            esp_size,
            state_start,
            state_size: STATE_SIZE,
            disk_size: state_start + STATE_SIZE + MIB,
        }
    }
}

/// A GUID derived from `seed` and `what`, with the version and variant bits
/// of a random (v4) GUID: unique per image and per use, and reproducible.
pub fn derived_guid(seed: &[u8], what: &str) -> uuid::Uuid {
    let digest = Sha256::new()
        .chain_update(seed)
        .chain_update(b"\0")
        .chain_update(what.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Write the raw disk to `out`: `uki` into the ESP, an empty state file
/// system. `seed` (the inputs' digest) derives every identifier;
/// `epoch` is every time stamp.
pub fn write_raw(uki: &Path, out: &Path, seed: &[u8], epoch: u64) -> Result<Layout, DiskError> {
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| DiskError::Io {
            action,
            path,
            source,
        }
    };
    let uki_len = std::fs::metadata(uki).map_err(io("read", uki))?.len();
    let layout = Layout::for_uki(uki_len);
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = (|| {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .map_err(io("create", &partial))?;
        file.set_len(layout.disk_size)
            .map_err(io("size", &partial))?;
        write_table(&mut file, &layout, seed, &partial)?;
        write_esp(&mut file, &layout, uki, seed, epoch)
            .map_err(io("write the ESP of", &partial))?;
        drop(file);
        make_state(&partial, &layout, seed, epoch)?;
        File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(io("sync", &partial))?;
        std::fs::rename(&partial, out).map_err(io("rename", &partial))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result.map(|()| layout)
}

fn write_table(
    file: &mut File,
    layout: &Layout,
    seed: &[u8],
    path: &Path,
) -> Result<(), DiskError> {
    let gpt_err = |e: &dyn std::fmt::Display| DiskError::Gpt {
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    let mbr = gpt::mbr::ProtectiveMBR::with_lb_size(
        u32::try_from(layout.disk_size / SECTOR - 1).unwrap_or(u32::MAX),
    );
    mbr.overwrite_lba0(file).map_err(|e| gpt_err(&e))?;
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(&mut *file, Some(derived_guid(seed, "disk")))
        .map_err(|e| gpt_err(&e))?;
    let parts = [
        (
            "ESP",
            layout.esp_start,
            layout.esp_size,
            gpt::partition_types::EFI,
        ),
        (
            STATE_LABEL,
            layout.state_start,
            layout.state_size,
            gpt::partition_types::LINUX_FS,
        ),
    ];
    for (id, (name, start, size, kind)) in parts.into_iter().enumerate() {
        disk.add_partition_at(name, id as u32 + 1, start / SECTOR, size / SECTOR, kind, 0)
            .map_err(|e| gpt_err(&e))?;
    }
    // add_partition_at draws random partition GUIDs; derive them instead.
    let mut table = disk.partitions().clone();
    for (id, part) in table.iter_mut() {
        part.part_guid = derived_guid(seed, &format!("partition {id}"));
    }
    disk.update_partitions(table).map_err(|e| gpt_err(&e))?;
    disk.write().map_err(|e| gpt_err(&e))?;
    Ok(())
}

/// FAT time stamps: every file gets `SOURCE_DATE_EPOCH`'s date.
#[derive(Debug)]
struct FixedTime(fatfs::DateTime);

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

fn fat_time(epoch: u64) -> fatfs::DateTime {
    // FAT counts from 1980; earlier times (0 when SOURCE_DATE_EPOCH is
    // unset) become its first day.
    let days = (epoch / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    let secs = epoch % 86_400;
    let (year, month, day, h, min, s) = if y < 1980 {
        (1980, 1, 1, 0, 0, 0)
    } else {
        (
            y.min(2107) as u16,
            m,
            d,
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
        )
    };
    fatfs::DateTime {
        date: fatfs::Date {
            year,
            month: month as u16,
            day: day as u16,
        },
        time: fatfs::Time {
            hour: h as u16,
            min: min as u16,
            sec: s as u16,
            millis: 0,
        },
    }
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn write_esp(
    file: &mut File,
    layout: &Layout,
    uki: &Path,
    seed: &[u8],
    epoch: u64,
) -> io::Result<()> {
    let serial = derived_guid(seed, "esp").as_bytes()[..4]
        .iter()
        .fold(0u32, |acc, b| acc << 8 | u32::from(*b));
    let mut slice = Slice::new(&mut *file, layout.esp_start, layout.esp_size)?;
    fatfs::format_volume(
        &mut slice,
        fatfs::FormatVolumeOptions::new()
            .fat_type(fatfs::FatType::Fat32)
            .bytes_per_cluster(512)
            .volume_id(serial)
            .volume_label(*b"MOTE-ESP   "),
    )?;
    slice.seek(SeekFrom::Start(0))?;
    // The provider must outlive the file system; one leaked value per
    // build is the price of fatfs's `&'static` API.
    let time: &'static FixedTime = Box::leak(Box::new(FixedTime(fat_time(epoch))));
    let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new().time_provider(time))?;
    {
        let root = fs.root_dir();
        let efi = root.create_dir(BOOT_PATH[0])?;
        let boot = efi.create_dir(BOOT_PATH[1])?;
        let mut target = boot.create_file(BOOT_PATH[2])?;
        target.truncate()?;
        io::copy(&mut File::open(uki)?, &mut target)?;
        target.flush()?;
    }
    fs.unmount()
}

fn make_state(disk: &Path, layout: &Layout, seed: &[u8], epoch: u64) -> Result<(), DiskError> {
    let mkfs = crate::tools::find("mkfs.ext4")
        .ok_or_else(|| DiskError::Mkfs("mkfs.ext4 is missing: apt-get install e2fsprogs".into()))?;
    let uuid = derived_guid(seed, "state").to_string();
    let out = Command::new(&mkfs)
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            "4096",
            "-L",
            STATE_LABEL,
            "-U",
            &uuid,
        ])
        .arg("-E")
        .arg(format!(
            "offset={},hash_seed={uuid},root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0",
            layout.state_start
        ))
        .arg(disk)
        .arg(format!("{}k", layout.state_size / 1024))
        // e2fsprogs' own hook for a fixed "now" (its test suite uses it).
        .env("E2FSPROGS_FAKE_TIME", epoch.max(1).to_string())
        .env("MKE2FS_DEVICE_SECTSIZE", "512")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DiskError::Mkfs(format!("running {}: {e}", mkfs.display())))?;
    if !out.status.success() {
        return Err(DiskError::Mkfs(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// A window of a file, for fatfs to format and fill in place.
pub(crate) struct Slice<'a> {
    file: &'a mut File,
    start: u64,
    len: u64,
    at: u64,
}

impl<'a> Slice<'a> {
    pub(crate) fn new(file: &'a mut File, start: u64, len: u64) -> io::Result<Self> {
        file.seek(SeekFrom::Start(start))?;
        Ok(Slice {
            file,
            start,
            len,
            at: 0,
        })
    }
}

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = (self.len - self.at).min(buf.len() as u64) as usize;
        let n = self.file.read(&mut buf[..room])?;
        self.at += n as u64;
        Ok(n)
    }
}

impl Write for Slice<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = (self.len - self.at).min(buf.len() as u64) as usize;
        if room == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "past the end of the partition",
            ));
        }
        let n = self.file.write(&buf[..room])?;
        self.at += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Seek for Slice<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.at.checked_add_signed(d),
        };
        let target = target.filter(|t| *t <= self.len).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek outside the partition")
        })?;
        self.file.seek(SeekFrom::Start(self.start + target))?;
        self.at = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_aligned_and_holds_two_ukis() {
        let small = Layout::for_uki(5 * MIB);
        assert_eq!(small.esp_size, ESP_FLOOR);
        let big = Layout::for_uki(20 * MIB + 3);
        assert!(big.esp_size >= 2 * (20 * MIB + 3));
        for l in [small, big] {
            assert_eq!(l.esp_start % MIB, 0);
            assert_eq!(l.state_start % MIB, 0);
            assert_eq!(l.state_start, l.esp_start + l.esp_size);
            assert_eq!(l.disk_size, l.state_start + l.state_size + MIB);
        }
    }

    #[test]
    fn guids_are_derived_and_distinct() {
        let a = derived_guid(b"seed", "disk");
        assert_eq!(a, derived_guid(b"seed", "disk"));
        assert_ne!(a, derived_guid(b"seed", "state"));
        assert_ne!(a, derived_guid(b"other", "disk"));
        assert_eq!(a.get_version_num(), 4);
    }

    #[test]
    fn fat_dates_follow_the_epoch() {
        let t = fat_time(1_700_000_000); // 2023-11-14 22:13:20 UTC
        assert_eq!((t.date.year, t.date.month, t.date.day), (2023, 11, 14));
        assert_eq!((t.time.hour, t.time.min, t.time.sec), (22, 13, 20));
        assert_eq!(fat_time(0).date.year, 1980);
    }

    #[test]
    fn raw_disk_has_the_table_the_esp_and_the_state_fs() {
        let dir = tempfile::tempdir().unwrap();
        let uki = dir.path().join("n.efi");
        std::fs::write(&uki, b"MZ not really a UKI").unwrap();
        let out = dir.path().join("n.raw");
        let layout = write_raw(&uki, &out, b"seed", 1_700_000_000).unwrap();
        assert_eq!(std::fs::metadata(&out).unwrap().len(), layout.disk_size);

        let disk = gpt::GptConfig::new().open(&out).unwrap();
        let parts: Vec<_> = disk.partitions().values().collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].part_type_guid, gpt::partition_types::EFI);
        assert_eq!(parts[0].first_lba * SECTOR, layout.esp_start);
        assert_eq!(parts[1].name, STATE_LABEL);
        assert_eq!(
            (parts[1].last_lba + 1) * SECTOR,
            layout.state_start + layout.state_size
        );

        let mut file = File::open(&out).unwrap();
        let esp = Slice::new(&mut file, layout.esp_start, layout.esp_size).unwrap();
        let fs = fatfs::FileSystem::new(esp, fatfs::FsOptions::new()).unwrap();
        assert_eq!(fs.fat_type(), fatfs::FatType::Fat32);
        let mut got = Vec::new();
        fs.root_dir()
            .open_file(&BOOT_PATH.join("/"))
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, b"MZ not really a UKI");
        drop(fs);

        let mut sb = [0u8; 136];
        file.seek(SeekFrom::Start(layout.state_start + 1024))
            .unwrap();
        file.read_exact(&mut sb).unwrap();
        assert_eq!(&sb[56..58], &[0x53, 0xEF], "ext4 magic");
        assert_eq!(&sb[120..120 + STATE_LABEL.len()], STATE_LABEL.as_bytes());

        // Byte-identical from the same inputs.
        let again = dir.path().join("again.raw");
        write_raw(&uki, &again, b"seed", 1_700_000_000).unwrap();
        assert!(std::fs::read(&again).unwrap() == std::fs::read(&out).unwrap());

        // The host's tools agree, where present.
        if let Ok(o) = Command::new("sgdisk").arg("-v").arg(&out).output() {
            let text = String::from_utf8_lossy(&o.stdout);
            assert!(text.contains("No problems found"), "{text}");
        }
        let state = dir.path().join("state.ext4");
        let mut region = vec![0u8; layout.state_size as usize];
        file.seek(SeekFrom::Start(layout.state_start)).unwrap();
        file.read_exact(&mut region).unwrap();
        std::fs::write(&state, region).unwrap();
        if let Some(fsck) = crate::tools::find("e2fsck") {
            let o = Command::new(fsck)
                .args(["-n", "-f"])
                .arg(&state)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
        }
    }
}

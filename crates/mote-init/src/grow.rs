//! Growing the state partition and its file system to fill an enlarged disk.
//!
//! A mote image is a small GPT disk (about 60 MiB): the EFI system partition
//! first, the state partition (`mote-state`, ext4) last. When the user makes
//! the disk bigger (`qemu-img resize`, a larger cloud volume), the next boot
//! moves the end of the state partition and of its file system to the new
//! end of the disk: the job cloud-init does with `growpart` and `resize2fs`.
//! The image has no shell and no e2fsprogs, so PID 1 does it in-process, on
//! the mounted file system:
//!
//! 1. sysfs tells whether the state device is a partition, whether it is the
//!    last one, and how much room follows it. With less than 1 MiB the disk
//!    is not even opened, and step 4 reads only the superblock: this runs
//!    on every boot.
//! 2. The GPT is rewritten with the `gpt` crate: the backup table and header
//!    move to the new last sector, the last usable LBA with them, and the
//!    state partition ends there. The new backup is written and synced
//!    before the primary, whose changes all lie in the disk's first 4 KiB:
//!    should a power cut tear that write, firmware and `gdisk` can restore
//!    the table from the backup.
//! 3. The kernel learns the partition's new length from
//!    `BLKPG_RESIZE_PARTITION`; re-reading the whole table is refused while
//!    a partition is mounted.
//! 4. ext4 grows online with `EXT4_IOC_RESIZE_FS` on the mount point, as
//!    `resize2fs` does for a mounted file system.
//!
//! Each step looks at the disk as it is, so a boot cut short between steps
//! is finished by the next one. Limits: only the last partition grows, and
//! only grows; a state disk without a partition table (the old layout) is
//! left alone; a table whose entries are not 128 bytes, or whose primary
//! array does not follow its header, is refused rather than rewritten.

use std::fs::{File, OpenOptions};
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

use gpt::disk::LogicalBlockSize;
use gpt::header::{self, HeaderBuilder};
use gpt::mbr::ProtectiveMBR;
use gpt::partition;

/// Where the kernel lists block devices and partitions.
const SYS_BLOCK: &str = "/sys/class/block";
/// The unit of every size and offset in sysfs, whatever the disk's sectors.
const SYSFS_SECTOR: u64 = 512;
/// The backup GPT at the end of a disk: 32 sectors of entries and a header.
const GPT_BACKUP_SECTORS: u64 = 33;
/// Less room than this is not worth a table rewrite or a resize; it also
/// covers the slack an image builder leaves by aligning partition ends.
const MIN_GROWTH: u64 = 1 << 20;
/// Entries in a partition array the rewrite accepts (128 is the norm).
const MAX_ENTRIES: u32 = 4096;

/// A size change, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grown {
    /// The size before.
    pub from: u64,
    /// The size after.
    pub to: u64,
}

/// Grow the state partition behind `device`, then the ext4 file system
/// mounted from it on `mount_point`. Returns the line to log when something
/// grew; an error is a warning, and the disk keeps the size it had.
pub fn grow_state_disk(device: &Path, mount_point: &Path) -> Result<Option<String>, String> {
    let name = device.display();
    if !is_partition(Path::new(SYS_BLOCK), device) {
        return Ok(None);
    }
    let part = grow_state_partition(device).map_err(|e| format!("cannot grow {name}: {e}"))?;
    match (part, grow_ext4(mount_point, device)) {
        (_, Ok(Some(fs))) => Ok(Some(format!(
            "state: grew {name} from {} to {}",
            human(fs.from),
            human(fs.to)
        ))),
        (Some(part), Ok(None)) => Ok(Some(format!(
            "state: grew partition {name} from {} to {}; its file system already filled it",
            human(part.from),
            human(part.to)
        ))),
        (None, Ok(None)) => Ok(None),
        (Some(part), Err(e)) => Err(format!(
            "grew partition {name} from {} to {} but not its file system: {e}",
            human(part.from),
            human(part.to)
        )),
        (None, Err(e)) => Err(format!("cannot grow the file system on {name}: {e}")),
    }
}

/// Grow `partition` (`/dev/vda2`) to the end of its disk when it is the
/// disk's last partition and at least 1 MiB follows it; `None` when there is
/// nothing to do, a whole disk included.
pub fn grow_state_partition(partition: &Path) -> Result<Option<Grown>, String> {
    let Some(layout) = read_layout(Path::new(SYS_BLOCK), partition)? else {
        return Ok(None);
    };
    if !worth_growing(layout.disk_size, layout.start, layout.size, layout.last) {
        return Ok(None);
    }
    let lb = match layout.logical_block {
        512 => LogicalBlockSize::Lb512,
        4096 => LogicalBlockSize::Lb4096,
        other => return Err(format!("{other}-byte sectors are not supported")),
    };
    let start = layout.start * SYSFS_SECTOR;
    if !start.is_multiple_of(lb.as_u64()) {
        return Err(format!("partition start {start} is not on a sector"));
    }
    let disk = Path::new("/dev").join(&layout.disk);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&disk)
        .map_err(|e| format!("{}: {e}", disk.display()))?;
    let Some((first, last)) = grow_gpt(&mut file, lb, layout.number, start / lb.as_u64())
        .map_err(|e| format!("{}: {e}", disk.display()))?
    else {
        return Ok(None);
    };
    let length = (last + 1 - first) * lb.as_u64();
    resize_partition(&file, layout.number, start, length).map_err(|e| {
        format!(
            "{}: the table is written, but the kernel takes the new size only at the next boot: {e}",
            disk.display()
        )
    })?;
    Ok(Some(Grown {
        from: layout.size * SYSFS_SECTOR,
        to: length,
    }))
}

/// Grow the ext4 file system mounted on `mount_point` from `device` to fill
/// the device; `None` when less than 1 MiB would be gained.
pub fn grow_ext4(mount_point: &Path, device: &Path) -> Result<Option<Grown>, String> {
    let size = File::open(device)
        .and_then(|mut f| f.seek(SeekFrom::End(0)))
        .map_err(|e| format!("{}: {e}", device.display()))?;
    let before = read_superblock(device)?;
    let blocks = size / before.block_size;
    if blocks.saturating_sub(before.blocks) * before.block_size < MIN_GROWTH {
        return Ok(None);
    }
    let dir = File::open(mount_point).map_err(|e| format!("{}: {e}", mount_point.display()))?;
    // SAFETY: the fd is open for the whole call, and the kernel reads one
    // u64 from the pointer, which points at a live local u64.
    let rc = unsafe { libc::ioctl(dir.as_raw_fd(), EXT4_IOC_RESIZE_FS, &blocks as *const u64) };
    if rc != 0 {
        return Err(format!(
            "EXT4_IOC_RESIZE_FS to {blocks} blocks: {}",
            std::io::Error::last_os_error()
        ));
    }
    // The kernel may leave out a last block group too small for its own
    // metadata; what it did is in the superblock.
    let after = read_superblock(device)?;
    if after.blocks <= before.blocks {
        return Ok(None);
    }
    Ok(Some(Grown {
        from: before.blocks * before.block_size,
        to: after.blocks * after.block_size,
    }))
}

/// `_IOW('f', 16, __u64)` from linux/ext4.h.
const EXT4_IOC_RESIZE_FS: libc::Ioctl = 0x4008_6610;
/// `_IO(0x12, 105)` from linux/fs.h.
const BLKPG: libc::Ioctl = 0x1269;
/// From linux/blkpg.h.
const BLKPG_RESIZE_PARTITION: libc::c_int = 3;

/// `struct blkpg_ioctl_arg` from linux/blkpg.h.
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

/// `struct blkpg_partition` from linux/blkpg.h; start and length in bytes.
#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [libc::c_char; 64],
    volname: [libc::c_char; 64],
}

/// Tell the kernel partition `number` of the disk open as `disk` now has
/// `length` bytes, leaving the other partitions and the mounts alone.
fn resize_partition(disk: &File, number: u32, start: u64, length: u64) -> std::io::Result<()> {
    let overflow = || std::io::Error::other("size out of range");
    let mut part = BlkpgPartition {
        start: i64::try_from(start).map_err(|_| overflow())?,
        length: i64::try_from(length).map_err(|_| overflow())?,
        pno: libc::c_int::try_from(number).map_err(|_| overflow())?,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op: BLKPG_RESIZE_PARTITION,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&mut part as *mut BlkpgPartition).cast(),
    };
    // SAFETY: both structs are laid out as linux/blkpg.h declares them and
    // live on this stack frame for the whole call; the kernel only reads
    // `datalen` bytes through `data`.
    let rc = unsafe { libc::ioctl(disk.as_raw_fd(), BLKPG, &arg as *const BlkpgIoctlArg) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Where a partition sits, from sysfs; sizes and offsets in 512-byte units.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    /// The whole disk's name, `vda` for `vda2`.
    disk: String,
    /// The partition's number, its GPT entry index plus one.
    number: u32,
    start: u64,
    size: u64,
    disk_size: u64,
    /// The disk's logical sector size in bytes, the GPT's LBA unit.
    logical_block: u64,
    /// No other partition of the disk starts after this one.
    last: bool,
}

fn is_partition(sys_block: &Path, device: &Path) -> bool {
    device
        .file_name()
        .is_some_and(|name| sys_block.join(name).join("partition").exists())
}

/// The layout of `device` from sysfs under `sys_block`; `None` for a whole
/// disk.
fn read_layout(sys_block: &Path, device: &Path) -> Result<Option<Layout>, String> {
    if !is_partition(sys_block, device) {
        return Ok(None);
    }
    let name = device.file_name().unwrap_or_default();
    let dir = sys_block
        .join(name)
        .canonicalize()
        .map_err(|e| format!("{}: {e}", sys_block.join(name).display()))?;
    let disk_dir = dir
        .parent()
        .ok_or_else(|| format!("{}: no parent disk", dir.display()))?;
    let disk = disk_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{}: no disk name", disk_dir.display()))?
        .to_owned();
    let start = read_number(&dir.join("start"))?;
    let mut last = true;
    for entry in std::fs::read_dir(disk_dir).map_err(|e| format!("{}: {e}", disk_dir.display()))? {
        let other = entry
            .map_err(|e| format!("{}: {e}", disk_dir.display()))?
            .path();
        if other != dir
            && other.join("partition").exists()
            && read_number(&other.join("start"))? > start
        {
            last = false;
        }
    }
    Ok(Some(Layout {
        disk,
        number: u32::try_from(read_number(&dir.join("partition"))?)
            .map_err(|_| format!("{}: partition number out of range", dir.display()))?,
        start,
        size: read_number(&dir.join("size"))?,
        disk_size: read_number(&disk_dir.join("size"))?,
        logical_block: read_number(&disk_dir.join("queue/logical_block_size"))?,
        last,
    }))
}

fn read_number(path: &Path) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.trim()
        .parse()
        .map_err(|_| format!("{}: not a number: {:?}", path.display(), text.trim()))
}

/// Whether a partition at `start` with `size` on a disk of `disk` sectors
/// (all in 512-byte units) should grow: it is the last one, and at least
/// 1 MiB lies between its end and the backup GPT.
fn worth_growing(disk: u64, start: u64, size: u64, last: bool) -> bool {
    let room = disk
        .saturating_sub(GPT_BACKUP_SECTORS)
        .saturating_sub(start.saturating_add(size));
    last && room.saturating_mul(SYSFS_SECTOR) >= MIN_GROWTH
}

/// Rewrite the GPT on `disk` (a whole disk, or an image file) so that its
/// backup sits at the device's last sector and partition `number`, starting
/// at LBA `first`, ends at the new last usable LBA. Returns the partition's
/// first and new last LBA; `None` when it already ends there. Nothing is
/// written unless the table checks out.
fn grow_gpt(
    disk: &mut File,
    lb: LogicalBlockSize,
    number: u32,
    first: u64,
) -> Result<Option<(u64, u64)>, String> {
    let lbs = lb.as_u64();
    let primary = header::read_header_from_arbitrary_device(disk, lb)
        .map_err(|e| format!("primary GPT header: {e}"))?;
    // The gpt crate panics on other entry sizes; HeaderBuilder puts the
    // primary array right after the header.
    if primary.part_size != 128
        || primary.num_parts == 0
        || primary.num_parts > MAX_ENTRIES
        || primary.current_lba != 1
        || primary.part_start != 2
    {
        return Err(format!(
            "unusual GPT (header at LBA {}, {} entries of {} bytes at LBA {}); not rewriting it",
            primary.current_lba, primary.num_parts, primary.part_size, primary.part_start
        ));
    }
    let entries = partition::file_read_partitions(disk, &primary, lb)
        .map_err(|e| format!("GPT entries: {e}"))?;
    let Some(state) = entries.get(&number) else {
        return Err(format!("the GPT has no partition {number}"));
    };
    if state.first_lba != first {
        return Err(format!(
            "partition {number} starts at LBA {} in the GPT but at LBA {first} for the kernel",
            state.first_lba
        ));
    }
    if let Some((other, _)) = entries.iter().find(|(_, p)| p.first_lba > first) {
        return Err(format!("partition {other} follows partition {number}"));
    }
    let sectors = disk.seek(SeekFrom::End(0)).map_err(|e| e.to_string())? / lbs;
    let backup_lba = sectors.saturating_sub(1);
    if primary.backup_lba > backup_lba {
        return Err(format!(
            "the GPT's backup is at LBA {} but the disk ends at LBA {backup_lba}",
            primary.backup_lba
        ));
    }
    let mut new_primary = HeaderBuilder::from_header(&primary)
        .backup_lba(backup_lba)
        .build(lb)
        .map_err(|e| format!("new GPT header: {e}"))?;
    let mut new_backup = HeaderBuilder::from_header(&new_primary)
        .primary(false)
        .build(lb)
        .map_err(|e| format!("new backup GPT header: {e}"))?;
    let last = new_primary.last_usable;
    if state.last_lba < first || last < first {
        return Err(format!(
            "partition {number} spans LBA {first} to {}, outside the disk's usable LBAs",
            state.last_lba
        ));
    }
    if last <= state.last_lba {
        return Ok(None);
    }
    let mut grown = state.clone();
    grown.last_lba = last;

    // The new array: the old one byte for byte (its CRC was checked just
    // now), but for the state partition's entry.
    let mut array = vec![0u8; primary.num_parts as usize * 128];
    let io = |e: std::io::Error| e.to_string();
    disk.seek(SeekFrom::Start(primary.part_start * lbs))
        .map_err(io)?;
    disk.read_exact(&mut array).map_err(io)?;
    grown
        .write_to_device(
            &mut Cursor::new(&mut array),
            u64::from(number - 1),
            0,
            lb,
            128,
        )
        .map_err(io)?;

    // Backup first, synced: should the primary's write be torn, firmware
    // and repair tools find a complete new table at the end. The primary's
    // changes (protective MBR, header, and the entry of a partition
    // numbered up to 24) all lie in the disk's first 4 KiB.
    disk.seek(SeekFrom::Start(new_backup.part_start * lbs))
        .map_err(io)?;
    disk.write_all(&array).map_err(io)?;
    new_backup
        .write_backup(disk, lb)
        .map_err(|e| format!("backup GPT header: {e}"))?;
    disk.sync_all().map_err(io)?;

    grown
        .write_to_device(disk, u64::from(number - 1), new_primary.part_start, lb, 128)
        .map_err(io)?;
    cover_disk_with_protective_mbr(disk, lb, sectors)?;
    new_primary
        .write_primary(disk, lb)
        .map_err(|e| format!("primary GPT header: {e}"))?;
    disk.sync_all().map_err(io)?;
    Ok(Some((first, last)))
}

/// Make the protective MBR's 0xEE partition span the whole grown disk, as
/// the GPT specification asks; other MBRs (hybrid ones) are left alone.
fn cover_disk_with_protective_mbr(
    disk: &mut File,
    lb: LogicalBlockSize,
    sectors: u64,
) -> Result<(), String> {
    let Ok(mut mbr) = ProtectiveMBR::from_disk(disk, lb) else {
        return Ok(());
    };
    let Some(mut record) = mbr.partition(0) else {
        return Ok(());
    };
    let size = u32::try_from(sectors - 1).unwrap_or(u32::MAX);
    let others_empty = (1..4).all(|i| mbr.partition(i).is_some_and(|p| p.os_type == 0));
    if record.os_type != 0xEE || record.lb_start != 1 || !others_empty || record.lb_size >= size {
        return Ok(());
    }
    record.lb_size = size;
    mbr.set_partition(0, record);
    mbr.update_conservative(disk)
        .map_err(|e| format!("protective MBR: {e}"))?;
    Ok(())
}

/// What growing needs from an ext2/3/4 superblock.
#[derive(Debug, PartialEq, Eq)]
struct Superblock {
    block_size: u64,
    blocks: u64,
}

/// Read the superblock of `device` (1024 bytes at 1024). On a mounted file
/// system this is the kernel's copy: both go through the device's cache.
fn read_superblock(device: &Path) -> Result<Superblock, String> {
    let mut sb = [0u8; 1024];
    File::open(device)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(1024))?;
            f.read_exact(&mut sb)
        })
        .map_err(|e| format!("{}: {e}", device.display()))?;
    parse_superblock(&sb).ok_or_else(|| format!("{}: no ext4 superblock", device.display()))
}

/// Fields at their ext4 offsets: blocks count (4, and 0x150 for the high
/// half with the 64bit feature), log block size (24), magic (56), incompat
/// features (0x60).
fn parse_superblock(sb: &[u8; 1024]) -> Option<Superblock> {
    let u32_at = |at: usize| u32::from_le_bytes([sb[at], sb[at + 1], sb[at + 2], sb[at + 3]]);
    if sb[56..58] != [0x53, 0xEF] {
        return None;
    }
    let log = u32_at(24);
    if log > 6 {
        return None;
    }
    let high = if u32_at(0x60) & 0x80 != 0 {
        u64::from(u32_at(0x150))
    } else {
        0
    };
    Some(Superblock {
        block_size: 1024 << log,
        blocks: high << 32 | u64::from(u32_at(4)),
    })
}

/// `60 MiB`, `1.0 GiB`, `2.5 TiB`.
fn human(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    const TIB: u64 = 1 << 40;
    if bytes >= TIB {
        format!("{:.1} TiB", bytes as f64 / TIB as f64)
    } else if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{} MiB", (bytes + MIB / 2) / MIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::{Duration, Instant};

    const MIB_SECTORS: u64 = 2048;
    const ESP_START: u64 = 2048;
    const STATE_START: u64 = 18432;
    /// The state partition of a 64 MiB image, ending at 63 MiB (aligned).
    const STATE_SECTORS: u64 = 63 * MIB_SECTORS - STATE_START;

    /// A 64 MiB GPT image as mote builds them: an ESP, then `mote-state`.
    fn make_image(path: &Path) {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        file.set_len(64 << 20).unwrap();
        let sectors = (64u64 << 20) / 512;
        ProtectiveMBR::with_lb_size(u32::try_from(sectors - 1).unwrap())
            .overwrite_lba0(&mut file)
            .unwrap();
        let mut disk = gpt::GptConfig::new()
            .writable(true)
            .create_from_device(file, None)
            .unwrap();
        disk.add_partition_at(
            "EFI system partition",
            1,
            ESP_START,
            16384,
            gpt::partition_types::EFI,
            0,
        )
        .unwrap();
        disk.add_partition_at(
            "mote-state",
            2,
            STATE_START,
            STATE_SECTORS,
            gpt::partition_types::LINUX_FS,
            0,
        )
        .unwrap();
        disk.write().unwrap().sync_all().unwrap();
    }

    fn open_rw(path: &Path) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap()
    }

    /// The primary table area and the last 33 sectors.
    fn ends(path: &Path) -> (Vec<u8>, Vec<u8>) {
        let bytes = std::fs::read(path).unwrap();
        let tail = bytes.len() - 33 * 512;
        (bytes[..34 * 512].to_vec(), bytes[tail..].to_vec())
    }

    #[test]
    fn grows_only_the_last_partition_with_a_mebibyte_of_room() {
        let disk_64 = 64 * MIB_SECTORS;
        let disk_256 = 256 * MIB_SECTORS;
        // As built: the end aligned to 63 MiB leaves just under 1 MiB.
        assert!(!worth_growing(disk_64, STATE_START, STATE_SECTORS, true));
        assert!(worth_growing(disk_256, STATE_START, STATE_SECTORS, true));
        assert!(!worth_growing(disk_256, STATE_START, STATE_SECTORS, false));
        // Grown: it ends at the last usable sector.
        let filled = disk_256 - 34 - STATE_START + 1;
        assert!(!worth_growing(disk_256, STATE_START, filled, true));
        // The limit is exactly 1 MiB after the backup table is set aside.
        let end = STATE_START + STATE_SECTORS;
        assert!(worth_growing(
            end + 2048 + 33,
            STATE_START,
            STATE_SECTORS,
            true
        ));
        assert!(!worth_growing(
            end + 2047 + 33,
            STATE_START,
            STATE_SECTORS,
            true
        ));
        // Nonsense from sysfs does not underflow.
        assert!(!worth_growing(100, STATE_START, STATE_SECTORS, true));
    }

    #[test]
    fn moves_the_backup_gpt_and_the_last_partition_to_the_end_of_a_grown_file() {
        let dir = tempfile::tempdir().unwrap();
        let as_built = dir.path().join("as-built.img");
        make_image(&as_built);
        assert_eq!(
            grow_gpt(
                &mut open_rw(&as_built),
                LogicalBlockSize::Lb512,
                2,
                STATE_START
            )
            .unwrap(),
            Some((STATE_START, STATE_START + STATE_SECTORS + 2015 - 1)),
            "no threshold here: it fills up to the last usable LBA (worth_growing has one)"
        );

        let image = dir.path().join("disk.img");
        make_image(&image);
        let before = gpt::GptConfig::new().open(&image).unwrap();
        let esp = before.partitions()[&1].clone();
        let state = before.partitions()[&2].clone();
        open_rw(&image).set_len(256 << 20).unwrap();
        let last_lba = (256u64 << 20) / 512 - 1;
        let grown = grow_gpt(
            &mut open_rw(&image),
            LogicalBlockSize::Lb512,
            2,
            STATE_START,
        )
        .unwrap()
        .expect("grown");
        assert_eq!(grown, (STATE_START, last_lba - 33));

        let after = gpt::GptConfig::new()
            .only_valid_headers(true)
            .open(&image)
            .unwrap();
        let primary = after.primary_header().unwrap();
        let backup = after.backup_header().unwrap();
        assert_eq!(primary.backup_lba, last_lba);
        assert_eq!(primary.last_usable, last_lba - 33);
        assert_eq!(backup.current_lba, last_lba);
        assert_eq!(backup.part_start, last_lba - 32);
        assert_eq!(
            primary.first_usable,
            before.primary_header().unwrap().first_usable
        );
        assert_eq!(primary.disk_guid, *before.guid());
        assert_eq!(after.partitions().len(), 2);
        assert_eq!(after.partitions()[&1], esp, "the ESP is untouched");
        let grown_state = &after.partitions()[&2];
        assert_eq!(grown_state.last_lba, primary.last_usable);
        assert_eq!(
            (
                grown_state.first_lba,
                &grown_state.name,
                grown_state.part_guid
            ),
            (state.first_lba, &state.name, state.part_guid)
        );
        let mbr = ProtectiveMBR::from_disk(&mut open_rw(&image), LogicalBlockSize::Lb512).unwrap();
        assert_eq!(u64::from(mbr.partition(0).unwrap().lb_size), last_lba);

        if Command::new("sgdisk").arg("--version").output().is_ok() {
            let out = Command::new("sgdisk")
                .arg("-v")
                .arg(&image)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.contains("No problems found"),
                "sgdisk -v: {text}"
            );
        } else {
            eprintln!("sgdisk is missing (apt-get install gdisk): not cross-checked");
        }

        // Run again: nothing to do, and nothing written.
        let written = ends(&image);
        assert_eq!(
            grow_gpt(
                &mut open_rw(&image),
                LogicalBlockSize::Lb512,
                2,
                STATE_START
            )
            .unwrap(),
            None
        );
        assert_eq!(ends(&image), written);
    }

    #[test]
    fn refuses_a_partition_that_is_not_last_or_not_where_the_kernel_says() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        make_image(&image);
        open_rw(&image).set_len(256 << 20).unwrap();
        let written = ends(&image);
        let lb = LogicalBlockSize::Lb512;
        let e = grow_gpt(&mut open_rw(&image), lb, 1, ESP_START).unwrap_err();
        assert!(e.contains("partition 2 follows partition 1"), "{e}");
        let e = grow_gpt(&mut open_rw(&image), lb, 2, STATE_START + 8).unwrap_err();
        assert!(e.contains("starts at LBA 18432 in the GPT"), "{e}");
        let e = grow_gpt(&mut open_rw(&image), lb, 3, STATE_START).unwrap_err();
        assert!(e.contains("no partition 3"), "{e}");
        assert_eq!(ends(&image), written, "nothing written");

        let blank = dir.path().join("blank.img");
        File::create(&blank).unwrap().set_len(8 << 20).unwrap();
        let e = grow_gpt(&mut open_rw(&blank), lb, 1, 2048).unwrap_err();
        assert!(e.contains("primary GPT header"), "{e}");
    }

    #[test]
    fn reads_the_partition_layout_from_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let disk = root.path().join("devices/pci0/virtio1/block/vda");
        let put = |path: PathBuf, text: &str| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        put(disk.join("size"), "524288\n");
        put(disk.join("queue/logical_block_size"), "512\n");
        for (n, start, size) in [(1, 2048, 16384), (2, 18432, 110592)] {
            let part = disk.join(format!("vda{n}"));
            put(part.join("partition"), &format!("{n}\n"));
            put(part.join("start"), &format!("{start}\n"));
            put(part.join("size"), &format!("{size}\n"));
        }
        let class = root.path().join("class/block");
        std::fs::create_dir_all(&class).unwrap();
        for name in ["vda", "vda1", "vda2"] {
            let target = disk.strip_prefix(root.path()).unwrap();
            let target = Path::new("../..").join(target);
            let target = if name == "vda" {
                target
            } else {
                target.join(name)
            };
            std::os::unix::fs::symlink(target, class.join(name)).unwrap();
        }

        let layout = read_layout(&class, Path::new("/dev/vda2")).unwrap();
        assert_eq!(
            layout,
            Some(Layout {
                disk: "vda".into(),
                number: 2,
                start: 18432,
                size: 110592,
                disk_size: 524288,
                logical_block: 512,
                last: true,
            })
        );
        let esp = read_layout(&class, Path::new("/dev/vda1"))
            .unwrap()
            .unwrap();
        assert_eq!((esp.number, esp.last), (1, false));
        assert_eq!(read_layout(&class, Path::new("/dev/vda")).unwrap(), None);
        assert!(!is_partition(&class, Path::new("/dev/vda")));
    }

    #[test]
    fn reads_block_size_and_count_from_ext4_superblocks() {
        let dir = tempfile::tempdir().unwrap();
        for (block, extra) in [("1024", None), ("4096", Some("64bit"))] {
            let image = dir.path().join(format!("fs-{block}.img"));
            File::create(&image).unwrap().set_len(8 << 20).unwrap();
            let mut mkfs = Command::new("mkfs.ext4");
            mkfs.args(["-q", "-F", "-b", block]);
            if let Some(feature) = extra {
                mkfs.args(["-O", feature]);
            }
            let ok = mkfs
                .arg(&image)
                .status()
                .expect("mkfs.ext4 (apt-get install e2fsprogs)");
            assert!(ok.success());
            let block: u64 = block.parse().unwrap();
            assert_eq!(
                read_superblock(&image).unwrap(),
                Superblock {
                    block_size: block,
                    blocks: (8 << 20) / block,
                }
            );
        }
        let mut sb = [0u8; 1024];
        sb[56..58].copy_from_slice(&[0x53, 0xEF]);
        sb[24] = 2;
        sb[4..8].copy_from_slice(&7u32.to_le_bytes());
        sb[0x150..0x154].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(
            parse_superblock(&sb).unwrap().blocks,
            7,
            "high half without 64bit"
        );
        sb[0x60] = 0x80;
        assert_eq!(
            parse_superblock(&sb).unwrap(),
            Superblock {
                block_size: 4096,
                blocks: (1 << 32) + 7
            }
        );
        sb[56] = 0;
        assert_eq!(parse_superblock(&sb), None);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(16 << 20), "16 MiB");
        assert_eq!(human(1 << 30), "1.0 GiB");
        assert_eq!(human(2560 << 30), "2.5 TiB");
    }

    /// Detaches the loop device when the test ends, passed or not.
    struct Loop(String);

    impl Drop for Loop {
        fn drop(&mut self) {
            let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
        }
    }

    /// Unmounts when the test ends, passed or not; before the loop device.
    struct Mounted(PathBuf);

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::empty());
        }
    }

    fn run(command: &mut Command) -> String {
        let out = command.output().unwrap();
        assert!(
            out.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Online resizing needs CAP_SYS_RESOURCE, which some sandboxes drop.
    fn may_resize_file_systems() -> bool {
        const CAP_SYS_RESOURCE: u32 = 24;
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
            .is_some_and(|caps| caps & 1 << CAP_SYS_RESOURCE != 0)
    }

    fn fs_bytes(mount_point: &Path) -> u64 {
        let st = rustix::fs::statvfs(mount_point).unwrap();
        st.f_blocks * st.f_frsize
    }

    /// The real thing: a mounted ext4 partition on a GPT loop device grows
    /// with the disk behind it, as on a node.
    #[test]
    fn grows_a_mounted_ext4_partition_after_its_disk_grows() {
        if !rustix::process::getuid().is_root() {
            eprintln!("skipped: needs root for loop devices and mounts");
            return;
        }
        if Command::new("losetup").arg("--version").output().is_err() {
            eprintln!("skipped: losetup is missing");
            return;
        }
        let dir = tempfile::Builder::new()
            .prefix("mote-grow-")
            .tempdir_in("/tmp")
            .unwrap();
        let image = dir.path().join("disk.img");
        make_image(&image);
        let attached = run(Command::new("losetup")
            .args(["-P", "--show", "-f"])
            .arg(&image));
        let disk = Loop(attached.trim().to_owned());
        let part = PathBuf::from(format!("{}p2", disk.0));
        // A kernel without CONFIG_EFI_PARTITION does not scan the table:
        // partx reads it and adds the partitions with BLKPG.
        run(Command::new("partx").arg("-u").arg(&disk.0));
        let deadline = Instant::now() + Duration::from_secs(5);
        while !part.exists() {
            assert!(
                Instant::now() < deadline,
                "{} did not appear",
                part.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "mote-state"])
            .arg(&part));
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        rustix::mount::mount(
            &part,
            &mnt,
            "ext4",
            rustix::mount::MountFlags::NOATIME,
            None,
        )
        .unwrap();
        let mounted = Mounted(mnt.clone());
        std::fs::write(mnt.join("kept"), b"still here").unwrap();

        // As built: nothing to grow, nothing done.
        assert_eq!(grow_state_disk(&part, &mnt).unwrap(), None);
        let before = fs_bytes(&mnt);

        open_rw(&image).set_len(256 << 20).unwrap();
        run(Command::new("losetup").arg("-c").arg(&disk.0));
        let grown = grow_state_partition(&part)
            .unwrap()
            .expect("partition grown");
        // Up to the last usable LBA, 34 sectors before the end, inclusive.
        let new_sectors = 256 * MIB_SECTORS - 34 - STATE_START + 1;
        assert_eq!(
            grown,
            Grown {
                from: STATE_SECTORS * 512,
                to: new_sectors * 512
            }
        );
        let sys = Path::new(SYS_BLOCK).join(part.file_name().unwrap());
        assert_eq!(read_number(&sys.join("size")).unwrap(), new_sectors);

        assert_eq!(grow_state_partition(&part).unwrap(), None, "done once");

        if may_resize_file_systems() {
            let fs = grow_ext4(&mnt, &part).unwrap().expect("file system grown");
            assert!(fs.from <= grown.from && fs.to <= grown.to, "{fs:?}");
            assert!(
                fs.to > grown.to - (8 << 20),
                "{fs:?} leaves too much of {grown:?}"
            );
            let after = fs_bytes(&mnt);
            assert!(
                after > before + (180 << 20),
                "statvfs: {before} bytes before, {after} after"
            );
            assert_eq!(std::fs::read(mnt.join("kept")).unwrap(), b"still here");
            // Every later boot: nothing to do.
            assert_eq!(grow_state_disk(&part, &mnt).unwrap(), None);
        } else {
            // ext4 checks the capability first; a wrong request number
            // would fail with ENOTTY instead.
            let e = grow_ext4(&mnt, &part).unwrap_err();
            assert!(e.contains("Operation not permitted"), "{e}");
            assert_eq!(fs_bytes(&mnt), before);
            eprintln!(
                "partly skipped: no CAP_SYS_RESOURCE here, so ext4 was not grown online; \
                 the partition was"
            );
        }
        drop(mounted);
        run(Command::new("e2fsck").args(["-f", "-n"]).arg(&part));
        if Command::new("sgdisk").arg("--version").output().is_ok() {
            let text = run(Command::new("sgdisk").arg("-v").arg(&disk.0));
            assert!(text.contains("No problems found"), "sgdisk -v: {text}");
        }
    }
}

//! The state disk: settings, keys, logs, the first-boot marker. It survives
//! reboots and power loss.
//!
//! The disk is ext4 (journaled, built into the Debian cloud kernel, made on
//! the host by `mote run` with `mkfs.ext4 -L mote-state`). PID 1 finds it by
//! that label, reading the superblock itself, so a node with several disks
//! mounts the right one. Files are replaced atomically: write a temporary
//! file, fsync it, rename it over the old one, fsync the directory; after a
//! power cut the reader sees the old or the new content, never a mix.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::mount::{mount, MountFlags};

/// The label `mote run` gives the state disk.
pub const LABEL: &[u8] = b"mote-state";
/// Where the state disk is mounted.
pub const MOUNT_POINT: &str = "/state";

/// Look for the labelled ext4 disk among the block devices for up to `wait`
/// (drivers probe asynchronously) and mount it on `/state`.
pub async fn mount_state_disk(wait: Duration) -> Result<PathBuf, String> {
    let deadline = Instant::now() + wait;
    let device = loop {
        if let Some(device) = find_labelled_disk() {
            break device;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no disk labelled {:?} appeared within {} ms; settings and logs will not persist",
                String::from_utf8_lossy(LABEL),
                wait.as_millis()
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let _ = std::fs::create_dir_all(MOUNT_POINT);
    mount(
        &device,
        MOUNT_POINT,
        "ext4",
        MountFlags::NOATIME | MountFlags::NODEV | MountFlags::NOSUID,
        None,
    )
    .map_err(|e| format!("mount {} on {MOUNT_POINT}: {e}", device.display()))?;
    Ok(device)
}

fn find_labelled_disk() -> Option<PathBuf> {
    let mut names: Vec<_> = std::fs::read_dir("/sys/class/block")
        .ok()?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| Path::new("/dev").join(n))
        .find(|dev| ext4_label(dev).as_deref() == Some(LABEL))
}

/// The volume label of an ext2/3/4 filesystem: superblock at 1024, magic
/// 0xEF53 at offset 56, 16-byte label at offset 120.
fn ext4_label(device: &Path) -> Option<Vec<u8>> {
    let mut file = File::open(device).ok()?;
    let mut sb = [0u8; 136];
    file.seek(SeekFrom::Start(1024)).ok()?;
    file.read_exact(&mut sb).ok()?;
    if sb[56..58] != [0x53, 0xEF] {
        return None;
    }
    let label = &sb[120..136];
    let end = label.iter().position(|&b| b == 0).unwrap_or(label.len());
    Some(label[..end].to_vec())
}

/// Replace `path` with `content` atomically and durably.
pub fn write_atomic(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(content)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// Flush and unmount the state disk before power-off.
pub fn unmount_state_disk() {
    rustix::fs::sync();
    let _ = rustix::mount::unmount(MOUNT_POINT, rustix::mount::UnmountFlags::empty());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/settings.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new content").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new content");
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn reads_the_label_of_an_ext4_image() {
        let Ok(status) = std::process::Command::new("mkfs.ext4").arg("-V").output() else {
            panic!("mkfs.ext4 is missing: apt-get install e2fsprogs");
        };
        assert!(status.status.success());
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("state.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let ok = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "mote-state"])
            .arg(&image)
            .status()
            .unwrap();
        assert!(ok.success());
        assert_eq!(ext4_label(&image).as_deref(), Some(LABEL));
        std::fs::write(dir.path().join("plain"), vec![0u8; 4096]).unwrap();
        assert_eq!(ext4_label(&dir.path().join("plain")), None);
    }
}

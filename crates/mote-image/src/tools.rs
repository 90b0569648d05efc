//! The host programs a disk build runs: `mkfs.ext4`, `qemu-img`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// The first executable `program` in `$PATH`, then in the sbin directories
/// (where `mkfs.ext4` lives, often outside a user's `$PATH`).
pub(crate) fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

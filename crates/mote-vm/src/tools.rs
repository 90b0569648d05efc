//! Finding the host programs mote-vm runs.

use std::path::{Path, PathBuf};

/// Where `program` is: the first executable file of that name in `$PATH`,
/// then in the sbin directories (mkfs.ext4 lives there, and a user's `$PATH`
/// often leaves them out).
pub(crate) fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_sh_and_not_nonsense() {
        assert!(super::find("sh").is_some());
        assert!(super::find("mote-no-such-program").is_none());
    }
}

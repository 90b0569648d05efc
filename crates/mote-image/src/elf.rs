//! Refusing dynamically linked executables: a node has no shared libraries,
//! so a program asking for an ELF interpreter (`PT_INTERP`, such as
//! `/lib64/ld-linux-x86-64.so.2`) could never start there.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::io_error;
use crate::ImageBuildError;

/// Fails when `file` (at `path`) is an ELF file with a program interpreter.
/// Non-ELF files pass. Reads only the headers; the ELF reading is
/// `mote_package::elf`, which package builds use too.
pub(crate) fn check_static(path: &Path, file: &File) -> Result<(), ImageBuildError> {
    // A read error on the first bytes is an I/O error, not "not ELF".
    let mut magic = [0u8; 4];
    file.read_at(&mut magic, 0)
        .map_err(io_error("reading", path))?;
    match mote_package::elf::file_interpreter(file) {
        Ok(None) => Ok(()),
        Ok(Some(interpreter)) => Err(ImageBuildError::DynamicElf {
            path: path.to_path_buf(),
            interpreter,
        }),
        Err(e) => Err(ImageBuildError::BadElf {
            path: path.to_path_buf(),
            reason: e.0,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mote_kernel::testing::executable_elf;

    fn check(bytes: &[u8]) -> Result<(), ImageBuildError> {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        check_static(Path::new("/x/app"), &file)
    }

    #[test]
    fn static_and_non_elf_pass() {
        check(&executable_elf(None)).unwrap();
        check(b"#!/bin/sh\n").unwrap();
        check(b"").unwrap();
    }

    #[test]
    fn dynamic_is_refused_with_the_fix() {
        let err = check(&executable_elf(Some("/lib64/ld-linux-x86-64.so.2"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/x/app: dynamically linked (it asks for /lib64/ld-linux-x86-64.so.2); mote nodes have no shared \
             libraries: link it statically (RUSTFLAGS='-C target-feature=+crt-static')"
        );
    }

    #[test]
    fn truncated_elf_is_malformed() {
        let err = check(b"\x7fELF\x02\x01\x01").unwrap_err();
        assert!(matches!(err, ImageBuildError::BadElf { .. }), "{err}");
    }

    #[test]
    fn host_binaries_are_judged_right() {
        // /bin/sh on any Debian host is dynamically linked.
        let file = File::open("/bin/sh").unwrap();
        assert!(matches!(
            check_static(Path::new("/bin/sh"), &file),
            Err(ImageBuildError::DynamicElf { .. })
        ));
    }
}

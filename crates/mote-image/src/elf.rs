//! Refusing dynamically linked executables: a node has no shared libraries,
//! so a program asking for an ELF interpreter (`PT_INTERP`, such as
//! `/lib64/ld-linux-x86-64.so.2`) could never start there.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use object::elf::PT_INTERP;
use object::read::elf::{FileHeader, ProgramHeader};
use object::read::ReadCache;
use object::{elf, Endianness, FileKind};

use crate::error::io_error;
use crate::ImageBuildError;

/// Fails when `file` (at `path`) is an ELF file with a program interpreter.
/// Non-ELF files pass. Reads only the headers.
pub(crate) fn check_static(path: &Path, file: &File) -> Result<(), ImageBuildError> {
    let mut magic = [0u8; 4];
    let n = file
        .read_at(&mut magic, 0)
        .map_err(io_error("reading", path))?;
    if n < 4 || magic != elf::ELFMAG {
        return Ok(());
    }
    let cache = ReadCache::new(file);
    let bad = |reason: String| ImageBuildError::BadElf {
        path: path.to_path_buf(),
        reason,
    };
    let interpreter = match FileKind::parse(&cache).map_err(|e| bad(e.to_string()))? {
        FileKind::Elf32 => interpreter::<elf::FileHeader32<Endianness>>(&cache),
        FileKind::Elf64 => interpreter::<elf::FileHeader64<Endianness>>(&cache),
        _ => return Ok(()),
    }
    .map_err(bad)?;
    match interpreter {
        Some(interpreter) => Err(ImageBuildError::DynamicElf {
            path: path.to_path_buf(),
            interpreter,
        }),
        None => Ok(()),
    }
}

fn interpreter<H: FileHeader<Endian = Endianness>>(
    data: &ReadCache<&File>,
) -> Result<Option<String>, String> {
    let header = H::parse(data).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    for segment in header
        .program_headers(endian, data)
        .map_err(|e| e.to_string())?
    {
        if segment.p_type(endian) == PT_INTERP {
            let bytes = segment
                .data(endian, data)
                .map_err(|()| "PT_INTERP lies outside the file".to_string())?;
            let name = bytes.split(|b| *b == 0).next().unwrap_or_default();
            return Ok(Some(String::from_utf8_lossy(name).into_owned()));
        }
    }
    Ok(None)
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

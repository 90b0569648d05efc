//! Refusing dynamically linked executables: a node has no shared libraries,
//! so a program asking for an ELF interpreter (`PT_INTERP`, such as
//! `/lib64/ld-linux-x86-64.so.2`) could never start there. The image
//! builder (`mote-image`) and the package builder both ask [`interpreter`].

use std::fs::File;

use object::elf::PT_INTERP;
use object::read::elf::{FileHeader, ProgramHeader};
use object::read::ReadCache;
use object::{elf, Endianness, FileKind, ReadRef};

/// A file that starts like ELF but does not parse; the parser's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedElf(pub String);

/// The program interpreter an ELF file asks for (`Some` means dynamically
/// linked); `None` for a static ELF file or a file that is not ELF at all.
/// Reads only the headers.
pub fn interpreter<'d, R: ReadRef<'d>>(data: R) -> Result<Option<String>, MalformedElf> {
    match data.read_bytes_at(0, 4) {
        Ok(magic) if magic == elf::ELFMAG => {}
        _ => return Ok(None),
    }
    match FileKind::parse(data).map_err(|e| MalformedElf(e.to_string()))? {
        FileKind::Elf32 => program_interpreter::<elf::FileHeader32<Endianness>, R>(data),
        FileKind::Elf64 => program_interpreter::<elf::FileHeader64<Endianness>, R>(data),
        _ => Ok(None),
    }
    .map_err(MalformedElf)
}

/// [`interpreter`] of an open file, reading only what the headers need.
pub fn file_interpreter(file: &File) -> Result<Option<String>, MalformedElf> {
    let cache = ReadCache::new(file);
    interpreter(&cache)
}

fn program_interpreter<'d, H: FileHeader<Endian = Endianness>, R: ReadRef<'d>>(
    data: R,
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

    #[test]
    fn static_dynamic_and_non_elf_are_told_apart() {
        assert_eq!(interpreter(&executable_elf(None)[..]), Ok(None));
        assert_eq!(interpreter(&b"#!/bin/sh\n"[..]), Ok(None));
        assert_eq!(interpreter(&b""[..]), Ok(None));
        assert_eq!(
            interpreter(&executable_elf(Some("/lib64/ld-linux-x86-64.so.2"))[..]),
            Ok(Some("/lib64/ld-linux-x86-64.so.2".into()))
        );
        assert!(interpreter(&b"\x7fELF\x02\x01\x01"[..]).is_err());
    }
}

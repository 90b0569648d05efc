//! The Unified Kernel Image: systemd's EFI stub with the kernel, the
//! initramfs, the command line and os-release appended as PE sections, so
//! that firmware boots the whole node from one file that can be signed.
//!
//! Why our own writer: appending sections to a PE file is a few header
//! fields. `ukify` needs Python and `objcopy --add-section` rewrites the
//! whole file with its own layout; here the stub's bytes stay as they are,
//! new sections follow them in the order `ukify` uses, and the output is a
//! pure function of the inputs. The stub is Debian's `systemd-boot-efi`
//! (`linuxx64.efi.stub`), unsigned; a signature comes after, over the whole
//! file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Where Debian's `systemd-boot-efi` puts the x86-64 stub.
pub const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";

/// What a section holds.
pub enum Payload<'a> {
    /// Bytes in memory (the command line, os-release).
    Bytes(&'a [u8]),
    /// A file streamed into place (the kernel, the initramfs).
    File(&'a Path),
}

/// A section to append: name (at most 8 bytes) and content.
pub struct Section<'a> {
    /// `.osrel`, `.cmdline`, `.uname`, `.initrd`, `.linux`.
    pub name: &'static str,
    /// Its content.
    pub payload: Payload<'a>,
}

/// Why a UKI could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UkiError {
    /// The stub is not a PE32+ image this writer understands.
    #[error("{path}: not a PE32+ EFI stub ({why}); install Debian's systemd-boot-efi (apt-get install systemd-boot-efi)")]
    BadStub {
        /// The stub.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Reading or writing failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

const SCN_INITIALIZED_DATA_READ: u32 = 0x4000_0040;
/// New sections start on 4 KiB pages, as ukify places them, whatever the
/// stub's own (smaller) section alignment.
const PAGE: u64 = 4096;

fn align(value: u64, to: u64) -> u64 {
    value.div_ceil(to) * to
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Where the headers of a PE32+ image are.
struct Pe {
    coff: usize,
    optional: usize,
    sections: usize,
    count: usize,
    section_align: u64,
    file_align: u64,
    header_size: usize,
}

fn parse(stub: &[u8], path: &Path, to_extend: bool) -> Result<Pe, UkiError> {
    let bad = |why| UkiError::BadStub {
        path: path.to_path_buf(),
        why,
    };
    if stub.len() < 0x40 || &stub[..2] != b"MZ" {
        return Err(bad("no MZ header"));
    }
    let pe = u32_at(stub, 0x3c) as usize;
    if stub.len() < pe + 24 || &stub[pe..pe + 4] != b"PE\0\0" {
        return Err(bad("no PE signature"));
    }
    let coff = pe + 4;
    let count = usize::from(u16_at(stub, coff + 2));
    let optional_size = usize::from(u16_at(stub, coff + 16));
    let optional = coff + 20;
    if stub.len() < optional + optional_size || optional_size < 112 {
        return Err(bad("optional header cut short"));
    }
    if u16_at(stub, optional) != 0x20b {
        return Err(bad("not PE32+"));
    }
    let dirs = u32_at(stub, optional + 108) as usize;
    // The certificate table (directory 4) would sign the stub alone.
    if to_extend && dirs > 4 && u32_at(stub, optional + 112 + 4 * 8 + 4) != 0 {
        return Err(bad("the stub is already signed; use the unsigned one"));
    }
    let pe = Pe {
        coff,
        optional,
        sections: optional + optional_size,
        count,
        section_align: u64::from(u32_at(stub, optional + 32)),
        file_align: u64::from(u32_at(stub, optional + 36)),
        header_size: u32_at(stub, optional + 60) as usize,
    };
    if pe.section_align == 0 || pe.file_align == 0 || !PAGE.is_multiple_of(pe.section_align) {
        return Err(bad("odd alignment"));
    }
    if pe.sections + 40 * pe.count > stub.len().min(pe.header_size) {
        return Err(bad("section table cut short"));
    }
    Ok(pe)
}

/// Write the UKI to `out`: the stub at `stub_path` with `sections` appended.
pub fn write(stub_path: &Path, sections: &[Section<'_>], out: &Path) -> Result<u64, UkiError> {
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| UkiError::Io {
            action,
            path,
            source,
        }
    };
    let mut stub = std::fs::read(stub_path).map_err(io("read", stub_path))?;
    let pe = parse(&stub, stub_path, true)?;
    let table_end = pe.sections + 40 * (pe.count + sections.len());
    if table_end > pe.header_size {
        return Err(UkiError::BadStub {
            path: stub_path.to_path_buf(),
            why: "no room for more section headers",
        });
    }
    let mut next_va = (0..pe.count)
        .map(|i| {
            let at = pe.sections + 40 * i;
            u64::from(u32_at(&stub, at + 12)) + u64::from(u32_at(&stub, at + 8))
        })
        .max()
        .unwrap_or(0);
    // The stub's COFF symbol table follows its sections; it is for
    // debuggers, and left in place it would be a gap between the stub's
    // sections and ours that an Authenticode signature does not cover.
    // Drop it: new sections start where the stub's last one ends.
    let sections_end = (0..pe.count)
        .map(|i| {
            let at = pe.sections + 40 * i;
            u64::from(u32_at(&stub, at + 20)) + u64::from(u32_at(&stub, at + 16))
        })
        .max()
        .unwrap_or(pe.header_size as u64)
        .max(pe.header_size as u64);
    if (sections_end as usize) < stub.len() {
        stub.truncate(sections_end as usize);
        put_u32(&mut stub, pe.coff + 8, 0);
        put_u32(&mut stub, pe.coff + 12, 0);
    }
    let mut next_raw = align(stub.len() as u64, pe.file_align);
    let mut sizes = Vec::with_capacity(sections.len());
    for (i, section) in sections.iter().enumerate() {
        let len = match &section.payload {
            Payload::Bytes(bytes) => bytes.len() as u64,
            Payload::File(path) => std::fs::metadata(path).map_err(io("read", path))?.len(),
        };
        let va = align(next_va, PAGE);
        let raw_len = align(len, pe.file_align);
        let at = pe.sections + 40 * (pe.count + i);
        let mut name = [0u8; 8];
        name[..section.name.len()].copy_from_slice(section.name.as_bytes());
        stub[at..at + 8].copy_from_slice(&name);
        let fields = [len, va, raw_len, next_raw, 0, 0, 0];
        for (k, value) in fields.iter().enumerate() {
            let value = u32::try_from(*value).map_err(|_| UkiError::BadStub {
                path: stub_path.to_path_buf(),
                why: "a section passes 4 GiB",
            })?;
            put_u32(&mut stub, at + 8 + 4 * k, value);
        }
        put_u32(&mut stub, at + 36, SCN_INITIALIZED_DATA_READ);
        sizes.push((next_raw, len));
        next_va = va + len;
        next_raw += raw_len;
    }
    put_u16(&mut stub, pe.coff + 2, (pe.count + sections.len()) as u16);
    put_u32(
        &mut stub,
        pe.optional + 56,
        align(next_va, pe.section_align) as u32,
    );
    // The checksum covered the stub as it was; firmware does not check it.
    put_u32(&mut stub, pe.optional + 64, 0);

    let partial = out.with_extension("efi.partial");
    let mut file = File::create(&partial).map_err(io("create", &partial))?;
    let written = (|| -> io::Result<u64> {
        let mut w = io::BufWriter::with_capacity(1 << 20, &mut file);
        w.write_all(&stub)?;
        let mut at = stub.len() as u64;
        for (section, (raw, len)) in sections.iter().zip(&sizes) {
            io::copy(&mut io::repeat(0).take(raw - at), &mut w)?;
            match &section.payload {
                Payload::Bytes(bytes) => w.write_all(bytes)?,
                Payload::File(path) => {
                    let copied = io::copy(&mut File::open(path)?, &mut w)?;
                    if copied != *len {
                        return Err(io::Error::other(format!(
                            "{} changed while it was copied",
                            path.display()
                        )));
                    }
                }
            }
            at = raw + len;
        }
        let end = align(at, pe.file_align);
        io::copy(&mut io::repeat(0).take(end - at), &mut w)?;
        w.flush()?;
        Ok(end)
    })()
    .map_err(io("write", &partial))?;
    drop(file);
    std::fs::rename(&partial, out).map_err(io("rename", &partial))?;
    Ok(written)
}

/// The sections of a section table, as (name, virtual size, file offset):
/// for tests and `mote image inspect`.
pub fn sections(image: &[u8]) -> Option<Vec<(String, u32, u32)>> {
    let pe = parse(image, Path::new(""), false).ok()?;
    Some(
        (0..pe.count)
            .map(|i| {
                let at = pe.sections + 40 * i;
                let name = &image[at..at + 8];
                let end = name.iter().position(|&b| b == 0).unwrap_or(8);
                (
                    String::from_utf8_lossy(&name[..end]).into_owned(),
                    u32_at(image, at + 8),
                    u32_at(image, at + 20),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_follow_the_stub_and_read_back() {
        let stub = Path::new(STUB);
        if !stub.exists() {
            eprintln!("skipped: {STUB} missing (apt-get install systemd-boot-efi)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinuz");
        std::fs::write(&kernel, vec![0xAB; 5000]).unwrap();
        let out = dir.path().join("n.efi");
        let parts = [
            Section {
                name: ".osrel",
                payload: Payload::Bytes(b"ID=mote\n"),
            },
            Section {
                name: ".cmdline",
                payload: Payload::Bytes(b"console=ttyS0"),
            },
            Section {
                name: ".linux",
                payload: Payload::File(&kernel),
            },
        ];
        let len = write(stub, &parts, &out).unwrap();
        let image = std::fs::read(&out).unwrap();
        assert_eq!(image.len() as u64, len);
        let table = sections(&image).unwrap();
        let stub_count = sections(&std::fs::read(stub).unwrap()).unwrap().len();
        assert_eq!(table.len(), stub_count + 3);
        let find = |n: &str| table.iter().find(|s| s.0 == n).unwrap().clone();
        let (_, size, raw) = find(".cmdline");
        assert_eq!(&image[raw as usize..][..size as usize], b"console=ttyS0");
        let (_, size, raw) = find(".linux");
        assert_eq!(size, 5000);
        assert!(image[raw as usize..][..5000].iter().all(|&b| b == 0xAB));
        // Reproducible: the same inputs, the same bytes.
        let again = dir.path().join("again.efi");
        write(stub, &parts, &again).unwrap();
        assert_eq!(std::fs::read(&again).unwrap(), image);
        // objdump, when present, reads it as a PE with these sections.
        if let Ok(out) = std::process::Command::new("objdump")
            .arg("-h")
            .arg(&out)
            .output()
        {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains(".linux") && text.contains(".osrel"), "{text}");
        }
    }

    #[test]
    fn not_a_pe_is_refused_with_the_fix() {
        let err = parse(b"hello", Path::new("x.stub"), true).err().unwrap();
        let text = err.to_string();
        assert!(
            text.contains("x.stub") && text.contains("systemd-boot-efi"),
            "{text}"
        );
    }
}

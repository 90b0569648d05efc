//! A writer of cpio archives in the "newc" format, the one the Linux kernel
//! unpacks as an initramfs.
//!
//! The format, step by step (see the kernel's
//! `Documentation/driver-api/early-userspace/buffer-format.rst`):
//!
//! 1. Each entry starts with a 110-byte ASCII header: the magic `070701`,
//!    then thirteen 8-digit hexadecimal fields: inode, mode (file type and
//!    permission bits), uid, gid, link count, mtime, file size, the major and
//!    minor of the device holding the file, the major and minor of the device
//!    the entry *is* (for device nodes), the name's length including its NUL,
//!    and a checksum (always 0 in newc).
//! 2. The name follows, NUL-terminated, without a leading `/`, padded with
//!    NULs so that header + name end on a 4-byte boundary.
//! 3. The data follows (a file's bytes, a symlink's target), padded with NULs
//!    to a 4-byte boundary.
//! 4. The archive ends with an entry named `TRAILER!!!`.
//!
//! Parents must come before their children: the kernel does not create
//! missing directories. Every field is given by the caller, so the archive
//! holds nothing of the host (owners, times, inode numbers): inodes are
//! numbered 1, 2, 3… in the order entries are written.
//!
//! ```
//! use mote_image::cpio::{Meta, Writer};
//!
//! let mut archive = Writer::new(Vec::new());
//! archive.dir("etc", Meta::new(0o755))?;
//! archive.file_bytes("etc/hostname", Meta::new(0o644), b"web01\n")?;
//! archive.char_device("console", Meta::new(0o600), 5, 1)?;
//! let bytes = archive.finish()?;
//! assert!(bytes.starts_with(b"070701"));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, Read, Write};

/// `S_IFDIR`, `S_IFREG`, `S_IFLNK`, `S_IFCHR`.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// Ownership, permissions and time of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits, `0o7777` at most (set-id and sticky bits included).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
}

impl Meta {
    /// Root-owned, time 0.
    pub fn new(mode: u32) -> Self {
        Self {
            uid: 0,
            gid: 0,
            mode,
            mtime: 0,
        }
    }
}

/// Writes entries to `W`, then the trailer with [`Writer::finish`].
#[derive(Debug)]
pub struct Writer<W: Write> {
    inner: W,
    next_inode: u32,
    written: u64,
}

impl<W: Write> Writer<W> {
    /// An archive whose first entry gets inode 1.
    pub fn new(inner: W) -> Self {
        Self::with_first_inode(inner, 1)
    }

    /// An archive whose inodes start at `first` (to continue the numbering
    /// of an archive written before it).
    pub fn with_first_inode(inner: W, first: u32) -> Self {
        Self {
            inner,
            next_inode: first,
            written: 0,
        }
    }

    /// The inode the next entry will get.
    pub fn next_inode(&self) -> u32 {
        self.next_inode
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// A directory.
    pub fn dir(&mut self, path: &str, meta: Meta) -> io::Result<()> {
        self.header(path, S_IFDIR | meta.mode, meta, 2, 0, (0, 0))?;
        Ok(())
    }

    /// A regular file of `size` bytes read from `data`, which must hold at
    /// least that many.
    pub fn file(
        &mut self,
        path: &str,
        meta: Meta,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let size32 = u32::try_from(size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{path}: {size} bytes, over cpio's 4 GiB"),
            )
        })?;
        self.header(path, S_IFREG | meta.mode, meta, 1, size32, (0, 0))?;
        let copied = io::copy(&mut data.take(size), &mut self.inner)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path}: expected {size} bytes, got {copied} (did the file change?)"),
            ));
        }
        self.written += size;
        self.pad()
    }

    /// A regular file holding `data`.
    pub fn file_bytes(&mut self, path: &str, meta: Meta, data: &[u8]) -> io::Result<()> {
        self.file(path, meta, data.len() as u64, &mut &data[..])
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, meta: Meta, target: &str) -> io::Result<()> {
        self.header(
            path,
            S_IFLNK | meta.mode,
            meta,
            1,
            target.len() as u32,
            (0, 0),
        )?;
        self.write(target.as_bytes())?;
        self.pad()
    }

    /// A character device node.
    pub fn char_device(
        &mut self,
        path: &str,
        meta: Meta,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.header(path, S_IFCHR | meta.mode, meta, 1, 0, (major, minor))
    }

    /// Writes the trailer and its padding; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.next_inode = 0;
        self.header("TRAILER!!!", 0, Meta::new(0), 1, 0, (0, 0))?;
        Ok(self.inner)
    }

    fn header(
        &mut self,
        path: &str,
        mode: u32,
        meta: Meta,
        nlink: u32,
        size: u32,
        rdev: (u32, u32),
    ) -> io::Result<()> {
        let name = path.trim_start_matches('/');
        if name.is_empty() || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cpio entry name {path:?}"),
            ));
        }
        let fields = [
            self.next_inode,
            mode,
            meta.uid,
            meta.gid,
            nlink,
            meta.mtime,
            size,
            0, // major of the device the file lives on
            0, // and its minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // checksum, unused by newc
        ];
        let mut header = String::with_capacity(110 + name.len() + 4);
        header.push_str("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        header.push_str(name);
        header.push('\0');
        self.next_inode = self.next_inode.wrapping_add(1);
        self.write(header.as_bytes())?;
        self.pad()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let padding = (4 - (self.written % 4) as usize) % 4;
        self.write(&[0; 3][..padding])
    }
}

/// One entry of a newc archive, as [`entries`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its path, without a leading `/`.
    pub name: String,
    /// File type and permission bits.
    pub mode: u32,
    /// The content of a file (a link's target; empty for the rest).
    pub data: Vec<u8>,
}

/// The entries of concatenated newc archives in `bytes` (the kernel reads
/// an initramfs the same way: archive after archive, NUL padding between),
/// or what is wrong with it.
pub fn entries(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut at = 0;
    let mut out = Vec::new();
    let field = |at: usize, i: usize| -> Result<usize, String> {
        let text = bytes
            .get(at + 6 + i * 8..at + 14 + i * 8)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| format!("header cut short at byte {at}"))?;
        usize::from_str_radix(text, 16).map_err(|_| format!("bad header field at byte {at}"))
    };
    while at < bytes.len() {
        if bytes[at] == 0 {
            at += 1;
            continue;
        }
        if bytes.get(at..at + 6) != Some(b"070701") {
            return Err(format!("no newc magic at byte {at}"));
        }
        let (mode, size, namesize) = (field(at, 1)?, field(at, 6)?, field(at, 11)?);
        let name_start = at + 110;
        let name = bytes
            .get(name_start..name_start + namesize.saturating_sub(1))
            .ok_or_else(|| format!("name cut short at byte {at}"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        let data_start = (name_start + namesize).next_multiple_of(4);
        let data = bytes
            .get(data_start..data_start + size)
            .ok_or_else(|| format!("{name}: data cut short"))?;
        at = (data_start + size).next_multiple_of(4);
        if name != "TRAILER!!!" {
            out.push(Entry {
                name,
                mode: mode as u32,
                data: data.to_vec(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry as read back.
    #[derive(Debug, PartialEq)]
    struct Read {
        name: String,
        ino: u32,
        mode: u32,
        uid: u32,
        gid: u32,
        nlink: u32,
        mtime: u32,
        rdev: (u32, u32),
        data: Vec<u8>,
    }

    /// A minimal newc reader: checks magic, padding and the trailer.
    fn read_back(bytes: &[u8]) -> Vec<Read> {
        let mut at = 0;
        let mut entries = Vec::new();
        loop {
            assert_eq!(at % 4, 0, "entry at unaligned offset {at}");
            assert_eq!(&bytes[at..at + 6], b"070701", "magic at {at}");
            let field = |i: usize| {
                let text = std::str::from_utf8(&bytes[at + 6 + i * 8..at + 14 + i * 8]).unwrap();
                u32::from_str_radix(text, 16).unwrap()
            };
            let (size, namesize) = (field(6) as usize, field(11) as usize);
            assert_eq!(field(12), 0, "checksum");
            let name_start = at + 110;
            assert_eq!(bytes[name_start + namesize - 1], 0, "name NUL");
            let name =
                String::from_utf8(bytes[name_start..name_start + namesize - 1].to_vec()).unwrap();
            let data_start = (name_start + namesize).next_multiple_of(4);
            assert!(
                bytes[name_start + namesize..data_start]
                    .iter()
                    .all(|b| *b == 0),
                "name padding"
            );
            let data = bytes[data_start..data_start + size].to_vec();
            let next = (data_start + size).next_multiple_of(4);
            assert!(
                bytes[data_start + size..next].iter().all(|b| *b == 0),
                "data padding"
            );
            let entry = Read {
                name,
                ino: field(0),
                mode: field(1),
                uid: field(2),
                gid: field(3),
                nlink: field(4),
                mtime: field(5),
                rdev: (field(9), field(10)),
                data,
            };
            at = next;
            if entry.name == "TRAILER!!!" {
                assert_eq!(at, bytes.len(), "bytes after the trailer");
                return entries;
            }
            entries.push(entry);
        }
    }

    fn sample() -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        w.dir("/dev", Meta::new(0o755)).unwrap();
        w.char_device("dev/console", Meta::new(0o600), 5, 1)
            .unwrap();
        w.dir(
            "tmp",
            Meta {
                mode: 0o1777,
                mtime: 1_700_000_000,
                ..Meta::new(0)
            },
        )
        .unwrap();
        w.file_bytes(
            "init",
            Meta {
                uid: 0,
                gid: 0,
                mode: 0o755,
                mtime: 7,
            },
            b"#!x",
        )
        .unwrap();
        w.file_bytes(
            "a",
            Meta {
                uid: 65534,
                gid: 65534,
                mode: 0o640,
                mtime: 7,
            },
            b"",
        )
        .unwrap();
        w.symlink("bin", Meta::new(0o777), "usr/bin").unwrap();
        assert_eq!(w.next_inode(), 7);
        let written = w.bytes_written();
        let bytes = w.finish().unwrap();
        assert!(written < bytes.len() as u64);
        bytes
    }

    #[test]
    fn reads_back_what_it_wrote() {
        let entries = read_back(&sample());
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["dev", "dev/console", "tmp", "init", "a", "bin"]);
        let inodes: Vec<u32> = entries.iter().map(|e| e.ino).collect();
        assert_eq!(inodes, [1, 2, 3, 4, 5, 6]);

        let console = &entries[1];
        assert_eq!(
            (console.mode, console.rdev, console.nlink),
            (0o020600, (5, 1), 1)
        );
        assert!(console.data.is_empty());
        assert_eq!((entries[0].mode, entries[0].nlink), (0o040755, 2));
        assert_eq!(
            (entries[2].mode, entries[2].mtime),
            (0o041777, 1_700_000_000)
        );
        assert_eq!(
            (
                entries[3].mode,
                entries[3].data.as_slice(),
                entries[3].mtime
            ),
            (0o100755, &b"#!x"[..], 7)
        );
        assert_eq!(
            (entries[4].uid, entries[4].gid, entries[4].mode),
            (65534, 65534, 0o100640)
        );
        assert_eq!(
            (entries[5].mode, entries[5].data.as_slice()),
            (0o120777, &b"usr/bin"[..])
        );
    }

    #[test]
    fn short_reader_is_an_error() {
        let mut w = Writer::new(Vec::new());
        let err = w
            .file("x", Meta::new(0o644), 10, &mut &b"short"[..])
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(w.dir("", Meta::new(0o755)).is_err());
    }

    #[test]
    fn inode_numbering_can_continue() {
        let mut w = Writer::with_first_inode(Vec::new(), 40);
        w.dir("lib", Meta::new(0o755)).unwrap();
        assert_eq!(read_back(&w.finish().unwrap())[0].ino, 40);
    }

    /// GNU cpio, when the host has it, lists the archive the same way.
    #[test]
    fn gnu_cpio_reads_it() {
        use std::process::{Command, Stdio};
        let child = Command::new("cpio")
            .args(["-t", "-v", "-n", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = child.unwrap_or_else(|e| {
            panic!("this test needs GNU cpio to check the archive ({e}): apt-get install cpio")
        });
        child.stdin.take().unwrap().write_all(&sample()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listing = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 6, "{listing}");
        assert!(
            lines[1].starts_with("crw-------")
                && lines[1].contains("5,")
                && lines[1].ends_with("dev/console")
        );
        assert!(
            lines[2].starts_with("drwxrwxrwt") && lines[2].ends_with(" tmp"),
            "{listing}"
        );
        assert!(
            lines[4].contains("65534") && lines[4].ends_with(" a"),
            "{listing}"
        );
        assert!(
            lines[5].starts_with("lrwxrwxrwx") && lines[5].ends_with("bin -> usr/bin"),
            "{listing}"
        );
    }

    #[test]
    fn entries_reads_concatenated_archives() {
        let mut two = sample();
        two.extend_from_slice(&[0u8; 8]);
        two.extend_from_slice(&sample());
        let read = entries(&two).unwrap();
        assert_eq!(read.len(), 12);
        assert_eq!(read[3].name, "init");
        assert_eq!(read[3].data, read_back(&sample())[3].data);
        assert!(entries(b"070701zz").is_err());
    }
}

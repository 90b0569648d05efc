//! Reading a module file: decompressing it and its `.modinfo` section.
//!
//! A kernel module is an ELF relocatable object. Its `.modinfo` section is a
//! run of NUL-terminated `key=value` strings (`name=virtio_net`,
//! `depends=virtio_ring,virtio,net_failover`, `softdep=pre: crc32c`,
//! `vermagic=…`); `depmod` builds `modules.dep` from the `depends` keys. Debian
//! packages ship without `modules.dep` (depmod runs at install), so when it is
//! missing the dependency graph comes from here.

use std::io::Read;
use std::path::Path;

use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSection};

use crate::KernelError;

/// How a module file is compressed, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// `.ko`
    None,
    /// `.ko.xz`
    Xz,
    /// `.ko.zst`
    Zstd,
}

/// Module file suffixes this crate reads, with their compression.
pub(crate) const SUFFIXES: &[(&str, Compression)] = &[
    (".ko", Compression::None),
    (".ko.xz", Compression::Xz),
    (".ko.zst", Compression::Zstd),
];

/// The module name (as written in the file name, not normalized) and
/// compression of a module file name, or `None` for other files.
pub(crate) fn split_module_file_name(file_name: &str) -> Option<(&str, Compression)> {
    SUFFIXES.iter().find_map(|(suffix, compression)| {
        file_name
            .strip_suffix(suffix)
            .filter(|stem| !stem.is_empty())
            .map(|stem| (stem, *compression))
    })
}

/// The bytes of a module file, decompressed.
pub(crate) fn read_module(path: &Path) -> Result<Vec<u8>, KernelError> {
    let io_error = |source| KernelError::Io {
        action: "reading module",
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let compression = split_module_file_name(file_name).map_or(Compression::None, |(_, c)| c);
    match compression {
        Compression::None => std::fs::read(path).map_err(io_error),
        Compression::Zstd => {
            let file = std::fs::File::open(path).map_err(io_error)?;
            let mut out = Vec::new();
            zstd::stream::Decoder::new(file)
                .and_then(|mut d| d.read_to_end(&mut out))
                .map_err(|e| bad(path, format!("zstd: {e}")))?;
            Ok(out)
        }
        Compression::Xz => {
            let file = std::fs::File::open(path).map_err(io_error)?;
            let mut out = Vec::new();
            lzma_rs::xz_decompress(&mut std::io::BufReader::new(file), &mut out)
                .map_err(|e| bad(path, format!("xz: {e}")))?;
            Ok(out)
        }
    }
}

fn bad(path: &Path, reason: String) -> KernelError {
    KernelError::BadModule {
        path: path.to_path_buf(),
        reason,
    }
}

/// What `.modinfo` says about a module's place in the graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ModInfo {
    /// `name=`, when present.
    pub name: Option<String>,
    /// `depends=`: modules that must be loaded first.
    pub depends: Vec<String>,
    /// `softdep=pre: …`: modules (or aliases) modprobe loads first when it can.
    pub soft_pre: Vec<String>,
}

/// Parses the `.modinfo` section of an ELF module image.
pub(crate) fn modinfo(path: &Path, elf: &[u8]) -> Result<ModInfo, KernelError> {
    let file = ElfFile64::<Endianness>::parse(elf).map_err(|e| bad(path, format!("ELF: {e}")))?;
    let section = file
        .section_by_name(".modinfo")
        .ok_or_else(|| bad(path, "no .modinfo section".into()))?;
    let data = section
        .data()
        .map_err(|e| bad(path, format!(".modinfo: {e}")))?;
    Ok(parse_modinfo(data))
}

/// Parses NUL-separated `key=value` strings.
pub(crate) fn parse_modinfo(data: &[u8]) -> ModInfo {
    let mut info = ModInfo::default();
    for entry in data.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let Some((key, value)) = entry.split_once('=') else {
            continue;
        };
        match key {
            "name" => info.name = Some(value.to_string()),
            "depends" => info.depends.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(String::from),
            ),
            "softdep" => info.soft_pre.extend(parse_softdep_pre(value)),
            _ => {}
        }
    }
    info
}

/// The `pre:` names of a `softdep` value such as `pre: crc32c post: foo`.
fn parse_softdep_pre(value: &str) -> Vec<String> {
    let mut pre = false;
    let mut names = Vec::new();
    for word in value.split_whitespace() {
        match word {
            "pre:" => pre = true,
            "post:" => pre = false,
            name if pre => names.push(name.to_string()),
            _ => {}
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn parses_key_values() {
        let info = parse_modinfo(
            b"license=GPL\0depends=virtio_ring,virtio,net_failover\0softdep=pre: crc32c ghash post: late\0name=virtio_net\0\0\0",
        );
        assert_eq!(info.name.as_deref(), Some("virtio_net"));
        assert_eq!(info.depends, ["virtio_ring", "virtio", "net_failover"]);
        assert_eq!(info.soft_pre, ["crc32c", "ghash"]);
    }

    #[test]
    fn empty_depends_is_no_dependency() {
        let info = parse_modinfo(b"depends=\0name=evdev\0");
        assert!(info.depends.is_empty());
        assert!(info.soft_pre.is_empty());
    }

    #[test]
    fn reads_modinfo_from_an_elf() {
        let elf = testing::module_elf("nft_ct", &["nf_tables", "nf_conntrack"]);
        let info = modinfo(Path::new("nft_ct.ko"), &elf).unwrap();
        assert_eq!(info.name.as_deref(), Some("nft_ct"));
        assert_eq!(info.depends, ["nf_tables", "nf_conntrack"]);
    }

    #[test]
    fn rejects_non_elf_and_missing_section() {
        let err = modinfo(Path::new("x.ko"), b"not an elf").unwrap_err();
        assert!(
            err.to_string().contains("x.ko: not a kernel module: ELF"),
            "{err}"
        );
        let elf = testing::elf(testing::ET_REL, &[(".text", b"\x90")], None);
        let err = modinfo(Path::new("y.ko"), &elf).unwrap_err();
        assert!(err.to_string().contains("no .modinfo section"), "{err}");
    }

    #[test]
    fn decompresses_zstd_and_xz() {
        let dir = tempfile::tempdir().unwrap();
        let elf = testing::module_elf("m", &[]);
        let zst = dir.path().join("m.ko.zst");
        std::fs::write(&zst, zstd::encode_all(&elf[..], 3).unwrap()).unwrap();
        assert_eq!(read_module(&zst).unwrap(), elf);

        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &elf[..], &mut xz).unwrap();
        let xz_path = dir.path().join("m.ko.xz");
        std::fs::write(&xz_path, xz).unwrap();
        assert_eq!(read_module(&xz_path).unwrap(), elf);

        assert_eq!(
            split_module_file_name("virtio-rng.ko.xz"),
            Some(("virtio-rng", Compression::Xz))
        );
        assert_eq!(split_module_file_name("modules.dep"), None);
        assert_eq!(split_module_file_name(".ko"), None);
    }
}

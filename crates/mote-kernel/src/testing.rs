//! Tiny ELF64 little-endian files for tests: fake kernel modules with a
//! `.modinfo` section, fake static and dynamic executables. Only with the
//! `test-support` feature (and in this crate's own tests).
//!
//! The layout is the plainest the format allows: the 64-byte file header,
//! program headers right after it (executables only), section contents, the
//! section name table, then the section headers. Nothing is loadable; the
//! files only have to parse.

/// `e_type` of a relocatable object (a kernel module).
pub const ET_REL: u16 = 1;
/// `e_type` of an executable.
pub const ET_EXEC: u16 = 2;

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;

/// A fake module: `.modinfo` holding `name=` and `depends=`.
pub fn module_elf(name: &str, depends: &[&str]) -> Vec<u8> {
    let modinfo = format!(
        "license=GPL\0depends={}\0intree=Y\0name={name}\0vermagic=test\0",
        depends.join(",")
    );
    elf(ET_REL, &[(".modinfo", modinfo.as_bytes())], None)
}

/// A fake executable; with `interp` it is dynamically linked (has PT_INTERP).
pub fn executable_elf(interp: Option<&str>) -> Vec<u8> {
    elf(ET_EXEC, &[(".text", &[0x90; 16])], interp)
}

/// An ELF file of `e_type` with the given sections and, when `interp` is
/// set, an `.interp` section and PT_INTERP segment naming it.
pub fn elf(e_type: u16, sections: &[(&str, &[u8])], interp: Option<&str>) -> Vec<u8> {
    let interp_bytes = interp.map(|i| format!("{i}\0").into_bytes());
    let mut all: Vec<(&str, &[u8])> = sections.to_vec();
    if let Some(bytes) = &interp_bytes {
        all.push((".interp", bytes));
    }
    let phnum: usize = if e_type == ET_REL {
        0
    } else {
        1 + usize::from(interp.is_some())
    };

    let mut out = vec![0u8; 64 + phnum * 56];
    let mut placed = Vec::new(); // (name offset, file offset, size, type)
    let mut names = vec![0u8];
    for (name, data) in &all {
        placed.push((names.len(), out.len(), data.len(), SHT_PROGBITS));
        names.extend_from_slice(name.as_bytes());
        names.push(0);
        out.extend_from_slice(data);
    }
    let shstrtab_name = names.len();
    names.extend_from_slice(b".shstrtab\0");
    placed.push((shstrtab_name, out.len(), names.len(), SHT_STRTAB));
    out.extend_from_slice(&names);
    out.resize(out.len().next_multiple_of(8), 0);
    let shoff = out.len();
    out.extend_from_slice(&[0; 64]); // the null section
    for (name, offset, size, kind) in &placed {
        put_u32(&mut out, *name as u32);
        put_u32(&mut out, *kind);
        out.extend_from_slice(&[0; 16]); // flags, addr
        put_u64(&mut out, *offset as u64);
        put_u64(&mut out, *size as u64);
        out.extend_from_slice(&[0; 8]); // link, info
        put_u64(&mut out, 1); // addralign
        put_u64(&mut out, 0); // entsize
    }
    let total = out.len() as u64;

    let header = &mut out[..64];
    header[..7].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1]);
    header[16..18].copy_from_slice(&e_type.to_le_bytes());
    header[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    header[20..24].copy_from_slice(&1u32.to_le_bytes());
    header[32..40].copy_from_slice(&(if phnum > 0 { 64u64 } else { 0 }).to_le_bytes());
    header[40..48].copy_from_slice(&(shoff as u64).to_le_bytes());
    header[52..54].copy_from_slice(&64u16.to_le_bytes());
    header[54..56].copy_from_slice(&56u16.to_le_bytes());
    header[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
    header[58..60].copy_from_slice(&64u16.to_le_bytes());
    header[60..62].copy_from_slice(&(placed.len() as u16 + 1).to_le_bytes());
    header[62..64].copy_from_slice(&(placed.len() as u16).to_le_bytes());

    let mut segments = vec![(PT_LOAD, 0u64, total)];
    if let Some(bytes) = &interp_bytes {
        let (_, offset, _, _) = placed[all.len() - 1];
        segments.insert(0, (PT_INTERP, offset as u64, bytes.len() as u64));
    }
    for (i, (kind, offset, size)) in segments.into_iter().take(phnum).enumerate() {
        let ph = &mut out[64 + i * 56..64 + (i + 1) * 56];
        ph[0..4].copy_from_slice(&kind.to_le_bytes());
        ph[4..8].copy_from_slice(&5u32.to_le_bytes()); // r-x
        ph[8..16].copy_from_slice(&offset.to_le_bytes());
        ph[16..24].copy_from_slice(&(0x40_0000 + offset).to_le_bytes());
        ph[24..32].copy_from_slice(&(0x40_0000 + offset).to_le_bytes());
        ph[32..40].copy_from_slice(&size.to_le_bytes());
        ph[40..48].copy_from_slice(&size.to_le_bytes());
        ph[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
    }
    out
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

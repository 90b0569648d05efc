//! The outputs beyond kernel + initramfs: the UKI and the disks made from
//! it, each `DIR/NAME.EXT`, in dependency order (UKI → raw → the rest).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use mote_config::Output;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ImageBuildError;
use crate::uki::{Payload, Section};

/// One output file of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputReport {
    /// `uki`, `raw`, `qcow2`, `vhdx`, `vhd`.
    pub format: String,
    /// Its file name in the output directory.
    pub file: String,
    /// Its size on disk.
    pub bytes: u64,
    /// The disk size a guest sees (disks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_size: Option<u64>,
    /// SHA-256 of the file, hexadecimal.
    pub sha256: String,
}

/// What the outputs are made from.
pub(crate) struct Parts<'a> {
    pub name: &'a str,
    pub out_dir: &'a Path,
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    pub cmdline: &'a str,
    pub kernel_version: &'a str,
    pub epoch: u64,
    /// (key, certificate) that sign the UKI for Secure Boot.
    pub secure_boot: Option<(PathBuf, PathBuf)>,
}

fn os_release(name: &str) -> String {
    format!(
        "NAME=\"mote\"\nID=mote\nPRETTY_NAME=\"mote node {name}\"\nVERSION_ID={}\nIMAGE_ID={name}\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let bytes = io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// Write the outputs `wanted` asks for beyond `initrd`; an output another
/// needs but `wanted` does not name is made in a temporary file and removed.
pub(crate) fn write(
    parts: &Parts<'_>,
    wanted: &[Output],
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<OutputReport>, ImageBuildError> {
    let wants = |o: Output| wanted.contains(&o);
    let disks: Vec<Output> = [Output::Raw, Output::Qcow2, Output::Vhdx, Output::Vhd]
        .into_iter()
        .filter(|o| wants(*o))
        .collect();
    if !wants(Output::Uki) && disks.is_empty() {
        return Ok(Vec::new());
    }
    let path_of = |o: Output, keep: bool| -> PathBuf {
        let ext = o.extension().unwrap_or("out");
        if keep {
            parts.out_dir.join(format!("{}.{ext}", parts.name))
        } else {
            parts.out_dir.join(format!(".{}.{ext}.tmp", parts.name))
        }
    };
    let mut reports = Vec::new();
    let mut temporary = Vec::new();
    let result = (|| {
        let uki = path_of(Output::Uki, wants(Output::Uki));
        if !wants(Output::Uki) {
            temporary.push(uki.clone());
        }
        progress("writing the UKI");
        let osrel = os_release(parts.name);
        let cmdline = parts.cmdline.as_bytes();
        let sections = [
            Section {
                name: ".osrel",
                payload: Payload::Bytes(osrel.as_bytes()),
            },
            Section {
                name: ".cmdline",
                payload: Payload::Bytes(cmdline),
            },
            Section {
                name: ".uname",
                payload: Payload::Bytes(parts.kernel_version.as_bytes()),
            },
            Section {
                name: ".initrd",
                payload: Payload::File(parts.initrd),
            },
            Section {
                name: ".linux",
                payload: Payload::File(parts.vmlinuz),
            },
        ];
        crate::uki::write(Path::new(crate::uki::STUB), &sections, &uki)?;
        if let Some((key, cert)) = &parts.secure_boot {
            progress("signing the UKI for Secure Boot");
            crate::sign::sign(&uki, key, cert, parts.epoch)?;
        }
        let (uki_bytes, uki_sha) = hash_file(&uki).map_err(io_error("reading", &uki))?;
        if wants(Output::Uki) {
            reports.push(OutputReport {
                format: "uki".into(),
                file: file_name(&uki),
                bytes: uki_bytes,
                virtual_size: None,
                sha256: uki_sha.clone(),
            });
        }
        if disks.is_empty() {
            return Ok(());
        }
        // Every identifier of the disk derives from the UKI's digest: the
        // whole operating system, so two different images never share one.
        let seed = uki_sha.as_bytes();
        let raw = path_of(Output::Raw, wants(Output::Raw));
        if !wants(Output::Raw) {
            temporary.push(raw.clone());
        }
        progress("writing the GPT disk");
        let layout = crate::disk::write_raw(&uki, &raw, seed, parts.epoch)?;
        for format in disks {
            let out = path_of(format, true);
            match format {
                Output::Raw => {}
                Output::Vhd => {
                    progress("writing the VHD");
                    crate::formats::write_vhd(&raw, &out, seed, parts.epoch)?;
                }
                Output::Qcow2 | Output::Vhdx => {
                    let ext = format.extension().unwrap_or_default();
                    progress(&format!("converting to {ext}"));
                    crate::formats::convert(&raw, ext, &out, seed)?;
                }
                Output::Initrd | Output::Uki => continue,
            }
            let (bytes, sha256) = hash_file(&out).map_err(io_error("reading", &out))?;
            reports.push(OutputReport {
                format: format.extension().unwrap_or_default().to_string(),
                file: file_name(&out),
                bytes,
                virtual_size: Some(layout.disk_size),
                sha256,
            });
        }
        Ok(())
    })();
    for path in temporary {
        let _ = std::fs::remove_file(path);
    }
    result.map(|()| reports)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ImageBuildError {
    let path = path.to_path_buf();
    move |source| ImageBuildError::Io {
        action,
        path,
        source,
    }
}

//! `build.json`: what a build made, from what.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What `build.json` holds. Two builds of the same inputs give the same
/// report except for `build_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildReport {
    /// The manifest built.
    pub manifest: ManifestReport,
    /// The kernel in the image.
    pub kernel: KernelReport,
    /// Packages installed, dependencies first.
    pub packages: Vec<crate::PackageReport>,
    /// The kernel command line (also in `cmdline`).
    pub cmdline: String,
    /// Every regular file of the userland segment, sorted by destination.
    pub files: Vec<FileReport>,
    /// Module names in load order (the closure of the drivers asked for).
    pub modules: Vec<String>,
    /// Sizes in bytes.
    pub sizes: Sizes,
    /// The UKI and disk files written, with their digests.
    #[serde(default)]
    pub outputs: Vec<crate::OutputReport>,
    /// Wall time of `build`, in milliseconds: the only field that differs
    /// between two builds of the same inputs.
    pub build_ms: u64,
}

/// The manifest built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestReport {
    /// Its path, as given.
    pub path: PathBuf,
    /// SHA-256 of its text, hexadecimal.
    pub sha256: String,
}

/// The kernel in the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelReport {
    /// Kernel release (`6.1.0-56-cloud-amd64`).
    pub version: String,
    /// `"PACKAGE VERSION"`, or `None` for a local kernel.
    pub package: Option<String>,
    /// Size of `vmlinuz`.
    pub bytes: u64,
}

/// One file of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// Absolute path in the image.
    pub destination: String,
    /// Its size.
    pub bytes: u64,
    /// Octal permission bits, such as `"0755"`.
    pub mode: String,
}

/// Sizes of the outputs and their parts, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    /// `vmlinuz`.
    pub kernel: u64,
    /// `initrd.img`: both compressed segments.
    pub initramfs: u64,
    /// The userland segment, compressed.
    pub userland_compressed: u64,
    /// The userland archive before compression.
    pub userland_uncompressed: u64,
    /// The modules segment, compressed.
    pub modules_compressed: u64,
    /// The modules archive before compression.
    pub modules_uncompressed: u64,
}

//! mote-image: turns a manifest, a kernel and the static node binaries into
//! a bootable mote image.
//!
//! # Job
//! [`build`] writes an image directory for direct kernel boot:
//!
//! | file | what |
//! | --- | --- |
//! | `vmlinuz` | the kernel, copied |
//! | `initrd.img` | the root file system: two zstd-compressed cpio archives, concatenated |
//! | `cmdline` | the kernel command line ([`kernel_cmdline`]) |
//! | `build.json` | the [`BuildReport`]: inputs, files, modules, sizes, outputs |
//! | `NAME.efi` | with `uki` in `[image] outputs`: the Unified Kernel Image ([`uki`]) |
//! | `NAME.raw`, `.qcow2`, `.vhdx`, `.vhd` | the GPT disk ([`disk`]) in each format asked for ([`formats`]) |
//!
//! The first archive is the userland: `/init` (the static `mote-init`), the
//! directories PID 1 mounts on, `/dev/console` (so the kernel can give PID 1
//! its console), `/etc/mote/settings.json` (the node settings of the
//! manifest), `/etc/mote/modules` (the modules to load, in order),
//! `/etc/passwd`, `/etc/group`, `/etc/hostname`, `/usr/bin/moted` (the
//! management agent, from the bin dir, when `[management]` is enabled), and
//! the manifest's `[[files]]`. The second archive is the kernel modules: the dependency
//! closure of `[kernel] drivers` plus [`NODE_MODULES`], uncompressed, under
//! `/lib/modules/VERSION`. The kernel unpacks both into one root file system;
//! keeping them apart lets the report give the userland's size on its own.
//!
//! # Design
//! - Everything is planned and checked before anything is written: a
//!   `[[files]]` destination that is mote's own (`/init`, `/etc/mote/…`) or
//!   taken twice, a missing source, a dynamically linked ELF executable (a
//!   node has no shared libraries), a service whose program is not in the
//!   image: each fails the build with the input named.
//! - Reproducible: entries are sorted, inodes numbered in order, owners are
//!   the manifest's (root by default, never the host's), every time is
//!   `SOURCE_DATE_EPOCH` (0 when unset), compression is single-threaded at a
//!   fixed level. The same inputs give byte-identical `vmlinuz` and
//!   `initrd.img`; in `build.json` only `build_ms` differs.
//! - Files are streamed from the host into the compressor, never held whole;
//!   each output is written to a temporary file and renamed into place.
//!
//! # Limits
//! Disks boot with UEFI only (no BIOS boot loader); packages come from
//! files or are the roles built with mote (no repositories yet); cpio
//! limits a file to 4 GiB; host
//! file names must be UTF-8; hard links in copied directories become copies;
//! a service's program is looked up through symbolic links to files, not
//! through symbolic links to directories.
//!
//! # Example
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! let manifest_path = Path::new("examples/hello.toml");
//! let text = std::fs::read_to_string(manifest_path)?;
//! let manifest = mote_config::parse(&text, manifest_path)?;
//! let cache = mote_kernel::KernelCache::default_location()?;
//! let kernel = mote_kernel::obtain(&manifest.kernel, Path::new("examples"), &cache, &mut |m| eprintln!("{m}"))?;
//! let inputs = mote_image::BuildInputs {
//!     manifest: &manifest,
//!     manifest_path,
//!     manifest_text: &text,
//!     bin_dir: Path::new("target/x86_64-unknown-linux-gnu/release"),
//!     kernel: &kernel,
//! };
//! let report = mote_image::build(&inputs, Path::new("out/hello"), &mut |m| eprintln!("{m}"))?;
//! println!("initramfs: {} bytes", report.sizes.initramfs);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod compose;
pub mod cpio;
pub mod disk;
pub mod edit;
mod elf;
mod error;
pub mod formats;
pub mod inspect;
mod layout;
mod outputs;
mod packages;
mod report;
pub mod roles;
mod sign;
mod tools;
pub mod uki;

pub use compose::{build, BuildInputs};
pub use error::ImageBuildError;
pub use outputs::OutputReport;
pub use packages::{installed, Origin, PackageReport};
pub use report::{BuildReport, FileReport, KernelReport, ManifestReport, Sizes};

/// Modules every node loads whatever its drivers: nftables with connection
/// tracking for the firewall (`nf_conntrack` comes with `nft_ct`), and the
/// ACPI power button with its input events for an orderly power-off.
pub const NODE_MODULES: &[&str] = &["nf_tables", "nft_ct", "button", "evdev"];

/// mote's kernel command line: the serial console, quiet boot, reboot at
/// once on a kernel panic; then the manifest's `[kernel] cmdline`.
///
/// ```
/// let manifest: mote_config::Manifest = toml::from_str(
///     "[image]\nname = \"n\"\n[system]\nhostname = \"n\"\n[kernel]\ncmdline = \"loglevel=7\"\n",
/// ).unwrap();
/// assert_eq!(mote_image::kernel_cmdline(&manifest), "console=ttyS0 quiet panic=-1 loglevel=7");
/// ```
pub fn kernel_cmdline(manifest: &mote_config::Manifest) -> String {
    let mut line = String::from("console=ttyS0 quiet panic=-1");
    let extra = manifest.kernel.cmdline.trim();
    if !extra.is_empty() {
        line.push(' ');
        line.push_str(extra);
    }
    line
}

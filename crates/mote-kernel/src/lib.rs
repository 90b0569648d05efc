//! mote-kernel: the kernel of a mote image and the driver modules that go
//! with it.
//!
//! Its job is three steps, each a function:
//!
//! 1. [`obtain`] a kernel for a manifest's `[kernel]` section: by default
//!    Debian's `linux-image-cloud-amd64`, resolved offline with `apt-cache`,
//!    fetched once with `apt-get download` + `dpkg-deb -x` into a
//!    [`KernelCache`] and reused from then on without touching the network;
//!    or a local kernel (`path` + `modules`).
//! 2. [`expand_drivers`]: turn `[kernel] drivers` (bundles such as `virtio`,
//!    `hyperv`, `host`, or module names) into module names.
//! 3. [`resolve_modules`]: the dependency closure of those names in the
//!    kernel's `lib/modules/VERSION`, in load order, built-ins skipped.
//!
//! Design: the cache is plain directories, one per package version, made
//! atomically (extract into a `.partial-*` directory, describe it, rename).
//! Debian's packages carry no `modules.dep` (depmod runs at install), so
//! dependencies come from each module's ELF `.modinfo` section, read only for
//! the modules in the closure; a tree with a `modules.dep` (a locally
//! installed kernel) uses that instead. `apt-cache` is slow where apt keeps
//! no binary cache (container images: ~0.6 s a call), so its answer is
//! remembered in the cache against a fingerprint of apt's lists; a warm
//! `obtain` runs no program at all.
//!
//! Limits: fetching needs apt on the host and a package that holds both the
//! kernel and its modules, as Debian's do (Ubuntu splits modules into
//! `linux-modules-*`: use a local kernel there); modules compressed
//! with gzip are not read (`.ko`, `.ko.xz` and `.ko.zst` are); soft
//! dependencies naming aliases (`softdep=pre: crc32c`) are not resolved;
//! `modules.softdep`, `modules.alias` and firmware are ignored.
//!
//! ```no_run
//! use mote_kernel::{expand_drivers, obtain, resolve_modules, KernelCache};
//!
//! let cache = KernelCache::default_location()?;
//! let kernel = obtain(&mote_config::Kernel::default(), ".".as_ref(), &cache, &mut |m| eprintln!("{m}"))?;
//! let names = expand_drivers(&["virtio".to_string(), "nf_tables".to_string()]);
//! for module in resolve_modules(&kernel.modules_dir, &names)? {
//!     println!("{}", module.relative.display());
//! }
//! # Ok::<(), mote_kernel::KernelError>(())
//! ```
#![deny(missing_docs)]

mod bundles;
mod cache;
mod error;
mod modinfo;
mod modules;
mod obtain;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;

pub use bundles::{bundle, bundle_names, expand_drivers};
pub use cache::{CachedKernel, KernelCache};
pub use error::KernelError;
pub use modules::{available_modules, builtin_modules, resolve_modules, Module};
pub use obtain::{obtain, ResolvedKernel};

/// A module name as the kernel compares it: `-` and `_` are the same.
pub(crate) fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

//! mote packages: how a role or a user's app is described, packed, signed,
//! checked and put in order before it is installed.
//!
//! # Job
//! - [`PackageManifest`]: `package.toml`, typed with the manifest's own
//!   types for files, services and ports (from `mote-config`);
//! - [`build`] packs a package directory into archive bytes (`.mpkg`),
//!   reproducibly, refusing dynamically linked executables ([`elf`]);
//!   [`open`] reads archive bytes back into a checked [`Package`];
//! - [`generate_key`], [`sign`] and [`verify`] make and check signatures in
//!   minisign's format (Ed25519), against a list of trusted keys;
//! - [`resolve`] turns requested packages into an install set in dependency
//!   order.
//!
//! `docs/packages.md` in the repository describes the format and the
//! commands (`mote package build|sign|verify`, `mote key generate`).
//!
//! # Design
//! - The archive is a zstd-compressed tar: `package.toml` first, then
//!   `files/PATH` per installed file, sorted, with fixed times and declared
//!   owners and modes (see the `archive` module's docs for the choice).
//! - Opening trusts nothing: size and entry limits, plain relative paths
//!   under `files/`, links that stay inside, and the archive must match
//!   what `package.toml` declares, file for file.
//! - A signature covers the archive bytes, so build, sign and verify need
//!   no canonical form beyond "the same bytes".
//!
//! # Limits
//! - This is the first step of roles-as-packages: nothing installs a
//!   package yet (not the image builder offline, not `moted` online), and
//!   there are no repositories. The web role is not a package yet.
//! - A `[[files]]` source is one file or link; directories are not walked.
//! - Readiness is the supervisor's: a service with a TCP port is ready when
//!   it listens there; there is no other readiness key yet.
//! - Resolution keeps one version per name and does not backtrack.
//! - Signatures do not expire; keys are not revoked (remove a key from the
//!   trusted list instead).
//!
//! # Example
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! std::fs::write(
//!     dir.path().join("package.toml"),
//!     "name = \"motd\"\nversion = \"1.0.0\"\ndescription = \"A greeting\"\n\
//!      [[files]]\nsource = \"motd.txt\"\ndestination = \"/etc/motd\"\nmode = \"0644\"\n",
//! )?;
//! std::fs::write(dir.path().join("motd.txt"), "hello\n")?;
//!
//! let archive = mote_package::build(dir.path(), &Default::default())?;
//! assert_eq!(archive, mote_package::build(dir.path(), &Default::default())?);
//!
//! let keys = mote_package::generate_key()?;
//! let secret = mote_package::SecretKey::parse(&keys.secret, "motd.key", None)?;
//! let public = mote_package::PublicKey::parse(&keys.public, "motd.key.pub")?;
//! let signature = mote_package::sign(&archive, &secret, "package:motd 1.0.0")?;
//!
//! let signer = mote_package::verify(&archive, Some(&signature), &[public])?;
//! assert_eq!(signer.key_id, keys.key_id);
//! let package = mote_package::open(&archive)?;
//! assert_eq!(package.files[0].destination, "/etc/motd");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod archive;
pub mod elf;
mod installed;
mod manifest;
pub mod repository;
mod resolve;
mod sign;

pub use archive::{
    build, open, BuildError, BuildOptions, Content, OpenError, Package, PackageFile,
    MAX_ARCHIVE_BYTES, MAX_ENTRIES, MAX_MANIFEST_BYTES, MAX_UNPACKED_BYTES,
};
pub use installed::Installed;
pub use manifest::{
    is_name, Directory, Group, ManifestError, Metrics, PackageFirewall, PackageManifest,
    ReloadSignal, User, MANIFEST_FILE,
};
pub use resolve::{resolve, Candidate, Request, ResolveError};
pub use sign::{
    generate_key, sign, verify, KeyError, KeyPair, PublicKey, SecretKey, Signer, VerifyError,
};

/// The file extension of package archives.
pub const EXTENSION: &str = "mpkg";

/// The file extension minisign gives signatures: `hello.mpkg.minisig`.
pub const SIGNATURE_EXTENSION: &str = "minisig";

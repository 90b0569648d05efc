//! The one error type of image building.

use std::io;
use std::path::{Path, PathBuf};

/// What can go wrong while building an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageBuildError {
    /// A file system operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The UKI could not be made.
    #[error("the UKI: {0}")]
    Uki(#[from] crate::uki::UkiError),

    /// The UKI could not be signed.
    #[error("signing the UKI for Secure Boot: {0}")]
    Sign(#[from] crate::sign::SignError),

    /// The GPT disk could not be made.
    #[error("the disk: {0}")]
    Disk(#[from] crate::disk::DiskError),

    /// A disk format could not be written.
    #[error("the disk format: {0}")]
    Format(#[from] crate::formats::FormatError),

    /// The bin dir has no `mote-init`.
    #[error(
        "{} not found: the image's /init is the static mote-init; run `cargo build --release` first \
         (or point --bin-dir / MOTE_BIN_DIR at the directory holding it)",
        path.display()
    )]
    MissingInit {
        /// Where it was looked for.
        path: PathBuf,
    },

    /// `[management]` is enabled but the bin dir has no `moted`.
    #[error(
        "{} not found: [management] is enabled, so the image carries the static moted; build the \
         workspace with `cargo build --release` first (or set [management] enabled = false)",
        path.display()
    )]
    MissingMoted {
        /// Where it was looked for.
        path: PathBuf,
    },

    /// A package cannot be installed: not found, not trusted, broken, or
    /// in conflict with another or with the manifest.
    #[error("packages: {entry}: {problem}")]
    Package {
        /// The `packages` entry (or key) it is about.
        entry: String,
        /// What is wrong and what to do.
        problem: String,
    },

    /// A `bin:NAME` source is not in the bin dir.
    #[error(
        "[[files]] {destination}: bin:{name} is {} which does not exist; run `cargo build --release` first \
         (or point --bin-dir / MOTE_BIN_DIR at the directory holding it)",
        path.display()
    )]
    MissingBin {
        /// The destination of the `[[files]]` entry.
        destination: String,
        /// The binary's name.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
    },

    /// A `[[files]]` source cannot be read.
    #[error("[[files]] {destination}: source {} cannot be read", path.display())]
    Source {
        /// The destination of the entry.
        destination: String,
        /// The source path, resolved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A destination is not an absolute, plain path.
    #[error("[[files]] destination {destination:?}: must be an absolute path without `.` or `..` parts, such as \"/usr/bin/app\"")]
    BadDestination {
        /// The destination as written.
        destination: String,
    },

    /// A destination is one mote writes itself.
    #[error("[[files]] {destination}: {reason}; choose another destination")]
    ReservedDestination {
        /// The path in the image.
        destination: String,
        /// What mote puts there.
        reason: &'static str,
    },

    /// Two entries want the same path.
    #[error("[[files]] {destination}: already in the image from {first}")]
    Collision {
        /// The path in the image.
        destination: String,
        /// Where the first one came from.
        first: String,
    },

    /// An owner or mode does not parse.
    #[error("[[files]] {destination}: {key}: {source}")]
    BadValue {
        /// The destination of the entry.
        destination: String,
        /// `owner` or `mode`.
        key: &'static str,
        /// What is wrong.
        #[source]
        source: mote_config::ValueError,
    },

    /// A dynamically linked executable.
    #[error(
        "{}: dynamically linked (it asks for {interpreter}); mote nodes have no shared libraries: \
         link it statically (RUSTFLAGS='-C target-feature=+crt-static')",
        path.display()
    )]
    DynamicElf {
        /// The file on the host.
        path: PathBuf,
        /// Its PT_INTERP.
        interpreter: String,
    },

    /// A file that starts like ELF but does not parse.
    #[error("{}: malformed ELF file: {reason}", path.display())]
    BadElf {
        /// The file on the host.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },

    /// A socket, FIFO or device in a copied directory.
    #[error("{}: only regular files, directories and symbolic links can be copied into an image", path.display())]
    UnsupportedFileType {
        /// The file on the host.
        path: PathBuf,
    },

    /// A host file name that is not UTF-8.
    #[error("{}: file names in an image must be UTF-8", path.display())]
    NonUtf8Name {
        /// The file on the host.
        path: PathBuf,
    },

    /// A program a service or first-boot command runs is not in the image.
    #[error("{key}: {program} is not an executable file in the image; copy it in with [[files]] (mode \"0755\")")]
    MissingProgram {
        /// `services.NAME.argv` or `first_boot[N].argv`.
        key: String,
        /// `argv[0]`.
        program: String,
    },

    /// The kernel's modules do not resolve.
    #[error("kernel modules in {}", modules_dir.display())]
    Modules {
        /// The kernel's `lib/modules/VERSION`.
        modules_dir: PathBuf,
        /// What went wrong.
        #[source]
        source: mote_kernel::KernelError,
    },
}

/// `map_err` helper: an [`ImageBuildError::Io`] for `action` on `path`.
pub(crate) fn io_error(
    action: &'static str,
    path: &Path,
) -> impl FnOnce(io::Error) -> ImageBuildError {
    let path = path.to_path_buf();
    move |source| ImageBuildError::Io {
        action,
        path,
        source,
    }
}

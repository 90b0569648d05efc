//! The web role's library: its settings section (`roles.web`) with its
//! validation and defaults, the canonical request path those settings are
//! checked against, and its entry in the role contract. The server itself
//! is the `mote-web` binary (`src/main.rs`).

#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod path;
pub mod role;

/// The package directory: `package.toml` and the files it installs besides
/// the binary, for the image builder to pack (see `mote-roles`).
pub const PACKAGE: &[(&str, &[u8])] = &[
    ("package.toml", include_bytes!("../package/package.toml")),
    ("index.html", include_bytes!("../package/index.html")),
];

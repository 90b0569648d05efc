//! The mote schema: one set of types for the manifest a user writes and the
//! settings a node runs with, with loading and validation whose errors say
//! where and what.
//!
//! # Job
//! [`load`] reads a manifest (`mote build`, `mote check`), [`Manifest::settings`]
//! cuts out the part the node keeps ([`NodeSettings`], stored by the image as
//! `/etc/mote/settings.json`), and [`NodeSettings::validate`] checks settings on
//! their own, as `moted` does with an API patch or the recovery console with an
//! edit. [`password`] makes and checks the administrator credential.
//!
//! # Design
//! Loading has three stages, each with its own error:
//! 1. TOML syntax ([`ManifestError::Syntax`]);
//! 2. the schema, with `deny_unknown_fields` everywhere and values such as ports,
//!    addresses and keywords parsed while deserializing ([`ManifestError::Schema`]);
//! 3. rules that need more than one value or more than a type, written as plain
//!    Rust on the typed values ([`Manifest::validate`], [`NodeSettings::validate`]),
//!    returning every problem as an [`Invalid`] with its key path; [`parse`]
//!    then finds each key path in the text ([`ManifestError::Invalid`]).
//!
//! Every message has one shape:
//!
//! ```text
//! hello.toml:12:11: services.hello.restart: found "sometimes"; allowed: "always", "on-failure", "never"
//! hello.toml:4:1: system.admin_password_hash: found nothing; allowed: an argon2id PHC string …
//!   hint: run 'mote passwd' and put the printed line under [system] as admin_password_hash = "…"
//! ```
//!
//! `docs/manifest.md` in the repository lists every key with its default.
//!
//! # Limits
//! - Syntax and schema stages stop at the first error; the rule stage reports all.
//! - The key path of a syntax error is read from the nearest headers in the text,
//!   so it is a best guess for multi-line values.
//! - Only `UTC` is accepted as a time zone; driver and module names are checked by
//!   `mote-kernel`, not here; whether a program in `argv` exists in the image is
//!   checked by the image builder.
//!
//! # Example
//! ```
//! use std::path::Path;
//!
//! let hash = mote_config::password::hash("correct horse")?;
//! let text = format!(
//!     "[image]\nname = \"hello\"\n[system]\nhostname = \"hello\"\nadmin_password_hash = \"{hash}\"\n\
//!      [services.hello]\nargv = [\"/usr/bin/hello\"]\nuser = \"nobody\"\nports = [8080]\n"
//! );
//! let manifest = mote_config::parse(&text, Path::new("hello.toml"))?;
//! let settings = manifest.settings();
//! assert_eq!(settings.service_order(), ["hello"]);
//! // The service's port, then the management port (5986 unless set).
//! assert_eq!(settings.open_ports()[0].to_string(), "5986/tcp");
//! assert_eq!(settings.open_ports()[1].to_string(), "8080/tcp");
//!
//! let err = mote_config::parse("[image]\nname = \"hello\"\nbogus = 1\n", Path::new("bad.toml"))
//!     .unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "bad.toml:3:1: image.bogus: found unknown key \"bogus\"; allowed: \"name\", \"outputs\", \"secure_boot\""
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod error;
mod invalid;
pub mod json;
mod load;
mod manifest;
mod order;
mod parse;
pub mod password;
pub mod paths;
pub mod prometheus;
mod role;
#[cfg(feature = "cli")]
pub mod role_cli;
mod schema;
mod settings;
mod validate;

pub use error::{Located, ManifestError};
pub use invalid::Invalid;
pub use load::{load, load_with, parse, parse_with};
pub use manifest::{
    FileCopy, Image, Kernel, Manifest, Output, Packages, SecureBoot, DEFAULT_KERNEL_PACKAGE,
};
pub use parse::{parse_mode, parse_owner, parse_user, ValueError};
pub use password::PasswordError;
pub use role::{
    check_sections, role_ports, section, section_or_default, PerfColumn, PerfRow, PerfUnit, Role,
    RolePerf,
};
pub use settings::{
    Firewall, FirewallRule, FirstBoot, Interface, Ipv4Mode, Ipv6Mode, Management, Network,
    NodeSettings, Policy, Port, Protocol, RestartPolicy, Roles, Service, System,
    DEFAULT_MANAGEMENT_PORT, DEFAULT_OPEN_FILES, KNOWN_CAPABILITIES, MAX_OPEN_FILES,
};
pub use validate::is_package_name;

//! The mote schema: one set of types for the manifest a user writes and the
//! settings a node runs with, validated while deserializing so that every
//! error names the file, line, column, key path, what was found and what is
//! allowed.
//!
//! ```no_run
//! let manifest = mote_config::load(std::path::Path::new("examples/hello.toml"))?;
//! println!("{}", manifest.image.name);
//! # Ok::<(), mote_config::ManifestError>(())
//! ```
#![deny(missing_docs)]

mod manifest;
mod parse;
mod settings;

pub use manifest::{FileCopy, Image, Kernel, Manifest, Output, DEFAULT_KERNEL_PACKAGE};
pub use settings::{
    FirewallRule, Firewall, FirstBoot, Interface, Ipv4Mode, Ipv6Mode, Network, NodeSettings,
    Policy, Port, Protocol, RestartPolicy, Service, System,
};

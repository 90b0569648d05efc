//! Types shared across the management boundary.
//!
//! - [`control`]: the protocol between `moted` and PID 1 (`mote-init`) on
//!   the node, over the unix socket [`control::SOCKET`].
//! - [`events`]: node events, as PID 1 records them and the API serves them.
//! - [`store`]: the settings store on the state disk, which moted writes and
//!   PID 1 boots from.
//!
//! - [`api`]: request and response bodies of the HTTPS management API that
//!   `moted` serves on port 5986.
//! - [`client`] (feature `client`): the HTTPS client, pinning the node's
//!   certificate fingerprint.
//!
//! The `mote` CLI and `moted` share these, so they never disagree on a shape.
#![deny(missing_docs)]

pub mod api;
#[cfg(feature = "client")]
pub mod client;
pub mod control;
pub mod events;
pub mod store;

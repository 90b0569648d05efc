//! Types shared across the management boundary.
//!
//! - [`control`]: the protocol between `moted` and PID 1 (`mote-init`) on
//!   the node, over the unix socket [`control::SOCKET`].
//! - [`events`]: node events, as PID 1 records them and the API serves them.
//!
//! The HTTPS API types and the client live here too as they are written, so
//! the `mote` client and `moted` never disagree on a shape.
#![deny(missing_docs)]

pub mod control;
pub mod events;

//! PID 1 of a mote node. See `main.rs` for the boot phases.
#![deny(missing_docs)]

pub mod events;
pub mod net;

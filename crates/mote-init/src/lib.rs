//! PID 1 of a mote node: the boot phases ([`boot`]), the state disk
//! ([`state`]), networking and firewall ([`net`]), the service supervisor
//! ([`supervisor`]), structured events ([`events`]) and the ordered end of a
//! run ([`power`]).
//!
//! PID 1 never exits and never panics on input: every failure becomes an
//! event and the node carries on without the part that failed. Should a bug
//! panic anyway, `main` catches it, logs it and reboots the node.
#![deny(missing_docs)]

pub mod boot;
pub mod console;
pub mod control;
pub mod events;
pub mod first_boot;
mod grow;
pub mod management;
pub mod net;
pub mod package_store;
pub mod packages;
pub mod power;
pub mod state;
pub mod supervisor;
pub mod system;

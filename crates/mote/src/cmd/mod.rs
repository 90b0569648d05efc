//! One module per verb; the remote verbs in [`remote`].

pub mod build;
pub mod check;
pub mod doctor;
pub mod image;
pub mod key;
pub mod node;
pub mod nodes;
pub mod package;
pub mod passwd;
pub mod remote;
pub mod run;
pub mod session;

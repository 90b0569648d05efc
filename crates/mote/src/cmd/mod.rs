//! One module per verb.

pub mod build;
pub mod check;
pub mod doctor;
pub mod nodes;
pub mod passwd;
pub mod run;

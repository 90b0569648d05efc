//! What the resources rest on: JSON tree edits, `/proc` and cgroup readers.

pub mod json;
pub mod perf;
pub mod procs;
pub mod web;

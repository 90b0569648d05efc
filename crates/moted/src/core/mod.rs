//! What the resources rest on: JSON tree edits, `/proc` and cgroup readers,
//! the web package's metrics and its check of `roles.web`.

pub mod json;
pub mod perf;
pub mod procs;
pub mod web;

//! What the resources rest on: JSON tree edits, `/proc` and cgroup readers,
//! the packages' metrics and the per site figures in them.

pub mod json;
pub mod perf;
pub mod procs;
pub mod role_metrics;
pub mod web;

//! What the resources rest on: JSON tree edits, `/proc` and cgroup readers,
//! and the packages' metrics endpoints.

pub mod json;
pub mod perf;
pub mod procs;
pub mod role_metrics;

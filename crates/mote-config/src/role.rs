//! The role contract's settings half: what a role library gives the rest of
//! mote so that a `[roles.NAME]` section is checked, defaulted and turned
//! into open ports without any other crate knowing the role.
//!
//! A role crate under `roles/` implements [`Role`] for its typed settings
//! (serde with `deny_unknown_fields`, its own validation and defaults); the
//! registry crate `mote-roles` lists every role; the manifest loader
//! ([`crate::parse_with`]), `moted` and PID 1 take that list and never name
//! a role themselves. [`section`] does the serde half for a role, so that a
//! bad section reads exactly like the rest of the manifest:
//!
//! ```text
//! web.toml:14:8: roles.web.sites[0].bindings[0].port: found "eighty"; allowed: a port from 1 to 65535
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::invalid::{join, Invalid};
use crate::settings::{NodeSettings, Port};

/// A role's settings: how its `[roles.NAME]` section is read and checked.
pub trait Role: Sync {
    /// The section name, `web` for `[roles.web]`; also the package name.
    fn name(&self) -> &'static str;

    /// The section a node gets when its manifest installs the role and
    /// writes no section.
    fn defaults(&self) -> serde_json::Value;

    /// Every problem of `section`, each with a key path relative to the
    /// section (`sites[0].root`); [`section`] reads the types.
    fn check(&self, section: &serde_json::Value) -> Result<(), Vec<Invalid>>;

    /// The inbound ports the section makes the role listen on (a web
    /// site's bindings), besides those its package declares.
    fn ports(&self, section: &serde_json::Value) -> Vec<Port>;

    /// The role's figures for the node's performance surface, summarised
    /// from the text its metrics endpoint (`[metrics]` in its
    /// `package.toml`) answered; None when the role has none to show.
    fn performance(&self, _metrics: &str) -> Option<RolePerf> {
        None
    }
}

/// One role's figures in `GET /v1/performance`: a table with a row per
/// thing the role serves (a web site, a DNS zone, a container).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RolePerf {
    /// The role (package) the figures come from.
    pub role: String,
    /// What one row is: `site`, `zone`, `container`.
    pub row: String,
    /// The columns, in order.
    pub columns: Vec<PerfColumn>,
    /// One row per site, zone or container.
    pub rows: Vec<PerfRow>,
}

/// A column of a [`RolePerf`] table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PerfColumn {
    /// Its name, such as `requests` or `p99`.
    pub name: String,
    /// How its values read.
    pub unit: PerfUnit,
}

/// What a [`PerfColumn`]'s numbers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum PerfUnit {
    /// A count (requests, responses).
    Count,
    /// Bytes.
    Bytes,
    /// Milliseconds.
    Milliseconds,
}

/// One row of a [`RolePerf`] table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PerfRow {
    /// The site, zone or container.
    pub name: String,
    /// A value per column, in the columns' order; null when not known yet
    /// (a latency before the first request).
    pub values: Vec<Option<f64>>,
}

/// Reads `value` as the typed section `T`; a problem has the key path
/// inside the section and the manifest's found/allowed wording.
pub fn section<T: DeserializeOwned>(value: &serde_json::Value) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = crate::load::serde_path(err.path());
        let message = err.inner().to_string();
        crate::load::reshape(path, &message, "")
    })
}

/// The section of role `name` in `settings`, or the role's defaults when
/// the settings have none.
pub fn section_or_default(settings: &NodeSettings, role: &dyn Role) -> serde_json::Value {
    settings
        .roles
        .get(role.name())
        .cloned()
        .unwrap_or_else(|| role.defaults())
}

/// The problems of every `[roles.NAME]` section that one of `roles` reads,
/// with full key paths (`roles.web.sites[0].root`). Sections of packages
/// that are not roles of this build (a user's app) are left to their
/// package.
pub fn check_sections(
    sections: &crate::settings::Roles,
    roles: &[&dyn Role],
    out: &mut Vec<Invalid>,
) {
    for (name, value) in sections {
        let Some(role) = roles.iter().find(|r| r.name() == name) else {
            continue;
        };
        let base = join("roles", name);
        if let Err(problems) = role.check(value) {
            out.extend(problems.into_iter().map(|mut p| {
                p.path = if p.path.is_empty() {
                    base.clone()
                } else if p.path.starts_with('[') {
                    format!("{base}{}", p.path)
                } else {
                    format!("{base}.{}", p.path)
                };
                p
            }));
        }
    }
}

/// The ports every installed role's section opens: for each name in
/// `settings.packages` that one of `roles` reads, [`Role::ports`] of its
/// section (or its defaults).
pub fn role_ports(settings: &NodeSettings, roles: &[&dyn Role]) -> Vec<Port> {
    let mut ports = Vec::new();
    for role in roles {
        if settings.packages.iter().any(|p| p == role.name()) {
            ports.extend(role.ports(&section_or_default(settings, *role)));
        }
    }
    ports
}

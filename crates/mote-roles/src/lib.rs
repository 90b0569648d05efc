//! The role registry: the one list of the workspace's roles.
//!
//! # Job
//! - [`ALL`]: each role library's settings contract ([`mote_config::Role`]),
//!   handed to `mote check`, `mote build`, `moted` and PID 1 so that they
//!   check, default and open the ports of `[roles.NAME]` sections without
//!   naming a role;
//! - [`CLI`] (feature `cli`): each role's `mote -n NODE ROLE …` verbs, for
//!   the mote CLI;
//! - [`BUILTIN`]: each role's package directory (`package.toml` and its
//!   files; binaries come from the bin dir as `bin:NAME`), which the image
//!   builder packs when a manifest names the role.
//!
//! # Adding a role
//! Write `roles/NAME` (a library exporting its `Role` and `PACKAGE`, and
//! its binary), then add one line to each list here. No other crate
//! changes (see `docs/packages.md`).
#![deny(missing_docs)]

use mote_config::Role;

/// Every role's settings contract.
pub static ALL: &[&dyn Role] = &[&mote_web::role::ROLE];

/// A role's package directory, as files.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// The package name (also its settings section).
    pub name: &'static str,
    /// `(path in the package directory, bytes)`, `package.toml` first.
    pub files: &'static [(&'static str, &'static [u8])],
}

/// Every role's package directory.
pub static BUILTIN: &[Builtin] = &[Builtin {
    name: "web",
    files: mote_web::PACKAGE,
}];

/// Every role's `mote -n NODE ROLE …` verbs.
#[cfg(feature = "cli")]
pub static CLI: &[&dyn mote_config::role_cli::RoleCli] = &[&mote_web::cli::CLI];

/// The role whose section is `name`.
pub fn find(name: &str) -> Option<&'static dyn Role> {
    ALL.iter().copied().find(|r| r.name() == name)
}

/// The built-in package called `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTIN.iter().find(|b| b.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_its_package_and_the_package_reads_its_section() {
        for role in ALL {
            let b = builtin(role.name()).expect("a package for every role");
            assert_eq!(b.files[0].0, "package.toml");
            let text = std::str::from_utf8(b.files[0].1).unwrap();
            assert!(
                text.contains(&format!("settings = \"{}\"", role.name())),
                "package {} reads [roles.{}]",
                b.name,
                role.name()
            );
            assert_eq!(role.check(&role.defaults()), Ok(()));
        }
    }

    #[cfg(feature = "cli")]
    #[test]
    fn every_command_line_is_a_role_and_valid() {
        for cli in CLI {
            assert!(find(cli.name()).is_some(), "{} is a role", cli.name());
            cli.command().debug_assert();
        }
    }
}

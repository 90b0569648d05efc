//! The role contract's command-line half: `mote -n NODE ROLE …`, the verbs
//! that read and edit a role's `[roles.NAME]` section on a running node.
//!
//! A role turns its arguments and the section into an [`Outcome`]; `mote`
//! does the rest the same way for every role: it reads the node's
//! settings, hands the role its section, writes the edited section back as
//! made from the version it read (trying again when another writer came
//! first), and prints a table, a line, or `--json`. The node then checks
//! the section with the role's own [`crate::Role::check`], exactly as a
//! manifest is checked.
//!
//! Behind the `cli` feature, so that the binaries of the image (PID 1,
//! moted, the roles' servers) do not link clap for it.

/// A role's `mote -n NODE NAME …` verbs.
pub trait RoleCli: Sync {
    /// The verb, also the settings section (`web` for `mote -n NODE web`).
    fn name(&self) -> &'static str;

    /// The verb's subcommands and help; `mote` adds the global `--json`.
    fn command(&self) -> clap::Command;

    /// What `args` (matched by [`RoleCli::command`]) do to `section`, the
    /// role's section as the node stores it (`{}` when it has none).
    /// `node` is the node's name, for hints such as `mote -n NODE …`.
    /// A refusal says what is wrong and what to do.
    fn run(
        &self,
        node: &str,
        args: &clap::ArgMatches,
        section: &mut serde_json::Value,
    ) -> Result<Outcome, String>;
}

/// What a role's verb did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing changed; show this: `json` with `--json`, else a table.
    Show {
        /// The machine-readable answer.
        json: serde_json::Value,
        /// The table's column names.
        header: Vec<String>,
        /// The table's rows.
        rows: Vec<Vec<String>>,
    },
    /// The section was edited as the message says (`web site blog added`);
    /// `mote` stores it.
    Changed(String),
}

//! `mote -n NODE ROLE …`: each role's own verbs (`web site add …`), from
//! the role contract's command-line half ([`mote_config::role_cli`]).
//!
//! The role edits its section; this module does the same transport for
//! every role. Each change reads the settings, lets the role edit its
//! `roles.NAME` section, and writes the whole section back as one merge
//! patch (`{"roles":{"NAME":…}}`; merge patches replace arrays whole). The
//! node checks it with the role's library (a refusal is 422 and nothing is
//! stored), stores it as a new settings version and the role reloads.
//!
//! The write carries the version it was made from (`If-Match`), so it cannot
//! overwrite a change another writer stored after the read: the node
//! refuses it (412), and the verb reads the settings again and makes the
//! same edit on them, up to [`RETRIES`] times.

use clap::ArgMatches;
use mote_api::api::VersionedSettings;
use mote_api::client::{Client, ClientError};
use mote_config::role_cli::{Outcome, RoleCli};
use serde_json::{json, Value};

use crate::output;
use crate::remote::{Explain, Session};

/// How many times an edit is made again after another writer changed the
/// settings between its read and its write.
const RETRIES: usize = 3;

/// A parsed `mote -n NODE ROLE …` line.
#[derive(Clone)]
pub struct Call {
    role: &'static dyn RoleCli,
    args: ArgMatches,
    json: bool,
}

/// `command` with each role's verb added (and `--json` on each).
pub fn augment(command: clap::Command) -> clap::Command {
    mote_roles::CLI.iter().fold(command, |c, role| {
        c.subcommand(
            role.command().arg(
                clap::Arg::new("json")
                    .long("json")
                    .global(true)
                    .action(clap::ArgAction::SetTrue)
                    .help("Print JSON: what a list shows, or the resulting section"),
            ),
        )
    })
}

/// The role call in `matches`, when its subcommand is a role's.
pub fn call(matches: &ArgMatches) -> Option<Call> {
    let (name, args) = matches.subcommand()?;
    let role = mote_roles::CLI.iter().copied().find(|r| r.name() == name)?;
    Some(Call {
        role,
        json: args.get_flag("json"),
        args: args.clone(),
    })
}

pub async fn run(s: &Session, call: &Call) -> anyhow::Result<()> {
    let name = call.role.name();
    let edit = |section: &mut Value| {
        call.role
            .run(&s.name, &call.args, section)
            .map_err(|e| anyhow::anyhow!("{}: {e}", s.name))
    };
    match change(&s.name, name, &s.client, edit).await? {
        Done::Shown(Outcome::Show { json, header, rows }) => {
            if call.json {
                return output::json(&json);
            }
            let header: Vec<&str> = header.iter().map(String::as_str).collect();
            output::table(&header, &rows);
        }
        Done::Shown(Outcome::Changed(_)) => {}
        Done::Stored(what, v) => {
            if call.json {
                return output::json(v.settings.roles.get(name).unwrap_or(&Value::Null));
            }
            println!("{}: {what}; settings version {}", s.name, v.version);
        }
    }
    Ok(())
}

/// The `roles.NAME` section, or an empty one.
fn section_of(current: &VersionedSettings, name: &str) -> Value {
    match current.settings.roles.get(name) {
        Some(v @ Value::Object(_)) => v.clone(),
        _ => json!({}),
    }
}

/// Where the settings are read and written: the node, or a fake in tests.
trait SettingsApi {
    /// The settings and their version.
    async fn read(&self) -> Result<VersionedSettings, ClientError>;
    /// Applies `patch` only while the settings are at `version`.
    async fn write_if(&self, patch: &Value, version: u64)
        -> Result<VersionedSettings, ClientError>;
}

impl SettingsApi for Client {
    async fn read(&self) -> Result<VersionedSettings, ClientError> {
        self.settings().await
    }

    async fn write_if(
        &self,
        patch: &Value,
        version: u64,
    ) -> Result<VersionedSettings, ClientError> {
        self.patch_settings_if(patch, version).await
    }
}

/// What [`change`] ended with.
enum Done {
    /// The role only showed something; nothing was written.
    Shown(Outcome),
    /// The edit, stored as this version.
    Stored(String, VersionedSettings),
}

/// Reads `roles.NAME`, lets `edit` change it and writes it back as made
/// from the version read. When another writer stored a version in between
/// (412), reads again and makes the same edit on what is there now, at most
/// [`RETRIES`] times; an edit that no longer fits (the other writer added
/// the same site) fails as it would have on its own.
async fn change(
    node: &str,
    name: &str,
    api: &impl SettingsApi,
    mut edit: impl FnMut(&mut Value) -> anyhow::Result<Outcome>,
) -> anyhow::Result<Done> {
    let mut retries = 0;
    loop {
        let current = api.read().await.explain(node)?;
        let mut section = section_of(&current, name);
        let what = match edit(&mut section)? {
            Outcome::Changed(what) => what,
            shown => return Ok(Done::Shown(shown)),
        };
        let patch = json!({ "roles": { name: section } });
        match api.write_if(&patch, current.version).await {
            Ok(v) => return Ok(Done::Stored(what, v)),
            Err(ClientError::PreconditionFailed { .. }) if retries < RETRIES => retries += 1,
            Err(ClientError::PreconditionFailed { current: now, .. }) => anyhow::bail!(
                "{node}: other writers kept changing the settings: each of {} tries was made \
                 from a version that was no longer current (the last from version {}, the node \
                 is now at {}); nothing was changed: run the command again",
                RETRIES + 1,
                current.version,
                now.map_or_else(|| "a newer one".to_string(), |v| format!("version {v}")),
            ),
            Err(e) => return Err(e).explain(node),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use mote_api::api::{ErrorBody, NodeSettings};

    /// A node whose settings other writers change: before each of the first
    /// writes, one of them adds its own item to `roles.demo.items`.
    struct Racing {
        settings: Mutex<VersionedSettings>,
        others: Mutex<Vec<&'static str>>,
        reads: Mutex<usize>,
        refuse: Option<u16>,
    }

    impl Racing {
        fn new(others: &[&'static str]) -> Self {
            Self {
                settings: Mutex::new(VersionedSettings {
                    version: 1,
                    settings: NodeSettings::default(),
                }),
                others: Mutex::new(others.iter().rev().copied().collect()),
                reads: Mutex::new(0),
                refuse: None,
            }
        }

        fn items(&self) -> Vec<String> {
            let s = self.settings.lock().unwrap();
            section_of(&s, "demo")["items"]
                .as_array()
                .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        }
    }

    /// The role's edit: add `item`, refused when it is there.
    fn add(item: &str) -> impl FnMut(&mut Value) -> anyhow::Result<Outcome> + '_ {
        move |section| {
            let items = section["items"].as_array().cloned().unwrap_or_default();
            if items.iter().any(|i| i == item) {
                anyhow::bail!("{item} already exists");
            }
            let mut items = items;
            items.push(json!(item));
            section["items"] = Value::Array(items);
            Ok(Outcome::Changed(format!("{item} added")))
        }
    }

    impl SettingsApi for Racing {
        async fn read(&self) -> Result<VersionedSettings, ClientError> {
            *self.reads.lock().unwrap() += 1;
            Ok(self.settings.lock().unwrap().clone())
        }

        async fn write_if(
            &self,
            patch: &Value,
            version: u64,
        ) -> Result<VersionedSettings, ClientError> {
            let mut s = self.settings.lock().unwrap();
            if let Some(status) = self.refuse {
                return Err(ClientError::Status {
                    status,
                    body: ErrorBody::default(),
                    retry_after: None,
                });
            }
            if let Some(other) = self.others.lock().unwrap().pop() {
                let mut section = section_of(&s, "demo");
                add(other)(&mut section).unwrap();
                s.settings.roles.insert("demo".into(), section);
                s.version += 1;
            }
            if s.version != version {
                return Err(ClientError::PreconditionFailed {
                    current: Some(s.version),
                    body: ErrorBody::default(),
                });
            }
            s.settings
                .roles
                .insert("demo".into(), patch["roles"]["demo"].clone());
            s.version += 1;
            Ok(s.clone())
        }
    }

    async fn add_blog(node: &Racing) -> anyhow::Result<(String, VersionedSettings)> {
        match change("n1", "demo", node, add("blog")).await? {
            Done::Stored(what, v) => Ok((what, v)),
            Done::Shown(_) => unreachable!("an edit"),
        }
    }

    #[tokio::test]
    async fn a_write_from_a_stale_version_is_made_again_and_nothing_is_lost() {
        let node = Racing::new(&["other1", "other2", "other3"]);
        let (what, v) = add_blog(&node).await.unwrap();
        assert_eq!(what, "blog added");
        assert_eq!(node.items(), ["other1", "other2", "other3", "blog"]);
        assert_eq!(v.version, 5);
        assert_eq!(*node.reads.lock().unwrap(), 4);
    }

    #[tokio::test]
    async fn a_write_that_keeps_losing_gives_up_after_three_retries() {
        let node = Racing::new(&["o1", "o2", "o3", "o4"]);
        let err = format!("{:#}", add_blog(&node).await.unwrap_err());
        assert!(err.contains("each of 4 tries"), "{err}");
        assert!(err.contains("the node is now at version 5"), "{err}");
        assert!(err.contains("run the command again"), "{err}");
        assert_eq!(*node.reads.lock().unwrap(), 4);
        assert_eq!(node.items(), ["o1", "o2", "o3", "o4"]);
    }

    #[tokio::test]
    async fn an_edit_that_no_longer_fits_fails_and_other_errors_are_not_retried() {
        // The other writer added the same item: the edit made again fails.
        let node = Racing::new(&["blog"]);
        let err = format!("{:#}", add_blog(&node).await.unwrap_err());
        assert!(err.contains("already exists"), "{err}");
        assert_eq!(*node.reads.lock().unwrap(), 2);
        // A refusal other than 412 ends it at once.
        let node = Racing {
            refuse: Some(422),
            ..Racing::new(&[])
        };
        assert!(add_blog(&node).await.is_err());
        assert_eq!(*node.reads.lock().unwrap(), 1);
    }

    #[tokio::test]
    async fn a_show_writes_nothing() {
        let node = Racing::new(&["other"]);
        let shown = change("n1", "demo", &node, |_: &mut Value| {
            Ok(Outcome::Show {
                json: json!([]),
                header: vec![],
                rows: vec![],
            })
        })
        .await
        .unwrap();
        assert!(matches!(shown, Done::Shown(Outcome::Show { .. })));
        assert_eq!(node.settings.lock().unwrap().version, 1);
    }

    #[test]
    fn every_role_verb_parses_with_json() {
        let cmd = augment(clap::Command::new("mote"));
        for role in mote_roles::CLI {
            assert!(cmd.find_subcommand(role.name()).is_some());
        }
    }
}

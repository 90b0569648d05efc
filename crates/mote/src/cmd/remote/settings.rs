//! `mote -n NAME settings get|history|status|revert|set`

use serde_json::Value;

use crate::output;
use crate::remote::{Explain, Session};

/// The node's settings, versioned: every change is a new version.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
    /// Print the API's JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// The whole tree, or the value at a dotted path (e.g. system.timezone).
    Get {
        /// Dotted path.
        path: Option<String>,
    },
    /// Every stored version.
    History,
    /// Does the node run the stored version? (exit 1 when it does not)
    Status,
    /// Bring back version N (as a new version).
    Revert {
        /// The version.
        #[arg(value_name = "N")]
        number: u64,
    },
    /// Set the value at a dotted path: JSON (`8080`, `true`, `["a"]`,
    /// `{"K":"V"}`), TOML-ish (`{ K = "V" }`), else a plain string.
    /// `null` removes the key.
    Set {
        /// Dotted path, e.g. system.timezone or services.hello.env.GREETING.
        path: String,
        /// The value.
        value: String,
    },
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<()> {
    let c = &s.client;
    match &a.verb {
        Verb::Get { path: None } => {
            let v = c.settings().await.explain(&s.name)?;
            if a.json {
                return output::json(&v);
            }
            println!("# version {}", v.version);
            output::json(&v.settings)
        }
        Verb::Get { path: Some(p) } => {
            let v = c.settings_at(p).await.explain(&s.name)?;
            if a.json {
                return output::json(&v);
            }
            output::json(&v.value)
        }
        Verb::History => {
            let h = c.settings_history().await.explain(&s.name)?;
            if a.json {
                return output::json(&h);
            }
            let rows: Vec<Vec<String>> = h
                .versions
                .iter()
                .map(|e| {
                    vec![
                        if e.version == h.current {
                            format!("{} *", e.version)
                        } else {
                            e.version.to_string()
                        },
                        output::time_ms(e.time_ms),
                        e.who.clone(),
                        e.what.clone(),
                    ]
                })
                .collect();
            output::table(&["version", "time", "who", "what"], &rows);
            Ok(())
        }
        Verb::Status => {
            let st = c.settings_status().await.explain(&s.name)?;
            if a.json {
                output::json(&st)?;
            } else {
                output::table(
                    &["", ""],
                    &[
                        vec!["stored".into(), format!("version {}", st.stored)],
                        vec!["running".into(), st.applied.to_string()],
                        vec![
                            "in sync".into(),
                            if st.in_sync { "yes" } else { "NO" }.into(),
                        ],
                    ],
                );
            }
            if !st.in_sync {
                anyhow::bail!(
                    "{} does not run its stored settings version {} ({}); \
                     `mote -n {} events --level error` says why, and a reboot applies the stored version",
                    s.name,
                    st.stored,
                    st.applied,
                    s.name
                );
            }
            Ok(())
        }
        Verb::Revert { number } => {
            let v = c.revert_settings(*number).await.explain(&s.name)?;
            super::changed(s, a.json, &format!("reverted to version {number}"), &v)
        }
        Verb::Set { path, value } => {
            let patch = merge_patch(path, parse_value(value))?;
            let v = c.patch_settings(&patch).await.explain(&s.name)?;
            super::changed(s, a.json, &format!("{path} set"), &v)
        }
    }
}

/// A value as typed: JSON, else a TOML value, else the plain string.
pub fn parse_value(s: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(s) {
        return v;
    }
    if let Ok(t) = toml::from_str::<toml::Table>(&format!("v = {s}")) {
        if let Some(v) = t.get("v").and_then(|v| serde_json::to_value(v).ok()) {
            return v;
        }
    }
    Value::String(s.to_string())
}

/// `a.b.c` and a value → `{"a":{"b":{"c":value}}}` (an RFC 7396 merge patch).
pub fn merge_patch(path: &str, value: Value) -> anyhow::Result<Value> {
    mote_config::json::dotted_patch(path, value)
        .ok_or_else(|| anyhow::anyhow!("{path:?} is not a dotted path such as system.timezone"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_parse_as_json_toml_or_text() {
        assert_eq!(parse_value("8080"), json!(8080));
        assert_eq!(parse_value("UTC"), json!("UTC"));
        assert_eq!(parse_value("[\"a\"]"), json!(["a"]));
        assert_eq!(parse_value("{ K = \"V\" }"), json!({"K": "V"}));
        assert_eq!(parse_value("null"), Value::Null);
    }

    #[test]
    fn dotted_paths_make_merge_patches() {
        assert_eq!(
            merge_patch("system.timezone", json!("UTC")).unwrap(),
            json!({"system": {"timezone": "UTC"}})
        );
        assert!(merge_patch("a..b", json!(1)).is_err());
    }
}

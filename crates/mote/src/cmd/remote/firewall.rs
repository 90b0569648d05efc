//! `mote -n NAME firewall list|add|remove|enable|disable`

use mote_api::api::FirewallRule;
use serde_json::json;

use crate::output;
use crate::remote::{Explain, Session};

/// The node's firewall rules.
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
    /// The inbound policy and every rule.
    List,
    /// Add a rule (allow unless --deny).
    Add {
        /// A unique name for the rule.
        name: String,
        /// Destination port.
        #[arg(long)]
        port: u16,
        /// tcp or udp.
        #[arg(long, default_value = "tcp", value_parser = ["tcp", "udp"])]
        protocol: String,
        /// Only from this network, e.g. 10.0.0.0/8.
        #[arg(long)]
        source: Option<String>,
        /// Drop instead of accept.
        #[arg(long)]
        deny: bool,
    },
    /// Remove a rule.
    Remove {
        /// The rule's name.
        name: String,
    },
    /// Apply a disabled rule again.
    Enable {
        /// The rule's name.
        name: String,
    },
    /// Keep a rule but stop applying it.
    Disable {
        /// The rule's name.
        name: String,
    },
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<()> {
    let c = &s.client;
    let (v, what) = match &a.verb {
        Verb::List => {
            let f = c.firewall().await.explain(&s.name)?;
            if a.json {
                return output::json(&f);
            }
            println!(
                "inbound policy: {}",
                serde_json::to_value(f.inbound)?.as_str().unwrap_or("?")
            );
            let rows: Vec<Vec<String>> = f
                .rules
                .iter()
                .map(|r| {
                    let v = serde_json::to_value(r).unwrap_or_default();
                    let field = |k: &str| v[k].as_str().unwrap_or("").to_string();
                    vec![
                        r.name.clone(),
                        r.port.to_string(),
                        field("protocol"),
                        r.source.map_or("any".into(), |n| n.to_string()),
                        field("action"),
                        if r.enabled { "yes" } else { "no" }.into(),
                    ]
                })
                .collect();
            output::table(
                &["name", "port", "proto", "source", "action", "enabled"],
                &rows,
            );
            return Ok(());
        }
        Verb::Add {
            name,
            port,
            protocol,
            source,
            deny,
        } => {
            let rule: FirewallRule = serde_json::from_value(json!({
                "name": name,
                "port": port,
                "protocol": protocol,
                "source": source,
                "action": if *deny { "deny" } else { "allow" },
                "enabled": true,
            }))
            .map_err(|e| anyhow::anyhow!("invalid rule: {e}"))?;
            (c.add_rule(&rule).await, format!("rule {name} added"))
        }
        Verb::Remove { name } => (c.delete_rule(name).await, format!("rule {name} removed")),
        Verb::Enable { name } => (
            c.enable_rule(name, true).await,
            format!("rule {name} enabled"),
        ),
        Verb::Disable { name } => (
            c.enable_rule(name, false).await,
            format!("rule {name} disabled"),
        ),
    };
    let v = v.explain(&s.name)?;
    super::changed(s, a.json, &what, &v)
}

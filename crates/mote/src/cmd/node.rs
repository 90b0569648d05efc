//! `mote node add|list|remove`: the nodes this user manages, each pinned to
//! its certificate fingerprint (trust on first use, as ssh does).

use anyhow::{bail, Context};
use mote_api::api::{normalize_fingerprint, DEFAULT_PORT};
use mote_api::client::{Client, ClientError};
use serde::Serialize;

use crate::output;
use crate::remote::{self, AddedBy, NodeEntry, Nodes};

/// Add, list or remove managed nodes (`nodes.json` in the config directory).
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// Connect to a node, show its certificate fingerprint and pin it.
    Add {
        /// A name for the node.
        name: String,
        /// Its management address, HOST[:PORT] (port 5986 by default).
        address: String,
        /// The fingerprint it must present (from its console's ready line);
        /// without it the first one seen is trusted.
        #[arg(long, value_name = "FP")]
        fingerprint: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the managed nodes.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget a node and its pin (and its cached login).
    Remove {
        /// The node's name.
        name: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    #[serde(flatten)]
    node: &'a NodeEntry,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.verb {
        Verb::Add {
            name,
            address,
            fingerprint,
            json,
        } => add(&name, &address, fingerprint.as_deref(), json),
        Verb::List { json } => list(json),
        Verb::Remove { name, json } => {
            let mut nodes = Nodes::load()?;
            if nodes.nodes.remove(&name).is_none() {
                bail!("no node {name:?} (see `mote node list`)");
            }
            nodes.save()?;
            remote::forget_token(&name)?;
            if json {
                return output::json(&serde_json::json!({ "removed": name }));
            }
            println!("removed {name}");
            Ok(())
        }
    }
}

/// `HOST` → `HOST:5986`; `HOST:PORT` and `[V6]:PORT` as given.
pub fn with_port(address: &str) -> String {
    let has_port = if let Some(rest) = address.strip_prefix('[') {
        rest.contains("]:")
    } else {
        address.matches(':').count() == 1
    };
    if has_port {
        address.to_string()
    } else if address.contains(':') {
        format!("[{address}]:{DEFAULT_PORT}")
    } else {
        format!("{address}:{DEFAULT_PORT}")
    }
}

fn add(name: &str, address: &str, expected: Option<&str>, json: bool) -> anyhow::Result<()> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("node name {name:?} must be a plain word (no '/', not starting with '.')");
    }
    let mut nodes = Nodes::load()?;
    let address = with_port(address);
    let expected = match expected {
        Some(fp) => Some(normalize_fingerprint(fp).with_context(|| {
            format!("--fingerprint {fp:?} is not 32 hex bytes such as AB:CD:…")
        })?),
        None => None,
    };
    let client = remote::block_on(Client::connect(&address, None))?
        .map_err(|e| remote::explain(name, Some(&address), e))?;
    let seen = client.fingerprint().to_string();
    if let Err(answer) = remote::block_on(speaks_mote(&client))? {
        bail!(
            "{address} is not a mote node: {answer}; nothing was pinned. Check the address \
             and the port (a node's management port is 5986 unless its [management] says otherwise)"
        );
    }
    if let Some(fp) = &expected {
        if *fp != seen {
            bail!(
                "{}",
                remote::mismatch_warning(name, &address, fp, &seen)
                    .replace("pinned:   ", "expected: ")
            );
        }
    }
    if let Some(old) = nodes.nodes.get(name) {
        if old.fingerprint != seen {
            bail!(
                "{}",
                remote::mismatch_warning(name, &old.address, &old.fingerprint, &seen)
            );
        }
    }
    let entry = NodeEntry {
        address: address.clone(),
        fingerprint: seen.clone(),
        added_by: AddedBy::Hand,
        pinned_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    };
    nodes.nodes.insert(name.to_string(), entry.clone());
    nodes.save()?;
    if json {
        return output::json(&Listed { name, node: &entry });
    }
    println!("{name} at {address}");
    println!("certificate SHA-256 fingerprint: {seen}");
    if expected.is_some() {
        println!("matches the expected fingerprint; pinned");
    } else {
        println!(
            "pinned (trust on first use): compare it with the `fingerprint=` of the node's ready line"
        );
    }
    println!("manage it: mote -n {name} system");
    Ok(())
}

/// Does the endpoint speak mote's management API? A node answers an
/// anonymous `GET /v1/system` with 401 and a JSON error that points at
/// `POST /v1/login`; a proxy, another HTTPS server or a portal does not.
/// `Err` says what it answered instead.
async fn speaks_mote(client: &Client) -> Result<(), String> {
    match client.system().await {
        Err(ClientError::Status {
            status: 401, body, ..
        }) if body.error.contains("/v1/login") => Ok(()),
        Err(ClientError::Status { status, body, .. }) => {
            let text: String = body.error.chars().take(80).collect();
            Err(format!(
                "it answered {status} {text:?} where a node asks to log in"
            ))
        }
        Ok(_) => Err("it answered without asking to log in".into()),
        Err(e) => Err(format!("{e}")),
    }
}

fn list(json: bool) -> anyhow::Result<()> {
    let nodes = Nodes::load()?;
    if json {
        let listed: Vec<Listed<'_>> = nodes
            .nodes
            .iter()
            .map(|(name, node)| Listed { name, node })
            .collect();
        return output::json(&listed);
    }
    if nodes.nodes.is_empty() {
        println!("no managed nodes; add one with: mote node add NAME ADDRESS");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = nodes
        .nodes
        .iter()
        .map(|(name, n)| {
            vec![
                name.clone(),
                n.address.clone(),
                match n.added_by {
                    AddedBy::Hand => "node add".into(),
                    AddedBy::Run => "mote run".into(),
                },
                n.fingerprint.clone(),
            ]
        })
        .collect();
    output::table(&["name", "address", "added by", "fingerprint"], &rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn addresses_get_the_default_port() {
        assert_eq!(super::with_port("10.0.0.1"), "10.0.0.1:5986");
        assert_eq!(super::with_port("10.0.0.1:99"), "10.0.0.1:99");
        assert_eq!(super::with_port("fe80::1"), "[fe80::1]:5986");
        assert_eq!(super::with_port("[fe80::1]:7"), "[fe80::1]:7");
        assert_eq!(super::with_port("node.lan"), "node.lan:5986");
    }
}

//! `mote -n NAME net show|set`

use anyhow::Context;
use mote_api::api::Interface;
use serde_json::{json, Value};

use crate::output;
use crate::remote::{Explain, Session};

/// The node's network.
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
    /// Links, addresses, routes and resolvers now, and what the settings ask for.
    Show,
    /// Configure an interface (options not given keep their current value).
    Set {
        /// Interface name, e.g. eth0.
        iface: String,
        /// `dhcp`, `off` or ADDRESS/PREFIX.
        #[arg(long)]
        ipv4: Option<String>,
        /// IPv4 default gateway for a static address.
        #[arg(long)]
        gateway4: Option<String>,
        /// `slaac`, `off` or ADDRESS/PREFIX.
        #[arg(long)]
        ipv6: Option<String>,
        /// IPv6 default gateway for a static address.
        #[arg(long)]
        gateway6: Option<String>,
        /// Resolvers (repeatable or comma-separated); `--dns ""` clears them.
        #[arg(long, value_delimiter = ',')]
        dns: Option<Vec<String>>,
        /// Link MTU.
        #[arg(long)]
        mtu: Option<u32>,
    },
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<()> {
    let view = s.client.network().await.explain(&s.name)?;
    let Verb::Set {
        iface,
        ipv4,
        gateway4,
        ipv6,
        gateway6,
        dns,
        mtu,
    } = &a.verb
    else {
        if a.json {
            return output::json(&view);
        }
        let rows: Vec<Vec<String>> = view
            .live
            .links
            .iter()
            .map(|l| {
                vec![
                    l.name.clone(),
                    if l.up { "up" } else { "down" }.into(),
                    l.ipv4.clone(),
                    l.addresses.join(" "),
                    l.mac.clone().unwrap_or_default(),
                    l.mtu.to_string(),
                ]
            })
            .collect();
        output::table(&["link", "state", "ipv4", "addresses", "mac", "mtu"], &rows);
        for r in &view.live.routes {
            println!("route  {}", serde_json::to_string(r)?);
        }
        println!("dns    {}", view.live.dns.join(" "));
        for (name, i) in &view.configured {
            println!("configured {name}: {}", serde_json::to_string(i)?);
        }
        return Ok(());
    };
    let mut cur = match view.configured.get(iface) {
        Some(i) => serde_json::to_value(i)?,
        None => json!({}),
    };
    let obj = cur
        .as_object_mut()
        .context("interface settings are not an object")?;
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            obj.insert(k.into(), Value::String(v.clone()));
        }
    };
    put("ipv4", ipv4);
    put("gateway4", gateway4);
    put("ipv6", ipv6);
    put("gateway6", gateway6);
    if let Some(d) = dns {
        let d: Vec<&String> = d.iter().filter(|x| !x.is_empty()).collect();
        obj.insert("dns".into(), json!(d));
    }
    if let Some(m) = mtu {
        obj.insert("mtu".into(), json!(m));
    }
    let interface: Interface = serde_json::from_value(cur)
        .map_err(|e| anyhow::anyhow!("invalid interface settings: {e}"))?;
    let v = s
        .client
        .put_interface(iface, &interface)
        .await
        .explain(&s.name)?;
    super::changed(s, a.json, &format!("interface {iface} configured"), &v)
}

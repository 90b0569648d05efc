//! `mote -n NAME web site|binding …`: the web role's sites, edited in the
//! node's `roles.web` settings section.
//!
//! Each change reads the whole section, edits its `sites` array and writes
//! the whole section back as one merge patch (`{"roles":{"web":…}}`; merge
//! patches replace arrays whole). moted has `mote-web --check` judge it
//! (a refusal is 422 with mote-web's message, and nothing is stored), stores
//! it as a new settings version and mote-web reloads: new bindings listen,
//! removed or stopped ones close. Fields this verb does not know are kept as
//! they are.
//!
//! The write carries the version it was made from (`If-Match`), so it cannot
//! overwrite a change another writer stored after the read: moted refuses it
//! (412), and the verb reads the settings again and makes the same edit on
//! them, up to [`RETRIES`] times.

use std::net::IpAddr;

use mote_api::api::VersionedSettings;
use mote_api::client::{Client, ClientError};
use serde_json::{json, Map, Value};

use crate::output;
use crate::remote::{Explain, Session};

/// How many times an edit is made again after another writer changed the
/// settings between its read and its write.
const RETRIES: usize = 3;

/// The web role's sites and their bindings (`roles.web`).
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
    /// Print JSON: the sites (list) or the resulting `roles.web` section.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Verb {
    /// List, add, remove, start or stop sites.
    Site {
        #[command(subcommand)]
        verb: SiteVerb,
    },
    /// Add or remove a site's bindings.
    Binding {
        #[command(subcommand)]
        verb: BindingVerb,
    },
}

#[derive(clap::Subcommand)]
enum SiteVerb {
    /// Every site: name, enabled, bindings, root.
    List,
    /// Add a site serving DIR on one or more bindings.
    Add {
        /// Site name: letters, digits, '-', '_', '.'.
        name: String,
        /// The directory served (absolute, on the node).
        #[arg(long, value_name = "DIR")]
        root: String,
        /// A binding as a URL: `http://*:8088`, `https://host.example:443`,
        /// `http://127.0.0.1:8080`. Repeat for more.
        #[arg(long = "bind", value_name = "URL", required = true)]
        bind: Vec<String>,
    },
    /// Remove a site.
    Remove {
        /// Site name.
        name: String,
    },
    /// Start a stopped site (enabled = true): its bindings listen again.
    Start {
        /// Site name.
        name: String,
    },
    /// Stop a site (enabled = false): its bindings stop listening; its
    /// settings are kept.
    Stop {
        /// Site name.
        name: String,
    },
}

#[derive(clap::Subcommand)]
enum BindingVerb {
    /// Add a binding (URL such as `http://*:8088`) to a site.
    Add {
        /// Site name.
        site: String,
        /// The binding as a URL.
        url: String,
    },
    /// Remove a binding from a site (the URL it was added with).
    Remove {
        /// Site name.
        site: String,
        /// The binding as a URL.
        url: String,
    },
}

pub async fn run(s: &Session, a: &Args) -> anyhow::Result<()> {
    let (what, v) = match &a.verb {
        Verb::Site {
            verb: SiteVerb::List,
        } => {
            let current = s.client.settings().await.explain(&s.name)?;
            return list(&web_of(&current), a.json);
        }
        Verb::Site { verb } => {
            change(&s.name, &s.client, |web| edit_site(&s.name, web, verb)).await?
        }
        Verb::Binding { verb } => {
            change(&s.name, &s.client, |web| edit_binding(&s.name, web, verb)).await?
        }
    };
    if a.json {
        return output::json(v.settings.roles.get("web").unwrap_or(&Value::Null));
    }
    println!("{}: {what}; settings version {}", s.name, v.version);
    Ok(())
}

/// The `roles.web` section, or an empty one.
fn web_of(current: &VersionedSettings) -> Value {
    match current.settings.roles.get("web") {
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

/// Reads `roles.web`, lets `edit` change it and writes it back as made from
/// the version read. When another writer stored a version in between (412),
/// reads again and makes the same edit on what is there now, at most
/// [`RETRIES`] times; an edit that no longer fits (the other writer added the
/// same site) fails as it would have on its own.
async fn change(
    node: &str,
    api: &impl SettingsApi,
    mut edit: impl FnMut(&mut Value) -> anyhow::Result<String>,
) -> anyhow::Result<(String, VersionedSettings)> {
    let mut retries = 0;
    loop {
        let current = api.read().await.explain(node)?;
        let mut web = web_of(&current);
        let what = edit(&mut web)?;
        let patch = json!({ "roles": { "web": web } });
        match api.write_if(&patch, current.version).await {
            Ok(v) => return Ok((what, v)),
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

fn list(web: &Value, json: bool) -> anyhow::Result<()> {
    let sites = web
        .get("sites")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if json {
        let filled: Vec<Value> = sites
            .into_iter()
            .map(|mut site| {
                if let Value::Object(m) = &mut site {
                    m.entry("enabled").or_insert(Value::Bool(true));
                }
                site
            })
            .collect();
        return output::json(&filled);
    }
    let rows: Vec<Vec<String>> = sites
        .iter()
        .map(|site| {
            vec![
                str_of(site, "name"),
                if enabled(site) { "yes" } else { "no" }.to_string(),
                bindings_of(site)
                    .iter()
                    .map(binding_url)
                    .collect::<Vec<_>>()
                    .join(", "),
                str_of(site, "root"),
            ]
        })
        .collect();
    output::table(&["name", "enabled", "bindings", "root"], &rows);
    Ok(())
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn enabled(site: &Value) -> bool {
    site.get("enabled").and_then(Value::as_bool).unwrap_or(true)
}

fn bindings_of(site: &Value) -> Vec<Value> {
    site.get("bindings")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The `sites` array of the section, made if missing.
fn sites_mut(web: &mut Value) -> anyhow::Result<&mut Vec<Value>> {
    let Value::Object(m) = web else {
        anyhow::bail!("roles.web is not an object; fix it with `mote settings set roles.web …`");
    };
    let sites = m.entry("sites").or_insert_with(|| Value::Array(Vec::new()));
    match sites {
        Value::Array(a) => Ok(a),
        _ => anyhow::bail!("roles.web.sites is not an array"),
    }
}

fn names(sites: &[Value]) -> String {
    let n: Vec<String> = sites.iter().map(|s| str_of(s, "name")).collect();
    if n.is_empty() {
        "there are no sites; add one with `web site add NAME --root DIR --bind URL`".into()
    } else {
        format!("the sites are: {}", n.join(", "))
    }
}

/// The site named `name`, or an error listing the existing ones.
fn find<'a>(node: &str, sites: &'a mut [Value], name: &str) -> anyhow::Result<&'a mut Value> {
    let Some(i) = sites.iter().position(|s| str_of(s, "name") == name) else {
        anyhow::bail!(
            "{node}: no web site {name:?}; {} (see `mote -n {node} web site list`)",
            names(sites)
        );
    };
    Ok(&mut sites[i])
}

fn edit_site(node: &str, web: &mut Value, verb: &SiteVerb) -> anyhow::Result<String> {
    let sites = sites_mut(web)?;
    match verb {
        SiteVerb::List => Ok(String::new()),
        SiteVerb::Add { name, root, bind } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                anyhow::bail!("site name {name:?}: letters, digits, '-', '_', '.' only");
            }
            if sites.iter().any(|s| str_of(s, "name") == *name) {
                anyhow::bail!(
                    "{node}: web site {name:?} already exists; remove it first \
                     (`mote -n {node} web site remove {name}`) or add bindings with \
                     `web binding add {name} URL`"
                );
            }
            if !root.starts_with('/') {
                anyhow::bail!("--root {root:?}: must be an absolute path on the node");
            }
            let mut bindings: Vec<Value> = Vec::new();
            for u in bind {
                let b = parse_binding(u)?;
                if bindings.iter().any(|x| same_binding(x, &b)) {
                    anyhow::bail!("--bind {u}: given twice");
                }
                bindings.push(b);
            }
            let mut site = Map::new();
            site.insert("name".into(), json!(name));
            site.insert("enabled".into(), json!(true));
            site.insert("root".into(), json!(root));
            let mut site = Value::Object(site);
            let tls = https_needs_tls(&mut site, &bindings);
            site["bindings"] = Value::Array(bindings);
            sites.push(site);
            Ok(format!(
                "web site {name} added{}",
                if tls {
                    " (https with a self-signed certificate)"
                } else {
                    ""
                }
            ))
        }
        SiteVerb::Remove { name } => {
            find(node, sites, name)?;
            sites.retain(|s| str_of(s, "name") != *name);
            Ok(format!("web site {name} removed"))
        }
        SiteVerb::Start { name } | SiteVerb::Stop { name } => {
            let on = matches!(verb, SiteVerb::Start { .. });
            let site = find(node, sites, name)?;
            site["enabled"] = Value::Bool(on);
            Ok(format!(
                "web site {name} {}",
                if on { "started" } else { "stopped" }
            ))
        }
    }
}

fn edit_binding(node: &str, web: &mut Value, verb: &BindingVerb) -> anyhow::Result<String> {
    let sites = sites_mut(web)?;
    match verb {
        BindingVerb::Add { site, url } => {
            let b = parse_binding(url)?;
            let s = find(node, sites, site)?;
            let mut bindings = bindings_of(s);
            if bindings.iter().any(|x| same_binding(x, &b)) {
                anyhow::bail!("web site {site} already has the binding {url}");
            }
            bindings.push(b);
            let tls = https_needs_tls(s, &bindings);
            s["bindings"] = Value::Array(bindings);
            Ok(format!(
                "binding {url} added to web site {site}{}",
                if tls {
                    " (https with a self-signed certificate)"
                } else {
                    ""
                }
            ))
        }
        BindingVerb::Remove { site, url } => {
            let b = parse_binding(url)?;
            let s = find(node, sites, site)?;
            let mut bindings = bindings_of(s);
            let Some(i) = bindings.iter().position(|x| same_binding(x, &b)) else {
                let have: Vec<String> = bindings.iter().map(binding_url).collect();
                anyhow::bail!(
                    "web site {site} has no binding {url}; its bindings are: {}",
                    have.join(", ")
                );
            };
            if bindings.len() == 1 {
                anyhow::bail!(
                    "{url} is web site {site}'s only binding; a site needs one: add another \
                     first, or stop (`mote -n {node} web site stop {site}`) or remove the site"
                );
            }
            bindings.remove(i);
            s["bindings"] = Value::Array(bindings);
            Ok(format!("binding {url} removed from web site {site}"))
        }
    }
}

/// An https binding needs a `tls` section: give the site a self-signed one
/// when it has none. True when one was added.
fn https_needs_tls(site: &mut Value, bindings: &[Value]) -> bool {
    let https = bindings.iter().any(|b| b["scheme"] == "https");
    if https && site.get("tls").is_none_or(Value::is_null) {
        site["tls"] = json!({ "self_signed": true });
        return true;
    }
    false
}

const ANY: &str = "0.0.0.0";

/// `scheme://HOST[:PORT]` → mote-web's binding: `*` listens on every
/// address, an IP address on that one, a name on every address for that
/// `Host`/SNI name. The port defaults to the scheme's.
pub fn parse_binding(url: &str) -> anyhow::Result<Value> {
    let bad = |why: &str| {
        anyhow::anyhow!(
            "binding {url:?}: {why}; write it as a URL such as http://*:8088, \
             https://host.example:443 or http://127.0.0.1:8080"
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err(bad("the scheme is http or https")),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@']) {
        return Err(bad("only a scheme, a host and a port"));
    }
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, after) = r.split_once(']').ok_or_else(|| bad("no closing ']'"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
        };
        (h, port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port: u16 = match port {
        None => default_port,
        Some(p) => match p.parse() {
            Ok(0) | Err(_) => return Err(bad(&format!("{p:?} is not a port (1-65535)"))),
            Ok(p) => p,
        },
    };
    if host.is_empty() {
        return Err(bad("no host (use * for every address)"));
    }
    let (address, name) = if host == "*" {
        (ANY.to_string(), None)
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        (ip.to_string(), None)
    } else if host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        (ANY.to_string(), Some(host.to_ascii_lowercase()))
    } else {
        return Err(bad(&format!("{host:?} is not a host name or IP address")));
    };
    let mut b = json!({ "scheme": scheme, "address": address, "port": port });
    if let Some(n) = name {
        b["host"] = json!(n);
    }
    Ok(b)
}

/// A stored binding as a URL (the form `parse_binding` reads).
fn binding_url(b: &Value) -> String {
    let scheme = b["scheme"].as_str().unwrap_or("?");
    let port = b["port"].as_u64().unwrap_or(0);
    let address = b["address"].as_str().unwrap_or(ANY);
    let shown = match b["host"].as_str() {
        Some(h) if address == ANY => h.to_string(),
        Some(h) => format!("{h} on {address}"),
        None if address == ANY => "*".into(),
        None if address.contains(':') => format!("[{address}]"),
        None => address.to_string(),
    };
    format!("{scheme}://{shown}:{port}")
}

fn same_binding(a: &Value, b: &Value) -> bool {
    let addr = |v: &Value| {
        v["address"]
            .as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]))
    };
    let host = |v: &Value| v["host"].as_str().map(str::to_ascii_lowercase);
    a["scheme"] == b["scheme"] && a["port"] == b["port"] && addr(a) == addr(b) && host(a) == host(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    use mote_api::api::{ErrorBody, NodeSettings};

    /// A node whose settings other writers change: before each of the first
    /// writes, one of them stores its own site.
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

        fn sites(&self) -> Vec<String> {
            let s = self.settings.lock().unwrap();
            let web = web_of(&s);
            web["sites"]
                .as_array()
                .map(|a| a.iter().map(|s| str_of(s, "name")).collect())
                .unwrap_or_default()
        }
    }

    fn add(name: &str) -> SiteVerb {
        SiteVerb::Add {
            name: name.into(),
            root: format!("/srv/{name}"),
            bind: vec!["http://*:8088".into()],
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
                let mut web = web_of(&s);
                edit_site("n1", &mut web, &add(other)).unwrap();
                s.settings.roles.insert("web".into(), web);
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
                .insert("web".into(), patch["roles"]["web"].clone());
            s.version += 1;
            Ok(s.clone())
        }
    }

    async fn add_blog(node: &Racing) -> anyhow::Result<(String, VersionedSettings)> {
        change("n1", node, |web| edit_site("n1", web, &add("blog"))).await
    }

    #[tokio::test]
    async fn a_write_from_a_stale_version_is_made_again_and_no_site_is_lost() {
        let node = Racing::new(&["other1", "other2", "other3"]);
        let (what, v) = add_blog(&node).await.unwrap();
        assert_eq!(what, "web site blog added");
        assert_eq!(node.sites(), ["other1", "other2", "other3", "blog"]);
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
        assert_eq!(node.sites(), ["o1", "o2", "o3", "o4"]);
    }

    #[tokio::test]
    async fn an_edit_that_no_longer_fits_fails_and_other_errors_are_not_retried() {
        // The other writer added the same site: the edit made again fails.
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

    #[test]
    fn binding_urls_parse_into_mote_web_bindings() {
        assert_eq!(
            parse_binding("http://*:8088").unwrap(),
            json!({"scheme": "http", "address": "0.0.0.0", "port": 8088})
        );
        assert_eq!(
            parse_binding("https://Host.Example:443").unwrap(),
            json!({"scheme": "https", "address": "0.0.0.0", "port": 443, "host": "host.example"})
        );
        assert_eq!(
            parse_binding("http://127.0.0.1").unwrap(),
            json!({"scheme": "http", "address": "127.0.0.1", "port": 80})
        );
        assert_eq!(
            parse_binding("https://[::1]:8443/").unwrap(),
            json!({"scheme": "https", "address": "::1", "port": 8443})
        );
        for bad in [
            "ftp://*:21",
            "*:80",
            "http://:80",
            "http://*:0",
            "http://a b:80",
        ] {
            assert!(parse_binding(bad).is_err(), "{bad}");
        }
        for u in [
            "http://*:8088",
            "https://host.example:443",
            "https://[::1]:8443",
        ] {
            let b = parse_binding(u).unwrap();
            assert_eq!(binding_url(&b), u);
            assert!(same_binding(&b, &parse_binding(&binding_url(&b)).unwrap()));
        }
        // A stored binding without an address listens on every address.
        assert!(same_binding(
            &json!({"scheme": "http", "port": 8088}),
            &parse_binding("http://*:8088").unwrap()
        ));
    }
}

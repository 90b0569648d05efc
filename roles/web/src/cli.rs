//! `mote -n NODE web site|binding …`: the web role's sites, edited in the
//! node's `roles.web` section (the role contract's command-line half,
//! [`mote_config::role_cli`]).
//!
//! Each verb edits the `sites` array of the section it is given; `mote`
//! writes the whole section back as one settings change, the node checks it
//! with [`crate::role::ROLE`]'s check (a refusal is 422 and nothing is
//! stored), and mote-web reloads: new bindings listen, removed or stopped
//! ones close. Fields a verb does not know are kept as they are.

use std::net::IpAddr;

use clap::{Args as _, FromArgMatches};
use mote_config::role_cli::{Outcome, RoleCli};
use serde_json::{json, Map, Value};

/// The registry's entry.
pub static CLI: WebCli = WebCli;

/// `mote -n NODE web …`.
pub struct WebCli;

impl RoleCli for WebCli {
    fn name(&self) -> &'static str {
        "web"
    }

    fn command(&self) -> clap::Command {
        Args::augment_args(clap::Command::new("web"))
            .about(
                "The web role's sites and bindings (`roles.web`): list, add, remove, start, stop",
            )
            .long_about(
                "The web role's sites and bindings, edited in the node's `roles.web` settings \
                 section: each change is one settings version, checked by the node before it is \
                 stored, and mote-web reloads without dropping connections.\n\n\
                 Examples:\n  \
                 mote -n web1 web site list\n  \
                 mote -n web1 web site add blog --root /srv/blog --bind http://*:8088\n  \
                 mote -n web1 web binding add blog https://blog.example\n  \
                 mote -n web1 web site stop blog",
            )
    }

    fn run(&self, node: &str, args: &clap::ArgMatches, web: &mut Value) -> Result<Outcome, String> {
        let args = Args::from_arg_matches(args).map_err(|e| e.to_string())?;
        let what = match &args.verb {
            Verb::Site {
                verb: SiteVerb::List,
            } => return Ok(list(web)),
            Verb::Site { verb } => edit_site(node, web, verb)?,
            Verb::Binding { verb } => edit_binding(node, web, verb)?,
        };
        Ok(Outcome::Changed(what))
    }
}

/// `return Err(format!(…))`.
macro_rules! bail {
    ($($t:tt)*) => {
        return Err(format!($($t)*))
    };
}

/// The web role's sites and their bindings (`roles.web`).
#[derive(clap::Args)]
struct Args {
    #[command(subcommand)]
    verb: Verb,
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

fn list(web: &Value) -> Outcome {
    let sites = web
        .get("sites")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let rows = sites
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
    let filled: Vec<Value> = sites
        .into_iter()
        .map(|mut site| {
            if let Value::Object(m) = &mut site {
                m.entry("enabled").or_insert(Value::Bool(true));
            }
            site
        })
        .collect();
    Outcome::Show {
        json: Value::Array(filled),
        header: ["name", "enabled", "bindings", "root"]
            .map(String::from)
            .to_vec(),
        rows,
    }
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
fn sites_mut(web: &mut Value) -> Result<&mut Vec<Value>, String> {
    let Value::Object(m) = web else {
        bail!("roles.web is not an object; fix it with `mote settings set roles.web …`");
    };
    let sites = m.entry("sites").or_insert_with(|| Value::Array(Vec::new()));
    match sites {
        Value::Array(a) => Ok(a),
        _ => bail!("roles.web.sites is not an array"),
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
fn find<'a>(node: &str, sites: &'a mut [Value], name: &str) -> Result<&'a mut Value, String> {
    let Some(i) = sites.iter().position(|s| str_of(s, "name") == name) else {
        bail!(
            "{node}: no web site {name:?}; {} (see `mote -n {node} web site list`)",
            names(sites)
        );
    };
    Ok(&mut sites[i])
}

fn edit_site(node: &str, web: &mut Value, verb: &SiteVerb) -> Result<String, String> {
    let sites = sites_mut(web)?;
    match verb {
        SiteVerb::List => Ok(String::new()),
        SiteVerb::Add { name, root, bind } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                bail!("site name {name:?}: letters, digits, '-', '_', '.' only");
            }
            if sites.iter().any(|s| str_of(s, "name") == *name) {
                bail!(
                    "{node}: web site {name:?} already exists; remove it first \
                     (`mote -n {node} web site remove {name}`) or add bindings with \
                     `web binding add {name} URL`"
                );
            }
            if !root.starts_with('/') {
                bail!("--root {root:?}: must be an absolute path on the node");
            }
            let mut bindings: Vec<Value> = Vec::new();
            for u in bind {
                let b = parse_binding(u)?;
                if bindings.iter().any(|x| same_binding(x, &b)) {
                    bail!("--bind {u}: given twice");
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

fn edit_binding(node: &str, web: &mut Value, verb: &BindingVerb) -> Result<String, String> {
    let sites = sites_mut(web)?;
    match verb {
        BindingVerb::Add { site, url } => {
            let b = parse_binding(url)?;
            let s = find(node, sites, site)?;
            let mut bindings = bindings_of(s);
            if bindings.iter().any(|x| same_binding(x, &b)) {
                bail!("web site {site} already has the binding {url}");
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
                bail!(
                    "web site {site} has no binding {url}; its bindings are: {}",
                    have.join(", ")
                );
            };
            if bindings.len() == 1 {
                bail!(
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
fn parse_binding(url: &str) -> Result<Value, String> {
    let bad = |why: &str| {
        format!(
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

    fn run(web: &mut Value, argv: &[&str]) -> Result<Outcome, String> {
        let m = CLI
            .command()
            .try_get_matches_from(std::iter::once("web").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        CLI.run("n1", &m, web)
    }

    #[test]
    fn sites_are_added_listed_stopped_and_removed() {
        let mut web = json!({});
        let out = run(
            &mut web,
            &[
                "site",
                "add",
                "blog",
                "--root",
                "/srv/blog",
                "--bind",
                "https://blog.example",
            ],
        );
        assert_eq!(
            out,
            Ok(Outcome::Changed(
                "web site blog added (https with a self-signed certificate)".into()
            ))
        );
        assert_eq!(web["sites"][0]["tls"], json!({"self_signed": true}));
        let Ok(Outcome::Show { json, rows, .. }) = run(&mut web, &["site", "list"]) else {
            panic!("a list shows");
        };
        assert_eq!(json[0]["enabled"], true);
        assert_eq!(rows[0][2], "https://blog.example:443");
        run(&mut web, &["site", "stop", "blog"]).unwrap();
        assert_eq!(web["sites"][0]["enabled"], false);
        let err = run(
            &mut web,
            &[
                "site",
                "add",
                "blog",
                "--root",
                "/x",
                "--bind",
                "http://*:1",
            ],
        )
        .unwrap_err();
        assert!(
            err.contains("already exists") && err.contains("mote -n n1 web site remove blog"),
            "{err}"
        );
        let err = run(
            &mut web,
            &["binding", "remove", "blog", "https://blog.example"],
        )
        .unwrap_err();
        assert!(err.contains("only binding"), "{err}");
        run(&mut web, &["site", "remove", "blog"]).unwrap();
        assert_eq!(web["sites"], json!([]));
        let err = run(&mut web, &["site", "remove", "blog"]).unwrap_err();
        assert!(
            err.contains("no web site \"blog\"; there are no sites"),
            "{err}"
        );
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

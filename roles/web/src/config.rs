//! The `roles.web` settings section: serde types, defaults and validation.
//!
//! Job: turn a JSON or TOML file into a validated [`WebSettings`]. Every
//! struct denies unknown fields; deserialization errors carry the key path
//! (`sites[0].bindings[1].port`) through `serde_path_to_error`, and
//! [`WebSettings::validate`] names the key of every semantic error.
//!
//! Design: plain data here; `site.rs` compiles it into the form the request
//! path uses (canonical roots, loaded error pages, lowercased sets).
//!
//! Limits: durations are whole seconds; error-page keys are status codes as
//! strings (`"404"`) so that TOML and JSON read the same.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

/// Errors reading or validating the settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: unknown extension (want .json or .toml)")]
    Extension { path: PathBuf },
    #[error("{path}: {key}: {message}")]
    Parse {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

/// What is wrong with a path prefix of a rule (`basic_auth.path`,
/// `redirects.from`, `apps.path`): rules match the canonical request path
/// (`crate::path`), so a prefix must be canonical itself to ever match.
fn prefix_problem(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        return Some("must start with '/'");
    }
    match crate::path::canonical(p) {
        Ok(std::borrow::Cow::Borrowed(_)) => None,
        _ => Some(
            "must be a plain path, as requests are compared: no empty, '.' or '..' \
             segment, no '%' or '\\' (write \"/a/b\", not \"/a//b\" or \"/a%20b\")",
        ),
    }
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// The whole `roles.web` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    #[serde(default)]
    pub sites: Vec<SiteConfig>,
    #[serde(default)]
    pub limits: Limits,
}

/// Server-wide connection limits (`[limits]`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// A client must send a whole request head within this time; an idle
    /// keep-alive connection is closed after it (slow-header clients hold
    /// no connection longer).
    /// The same time bounds an HTTP/2 connection with no open stream.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// An answer that makes no progress this long (the client reads
    /// nothing, or an HTTP/2 client opens no flow-control window) closes
    /// its connection (nginx's `send_timeout`).
    #[serde(default = "default_send_timeout")]
    pub send_timeout_secs: u64,
    /// Open client connections, all listeners together; past it a new
    /// connection gets 503 (plain http) or is closed (https).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout_secs: default_header_timeout(),
            send_timeout_secs: default_send_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

fn default_header_timeout() -> u64 {
    30
}

fn default_send_timeout() -> u64 {
    60
}

fn default_max_connections() -> usize {
    4096
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub scheme: Scheme,
    #[serde(default = "any_address")]
    pub address: IpAddr,
    pub port: u16,
    /// Host name matched against `Host`/SNI; none matches any.
    #[serde(default)]
    pub host: Option<String>,
}

fn any_address() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub name: String,
    /// A stopped site (`false`) keeps its settings but serves nothing: its
    /// bindings do not listen and its apps and log are not started.
    #[serde(default = "yes")]
    pub enabled: bool,
    pub bindings: Vec<Binding>,
    pub root: PathBuf,
    #[serde(default)]
    pub default_documents: DefaultDocuments,
    #[serde(default)]
    pub directory_browsing: bool,
    /// Status code (as a string) → file, relative to the root or absolute.
    #[serde(default)]
    pub error_pages: BTreeMap<String, PathBuf>,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub logging: Logging,
    #[serde(default)]
    pub request_filtering: RequestFiltering,
    #[serde(default)]
    pub tls: Option<Tls>,
    #[serde(default)]
    pub hsts: Option<Hsts>,
    #[serde(default)]
    pub https_redirect: bool,
    #[serde(default)]
    pub basic_auth: Vec<BasicAuth>,
    #[serde(default)]
    pub ip: IpRules,
    #[serde(default)]
    pub redirects: Vec<Redirect>,
    #[serde(default)]
    pub apps: Vec<App>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DefaultDocuments {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_files")]
    pub files: Vec<String>,
}

impl Default for DefaultDocuments {
    fn default() -> Self {
        Self {
            enabled: true,
            files: default_files(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_files() -> Vec<String> {
    ["index.html", "index.htm", "default.htm"]
        .map(String::from)
        .to_vec()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Smaller files are sent as they are.
    #[serde(default = "min_compress")]
    pub min_bytes: u64,
    /// Larger files are sent as they are (no on-the-fly compression).
    #[serde(default = "max_compress")]
    pub max_bytes: u64,
}

fn min_compress() -> u64 {
    256
}
fn max_compress() -> u64 {
    4 << 20
}

impl Default for Compression {
    fn default() -> Self {
        Self {
            enabled: true,
            min_bytes: min_compress(),
            max_bytes: max_compress(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "log_dir")]
    pub dir: PathBuf,
    /// Rotate when the file reaches this size.
    #[serde(default = "log_max")]
    pub max_bytes: u64,
    /// Rotate at midnight UTC.
    #[serde(default = "yes")]
    pub daily: bool,
}

fn log_dir() -> PathBuf {
    PathBuf::from("/var/log/mote-web")
}
fn log_max() -> u64 {
    16 << 20
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: log_dir(),
            max_bytes: log_max(),
            daily: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestFiltering {
    #[serde(default = "max_url")]
    pub max_url_length: usize,
    #[serde(default = "max_query")]
    pub max_query_length: usize,
    #[serde(default = "max_body")]
    pub max_body_bytes: u64,
    /// Extensions (with the dot, any case) answered 404.
    #[serde(default = "denied_extensions")]
    pub denied_extensions: Vec<String>,
    /// Path segments (any case) answered 404 wherever they appear.
    #[serde(default = "hidden_segments")]
    pub hidden_segments: Vec<String>,
    /// Methods allowed; others get 405.
    #[serde(default = "allowed_verbs")]
    pub allowed_verbs: Vec<String>,
}

fn max_url() -> usize {
    4096
}
fn max_query() -> usize {
    2048
}
fn max_body() -> u64 {
    30_000_000
}
fn denied_extensions() -> Vec<String> {
    [".config", ".cs", ".csproj", ".mdb", ".key", ".pem"]
        .map(String::from)
        .to_vec()
}
fn hidden_segments() -> Vec<String> {
    [
        ".git",
        ".svn",
        ".hg",
        ".env",
        "web.config",
        "bin",
        "app_data",
    ]
    .map(String::from)
    .to_vec()
}
fn allowed_verbs() -> Vec<String> {
    ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
        .map(String::from)
        .to_vec()
}

impl Default for RequestFiltering {
    fn default() -> Self {
        Self {
            max_url_length: max_url(),
            max_query_length: max_query(),
            max_body_bytes: max_body(),
            denied_extensions: denied_extensions(),
            hidden_segments: hidden_segments(),
            allowed_verbs: allowed_verbs(),
        }
    }
}

/// Certificate of the site's https bindings: files, or a generated
/// self-signed one for the binding host names (and `localhost`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    #[serde(default)]
    pub cert: Option<PathBuf>,
    #[serde(default)]
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub self_signed: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hsts {
    #[serde(default = "hsts_age")]
    pub max_age: u64,
    #[serde(default)]
    pub include_subdomains: bool,
}

fn hsts_age() -> u64 {
    31_536_000
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// URL path prefix protected.
    pub path: String,
    #[serde(default = "realm")]
    pub realm: String,
    /// User name → argon2id PHC hash (`mote passwd`).
    pub users: BTreeMap<String, String>,
}

fn realm() -> String {
    "mote".into()
}

/// Deny wins; a non-empty allow list admits only its networks.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IpRules {
    #[serde(default)]
    pub allow: Vec<IpNet>,
    #[serde(default)]
    pub deny: Vec<IpNet>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// URL path prefix.
    pub from: String,
    /// Target URL or path; the rest of the path after `from` is appended
    /// when `keep_path` is on.
    pub to: String,
    #[serde(default = "redirect_status")]
    pub status: u16,
    #[serde(default = "yes")]
    pub keep_path: bool,
}

fn redirect_status() -> u16 {
    302
}

/// A managed backend (HttpPlatformHandler): started with a free port in
/// `PORT` and `HTTP_PLATFORM_PORT`, proxied to under `path`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct App {
    #[serde(default = "root_path")]
    pub path: String,
    pub program: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "one")]
    pub processes: u32,
    #[serde(default = "startup_limit")]
    pub startup_time_limit_secs: u64,
    #[serde(default = "ten")]
    pub startup_retries: u32,
    #[serde(default = "ten")]
    pub rapid_fails_per_minute: u32,
    #[serde(default = "request_timeout")]
    pub request_timeout_secs: u64,
    /// stdout and stderr of the processes; none discards them.
    #[serde(default)]
    pub stdout_log: Option<PathBuf>,
}

fn root_path() -> String {
    "/".into()
}
fn one() -> u32 {
    1
}
fn ten() -> u32 {
    10
}
fn startup_limit() -> u64 {
    10
}
fn request_timeout() -> u64 {
    120
}

impl WebSettings {
    /// Reads JSON or TOML (by extension) and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let parse_err = |key: String, message: String| ConfigError::Parse {
            path: path.to_owned(),
            key,
            message,
        };
        let settings: WebSettings = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                let de = &mut serde_json::Deserializer::from_str(&text);
                serde_path_to_error::deserialize(de)
                    .map_err(|e| parse_err(e.path().to_string(), e.inner().to_string()))?
            }
            Some("toml") => {
                let de = toml::Deserializer::parse(&text)
                    .map_err(|e| parse_err(".".into(), e.to_string()))?;
                serde_path_to_error::deserialize(de)
                    .map_err(|e| parse_err(e.path().to_string(), e.inner().message().to_string()))?
            }
            _ => {
                return Err(ConfigError::Extension {
                    path: path.to_owned(),
                })
            }
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Semantic checks; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=3600).contains(&self.limits.header_timeout_secs) {
            return Err(invalid(
                "limits.header_timeout_secs",
                "from 1 to 3600 seconds",
            ));
        }
        if !(1..=3600).contains(&self.limits.send_timeout_secs) {
            return Err(invalid(
                "limits.send_timeout_secs",
                "from 1 to 3600 seconds",
            ));
        }
        if !(1..=1_000_000).contains(&self.limits.max_connections) {
            return Err(invalid("limits.max_connections", "from 1 to 1000000"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, site) in self.sites.iter().enumerate() {
            let k = |field: &str| format!("sites[{i}].{field}");
            if site.name.is_empty()
                || !site
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                return Err(invalid(k("name"), "letters, digits, '-', '_', '.' only"));
            }
            if !names.insert(site.name.as_str()) {
                return Err(invalid(k("name"), format!("{:?} repeats", site.name)));
            }
            if site.bindings.is_empty() {
                return Err(invalid(k("bindings"), "at least one binding"));
            }
            for (j, b) in site.bindings.iter().enumerate() {
                if b.port == 0 {
                    return Err(invalid(
                        k(&format!("bindings[{j}].port")),
                        "0 is not a port",
                    ));
                }
                if b.scheme == Scheme::Https && site.tls.is_none() {
                    return Err(invalid(k("tls"), "an https binding needs a tls section"));
                }
                if let Some(h) = &b.host {
                    if h.is_empty() || h.contains(['/', ' ', ':']) {
                        return Err(invalid(
                            k(&format!("bindings[{j}].host")),
                            format!("{h:?} is not a host name"),
                        ));
                    }
                }
            }
            if !site.root.is_absolute() {
                return Err(invalid(k("root"), "must be an absolute path"));
            }
            for f in &site.default_documents.files {
                if f.is_empty() || f.contains('/') {
                    return Err(invalid(
                        k("default_documents.files"),
                        format!("{f:?} is not a file name"),
                    ));
                }
            }
            for code in site.error_pages.keys() {
                match code.parse::<u16>() {
                    Ok(400..=599) => {}
                    _ => {
                        return Err(invalid(
                            k(&format!("error_pages.{code}")),
                            "key must be a status code 400-599",
                        ))
                    }
                }
            }
            if site.compression.min_bytes > site.compression.max_bytes {
                return Err(invalid(
                    k("compression.min_bytes"),
                    "greater than compression.max_bytes",
                ));
            }
            if site.logging.max_bytes < 4096 {
                return Err(invalid(k("logging.max_bytes"), "at least 4096"));
            }
            for (j, v) in site.request_filtering.allowed_verbs.iter().enumerate() {
                if v.is_empty() || !v.bytes().all(|c| c.is_ascii_uppercase()) {
                    return Err(invalid(
                        k(&format!("request_filtering.allowed_verbs[{j}]")),
                        format!("{v:?} is not an upper-case method"),
                    ));
                }
            }
            for (j, e) in site.request_filtering.denied_extensions.iter().enumerate() {
                if !e.starts_with('.') || e.len() < 2 {
                    return Err(invalid(
                        k(&format!("request_filtering.denied_extensions[{j}]")),
                        format!("{e:?} must start with '.'"),
                    ));
                }
            }
            if let Some(tls) = &site.tls {
                match (&tls.cert, &tls.key, tls.self_signed) {
                    (Some(_), Some(_), false) | (None, None, true) => {}
                    _ => {
                        return Err(invalid(
                            k("tls"),
                            "either cert and key files, or self_signed = true",
                        ))
                    }
                }
            }
            for (j, a) in site.basic_auth.iter().enumerate() {
                if let Some(m) = prefix_problem(&a.path) {
                    return Err(invalid(k(&format!("basic_auth[{j}].path")), m));
                }
                for (user, phc) in &a.users {
                    if user.contains(':') || !phc.starts_with("$argon2id$") {
                        return Err(invalid(
                            k(&format!("basic_auth[{j}].users.{user}")),
                            "user names without ':' and argon2id hashes (mote passwd)",
                        ));
                    }
                }
            }
            for (j, r) in site.redirects.iter().enumerate() {
                if let Some(m) = prefix_problem(&r.from) {
                    return Err(invalid(k(&format!("redirects[{j}].from")), m));
                }
                if !matches!(r.status, 301 | 302 | 307 | 308) {
                    return Err(invalid(
                        k(&format!("redirects[{j}].status")),
                        format!("{} is not one of 301, 302, 307, 308", r.status),
                    ));
                }
            }
            for (j, a) in site.apps.iter().enumerate() {
                let ka = |f: &str| k(&format!("apps[{j}].{f}"));
                if let Some(m) = prefix_problem(&a.path) {
                    return Err(invalid(ka("path"), m));
                }
                if !(1..=64).contains(&a.processes) {
                    return Err(invalid(ka("processes"), "from 1 to 64"));
                }
                if a.startup_time_limit_secs == 0 {
                    return Err(invalid(ka("startup_time_limit_secs"), "at least 1"));
                }
                if a.request_timeout_secs == 0 {
                    return Err(invalid(ka("request_timeout_secs"), "at least 1"));
                }
                if a.program.as_os_str().is_empty() {
                    return Err(invalid(ka("program"), "empty"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn toml_defaults() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "web.toml",
            r#"
[[sites]]
name = "main"
root = "/srv/www"
bindings = [{ scheme = "http", port = 8080 }]
error_pages = { "404" = "404.html" }
"#,
        );
        let s = WebSettings::load(&p).unwrap();
        let site = &s.sites[0];
        assert!(site.default_documents.enabled);
        assert_eq!(site.default_documents.files[0], "index.html");
        assert!(!site.directory_browsing);
        assert!(site.compression.enabled);
        assert!(site.enabled);
        assert_eq!(site.bindings[0].address, any_address());
    }

    #[test]
    fn unknown_field_names_key() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "web.json",
            r#"{"sites":[{"name":"a","root":"/x","bindings":[{"scheme":"http","port":1,"hots":"a"}]}]}"#,
        );
        let e = WebSettings::load(&p).unwrap_err().to_string();
        assert!(e.contains("sites[0].bindings[0]"), "{e}");
        assert!(e.contains("hots"), "{e}");
    }

    #[test]
    fn validation_names_key() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "web.toml",
            r#"
[[sites]]
name = "main"
root = "/srv"
bindings = [{ scheme = "https", port = 443 }]
"#,
        );
        let e = WebSettings::load(&p).unwrap_err().to_string();
        assert_eq!(e, "sites[0].tls: an https binding needs a tls section");
        let p = write(
            d.path(),
            "w2.toml",
            r#"
[[sites]]
name = "main"
root = "/srv"
bindings = [{ scheme = "http", port = 80 }]
redirects = [{ from = "/a", to = "/b", status = 303 }]
"#,
        );
        let e = WebSettings::load(&p).unwrap_err().to_string();
        assert!(e.starts_with("sites[0].redirects[0].status"), "{e}");
        let p = write(
            d.path(),
            "w3.toml",
            r#"
[[sites]]
name = "main"
root = "/srv"
bindings = [{ scheme = "http", port = 80 }]
basic_auth = [{ path = "//admin", users = {} }]
"#,
        );
        let e = WebSettings::load(&p).unwrap_err().to_string();
        assert!(
            e.starts_with("sites[0].basic_auth[0].path: must be a plain path"),
            "{e}"
        );
        let p = write(d.path(), "w.yaml", "");
        assert!(matches!(
            WebSettings::load(&p),
            Err(ConfigError::Extension { .. })
        ));
    }
}

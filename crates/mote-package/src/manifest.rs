//! `package.toml`: what a package is, installs, runs and opens.
//!
//! The node-facing parts reuse the manifest's types from `mote-config`, so a
//! package's service, file and port read exactly like a manifest's:
//! `[[files]]` is [`mote_config::FileCopy`], `[services.NAME]` is
//! [`mote_config::Service`] (readiness is what the supervisor knows today:
//! a service with a TCP port is ready when it listens there), ports are
//! [`mote_config::Port`] (`8080`, `"53/udp"`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mote_config::{FileCopy, Port, Service};
use serde::{Deserialize, Serialize};

/// The name of the manifest file in a package directory and archive.
pub const MANIFEST_FILE: &str = "package.toml";

/// A whole `package.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageManifest {
    /// Package name: lowercase letters, digits and `-`, starting with a letter.
    pub name: String,
    /// Semantic version (`1.2.3`).
    pub version: semver::Version,
    /// One line saying what it is.
    pub description: String,
    /// `name = "^1.2"`: packages this one needs, with version requirements.
    #[serde(default)]
    pub dependencies: BTreeMap<String, semver::VersionReq>,
    /// `[[files]]`: files it installs. `source` is relative to the package
    /// directory, or `bin:NAME` for a binary of the mote workspace (resolved
    /// at build time from the bin dir); `mode` is required.
    #[serde(default)]
    pub files: Vec<FileCopy>,
    /// `[services.NAME]`: processes it runs, supervised by PID 1.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// `[firewall]`: ports it opens besides its services' own `ports`.
    #[serde(default)]
    pub firewall: PackageFirewall,
    /// `[[users]]`: system users it needs.
    #[serde(default)]
    pub users: Vec<User>,
    /// `[[groups]]`: system groups it needs.
    #[serde(default)]
    pub groups: Vec<Group>,
    /// `[[directories]]`: directories made on the node before its services
    /// start (on every boot: the root file system is rebuilt each time),
    /// such as a log directory its unprivileged user writes.
    #[serde(default)]
    pub directories: Vec<Directory>,
    /// Kernel modules it needs, by name (`nf_nat`).
    #[serde(default)]
    pub modules: Vec<String>,
    /// The `[roles.SECTION]` of the node settings it reads.
    #[serde(default)]
    pub settings: Option<String>,
    /// The signal its services reload their settings on.
    #[serde(default)]
    pub reload_signal: Option<ReloadSignal>,
    /// `[metrics]`: where its Prometheus metrics are served.
    #[serde(default)]
    pub metrics: Option<Metrics>,
}

/// `[firewall]` of a package.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageFirewall {
    /// Ports opened inbound: `8080` or `"53/udp"`.
    #[serde(default)]
    pub ports: Vec<Port>,
}

/// `[[users]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Primary group id; `uid` when absent.
    #[serde(default)]
    pub gid: Option<u32>,
}

/// `[[directories]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    /// Absolute path on the node.
    pub path: String,
    /// `uid:gid`, default `0:0`.
    #[serde(default = "default_owner")]
    pub owner: String,
    /// Octal mode, default `"0755"`.
    #[serde(default = "default_dir_mode")]
    pub mode: String,
}

fn default_owner() -> String {
    "0:0".into()
}

fn default_dir_mode() -> String {
    "0755".into()
}

/// `[[groups]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Numeric group id.
    pub gid: u32,
}

/// The signals a service may reload on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReloadSignal {
    /// `"SIGHUP"`
    #[serde(rename = "SIGHUP")]
    Hup,
    /// `"SIGUSR1"`
    #[serde(rename = "SIGUSR1")]
    Usr1,
    /// `"SIGUSR2"`
    #[serde(rename = "SIGUSR2")]
    Usr2,
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// TCP port on the node's loopback.
    pub port: u16,
    /// HTTP path; default `/metrics`.
    #[serde(default = "default_metrics_path")]
    pub path: String,
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

/// A `package.toml` that does not parse or does not hold together.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Syntax or schema: unknown key, wrong type, bad version.
    #[error("{}: {message}", path.display())]
    Schema {
        /// The file (or `NAME.mpkg:package.toml`).
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A rule across values: see [`PackageManifest::validate`].
    #[error("{}: {key}: {problem}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Key path of the value (`services.hello.argv`).
        key: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
}

impl PackageManifest {
    /// Parses and validates `text`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ManifestError> {
        let manifest: Self = toml::from_str(text).map_err(|e| ManifestError::Schema {
            path: origin.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        manifest
            .validate()
            .map_err(|(key, problem)| ManifestError::Invalid {
                path: origin.to_path_buf(),
                key,
                problem,
            })?;
        Ok(manifest)
    }

    /// The ports this package opens: its services' and `[firewall] ports`,
    /// sorted, each once.
    pub fn open_ports(&self) -> Vec<Port> {
        let mut ports: Vec<Port> = self
            .services
            .values()
            .flat_map(|s| s.ports.iter().copied())
            .chain(self.firewall.ports.iter().copied())
            .collect();
        ports.sort();
        ports.dedup();
        ports
    }

    /// `name version`, as messages write it.
    pub fn id(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    /// The rules the types cannot say; the first failure as (key, problem).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, problem: String| Err((key.to_string(), problem));
        if !is_name(&self.name) {
            return fail("name", format!("found {:?}; {NAME_RULE}", self.name));
        }
        for dep in self.dependencies.keys() {
            if !is_name(dep) {
                return fail(
                    &format!("dependencies.{dep}"),
                    format!("found {dep:?}; {NAME_RULE}"),
                );
            }
            if *dep == self.name {
                return fail(
                    &format!("dependencies.{dep}"),
                    "a package cannot depend on itself".into(),
                );
            }
        }
        let mut destinations = std::collections::BTreeSet::new();
        for (i, file) in self.files.iter().enumerate() {
            let key = format!("files[{i}]");
            if archive_path(&file.destination).is_none() {
                return fail(
                    &format!("{key}.destination"),
                    format!(
                        "found {:?}; allowed: an absolute path without `.` or `..` parts, such as \"/usr/bin/app\"",
                        file.destination
                    ),
                );
            }
            if !destinations.insert(file.destination.as_str()) {
                return fail(
                    &format!("{key}.destination"),
                    format!("{} is installed twice", file.destination),
                );
            }
            if let Err(e) = mote_config::parse_owner(&file.owner) {
                return fail(&format!("{key}.owner"), e.to_string());
            }
            match file.mode.as_deref().map(mote_config::parse_mode) {
                None => {
                    return fail(
                        &format!("{key}.mode"),
                        "found nothing; a package gives every file its mode, such as \"0755\" or \"0644\"".into(),
                    )
                }
                Some(Err(e)) => return fail(&format!("{key}.mode"), e.to_string()),
                Some(Ok(_)) => {}
            }
            let source = file.source.strip_prefix("bin:").unwrap_or(&file.source);
            if source.is_empty() || source.starts_with('/') {
                return fail(
                    &format!("{key}.source"),
                    format!(
                        "found {:?}; allowed: a path relative to the package directory, or bin:NAME",
                        file.source
                    ),
                );
            }
        }
        for (name, service) in &self.services {
            let key = format!("services.{name}");
            match service.argv.first() {
                Some(program) if program.starts_with('/') => {}
                found => {
                    return fail(
                        &format!("{key}.argv"),
                        format!(
                            "found {found:?}; the program must be an absolute path on the node"
                        ),
                    )
                }
            }
            for cap in &service.capabilities {
                if !mote_config::KNOWN_CAPABILITIES.contains(&cap.as_str()) {
                    return fail(
                        &format!("{key}.capabilities"),
                        format!(
                            "found {cap:?}; allowed: {:?}",
                            mote_config::KNOWN_CAPABILITIES
                        ),
                    );
                }
            }
            if let Err(e) = mote_config::parse_user(&service.user) {
                return fail(&format!("{key}.user"), e.to_string());
            }
        }
        // The rest of a service's rules (timeouts, open files, `after`…)
        // are the manifest's, in their one home: ask mote-config.
        let settings = mote_config::NodeSettings {
            services: self.services.clone(),
            ..Default::default()
        };
        if let Err(problems) = settings.validate() {
            if let Some(p) = problems.iter().find(|p| p.path.starts_with("services.")) {
                return fail(
                    &p.path,
                    format!("found {}; allowed: {}", p.found, p.allowed),
                );
            }
        }
        for (i, user) in self.users.iter().enumerate() {
            if !is_name(&user.name) {
                return fail(
                    &format!("users[{i}].name"),
                    format!("found {:?}; {NAME_RULE}", user.name),
                );
            }
        }
        for (i, group) in self.groups.iter().enumerate() {
            if !is_name(&group.name) {
                return fail(
                    &format!("groups[{i}].name"),
                    format!("found {:?}; {NAME_RULE}", group.name),
                );
            }
        }
        for (i, dir) in self.directories.iter().enumerate() {
            let key = format!("directories[{i}]");
            if archive_path(&dir.path).is_none() {
                return fail(
                    &format!("{key}.path"),
                    format!("found {:?}; allowed: an absolute path without `.` or `..` parts, such as \"/var/log/app\"", dir.path),
                );
            }
            if let Err(e) = mote_config::parse_owner(&dir.owner) {
                return fail(&format!("{key}.owner"), e.to_string());
            }
            if let Err(e) = mote_config::parse_mode(&dir.mode) {
                return fail(&format!("{key}.mode"), e.to_string());
            }
        }
        for (i, module) in self.modules.iter().enumerate() {
            if module.is_empty()
                || !module
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return fail(
                    &format!("modules[{i}]"),
                    format!("found {module:?}; allowed: a kernel module name such as \"nf_nat\""),
                );
            }
        }
        if let Some(section) = &self.settings {
            if !is_name(section) {
                return fail(
                    "settings",
                    format!("found {section:?}; {NAME_RULE} (it names [roles.{section}])"),
                );
            }
        }
        if let Some(metrics) = &self.metrics {
            if metrics.port == 0 || !metrics.path.starts_with('/') {
                return fail(
                    "metrics",
                    format!(
                        "found port {} path {:?}; allowed: a port 1-65535 and a path starting with /",
                        metrics.port, metrics.path
                    ),
                );
            }
        }
        Ok(())
    }
}

const NAME_RULE: &str =
    "allowed: 1-64 lowercase letters, digits and `-`, starting with a letter, such as \"hello\"";

/// Whether `name` is a valid package, user, group or section name.
pub fn is_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The archive path (`files/usr/bin/hello`) of an absolute, plain node path,
/// or `None` when it is not one.
pub(crate) fn archive_path(destination: &str) -> Option<String> {
    let rest = destination.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains('\\'))
    {
        return None;
    }
    Some(format!("files/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = r#"
name = "hello"
version = "0.1.0"
description = "A static HTTP hello"
modules = ["nf_nat"]
settings = "hello"
reload_signal = "SIGHUP"

[dependencies]
base = "^1.2"

[[files]]
source = "bin:mote-hello"
destination = "/usr/bin/hello"
mode = "0755"

[services.hello]
argv = ["/usr/bin/hello", "--port", "8080", "--port", "8081"]
user = "nobody"
restart = "on-failure"
ports = ["8080/tcp"]

[firewall]
ports = ["9000/udp", 8080]

[[users]]
name = "hello"
uid = 900

[[groups]]
name = "hello"
gid = 900
"#;

    fn parse(text: &str) -> Result<PackageManifest, ManifestError> {
        PackageManifest::parse(text, Path::new("package.toml"))
    }

    #[test]
    fn a_full_manifest_reads_with_the_manifest_types() {
        let m = parse(HELLO).unwrap();
        assert_eq!(m.id(), "hello 0.1.0");
        assert_eq!(m.dependencies["base"].to_string(), "^1.2");
        assert_eq!(m.files[0].source, "bin:mote-hello");
        assert_eq!(
            m.services["hello"].restart,
            mote_config::RestartPolicy::OnFailure
        );
        assert_eq!(m.reload_signal, Some(ReloadSignal::Hup));
        assert_eq!(m.modules, ["nf_nat"]);
        let ports: Vec<String> = m.open_ports().iter().map(ToString::to_string).collect();
        assert_eq!(ports, ["8080/tcp", "9000/udp"]);
    }

    #[test]
    fn unknown_keys_are_refused_with_line_and_column() {
        let err = parse("name = \"a\"\nversion = \"1.0.0\"\ndescription = \"\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("package.toml: "), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("unknown field `bogus`"), "{err}");
    }

    #[test]
    fn a_version_must_be_semver() {
        let err = parse("name = \"a\"\nversion = \"1.0\"\ndescription = \"\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("version"), "{err}");
    }

    #[test]
    fn rules_name_the_key_and_what_is_allowed() {
        let base = "version = \"1.0.0\"\ndescription = \"\"\n";
        let cases = [
            ("name = \"Hello\"\n", "name: found \"Hello\""),
            (
                "name = \"a\"\n[[files]]\nsource = \"x\"\ndestination = \"/usr/../etc/x\"\nmode = \"0644\"\n",
                "files[0].destination: found \"/usr/../etc/x\"",
            ),
            (
                "name = \"a\"\n[[files]]\nsource = \"x\"\ndestination = \"/x\"\n",
                "files[0].mode: found nothing",
            ),
            (
                "name = \"a\"\n[[files]]\nsource = \"/etc/passwd\"\ndestination = \"/x\"\nmode = \"0644\"\n",
                "files[0].source: found \"/etc/passwd\"",
            ),
            (
                "name = \"a\"\n[services.s]\nargv = [\"hello\"]\n",
                "services.s.argv: found Some(\"hello\")",
            ),
            (
                "name = \"a\"\n[services.s]\nargv = [\"/x\"]\ncapabilities = [\"sys_admin\"]\n",
                "services.s.capabilities: found \"sys_admin\"",
            ),
            (
                "name = \"a\"\n[services.s]\nargv = [\"/x\"]\nstop_timeout_secs = 0\n",
                "services.s.stop_timeout_secs: found 0; allowed: 1 to 300 seconds",
            ),
            (
                "name = \"a\"\n[dependencies]\na = \"1\"\n",
                "dependencies.a: a package cannot depend on itself",
            ),
        ];
        for (head, want) in cases {
            // `name` first, then the other top-level keys, then the tables.
            let name_line = head.lines().next().unwrap_or("");
            let tables: String = head.lines().skip(1).map(|l| format!("{l}\n")).collect();
            let text = format!("{name_line}\n{base}{tables}");
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}\n→ {err}\nwanted {want}");
        }
    }

    #[test]
    fn archive_paths_are_plain() {
        assert_eq!(
            archive_path("/usr/bin/hello").as_deref(),
            Some("files/usr/bin/hello")
        );
        for bad in ["usr/bin", "/", "/a//b", "/a/../b", "/a/./b", "/a\\b"] {
            assert_eq!(archive_path(bad), None, "{bad}");
        }
    }
}

//! Semantic checks: the rules a value must follow beyond its type. They run on
//! the typed values, not on TOML, so that `moted` can check an API patch or a
//! console edit with the same code as `mote build` checks a manifest.

use std::collections::BTreeMap;

use crate::invalid::{did_you_mean, index, join, quote, quote_all, Invalid};
use crate::manifest::{FileCopy, Image, Kernel, Manifest, Packages};
use crate::order::cycles;
use crate::parse::{parse_mode, parse_owner, parse_user, ValueError};
use crate::password::is_argon2id;
use crate::role::{check_sections, Role};
use crate::settings::{
    Firewall, FirstBoot, Ipv4Mode, Ipv6Mode, Management, Network, NodeSettings, Protocol, Service,
    System,
};

/// What `system.admin_password_hash` must be.
const PHC: &str = "an argon2id PHC string such as \"$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH\"";
/// How to make one.
pub(crate) const PASSWD_HINT: &str =
    "run 'mote passwd' and put the printed line under [system] as admin_password_hash = \"…\"";
const SIMPLE: &str = "1-64 letters, digits, '-' and '_', starting with a letter or digit";
const HOSTNAME: &str =
    "1-63 letters, digits and '-', not starting or ending with '-' (an RFC 1123 label)";
const PROGRAM: &str = "an absolute path in the image such as \"/usr/bin/hello\"";

/// Collects problems found in one pass.
type Problems = Vec<Invalid>;

fn finish(problems: Problems) -> Result<(), Vec<Invalid>> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

impl NodeSettings {
    /// Checks every rule of the node settings and returns all the problems
    /// found, each with its key path (`services.web.after[0]`).
    /// `[roles.NAME]` sections are not checked: see [`Self::validate_with`].
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        self.validate_with(&[])
    }

    /// [`Self::validate`], checking each `[roles.NAME]` section that one
    /// of `roles` reads.
    pub fn validate_with(&self, roles: &[&dyn Role]) -> Result<(), Vec<Invalid>> {
        let mut problems = Problems::new();
        check_node(
            &self.system,
            &self.network,
            &self.firewall,
            &self.services,
            &self.first_boot,
            &mut problems,
        );
        check_management(&self.management, &self.services, &mut problems);
        for (i, name) in self.packages.iter().enumerate() {
            let path = index("packages", i);
            if !is_package_name(name) {
                problems.push(Invalid::new(path, quote(name), PACKAGE_NAME));
            } else if self.packages[..i].contains(name) {
                problems.push(Invalid::new(path, quote(name), "each package once"));
            }
        }
        check_sections(&self.roles, roles, &mut problems);
        finish(problems)
    }
}

/// What a package name is.
pub(crate) const PACKAGE_NAME: &str =
    "a package name: 1-64 lowercase letters, digits and '-', starting with a letter";

/// Whether `name` can name a package: 1–64 lowercase ASCII letters, digits
/// and `-`, starting with a letter.
pub fn is_package_name(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Each entry of `install` names a package or a package file, once; each
/// trusted key and repository is named once.
fn check_packages(packages: &Packages, out: &mut Problems) {
    let install = "packages.install";
    for (i, entry) in packages.install.iter().enumerate() {
        let path = index(install, i);
        if Packages::is_file(entry) {
            if !entry.ends_with(".mpkg") {
                out.push(Invalid::new(
                    path,
                    quote(entry),
                    "a package name, or a package file ending in .mpkg such as \"./app.mpkg\"",
                ));
                continue;
            }
        } else if !is_package_name(entry) {
            out.push(Invalid::new(path, quote(entry), PACKAGE_NAME));
            continue;
        }
        if packages.install[..i].contains(entry) {
            out.push(Invalid::new(path, quote(entry), "each package once"));
        }
    }
    for (i, repo) in packages.repositories.iter().enumerate() {
        if repo.is_empty() || packages.repositories[..i].contains(repo) {
            out.push(Invalid::new(
                index("packages.repositories", i),
                quote(repo),
                "a directory or an http(s):// URL, each once",
            ));
        }
    }
}

impl Manifest {
    /// Checks every rule of the manifest (the node settings' rules and those of
    /// the build-only parts) and returns all the problems found.
    /// `[roles.NAME]` sections are not checked: see [`Self::validate_with`].
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        self.validate_with(&[])
    }

    /// [`Self::validate`], checking each `[roles.NAME]` section that one
    /// of `roles` reads.
    pub fn validate_with(&self, roles: &[&dyn Role]) -> Result<(), Vec<Invalid>> {
        let mut problems = Problems::new();
        check_image(&self.image, &mut problems);
        check_kernel(&self.kernel, &mut problems);
        check_node(
            &self.system,
            &self.network,
            &self.firewall,
            &self.services,
            &self.first_boot,
            &mut problems,
        );
        check_management(&self.management, &self.services, &mut problems);
        check_packages(&self.packages, &mut problems);
        for (i, file) in self.files.iter().enumerate() {
            check_file(&index("files", i), file, &mut problems);
        }
        check_sections(&self.roles, roles, &mut problems);
        finish(problems)
    }
}

fn check_node(
    system: &System,
    network: &Network,
    firewall: &Firewall,
    services: &BTreeMap<String, Service>,
    first_boot: &[FirstBoot],
    out: &mut Problems,
) {
    check_system(system, out);
    check_network(network, out);
    check_firewall(firewall, out);
    check_services(services, out);
    for (i, command) in first_boot.iter().enumerate() {
        let path = index("first_boot", i);
        check_argv(&path, &command.argv, out);
        if command.timeout_secs == 0 {
            out.push(Invalid::new(
                join(&path, "timeout_secs"),
                "0",
                "a number of seconds from 1",
            ));
        }
    }
}

/// Letters, digits, `-` and `_`, starting with a letter or digit, 1–64 long.
pub(crate) fn is_simple_name(s: &str) -> bool {
    s.len() <= 64
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An RFC 1123 host name label.
fn is_hostname(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn check_image(image: &Image, out: &mut Problems) {
    if !is_simple_name(&image.name) {
        out.push(Invalid::new("image.name", quote(&image.name), SIMPLE));
    }
}

fn check_kernel(kernel: &Kernel, out: &mut Problems) {
    match (&kernel.path, &kernel.modules) {
        (Some(_), None) => out.push(
            Invalid::new(
                "kernel.modules",
                "nothing",
                "the lib/modules/VERSION directory of the kernel at kernel.path",
            )
            .hint("a kernel given by path needs its modules directory too"),
        ),
        (None, Some(modules)) => out.push(
            Invalid::new(
                "kernel.modules",
                quote(&modules.display().to_string()),
                "a modules directory only together with kernel.path",
            )
            .hint("set kernel.path to the kernel image these modules belong to"),
        ),
        _ => {}
    }
}

fn check_system(system: &System, out: &mut Problems) {
    if !is_hostname(&system.hostname) {
        out.push(Invalid::new(
            "system.hostname",
            quote(&system.hostname),
            HOSTNAME,
        ));
    }
    if system.timezone != "UTC" {
        out.push(
            Invalid::new("system.timezone", quote(&system.timezone), quote("UTC")).hint(
                "only UTC zone data is bundled today; leave timezone out or set it to \"UTC\"",
            ),
        );
    }
    let hash = &system.admin_password_hash;
    if hash.is_empty() {
        out.push(Invalid::new("system.admin_password_hash", "nothing", PHC).hint(PASSWD_HINT));
    } else if !is_argon2id(hash) {
        out.push(Invalid::new("system.admin_password_hash", quote(hash), PHC).hint(PASSWD_HINT));
    }
}

/// Linux's rule for interface names (`dev_valid_name`): 1–15 bytes, not `.` or
/// `..`, no `/`, `:` or whitespace.
fn is_interface_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && !s
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
}

fn check_network(network: &Network, out: &mut Problems) {
    for (name, interface) in &network.interfaces {
        let path = join("network.interfaces", name);
        if !is_interface_name(name) {
            out.push(Invalid::new(
                path.clone(),
                quote(name),
                "an interface name of 1-15 characters without '/', ':' or whitespace, such as \"eth0\"",
            ));
        }
        let static4 = matches!(interface.ipv4, Ipv4Mode::Static(_));
        let static6 = matches!(interface.ipv6, Ipv6Mode::Static(_));
        let gateway4 = interface.gateway4.map(|g| g.to_string());
        let gateway6 = interface.gateway6.map(|g| g.to_string());
        let mode4 = interface.ipv4.to_string();
        let mode6 = interface.ipv6.to_string();
        for (family, gateway, is_static, mode, example) in [
            ("ipv4", gateway4, static4, mode4, "192.0.2.5/24"),
            ("ipv6", gateway6, static6, mode6, "2001:db8::5/64"),
        ] {
            let Some(gateway) = gateway.filter(|_| !is_static) else {
                continue;
            };
            let key = format!("gateway{}", &family[3..]);
            out.push(
                Invalid::new(
                    join(&path, &key),
                    quote(&gateway),
                    format!("a gateway only with a static {family} address"),
                )
                .hint(format!("with {family} = \"{mode}\" the gateway comes from the network; set {family} to an address such as \"{example}\" or remove {key}")),
            );
        }
        if let Some(mtu) = interface.mtu {
            if !(68..=65535).contains(&mtu) {
                out.push(Invalid::new(
                    join(&path, "mtu"),
                    mtu.to_string(),
                    "68 to 65535",
                ));
            }
        }
    }
}

/// The longest firewall rule name, in characters.
pub const MAX_RULE_NAME: usize = 64;

fn check_firewall(firewall: &Firewall, out: &mut Problems) {
    let mut first_named: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, rule) in firewall.rules.iter().enumerate() {
        let path = index("firewall.rules", i);
        let first = *first_named.entry(&rule.name).or_insert(i);
        if rule.name.trim().is_empty() {
            out.push(Invalid::new(
                join(&path, "name"),
                quote(&rule.name),
                "a name that is not empty",
            ));
        } else if rule.name.chars().count() > MAX_RULE_NAME
            || rule.name.chars().any(|c| c.is_control())
        {
            let shown: String = rule.name.chars().take(MAX_RULE_NAME).collect();
            out.push(Invalid::new(
                join(&path, "name"),
                quote(&shown),
                "at most 64 printable characters (no control characters)",
            ));
        } else if first != i {
            out.push(
                Invalid::new(
                    join(&path, "name"),
                    quote(&rule.name),
                    "a name no other rule has",
                )
                .hint(format!(
                    "firewall.rules[{first}] is already named {}",
                    quote(&rule.name)
                )),
            );
        }
        if rule.port == 0 {
            out.push(Invalid::new(
                join(&path, "port"),
                "0",
                "a port from 1 to 65535",
            ));
        }
    }
}

fn check_argv(path: &str, argv: &[String], out: &mut Problems) {
    let argv_path = join(path, "argv");
    match argv.first() {
        None => out.push(Invalid::new(
            argv_path.clone(),
            "an empty list",
            "a program's absolute path, then its arguments",
        )),
        Some(program) if !program.starts_with('/') => {
            out.push(Invalid::new(index(&argv_path, 0), quote(program), PROGRAM));
        }
        Some(_) => {}
    }
    for (i, arg) in argv.iter().enumerate() {
        if arg.contains('\0') {
            out.push(Invalid::new(
                index(&argv_path, i),
                quote(arg),
                "text without NUL characters",
            ));
        }
    }
}

fn value_problem(path: String, err: ValueError) -> Invalid {
    Invalid::new(path, quote(&err.found), err.allowed)
}

fn check_services(services: &BTreeMap<String, Service>, out: &mut Problems) {
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    for (name, service) in services {
        let path = join("services", name);
        if !is_simple_name(name) {
            out.push(Invalid::new(path.clone(), quote(name), SIMPLE));
        }
        check_argv(&path, &service.argv, out);
        for (key, value) in &service.environment {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                out.push(Invalid::new(
                    join(&join(&path, "environment"), key),
                    quote(key),
                    "a variable name without '=' or NUL",
                ));
            } else if value.contains('\0') {
                out.push(Invalid::new(
                    join(&join(&path, "environment"), key),
                    quote(value),
                    "text without NUL characters",
                ));
            }
        }
        if let Err(err) = parse_user(&service.user) {
            out.push(value_problem(join(&path, "user"), err));
        }
        for (i, cap) in service.capabilities.iter().enumerate() {
            if !crate::settings::KNOWN_CAPABILITIES.contains(&cap.as_str()) {
                out.push(Invalid::new(
                    index(&join(&path, "capabilities"), i),
                    quote(cap),
                    quote_all(crate::settings::KNOWN_CAPABILITIES),
                ));
            }
        }
        for (i, dep) in service.after.iter().enumerate() {
            let dep_path = index(&join(&path, "after"), i);
            if dep == name {
                out.push(Invalid::new(
                    dep_path,
                    quote(dep),
                    "the name of another service",
                ));
            } else if !services.contains_key(dep) {
                let others = names.iter().copied().filter(|n| n != name);
                let mut problem = Invalid::new(
                    dep_path,
                    quote(dep),
                    if names.len() > 1 {
                        format!("one of the other services: {}", quote_all(others.clone()))
                    } else {
                        "the name of another service, and this is the only one".into()
                    },
                );
                if let Some(near) = did_you_mean(dep, others) {
                    problem = problem.hint(format!("did you mean {}?", quote(near)));
                }
                out.push(problem);
            }
        }
        for (i, port) in service.ports.iter().enumerate() {
            if port.number == 0 {
                out.push(Invalid::new(
                    index(&join(&path, "ports"), i),
                    "0",
                    "a port from 1 to 65535",
                ));
            }
        }
        if let Some(n) = service.open_files {
            if !(64..=crate::MAX_OPEN_FILES).contains(&n) {
                out.push(Invalid::new(
                    join(&path, "open_files"),
                    n.to_string(),
                    "64 to 1048576 open files",
                ));
            }
        }
        if !(1..=300).contains(&service.stop_timeout_secs) {
            out.push(Invalid::new(
                join(&path, "stop_timeout_secs"),
                service.stop_timeout_secs.to_string(),
                "1 to 300 seconds",
            ));
        }
    }
    for cycle in cycles(services) {
        let [first, next, ..] = &cycle[..] else {
            continue;
        };
        let after = services.get(first).map_or(&[][..], |s| &s.after[..]);
        let at = after.iter().position(|dep| dep == next).unwrap_or(0);
        out.push(
            Invalid::new(
                index(&join(&join("services", first), "after"), at),
                format!("cycle {}", cycle.join(" -> ")),
                "services that do not wait for each other in a cycle",
            )
            .hint("remove one of the 'after' entries in this cycle"),
        );
    }
}

/// The management port: not 0, and not a TCP port a service listens on.
fn check_management(
    management: &Management,
    services: &BTreeMap<String, Service>,
    out: &mut Problems,
) {
    if management.port == 0 {
        out.push(Invalid::new(
            "management.port",
            "0",
            "a port from 1 to 65535",
        ));
        return;
    }
    if !management.enabled {
        return;
    }
    for (name, service) in services {
        if service
            .ports
            .iter()
            .any(|p| p.number == management.port && p.protocol == Protocol::Tcp)
        {
            out.push(
                Invalid::new(
                    "management.port",
                    management.port.to_string(),
                    format!("a TCP port no service listens on (services.{name} has it)"),
                )
                .hint("pick another management.port, or another port for the service"),
            );
        }
    }
}

fn check_file(path: &str, file: &FileCopy, out: &mut Problems) {
    if file.source.is_empty() {
        out.push(Invalid::new(
            join(path, "source"),
            "\"\"",
            "a host path relative to the manifest, or \"bin:NAME\"",
        ));
    } else if let Some(bin) = file.source.strip_prefix("bin:") {
        if !is_simple_name(bin) {
            out.push(Invalid::new(
                join(path, "source"),
                quote(&file.source),
                "\"bin:NAME\" with NAME a binary of the mote workspace such as \"bin:mote-hello\"",
            ));
        }
    }
    let destination = &file.destination;
    let dots = destination.split('/').any(|part| part == "..");
    if !destination.starts_with('/') || dots || destination.contains('\0') {
        out.push(Invalid::new(
            join(path, "destination"),
            quote(destination),
            "an absolute path in the image without '..' parts, such as \"/usr/bin/hello\"",
        ));
    }
    if let Err(err) = parse_owner(&file.owner) {
        out.push(value_problem(join(path, "owner"), err));
    }
    if let Some(mode) = &file.mode {
        if let Err(err) = parse_mode(mode) {
            out.push(value_problem(join(path, "mode"), err));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["hello", "web-01", "a_b", "A9", &"x".repeat(64)] {
            assert!(is_simple_name(good), "{good}");
        }
        for bad in ["", "-x", "_x", "a b", "a/b", "a.b", "é", &"x".repeat(65)] {
            assert!(!is_simple_name(bad), "{bad}");
        }
        for good in ["hello", "web-01", "7", &"h".repeat(63)] {
            assert!(is_hostname(good), "{good}");
        }
        for bad in ["", "-web", "web-", "web_01", "web.example", &"h".repeat(64)] {
            assert!(!is_hostname(bad), "{bad}");
        }
        for good in ["eth0", "enp0s3", "br-lan", "wg.0", "x23456789012345"] {
            assert!(is_interface_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "eth0/1",
            "eth 0",
            "eth0:1",
            "x234567890123456",
        ] {
            assert!(!is_interface_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_management_port_is_not_0_nor_a_service_port() {
        let mut node = NodeSettings::default();
        node.system.hostname = "n".into();
        node.management.port = 0;
        let paths = |node: &NodeSettings| -> Vec<String> {
            node.validate()
                .unwrap_err()
                .into_iter()
                .map(|p| p.path)
                .filter(|p| p.starts_with("management"))
                .collect()
        };
        assert_eq!(paths(&node), ["management.port"]);
        node.management.port = 8080;
        node.services.insert(
            "web".into(),
            Service {
                argv: vec!["/usr/bin/web".into()],
                environment: BTreeMap::new(),
                user: "root".into(),
                restart: Default::default(),
                after: vec![],
                ports: vec![crate::Port {
                    number: 8080,
                    protocol: Protocol::Tcp,
                }],
                stop_timeout_secs: 5,
                capabilities: Vec::new(),
                open_files: None,
            },
        );
        assert_eq!(paths(&node), ["management.port"]);
        node.management.enabled = false;
        assert!(paths(&node).is_empty());
    }

    #[test]
    fn an_empty_node_lacks_hostname_and_credential() {
        let problems = NodeSettings::default().validate().unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["system.hostname", "system.admin_password_hash"]);
        assert_eq!(problems[1].hint.as_deref(), Some(PASSWD_HINT));
    }
}

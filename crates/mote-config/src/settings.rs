//! Node settings: the part of a manifest that lives on the node and that PID 1,
//! `moted` and the roles read. The image carries it as `/etc/mote/settings.json`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// Everything the node itself needs at run time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeSettings {
    /// Identity and the administrator credential.
    pub system: System,
    /// Interfaces, addresses, routes, resolvers.
    #[serde(default)]
    pub network: Network,
    /// Inbound filtering.
    #[serde(default)]
    pub firewall: Firewall,
    /// Supervised processes, by name.
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// Commands run once, on the first boot only, in order.
    #[serde(default)]
    pub first_boot: Vec<FirstBoot>,
    /// Remote management (`moted`).
    #[serde(default)]
    pub management: Management,
    /// Names of the packages the node has installed, in install order.
    #[serde(default)]
    pub packages: Vec<String>,
    /// The roles' settings sections, read by the roles themselves.
    #[serde(default)]
    pub roles: Roles,
}

/// `[roles]`: one settings section per installed package that has one,
/// by section name. Each is kept as JSON here: its role's library (through
/// the registry, see [`crate::Role`]) types and checks it, and the package
/// reads it from `/run/mote/roles/NAME.json` (see [`crate::paths`]).
pub type Roles = BTreeMap<String, serde_json::Value>;

/// `[system]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct System {
    /// Host name, an RFC 1123 label.
    pub hostname: String,
    /// IANA time zone name; only `UTC` zone data is bundled today.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// The administrator's argon2id PHC hash, made by `mote passwd`. Required.
    #[serde(default)]
    pub admin_password_hash: String,
}

fn default_timezone() -> String {
    "UTC".into()
}

impl Default for System {
    fn default() -> Self {
        Self {
            hostname: String::new(),
            timezone: default_timezone(),
            admin_password_hash: String::new(),
        }
    }
}

/// `[network]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Network {
    /// Per interface, by kernel name (`eth0`).
    #[serde(default)]
    pub interfaces: BTreeMap<String, Interface>,
}

/// `[network.interfaces.NAME]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(transform = crate::schema::gateway_needs_static)
)]
pub struct Interface {
    /// `"dhcp"`, `"off"` or a static `address/prefix`.
    #[serde(default)]
    pub ipv4: Ipv4Mode,
    /// Default IPv4 gateway for a static address.
    #[serde(default, deserialize_with = "crate::parse::optional")]
    pub gateway4: Option<Ipv4Addr>,
    /// `"slaac"`, `"off"` or a static `address/prefix`.
    #[serde(default)]
    pub ipv6: Ipv6Mode,
    /// Default IPv6 gateway for a static address.
    #[serde(default, deserialize_with = "crate::parse::optional")]
    pub gateway6: Option<Ipv6Addr>,
    /// Resolvers written to `/etc/resolv.conf` (DHCP adds its own).
    #[serde(default, deserialize_with = "crate::parse::list")]
    #[cfg_attr(feature = "schema", schemars(schema_with = "crate::schema::ip_addrs"))]
    pub dns: Vec<IpAddr>,
    /// Link MTU, 68 to 65535; the driver's default when absent.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(range(min = 68, max = 65535)))]
    pub mtu: Option<u32>,
}

/// How an interface gets its IPv4 address (its JSON Schema: `crate::schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ipv4Mode {
    /// A DHCPv4 lease, renewed at T1.
    #[default]
    Dhcp,
    /// No IPv4 address.
    Off,
    /// A fixed address with its prefix.
    Static(Ipv4Net),
}

/// How an interface gets its IPv6 address (its JSON Schema: `crate::schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ipv6Mode {
    /// Stateless autoconfiguration from router advertisements.
    #[default]
    Slaac,
    /// No IPv6 address beyond the link-local one.
    Off,
    /// A fixed address with its prefix.
    Static(Ipv6Net),
}

/// `[firewall]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Firewall {
    /// Policy for inbound packets no rule accepts. Default `deny`.
    #[serde(default)]
    pub inbound: Policy,
    /// Explicit rules; services' `ports` add accept rules of their own.
    #[serde(default)]
    pub rules: Vec<FirewallRule>,
}

impl Default for Firewall {
    fn default() -> Self {
        Self {
            inbound: Policy::Deny,
            rules: Vec::new(),
        }
    }
}

/// Inbound default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Policy {
    /// Drop what no rule accepts.
    #[default]
    Deny,
    /// Accept everything (rules then only matter for `deny` actions).
    Allow,
}

/// `[[firewall.rules]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FirewallRule {
    /// Unique name, used to enable, disable or remove the rule: 1–64
    /// characters, no control characters, not only white space.
    #[cfg_attr(
        feature = "schema",
        schemars(
            length(min = 1, max = 64),
            regex(
                pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
            )
        )
    )]
    pub name: String,
    /// Destination port, 1 to 65535.
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default)]
    pub protocol: Protocol,
    /// Source network allowed; any when absent.
    #[serde(default, deserialize_with = "crate::parse::optional")]
    #[cfg_attr(
        feature = "schema",
        schemars(schema_with = "crate::schema::optional_ip_net")
    )]
    pub source: Option<ipnet::IpNet>,
    /// `allow` (default) or `deny`.
    #[serde(default = "allow")]
    pub action: Policy,
    /// A disabled rule is kept but not applied.
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn allow() -> Policy {
    Policy::Allow
}
fn yes() -> bool {
    true
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Protocol {
    /// TCP
    #[default]
    Tcp,
    /// UDP
    Udp,
}

/// A port a service listens on, opened in the firewall: `8080` or `"53/udp"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(
        with = "serde_json::Value",
        extend("anyOf" = [
            {"type": "integer", "minimum": 1, "maximum": 65535},
            {"type": "string", "pattern": "^[0-9]{1,5}(/(tcp|udp))?$"}
        ], "examples" = [8080, "53/udp"])
    )
)]
pub struct Port {
    /// Port number.
    pub number: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// `[services.NAME]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Service {
    /// Program and arguments; the program is an absolute path in the image.
    pub argv: Vec<String>,
    /// Environment, on top of `PATH=/usr/bin:/bin` and `HOME=/`.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// `root`, `nobody`, or numeric `uid` / `uid:gid`.
    #[serde(default = "root")]
    pub user: String,
    /// When to restart after the process exits.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Services that must be up before this one starts.
    #[serde(default)]
    pub after: Vec<String>,
    /// Ports opened in the firewall; a TCP port also tells readiness (listening).
    #[serde(default)]
    pub ports: Vec<Port>,
    /// Seconds between SIGTERM and SIGKILL at stop.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_secs: u32,
    /// Capabilities kept when running as a non-root `user`; only
    /// `net_bind_service` (bind ports below 1024) today.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// Open files the service may hold (`RLIMIT_NOFILE`, soft and hard);
    /// [`DEFAULT_OPEN_FILES`] when not given. A server holds one per
    /// connection: the kernel's default of 1,024 is too few.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
}

/// `RLIMIT_NOFILE` of a service that does not set `open_files`.
pub const DEFAULT_OPEN_FILES: u64 = 65_536;
/// The most `open_files` may be (the kernel's default `fs.nr_open`).
pub const MAX_OPEN_FILES: u64 = 1 << 20;

impl Service {
    /// The `RLIMIT_NOFILE` PID 1 sets for it.
    pub fn open_files(&self) -> u64 {
        self.open_files.unwrap_or(DEFAULT_OPEN_FILES)
    }
}

/// The capabilities a service may keep.
pub const KNOWN_CAPABILITIES: &[&str] = &["net_bind_service"];

fn root() -> String {
    "root".into()
}
fn default_stop_timeout() -> u32 {
    5
}

/// Restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum RestartPolicy {
    /// Restart whenever it exits.
    #[default]
    Always,
    /// Restart when it exits non-zero or by a signal.
    OnFailure,
    /// Never restart.
    Never,
}

/// `[management]`: the HTTPS management agent `moted`, supervised by PID 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Management {
    /// TCP port of the HTTPS API, opened in the firewall. Default 5986.
    #[serde(default = "default_management_port")]
    pub port: u16,
    /// Run `moted` at all. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// The management port Nano Server used for WinRM over HTTPS.
pub const DEFAULT_MANAGEMENT_PORT: u16 = 5986;

fn default_management_port() -> u16 {
    DEFAULT_MANAGEMENT_PORT
}

impl Default for Management {
    fn default() -> Self {
        Self {
            port: DEFAULT_MANAGEMENT_PORT,
            enabled: true,
        }
    }
}

/// `[[first_boot]]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FirstBoot {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Seconds before the command is killed.
    #[serde(default = "default_first_boot_timeout")]
    pub timeout_secs: u32,
}

fn default_first_boot_timeout() -> u32 {
    60
}

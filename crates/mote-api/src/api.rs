//! Request and response bodies of the HTTPS management API (`moted`, port
//! 5986), shared by the server and the [`crate::client`].
//!
//! Every route is under `/v1`. All bodies are JSON except file downloads and
//! uploads (raw bytes) and the streams (`/v1/events/follow`, `/v1/exec`), which
//! are newline-delimited JSON, one object a line. Times are milliseconds since
//! the Unix epoch (`*_ms`). Every answer other than 2xx carries an
//! [`ErrorBody`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::control::{
    LinkInfo, NetworkInfo, PowerAction, RouteInfo, ServiceAction, ServiceInfo, SystemInfo,
};
pub use crate::events::{Event, Level};
pub use mote_config::{
    Firewall, FirewallRule, Interface, NodeSettings, PerfColumn, PerfRow, PerfUnit, RolePerf,
};

/// The default management port.
pub const DEFAULT_PORT: u16 = 5986;

/// The only user name `POST /v1/login` accepts.
pub const ADMIN_USER: &str = "admin";

/// `POST /v1/login`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LoginRequest {
    /// Always [`ADMIN_USER`].
    pub username: String,
    /// The administrator password.
    pub password: String,
    /// The device id an earlier login from this client was given
    /// ([`LoginResponse::device`]): a login that carries a live one is not
    /// held back by locks aimed at others at the same address (a guesser
    /// behind the same NAT); three wrong passwords with it end it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// Answer to `POST /v1/login`: send `Authorization: Bearer TOKEN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LoginResponse {
    /// 256 random bits, hex.
    pub token: String,
    /// When the token stops working.
    pub expires_at_ms: u64,
    /// This client's device id (256 random bits, hex; 30 days): send it
    /// with the next logins as [`LoginRequest::device`]. It proves the
    /// client knew the password once; it is no token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorBody {
    /// What failed and what to do, one line.
    pub error: String,
    /// Each invalid setting, for 422 answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// One invalid value (from `mote_config::Invalid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Problem {
    /// Key path, such as `services.web.after[0]`.
    pub path: String,
    /// What was found.
    pub found: String,
    /// What is allowed.
    pub allowed: String,
    /// What to do about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl From<mote_config::Invalid> for Problem {
    fn from(i: mote_config::Invalid) -> Self {
        Self {
            path: i.path,
            found: i.found,
            allowed: i.allowed,
            hint: i.hint,
        }
    }
}

/// `GET /v1/packages`: every installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Packages {
    /// By name.
    pub packages: Vec<crate::control::PackageInfo>,
    /// The node lets unsigned packages in (development only).
    pub allow_unsigned: bool,
}

/// The outcome of installing, upgrading or removing a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PackageChange {
    /// What was done, in words.
    pub message: String,
    /// The package as it is now (as it was, for a removal).
    pub package: crate::control::PackageInfo,
    /// The version it replaced, for an upgrade.
    pub previous: Option<String>,
    /// The settings version in force afterwards.
    pub settings_version: u64,
}

/// The request header carrying a package's minisign signature (the
/// `.minisig` file's text, base64 because it spans lines).
pub const SIGNATURE_HEADER: &str = "mote-signature";

/// A plain "done" answer for actions that return nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Done {
    /// What was done.
    pub message: String,
}

/// What answers show instead of the administrator's password hash: a hash
/// is a secret (it can be attacked offline), and no reader needs it.
/// Writing a new one with `PATCH /v1/settings` still works; writing this
/// text back is refused by validation (it is no argon2id hash), so a
/// read-modify-write cannot clobber the credential.
pub const REDACTED: &str = "(redacted; PATCH system.admin_password_hash to change it)";

/// `GET /v1/settings`, and the answer to every settings change.
///
/// Its secret fields never leave in clear, by construction: serializing it
/// always writes `system.admin_password_hash` as [`REDACTED`] (when one is
/// set), whichever route answers with it. The store writes its own record
/// type, never this one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct VersionedSettings {
    /// Version of the stored settings (1 is the image's).
    pub version: u64,
    /// The whole settings tree.
    pub settings: NodeSettings,
}

impl VersionedSettings {
    /// The settings with their secrets replaced by [`REDACTED`].
    pub fn redacted(&self) -> NodeSettings {
        redact(self.settings.clone())
    }
}

/// `settings` with the secrets replaced by [`REDACTED`].
pub fn redact(mut settings: NodeSettings) -> NodeSettings {
    if !settings.system.admin_password_hash.is_empty() {
        settings.system.admin_password_hash = REDACTED.into();
    }
    settings
}

impl Serialize for VersionedSettings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire {
            version: u64,
            settings: NodeSettings,
        }
        Wire {
            version: self.version,
            settings: self.redacted(),
        }
        .serialize(s)
    }
}

/// The `ETag` of settings version `version`, as `GET /v1/settings` and every
/// settings change answer it: `"7"`. A write sends it back in `If-Match`
/// and is refused with 412 when the settings moved on meanwhile.
pub fn settings_etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// The settings version one entity tag names: `"7"` (as sent in `ETag`) or
/// a bare `7`. `None` for anything else, a weak tag (`W/"7"`) among them:
/// `If-Match` compares strongly.
pub fn settings_version_of(tag: &str) -> Option<u64> {
    let tag = tag.trim();
    let bare = match tag.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"')?,
        None => tag,
    };
    if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    bare.parse().ok()
}

/// `GET /v1/settings/{*path}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SettingsValue {
    /// Version of the stored settings.
    pub version: u64,
    /// The path asked for, dotted.
    pub path: String,
    /// The value there.
    pub value: serde_json::Value,
}

/// One stored version of the settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HistoryEntry {
    /// Version number.
    pub version: u64,
    /// When it was stored.
    pub time_ms: u64,
    /// Who made it (`image` for version 1, else the API user).
    pub who: String,
    /// What made it (`PATCH /v1/settings`, `revert to 3`, …).
    pub what: String,
}

/// `GET /v1/settings/history`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SettingsHistory {
    /// The version in force.
    pub current: u64,
    /// Every stored version, oldest first.
    pub versions: Vec<HistoryEntry>,
}

/// `GET /v1/settings/status`: is the node running what is stored?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SettingsStatus {
    /// The version moted has stored (what the node boots next time).
    pub stored: u64,
    /// What PID 1 says it runs.
    pub applied: crate::control::AppliedSettings,
    /// The node runs the stored version, with no problem.
    pub in_sync: bool,
}

/// `POST /v1/settings/revert`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RevertRequest {
    /// The version to bring back (as a new version).
    pub version: u64,
}

/// `GET /v1/services`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Services {
    /// Every service.
    pub services: Vec<ServiceInfo>,
}

/// Query of `GET /v1/events`, `GET /v1/events/follow` and
/// `GET /v1/services/{name}/logs`. Absent fields match all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventsQuery {
    /// Only this source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Only this level or worse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Only at or after this time (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// Only messages containing this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// At most this many, the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl From<EventsQuery> for crate::events::EventQuery {
    fn from(q: EventsQuery) -> Self {
        Self {
            since_ms: q.since,
            source: q.source,
            level: q.level,
            text: q.text,
            limit: q.limit,
        }
    }
}

/// `GET /v1/events`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Events {
    /// Oldest first.
    pub events: Vec<Event>,
}

/// `GET /v1/network`: what the kernel has and what the settings ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NetworkView {
    /// Links, routes, resolvers now.
    pub live: NetworkInfo,
    /// `network.interfaces` of the settings.
    pub configured: BTreeMap<String, Interface>,
}

/// `GET /v1/processes`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Processes {
    /// By pid.
    pub processes: Vec<ProcessInfo>,
}

/// One process, from `/proc/PID`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Command name (`comm`).
    pub name: String,
    /// State letter (`R`, `S`, `D`, `Z`, …).
    pub state: String,
    /// Real user id.
    pub uid: u32,
    /// User name, when `/etc/passwd` names the uid.
    pub user: Option<String>,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// User plus system CPU time, ms.
    pub cpu_ms: u64,
}

/// `POST /v1/processes/{pid}/kill`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KillRequest {
    /// Signal number, 1–64 (default 15, SIGTERM).
    #[serde(default = "sigterm")]
    pub signal: i32,
}

fn sigterm() -> i32 {
    15
}

impl Default for KillRequest {
    fn default() -> Self {
        Self { signal: sigterm() }
    }
}

/// `GET /v1/performance`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Performance {
    /// When measured.
    pub time_ms: u64,
    /// Whole-node CPU.
    pub cpu: Cpu,
    /// Memory.
    pub memory: Memory,
    /// The root file system and the state disk.
    pub disks: Vec<Disk>,
    /// Per network interface counters.
    pub network: Vec<NetDev>,
    /// Per service CPU and memory, from its cgroup.
    pub services: Vec<ServicePerf>,
    /// Each active role's own figures (a row per web site, DNS zone,
    /// container), summarised by its library from its metrics endpoint;
    /// empty when no role answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RolePerf>,
}

/// CPU use over the interval since the previous measurement (or a short sample).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Cpu {
    /// Number of CPUs.
    pub cpus: u32,
    /// Busy share over the interval, 0–100 (of all CPUs together).
    pub busy_percent: f64,
    /// Length of the interval, ms.
    pub interval_ms: u64,
    /// Load averages, 1, 5 and 15 minutes.
    pub load: [f64; 3],
}

/// From `/proc/meminfo`, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Memory {
    /// MemTotal.
    pub total_bytes: u64,
    /// MemAvailable.
    pub available_bytes: u64,
    /// MemFree.
    pub free_bytes: u64,
}

/// One file system, from statvfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Disk {
    /// Mount point measured.
    pub path: String,
    /// Size, bytes.
    pub total_bytes: u64,
    /// Free for unprivileged users, bytes.
    pub available_bytes: u64,
}

/// One interface, from `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NetDev {
    /// Interface name.
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

/// One service's resource use, from its cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ServicePerf {
    /// Service name.
    pub name: String,
    /// `cpu.stat` `usage_usec`.
    pub cpu_usec: Option<u64>,
    /// `memory.current`.
    pub memory_bytes: Option<u64>,
}

/// `GET /v1/files?path=DIR`: a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DirListing {
    /// The directory.
    pub path: String,
    /// Its entries, by name.
    pub entries: Vec<FileEntry>,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FileEntry {
    /// File name.
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    /// Size, bytes.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Last modification.
    pub modified_ms: u64,
}

/// Query of `GET`/`PUT /v1/files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FilesQuery {
    /// Absolute path on the node (no NUL).
    #[cfg_attr(feature = "schema", schemars(regex(pattern = r"^/[^\x00]*$")))]
    pub path: String,
}

/// The largest upload `PUT /v1/files` takes (413 beyond).
pub const MAX_UPLOAD_BYTES: usize = 64 << 20;

/// `POST /v1/exec`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ExecRequest {
    /// Program (absolute path) and arguments.
    pub argv: Vec<String>,
    /// Killed after this many seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Environment (nothing else is inherited).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// One line of the `POST /v1/exec` stream: output as it comes, then one end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum ExecLine {
    /// A chunk of output (lossy UTF-8).
    Output {
        /// `stdout` or `stderr`.
        stream: String,
        /// The text.
        data: String,
    },
    /// The program ended; the last line.
    Exit {
        /// Exit status, when it exited.
        exit_code: Option<i32>,
        /// Signal that ended it, when one did.
        signal: Option<i32>,
        /// Killed at the timeout.
        timed_out: bool,
    },
}

/// `GET /v1/audit`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditQuery {
    /// Only entries at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// At most this many, the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// One change made through the API (a line of `audit.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AuditEntry {
    /// When.
    pub time_ms: u64,
    /// Who (`admin`, or `-` for a failed login).
    pub who: String,
    /// Source address of the request.
    pub source: String,
    /// What was asked: method, path and a summary.
    pub what: String,
    /// `ok` or the error.
    pub result: String,
}

/// `GET /v1/audit`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Audit {
    /// Oldest first.
    pub entries: Vec<AuditEntry>,
}

/// One live session, as `GET /v1/sessions` lists it: never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionInfo {
    /// 12 hex digits of the token's SHA-256: tells sessions apart without
    /// giving the token away.
    pub id: String,
    /// Who logged in.
    pub user: String,
    /// The address the login came from.
    pub source: String,
    /// When the token was issued.
    pub issued_ms: u64,
    /// When it stops working (unless revoked earlier).
    pub expires_ms: u64,
    /// The session of the token this list was asked with.
    pub current: bool,
}

/// `GET /v1/sessions`: the live sessions, oldest first. Logging out
/// (`POST /v1/logout`) ends the caller's; a changed
/// `system.admin_password_hash` ends every one issued before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Sessions {
    /// Oldest first.
    pub sessions: Vec<SessionInfo>,
}

/// The SHA-256 fingerprint of a DER certificate as moted prints it and the
/// client pins it: uppercase hex pairs joined by `:`.
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(der);
    let pairs: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    pairs.join(":")
}

/// Reads a fingerprint as a user may type it: any case, with or without `:`.
pub fn normalize_fingerprint(s: &str) -> Option<String> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let upper = hex.to_ascii_uppercase();
    let pairs: Vec<&str> = (0..32).map(|i| &upper[i * 2..i * 2 + 2]).collect();
    Some(pairs.join(":"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprints_are_uppercase_colon_pairs() {
        let f = fingerprint(b"cert");
        assert_eq!(f.len(), 32 * 3 - 1);
        assert_eq!(
            normalize_fingerprint(&f.to_lowercase().replace(':', "")),
            Some(f)
        );
        assert_eq!(normalize_fingerprint("AB"), None);
    }

    use super::*;

    #[test]
    fn exec_lines_tell_output_from_exit() {
        let out: ExecLine = serde_json::from_str(r#"{"stream":"stdout","data":"hi\n"}"#).unwrap();
        assert!(matches!(out, ExecLine::Output { .. }));
        let end = serde_json::to_string(&ExecLine::Exit {
            exit_code: Some(0),
            signal: None,
            timed_out: false,
        })
        .unwrap();
        assert_eq!(
            serde_json::from_str::<ExecLine>(&end).unwrap(),
            ExecLine::Exit {
                exit_code: Some(0),
                signal: None,
                timed_out: false
            }
        );
    }

    #[test]
    fn events_query_maps_since() {
        let q: crate::events::EventQuery = EventsQuery {
            since: Some(5),
            ..Default::default()
        }
        .into();
        assert_eq!(q.since_ms, Some(5));
    }

    #[test]
    fn versioned_settings_never_serialize_the_hash() {
        let mut settings = NodeSettings::default();
        settings.system.admin_password_hash =
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into();
        let v = VersionedSettings {
            version: 3,
            settings,
        };
        let text = serde_json::to_string(&v).unwrap();
        assert!(!text.contains("argon2"), "{text}");
        assert!(text.contains(REDACTED), "{text}");
        let back: VersionedSettings = serde_json::from_str(&text).unwrap();
        assert_eq!(back.settings.system.admin_password_hash, REDACTED);
    }

    #[test]
    fn settings_etags_are_quoted_versions_and_read_back_quoted_or_bare() {
        assert_eq!(settings_etag(7), "\"7\"");
        assert_eq!(settings_version_of(&settings_etag(7)), Some(7));
        assert_eq!(settings_version_of(" 12 "), Some(12));
        for bad in ["", "\"\"", "W/\"7\"", "\"7", "-1", "+7", "7a", "*"] {
            assert_eq!(settings_version_of(bad), None, "{bad}");
        }
    }
}

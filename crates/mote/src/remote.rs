//! Shared connection logic of the remote verbs: the pinned nodes
//! (`nodes.json`), the per-node token cache, connecting with the pin,
//! logging in, and turning API errors into what to do next.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use mote_api::api::ADMIN_USER;
use mote_api::client::{Client, ClientError};
use serde::{Deserialize, Serialize};

/// The user's mote directory: `$MOTE_CONFIG_DIR`, else `CONFIG/mote`.
pub fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("MOTE_CONFIG_DIR") {
        return Ok(PathBuf::from(dir));
    }
    dirs::config_dir()
        .map(|d| d.join("mote"))
        .context("no configuration directory; set MOTE_CONFIG_DIR")
}

/// Who put a node in `nodes.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AddedBy {
    /// `mote node add`.
    #[default]
    Hand,
    /// `mote run`, from the ready line (its pin may be replaced by a re-run).
    Run,
}

/// One pinned node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// `host:port`.
    pub address: String,
    /// The pinned SHA-256 certificate fingerprint.
    pub fingerprint: String,
    /// Who added it.
    #[serde(default)]
    pub added_by: AddedBy,
    /// When it was pinned, ms since the epoch.
    #[serde(default)]
    pub pinned_ms: u64,
}

/// `nodes.json`: name → node.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Nodes {
    /// By name.
    pub nodes: BTreeMap<String, NodeEntry>,
}

impl Nodes {
    fn path() -> anyhow::Result<PathBuf> {
        Ok(config_dir()?.join("nodes.json"))
    }

    /// Reads `nodes.json` (empty when absent).
    pub fn load() -> anyhow::Result<Self> {
        let path = Self::path()?;
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid; fix or remove it", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes `nodes.json` atomically.
    pub fn save(&self) -> anyhow::Result<()> {
        let path = Self::path()?;
        write_private(&path, &serde_json::to_vec_pretty(self)?)
    }

    /// The node called `name`, or an error saying how to add it.
    pub fn get(&self, name: &str) -> anyhow::Result<&NodeEntry> {
        self.nodes.get(name).ok_or_else(|| {
            anyhow!("no node {name:?}; add it with `mote node add {name} ADDRESS` (see `mote node list`)")
        })
    }
}

/// Writes `bytes` to `path` (mode 0600) through a temporary file.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().context("no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// A cached login (`tokens/NAME.json`, mode 0600).
#[derive(Debug, Serialize, Deserialize)]
struct CachedToken {
    token: String,
    expires_at_ms: u64,
    fingerprint: String,
    /// An argon2id hash of the password that got the token, when it came
    /// from `MOTE_PASSWORD`: a later `MOTE_PASSWORD` uses the token only if
    /// it is the same password, so a wrong one is refused, never hidden by
    /// an older login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    /// The device id the node gave this client: sent with the next login,
    /// so a guesser at the same address does not lock this client out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
}

/// Is a cached token good for this call? Without `MOTE_PASSWORD` any live
/// token is; with it, only one that the same password got.
fn token_fits(t: &CachedToken, env_password: Option<&str>) -> bool {
    match (env_password, &t.password) {
        (None, _) => true,
        (Some(p), Some(phc)) => mote_config::password::verify(phc, p),
        (Some(_), None) => false,
    }
}

fn token_path(name: &str) -> anyhow::Result<PathBuf> {
    Ok(config_dir()?.join("tokens").join(format!("{name}.json")))
}

/// Whether a token of `name` is cached.
pub fn has_token(name: &str) -> anyhow::Result<bool> {
    Ok(token_path(name)?.exists())
}

/// Forgets the cached token of `name`.
pub fn forget_token(name: &str) -> anyhow::Result<()> {
    match std::fs::remove_file(token_path(name)?) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A connected, logged-in client to one named node.
pub struct Session {
    /// The node's name.
    pub name: String,
    /// The client.
    pub client: Client,
    /// Whether the token came from the cache (and may be stale).
    pub cached: bool,
}

/// Runs `f` on a fresh single-threaded runtime.
pub fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(rt.block_on(f))
}

/// The node name from `-n`, or an error saying to give one.
pub fn node_name(node: Option<&str>) -> anyhow::Result<&str> {
    node.ok_or_else(|| {
        anyhow!("which node? pass -n NAME (see `mote node list`; add one with `mote node add`)")
    })
}

/// Connects to `name` with its pin, using the cached token if there is one
/// (and `fresh` is false), else logging in.
pub async fn connect(name: &str, fresh: bool) -> anyhow::Result<Session> {
    let nodes = Nodes::load()?;
    let node = nodes.get(name)?;
    let client = Client::connect(&node.address, Some(&node.fingerprint))
        .await
        .map_err(|e| explain(name, Some(&node.address), e))?;
    let cached = std::fs::read(token_path(name)?)
        .ok()
        .and_then(|b| serde_json::from_slice::<CachedToken>(&b).ok())
        .filter(|_| !fresh)
        .filter(|t| t.fingerprint == node.fingerprint && t.expires_at_ms > now_ms() + 30_000)
        .filter(|t| token_fits(t, std::env::var("MOTE_PASSWORD").ok().as_deref()));
    let mut session = Session {
        name: name.to_string(),
        client,
        cached: false,
    };
    match cached {
        Some(t) => {
            session.client.set_token(t.token);
            session.cached = true;
        }
        None => login(&mut session).await?,
    }
    Ok(session)
}

/// Logs in with `MOTE_PASSWORD` or a prompt and caches the token.
pub async fn login(session: &mut Session) -> anyhow::Result<()> {
    let name = session.name.clone();
    let from_env = std::env::var("MOTE_PASSWORD").ok();
    let password = match &from_env {
        Some(p) => p.clone(),
        None => rpassword::prompt_password(format!("{ADMIN_USER}@{name} password: "))
            .context("cannot read the password; set MOTE_PASSWORD")?,
    };
    let device = std::fs::read(token_path(&name)?)
        .ok()
        .and_then(|b| serde_json::from_slice::<CachedToken>(&b).ok())
        .filter(|t| t.fingerprint == session.client.fingerprint())
        .and_then(|t| t.device);
    session.client.set_device(device);
    let r = session
        .client
        .login(ADMIN_USER, &password)
        .await
        .map_err(|e| explain(&name, None, e))?;
    let cached = CachedToken {
        token: r.token,
        expires_at_ms: r.expires_at_ms,
        fingerprint: session.client.fingerprint().to_string(),
        password: from_env
            .as_deref()
            .and_then(|p| mote_config::password::hash(p).ok()),
        device: session.client.device().map(str::to_string),
    };
    write_private(&token_path(&name)?, &serde_json::to_vec(&cached)?)?;
    session.cached = false;
    Ok(())
}

/// Is this error the node's 401?
pub fn is_unauthorized(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<ApiError>(),
            Some(ApiError { status: 401, .. })
        )
    })
}

/// An error answer of the node, kept to tell 401 from the rest.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)
    }
}

impl std::error::Error for ApiError {}

/// The ssh-like warning for a changed certificate.
pub fn mismatch_warning(name: &str, address: &str, pinned: &str, presented: &str) -> String {
    format!(
        "\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         @    WARNING: NODE {name} CERTIFICATE HAS CHANGED!    @\n\
         @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
         IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
         Someone could be in the middle of the connection to {address} right now,\n\
         or the node was reinstalled (a new state disk makes a new certificate).\n\
         pinned:    {pinned}\n\
         presented: {presented}\n\
         Nothing was sent. If you know why it changed, re-pin it:\n  \
         mote node remove {name} && mote node add {name} {address} --fingerprint {presented}"
    )
}

/// Turns a client error into one that says what to do.
pub fn explain(name: &str, address: Option<&str>, e: ClientError) -> anyhow::Error {
    match e {
        ClientError::FingerprintMismatch { pinned, presented } => {
            let address = address.map_or_else(
                || {
                    Nodes::load()
                        .ok()
                        .and_then(|n| n.nodes.get(name).map(|n| n.address.clone()))
                        .unwrap_or_else(|| "ADDRESS".into())
                },
                str::to_owned,
            );
            anyhow!(mismatch_warning(name, &address, &pinned, &presented))
        }
        ClientError::Connect { addr, source } => anyhow!(
            "cannot connect to node {name} at {addr}: {source}; is it running (`mote list`) \
             and is its management port reachable?"
        ),
        ClientError::Status {
            status: 401, body, ..
        } => anyhow::Error::new(ApiError { status: 401 }).context(format!(
            "node {name} refused the login ({}): run `mote -n {name} login` or set MOTE_PASSWORD",
            body.error
        )),
        ClientError::Status {
            status: 429,
            retry_after,
            body,
        } => anyhow::Error::new(ApiError { status: 429 }).context(format!(
            "node {name}: {}; try again in {} s",
            body.error,
            retry_after.unwrap_or(1)
        )),
        ClientError::PreconditionFailed { body, .. } => {
            anyhow::Error::new(ApiError { status: 412 })
                .context(format!("node {name}: {}", body.error))
        }
        ClientError::Status { status, body, .. } => {
            let mut msg = format!("node {name} answered {status}: {}", body.error);
            for p in body.problems.iter().filter(|p| !told(&body.error, p)) {
                msg.push_str(&format!(
                    "\n  {}: found {}, allowed {}",
                    p.path, p.found, p.allowed
                ));
                if let Some(h) = &p.hint {
                    msg.push_str(&format!(" ({h})"));
                }
            }
            anyhow::Error::new(ApiError { status }).context(msg)
        }
        other => anyhow::Error::new(other).context(format!("node {name}")),
    }
}

/// Whether `error` already says what problem `p` does (`KEY: FOUND`, KEY
/// the problem's path or its tail after a dot), as a refusal by
/// `mote-web --check` does: then the problem is not printed again.
fn told(error: &str, p: &mote_api::api::Problem) -> bool {
    let mut path = p.path.as_str();
    loop {
        if error.contains(&format!("{path}: {}", p.found)) {
            return true;
        }
        match path.split_once('.') {
            Some((_, tail)) => path = tail,
            None => return false,
        }
    }
}

/// Extension: explain a client error for node `name`.
pub trait Explain<T> {
    /// See [`explain`].
    fn explain(self, name: &str) -> anyhow::Result<T>;
}

impl<T> Explain<T> for Result<T, ClientError> {
    fn explain(self, name: &str) -> anyhow::Result<T> {
        self.map_err(|e| explain(name, None, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_token_serves_only_the_password_that_got_it() {
        let token = |password: Option<&str>| CachedToken {
            token: "t".into(),
            expires_at_ms: u64::MAX,
            fingerprint: "f".into(),
            password: password.map(|p| mote_config::password::hash(p).unwrap()),
            device: None,
        };
        assert!(
            token_fits(&token(None), None),
            "no MOTE_PASSWORD: any token"
        );
        assert!(token_fits(&token(Some("right")), None));
        assert!(token_fits(&token(Some("right")), Some("right")));
        assert!(!token_fits(&token(Some("right")), Some("wrong")));
        assert!(
            !token_fits(&token(None), Some("wrong")),
            "a prompted login's token does not vouch for MOTE_PASSWORD"
        );
    }

    #[test]
    fn a_problem_the_error_already_states_is_not_repeated() {
        let p = |path: &str, found: &str| mote_api::api::Problem {
            path: path.into(),
            found: found.into(),
            allowed: "a value `mote-web --check` accepts".into(),
            hint: None,
        };
        let web = "mote-web refuses roles.web: limits.header_timeout_secs: from 1 to 3600 \
                   seconds; nothing was stored or applied";
        assert!(told(
            web,
            &p(
                "roles.web.limits.header_timeout_secs",
                "from 1 to 3600 seconds"
            )
        ));
        assert!(!told(
            web,
            &p("roles.web.limits.other", "from 1 to 3600 seconds")
        ));
        let invalid = "the settings are invalid (1 problems)";
        assert!(!told(invalid, &p("system.hostname", "\"bad host!\"")));
        assert!(!told(invalid, &p("x", "1")));
    }
}

//! The HTTPS client of the management API, for `mote` and the tests.
//!
//! Trust is by pinning, as ssh does: the node makes its own certificate, so
//! there is no CA to check it against. [`Client::connect`] takes the pinned
//! SHA-256 fingerprint of the node's certificate; the TLS handshake fails
//! unless the node presents exactly that certificate. With no pin (trust on
//! first use) it accepts whatever the node presents and
//! [`Client::fingerprint`] tells what it was, for the caller to show and pin.
//!
//! Each call opens its own connection (HTTP/1.1 over TLS 1.3/1.2): calls are
//! few and the handshake is cheap next to a human at a terminal.
//!
//! ```no_run
//! # async fn f() -> Result<(), mote_api::client::ClientError> {
//! use mote_api::client::Client;
//! let mut c = Client::connect("192.0.2.10:5986", None).await?;
//! println!("node fingerprint {}", c.fingerprint());
//! c.login("admin", "secret").await?;
//! println!("{:?}", c.system().await?);
//! # Ok(()) }
//! ```

use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::api::*;
use crate::events::Event;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No TCP connection.
    #[error("cannot connect to {addr}")]
    Connect {
        /// Address tried.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node presented another certificate than the pinned one.
    #[error(
        "THE NODE'S CERTIFICATE HAS CHANGED: pinned {pinned}, presented {presented}; \
         if the node was reinstalled, pin the new fingerprint, else someone may be in the middle"
    )]
    FingerprintMismatch {
        /// What was pinned.
        pinned: String,
        /// What the node showed.
        presented: String,
    },
    /// The pinned fingerprint is not 32 hex bytes.
    #[error("bad fingerprint {0:?}: expected 32 hex bytes such as AB:CD:…")]
    BadFingerprint(String),
    /// TLS failed for another reason.
    #[error("TLS handshake with {addr} failed")]
    Tls {
        /// Address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// HTTP failed.
    #[error("HTTP exchange failed")]
    Http(#[from] hyper::Error),
    /// The node answered an error.
    #[error("{status}: {}", body.error)]
    Status {
        /// HTTP status.
        status: u16,
        /// The error body.
        body: ErrorBody,
        /// `Retry-After` seconds, for 429.
        retry_after: Option<u64>,
    },
    /// 412: a write sent with `If-Match` found the settings at another
    /// version than the one it was made from; another writer got in between
    /// and nothing was changed. Read the settings again, redo the change and
    /// send it with the new version.
    #[error("412: {}", body.error)]
    PreconditionFailed {
        /// The settings version now current (the answer's `ETag`).
        current: Option<u64>,
        /// The error body.
        body: ErrorBody,
    },
    /// An answer that does not parse.
    #[error("unexpected answer from the node")]
    Decode(#[from] serde_json::Error),
    /// A call that needs a token before [`Client::login`].
    #[error("not logged in")]
    NotLoggedIn,
}

/// What a `GET /v1/files` gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileGet {
    /// A directory.
    Dir(DirListing),
    /// A file's bytes.
    File(Vec<u8>),
}

/// A connection to one node's management API.
pub struct Client {
    addr: String,
    connector: TlsConnector,
    verifier: Arc<PinVerifier>,
    fingerprint: String,
    token: Option<String>,
    device: Option<String>,
}

impl Client {
    /// Connects to `addr` (`host:port`), checks the certificate against
    /// `pinned` (or captures it when `None`), and returns the client.
    pub async fn connect(addr: &str, pinned: Option<&str>) -> Result<Self, ClientError> {
        let pinned = match pinned {
            Some(p) => Some(
                normalize_fingerprint(p).ok_or_else(|| ClientError::BadFingerprint(p.into()))?,
            ),
            None => None,
        };
        let verifier = Arc::new(PinVerifier::new(pinned));
        let mut client = Self {
            addr: addr.to_string(),
            connector: connector(verifier.clone()),
            verifier: verifier.clone(),
            fingerprint: String::new(),
            token: None,
            device: None,
        };
        let _stream = client.tls().await?;
        let seen = verifier.seen().unwrap_or_default();
        // From now on, exactly this certificate.
        client.verifier = Arc::new(PinVerifier::new(Some(seen.clone())));
        client.connector = connector(client.verifier.clone());
        client.fingerprint = seen;
        Ok(client)
    }

    /// The node's certificate fingerprint (pinned or first seen).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Uses a token got earlier.
    pub fn set_token(&mut self, token: impl Into<String>) {
        self.token = Some(token.into());
    }

    /// The bearer token in use.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    async fn tls(&self) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from("mote-node").map_err(|e| ClientError::Tls {
            addr: self.addr.clone(),
            source: std::io::Error::other(e),
        })?;
        match self.connector.connect(name, tcp).await {
            Ok(s) => Ok(s),
            Err(source) => match self.verifier.mismatch() {
                Some((pinned, presented)) => {
                    Err(ClientError::FingerprintMismatch { pinned, presented })
                }
                None => Err(ClientError::Tls {
                    addr: self.addr.clone(),
                    source,
                }),
            },
        }
    }

    /// Sends one request and returns the raw answer (any status).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        self.request_with(method, path, content_type, &[], body)
            .await
    }

    /// [`Client::request`] with more headers.
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<hyper::Response<Incoming>, ClientError> {
        let stream = self.tls().await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.as_str());
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Tls {
                addr: self.addr.clone(),
                source: std::io::Error::other(e),
            })?;
        Ok(sender.send_request(req).await?)
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        self.call_with(method, path, &[], body).await
    }

    async fn call_with<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let (ct, bytes) = match body {
            Some(b) => (Some("application/json"), serde_json::to_vec(b)?),
            None => (None, Vec::new()),
        };
        let resp = self.request_with(method, path, ct, headers, bytes).await?;
        let bytes = checked(resp).await?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `POST /v1/login`; keeps the token for later calls.
    pub async fn login(
        &mut self,
        username: &str,
        password: &str,
    ) -> Result<LoginResponse, ClientError> {
        let r: LoginResponse = self
            .post(
                "/v1/login",
                &LoginRequest {
                    username: username.into(),
                    password: password.into(),
                    device: self.device.clone(),
                },
            )
            .await?;
        self.token = Some(r.token.clone());
        if r.device.is_some() {
            self.device = r.device.clone();
        }
        Ok(r)
    }

    /// The device id the node gave at the last login (keep it with the
    /// token: it lets this client log in through a lock aimed at a guesser
    /// at the same address).
    pub fn device(&self) -> Option<&str> {
        self.device.as_deref()
    }

    /// Uses a device id kept from an earlier login.
    pub fn set_device(&mut self, device: Option<String>) {
        self.device = device;
    }

    /// `POST /v1/logout`: ends this session on the node (the token stops
    /// working) and forgets it here.
    pub async fn logout(&mut self) -> Result<Done, ClientError> {
        let done = self.post("/v1/logout", &()).await?;
        self.token = None;
        Ok(done)
    }

    /// `GET /v1/sessions`: the node's live sessions (never their tokens).
    pub async fn sessions(&self) -> Result<Sessions, ClientError> {
        self.get("/v1/sessions").await
    }

    /// `GET /v1/openapi.json`
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/v1/openapi.json").await
    }

    /// `GET /v1/system`
    pub async fn system(&self) -> Result<SystemInfo, ClientError> {
        self.get("/v1/system").await
    }

    /// `GET /v1/settings`
    pub async fn settings(&self) -> Result<VersionedSettings, ClientError> {
        self.get("/v1/settings").await
    }

    /// `GET /v1/settings/{path}` (dotted or slashed).
    pub async fn settings_at(&self, path: &str) -> Result<SettingsValue, ClientError> {
        self.get(&format!(
            "/v1/settings/{}",
            encode_path(&path.replace('.', "/"))
        ))
        .await
    }

    /// `PATCH /v1/settings` with an RFC 7396 merge patch.
    pub async fn patch_settings(
        &self,
        patch: &serde_json::Value,
    ) -> Result<VersionedSettings, ClientError> {
        self.call(Method::PATCH, "/v1/settings", Some(patch)).await
    }

    /// `PATCH /v1/settings` with `If-Match: "VERSION"`: applied only while
    /// the settings are still at `version`, the one the patch was made from;
    /// else [`ClientError::PreconditionFailed`] and nothing changes. This is
    /// how a read-modify-write cannot lose another writer's change.
    pub async fn patch_settings_if(
        &self,
        patch: &serde_json::Value,
        version: u64,
    ) -> Result<VersionedSettings, ClientError> {
        let tag = settings_etag(version);
        self.call_with(
            Method::PATCH,
            "/v1/settings",
            &[("if-match", &tag)],
            Some(patch),
        )
        .await
    }

    /// `GET /v1/settings/history`
    pub async fn settings_history(&self) -> Result<SettingsHistory, ClientError> {
        self.get("/v1/settings/history").await
    }

    /// `GET /v1/settings/status`
    pub async fn settings_status(&self) -> Result<SettingsStatus, ClientError> {
        self.get("/v1/settings/status").await
    }

    /// `POST /v1/settings/revert`
    pub async fn revert_settings(&self, version: u64) -> Result<VersionedSettings, ClientError> {
        self.post("/v1/settings/revert", &RevertRequest { version })
            .await
    }

    /// `POST /v1/settings/revert` with `If-Match`: brings `version` back
    /// only while the settings are still at `expected`; else
    /// [`ClientError::PreconditionFailed`].
    pub async fn revert_settings_if(
        &self,
        version: u64,
        expected: u64,
    ) -> Result<VersionedSettings, ClientError> {
        let tag = settings_etag(expected);
        self.call_with(
            Method::POST,
            "/v1/settings/revert",
            &[("if-match", &tag)],
            Some(&RevertRequest { version }),
        )
        .await
    }

    /// `GET /v1/services`
    pub async fn services(&self) -> Result<Services, ClientError> {
        self.get("/v1/services").await
    }

    /// `POST /v1/services/{name}/{action}`
    pub async fn service(&self, name: &str, action: ServiceAction) -> Result<Done, ClientError> {
        let a = match action {
            ServiceAction::Start => "start",
            ServiceAction::Stop => "stop",
            ServiceAction::Restart => "restart",
        };
        self.post(&format!("/v1/services/{}/{a}", encode_path(name)), &())
            .await
    }

    /// `GET /v1/services/{name}/logs`
    pub async fn service_logs(
        &self,
        name: &str,
        query: &EventsQuery,
    ) -> Result<Events, ClientError> {
        self.get(&format!(
            "/v1/services/{}/logs{}",
            encode_path(name),
            query_string(query)?
        ))
        .await
    }

    /// `GET /v1/events`
    pub async fn events(&self, query: &EventsQuery) -> Result<Events, ClientError> {
        self.get(&format!("/v1/events{}", query_string(query)?))
            .await
    }

    /// `GET /v1/events/follow`: events as they happen.
    pub async fn follow(&self, query: &EventsQuery) -> Result<Lines<Event>, ClientError> {
        let resp = self
            .request(
                Method::GET,
                &format!("/v1/events/follow{}", query_string(query)?),
                None,
                Vec::new(),
            )
            .await?;
        Lines::new(resp).await
    }

    /// `GET /v1/network`
    pub async fn network(&self) -> Result<NetworkView, ClientError> {
        self.get("/v1/network").await
    }

    /// `PUT /v1/network/interfaces/{name}`
    pub async fn put_interface(
        &self,
        name: &str,
        interface: &Interface,
    ) -> Result<VersionedSettings, ClientError> {
        self.call(
            Method::PUT,
            &format!("/v1/network/interfaces/{}", encode_path(name)),
            Some(interface),
        )
        .await
    }

    /// `GET /v1/firewall`
    pub async fn firewall(&self) -> Result<Firewall, ClientError> {
        self.get("/v1/firewall").await
    }

    /// `POST /v1/firewall/rules`
    pub async fn add_rule(&self, rule: &FirewallRule) -> Result<VersionedSettings, ClientError> {
        self.post("/v1/firewall/rules", rule).await
    }

    /// `DELETE /v1/firewall/rules/{name}`
    pub async fn delete_rule(&self, name: &str) -> Result<VersionedSettings, ClientError> {
        self.call::<(), _>(
            Method::DELETE,
            &format!("/v1/firewall/rules/{}", encode_path(name)),
            None,
        )
        .await
    }

    /// `POST /v1/firewall/rules/{name}/{enable|disable}`
    pub async fn enable_rule(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<VersionedSettings, ClientError> {
        let verb = if enabled { "enable" } else { "disable" };
        self.post(
            &format!("/v1/firewall/rules/{}/{verb}", encode_path(name)),
            &(),
        )
        .await
    }

    /// `GET /v1/processes`
    pub async fn processes(&self) -> Result<Processes, ClientError> {
        self.get("/v1/processes").await
    }

    /// `POST /v1/processes/{pid}/kill`
    pub async fn kill(&self, pid: u32, signal: i32) -> Result<Done, ClientError> {
        self.post(
            &format!("/v1/processes/{pid}/kill"),
            &KillRequest { signal },
        )
        .await
    }

    /// `GET /v1/performance`
    pub async fn performance(&self) -> Result<Performance, ClientError> {
        self.get("/v1/performance").await
    }

    /// `GET /v1/metrics` (Prometheus text).
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let resp = self
            .request(Method::GET, "/v1/metrics", None, Vec::new())
            .await?;
        let b = checked(resp).await?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// `GET /v1/files?path=`: a listing or the file's bytes.
    pub async fn files_get(&self, path: &str) -> Result<FileGet, ClientError> {
        let resp = self
            .request(
                Method::GET,
                &format!("/v1/files?path={}", encode_query(path)),
                None,
                Vec::new(),
            )
            .await?;
        let is_json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let b = checked(resp).await?;
        if is_json {
            Ok(FileGet::Dir(serde_json::from_slice(&b)?))
        } else {
            Ok(FileGet::File(b.to_vec()))
        }
    }

    /// `PUT /v1/files?path=`: writes a file.
    pub async fn files_put(&self, path: &str, data: Vec<u8>) -> Result<Done, ClientError> {
        let resp = self
            .request(
                Method::PUT,
                &format!("/v1/files?path={}", encode_query(path)),
                Some("application/octet-stream"),
                data,
            )
            .await?;
        Ok(serde_json::from_slice(&checked(resp).await?)?)
    }

    /// `GET /v1/packages`
    pub async fn packages(&self) -> Result<Packages, ClientError> {
        self.get("/v1/packages").await
    }

    /// `POST /v1/packages` (install) or `PUT /v1/packages/{name}`
    /// (upgrade, when `upgrade` names it): the archive as the body, its
    /// signature (the `.minisig` text) in [`SIGNATURE_HEADER`].
    pub async fn package_upload(
        &self,
        upgrade: Option<&str>,
        archive: Vec<u8>,
        signature: Option<&str>,
    ) -> Result<PackageChange, ClientError> {
        use base64::Engine as _;
        let encoded = signature.map(|s| base64::engine::general_purpose::STANDARD.encode(s));
        let headers: Vec<(&str, &str)> = encoded
            .as_deref()
            .map(|e| vec![(SIGNATURE_HEADER, e)])
            .unwrap_or_default();
        let (method, path) = match upgrade {
            Some(name) => (Method::PUT, format!("/v1/packages/{}", encode_path(name))),
            None => (Method::POST, "/v1/packages".to_string()),
        };
        let resp = self
            .request_with(
                method,
                &path,
                Some("application/octet-stream"),
                &headers,
                archive,
            )
            .await?;
        Ok(serde_json::from_slice(&checked(resp).await?)?)
    }

    /// `DELETE /v1/packages/{name}`
    pub async fn package_remove(&self, name: &str) -> Result<PackageChange, ClientError> {
        let resp = self
            .request(
                Method::DELETE,
                &format!("/v1/packages/{}", encode_path(name)),
                None,
                Vec::new(),
            )
            .await?;
        Ok(serde_json::from_slice(&checked(resp).await?)?)
    }

    /// `POST /v1/exec`: output lines, then an [`ExecLine::Exit`].
    pub async fn exec(&self, req: &ExecRequest) -> Result<Lines<ExecLine>, ClientError> {
        let resp = self
            .request(
                Method::POST,
                "/v1/exec",
                Some("application/json"),
                serde_json::to_vec(req)?,
            )
            .await?;
        Lines::new(resp).await
    }

    /// `POST /v1/power/{reboot|poweroff}`
    pub async fn power(&self, action: PowerAction) -> Result<Done, ClientError> {
        let a = match action {
            PowerAction::Reboot => "reboot",
            PowerAction::Poweroff => "poweroff",
        };
        self.post(&format!("/v1/power/{a}"), &()).await
    }

    /// `GET /v1/audit`
    pub async fn audit(&self, query: &AuditQuery) -> Result<Audit, ClientError> {
        self.get(&format!("/v1/audit{}", query_string(query)?))
            .await
    }
}

/// A newline-delimited JSON stream.
#[derive(Debug)]
pub struct Lines<T> {
    body: Incoming,
    buf: BytesMut,
    done: bool,
    _t: std::marker::PhantomData<T>,
}

impl<T: DeserializeOwned> Lines<T> {
    async fn new(resp: hyper::Response<Incoming>) -> Result<Self, ClientError> {
        if !resp.status().is_success() {
            return Err(error_of(resp).await);
        }
        Ok(Self {
            body: resp.into_body(),
            buf: BytesMut::new(),
            done: false,
            _t: std::marker::PhantomData,
        })
    }

    /// The next item; `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Result<T, ClientError>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(i + 1);
                let line = &line[..i];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(serde_json::from_slice(line).map_err(ClientError::from));
            }
            if self.done {
                return None;
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e.into()));
                }
                None => {
                    self.done = true;
                    if !self.buf.is_empty() {
                        self.buf.extend_from_slice(b"\n");
                    }
                }
            }
        }
    }
}

async fn checked(resp: hyper::Response<Incoming>) -> Result<Bytes, ClientError> {
    if !resp.status().is_success() {
        return Err(error_of(resp).await);
    }
    Ok(resp.into_body().collect().await?.to_bytes())
}

async fn error_of(resp: hyper::Response<Incoming>) -> ClientError {
    let status = resp.status();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let retry_after = header("retry-after").and_then(|v| v.parse().ok());
    let etag = header("etag");
    let body = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return e.into(),
    };
    let body = serde_json::from_slice(&body).unwrap_or_else(|_| ErrorBody {
        error: String::from_utf8_lossy(&body).into_owned(),
        problems: Vec::new(),
    });
    if status == StatusCode::PRECONDITION_FAILED {
        return ClientError::PreconditionFailed {
            current: etag.as_deref().and_then(settings_version_of),
            body,
        };
    }
    ClientError::Status {
        status: status_code(status),
        body,
        retry_after,
    }
}

fn status_code(s: StatusCode) -> u16 {
    s.as_u16()
}

fn query_string<Q: Serialize>(q: &Q) -> Result<String, ClientError> {
    let v = serde_json::to_value(q)?;
    let mut parts = Vec::new();
    if let serde_json::Value::Object(map) = v {
        for (k, v) in map {
            let s = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            parts.push(format!("{k}={}", encode_query(&s)));
        }
    }
    Ok(if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    })
}

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn encode_query(s: &str) -> String {
    encode(s, true)
}

fn encode_path(s: &str) -> String {
    encode(s, true)
}

fn connector(verifier: Arc<PinVerifier>) -> TlsConnector {
    // The ring provider's safe defaults are TLS 1.3 and 1.2 with its own
    // cipher suites, so this never fails; `builder()` would pick the
    // process-wide provider instead, which may be unset.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(rustls::DEFAULT_VERSIONS)
    .unwrap_or_else(|_| unreachable!("ring supports the default TLS versions"))
    .dangerous()
    .with_custom_certificate_verifier(verifier)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// Accepts exactly the pinned certificate (by SHA-256 of its DER), or with
/// no pin any certificate, remembering what it saw. Handshake signatures are
/// still checked, so the peer must hold the certificate's key.
#[derive(Debug)]
struct PinVerifier {
    pinned: Option<String>,
    seen: Mutex<Option<String>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl PinVerifier {
    fn new(pinned: Option<String>) -> Self {
        Self {
            pinned,
            seen: Mutex::new(None),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }

    fn seen(&self) -> Option<String> {
        self.seen.lock().ok().and_then(|s| s.clone())
    }

    fn mismatch(&self) -> Option<(String, String)> {
        let seen = self.seen()?;
        let pinned = self.pinned.clone()?;
        (seen != pinned).then_some((pinned, seen))
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = fingerprint(end_entity.as_ref());
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(presented.clone());
        }
        match &self.pinned {
            Some(p) if *p != presented => Err(rustls::Error::General(format!(
                "certificate fingerprint {presented} is not the pinned {p}"
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

//! Every error an API call can end in, and its HTTP status: one exhaustive
//! `match`, no catch-all, so a new variant forces a decision.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mote_api::api::{settings_etag, ErrorBody, Problem};
use mote_config::Invalid;

use crate::init::InitError;
use mote_api::control::ErrorKind;
use mote_api::store::StoreError;

/// A store error with its cause (`write PATH: No space left on device`):
/// the answer is all a remote user sees.
fn with_cause(e: &StoreError) -> String {
    use std::error::Error;
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed input.
    #[error("{0}")]
    BadRequest(String),
    /// No token, or a dead one, or a wrong password.
    #[error("{0}")]
    Unauthorized(String),
    /// Too many failed logins from this address.
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    Throttled {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// The thing exists already, or is in the way.
    #[error("{0}")]
    Conflict(String),
    /// A write's `If-Match` names another settings version than the current
    /// one: another writer changed the settings since this one read them.
    #[error(
        "the settings are at version {current}, not {} as If-Match says (another writer changed them); \
         nothing was changed: re-read the settings and apply your change again",
        versions(.expected)
    )]
    Stale {
        /// The version in force.
        current: u64,
        /// The versions `If-Match` named.
        expected: Vec<u64>,
    },
    /// The new settings break rules.
    #[error("the settings are invalid ({} problems)", .0.len())]
    Invalid(Vec<Invalid>),
    /// PID 1 refused a settings change; the previous settings were
    /// re-applied.
    #[error("PID 1 refused: {message}; {}", if *rolled_back { "the previous settings were re-applied" } else { "re-applying the previous settings failed too" })]
    Refused {
        /// What kind of failure PID 1 says it is.
        reason: ErrorKind,
        /// PID 1's message.
        message: String,
        /// Did re-applying the old settings succeed?
        rolled_back: bool,
    },
    /// PID 1 could not do what was asked (not a settings change: nothing
    /// to roll back).
    #[error("{message}")]
    Node {
        /// What kind of failure.
        reason: ErrorKind,
        /// PID 1's message.
        message: String,
    },
    /// A package that does not open, or that the node does not trust.
    #[error("{0}")]
    Unprocessable(String),
    /// PID 1 could not be reached.
    #[error("PID 1 is unreachable: {0}")]
    Init(#[from] InitError),
    /// PID 1 answered out of protocol.
    #[error("PID 1 gave an unexpected answer to {0}")]
    Unexpected(&'static str),
    /// The settings store failed (507 when the state disk is full).
    #[error("settings store: {}; nothing was changed", with_cause(.0))]
    Store(#[from] StoreError),
    /// Body too large.
    #[error("the body is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// A body that did not arrive in time.
    #[error("the body did not arrive within {secs} s")]
    SlowBody {
        /// The limit.
        secs: u64,
    },
    /// A JSON route sent something else than JSON.
    #[error("the body is {found}; send application/json")]
    NotJson {
        /// The Content-Type sent.
        found: String,
    },
    /// A node file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What.
        op: &'static str,
        /// On what.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Stale { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Refused {
                rolled_back: false, ..
            } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Refused {
                reason: ErrorKind::Unavailable,
                ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Refused {
                reason: ErrorKind::Invalid,
                ..
            } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Refused { .. } => StatusCode::CONFLICT,
            ApiError::Node { reason, .. } => match reason {
                ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                ErrorKind::NotFound => StatusCode::NOT_FOUND,
                ErrorKind::Conflict => StatusCode::CONFLICT,
                ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                ErrorKind::Failed => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Init(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unexpected(_) => StatusCode::BAD_GATEWAY,
            ApiError::Store(e) => {
                if e.is_disk_full() {
                    StatusCode::INSUFFICIENT_STORAGE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            }
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotJson { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::SlowBody { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => StatusCode::NOT_FOUND,
                std::io::ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::IsADirectory => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry = match &self {
            ApiError::Throttled { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let etag = match &self {
            ApiError::Stale { current, .. } => Some(settings_etag(*current)),
            _ => None,
        };
        let problems = match &self {
            ApiError::Invalid(p) => p.iter().cloned().map(Problem::from).collect(),
            _ => Vec::new(),
        };
        let body = ErrorBody {
            error: self.to_string(),
            problems,
        };
        let mut resp = (status, Json(body)).into_response();
        if let Some(s) = retry {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if let Some(tag) = etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
            resp.headers_mut().insert(header::ETAG, tag);
        }
        resp
    }
}

/// `7`, `7 or 8`.
fn versions(v: &[u64]) -> String {
    let v: Vec<String> = v.iter().map(u64::to_string).collect();
    v.join(" or ")
}

/// A JSON body must arrive within this (408 beyond).
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest JSON body taken (axum's default body limit); 413 beyond.
pub const MAX_JSON_BYTES: usize = 2 << 20;

/// Whether a `Content-Type` is JSON: `application/json`, or any
/// `application/…+json` (`application/merge-patch+json`), parameters
/// allowed. A body without a `Content-Type` is read as JSON too.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// JSON body extraction with our error shape: at most `MAX` bytes (413
/// beyond, read no further), a JSON `Content-Type` or none (415 else).
pub struct JsonBody<T, const MAX: usize = MAX_JSON_BYTES>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned, const MAX: usize> axum::extract::FromRequest<S>
    for JsonBody<T, MAX>
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, _state: &S) -> Result<Self, ApiError> {
        let too_large = || ApiError::TooLarge { limit: MAX };
        let headers = req.headers();
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX as u64) {
            return Err(too_large());
        }
        // Past MAX, or a body that breaks off: either way nothing to parse.
        // A body that trickles in is cut off: the connection caps must not
        // be held by clients that never finish.
        let bytes = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(req.into_body(), MAX))
            .await
            .map_err(|_| ApiError::SlowBody {
                secs: BODY_TIMEOUT.as_secs(),
            })?
            .map_err(|_| too_large())?;
        if let Some(found) = content_type.filter(|t| !bytes.is_empty() && !is_json(t)) {
            return Err(ApiError::NotJson { found });
        }
        let v = if bytes.is_empty() {
            b"null".as_slice()
        } else {
            &bytes
        };
        serde_json::from_slice(v)
            .map(JsonBody)
            .map_err(|e| ApiError::BadRequest(format!("bad JSON body: {e}")))
    }
}

/// Query extraction with our error shape.
pub struct QueryArgs<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for QueryArgs<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryArgs(q.0))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

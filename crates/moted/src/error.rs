//! Every error an API call can end in, and its HTTP status: one exhaustive
//! `match`, no catch-all, so a new variant forces a decision.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mote_api::api::{settings_etag, ErrorBody, Problem};
use mote_config::Invalid;

use crate::core::web_check::WebCheckError;
use crate::init::InitError;
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
    /// `mote-web --check` refused a new `roles.web`, or could not judge it;
    /// nothing was stored or applied.
    #[error(transparent)]
    WebCheck(#[from] WebCheckError),
    /// PID 1 refused the change; the previous settings were re-applied.
    #[error("PID 1 refused: {message}; {}", if *rolled_back { "the previous settings were re-applied" } else { "re-applying the previous settings failed too" })]
    Refused {
        /// PID 1's message.
        message: String,
        /// Did re-applying the old settings succeed?
        rolled_back: bool,
    },
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
            ApiError::WebCheck(e) => match e {
                WebCheckError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                WebCheckError::TimedOut { .. } => StatusCode::SERVICE_UNAVAILABLE,
                WebCheckError::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Refused {
                rolled_back: true, ..
            } => StatusCode::CONFLICT,
            ApiError::Refused {
                rolled_back: false, ..
            } => StatusCode::INTERNAL_SERVER_ERROR,
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
            ApiError::WebCheck(e @ WebCheckError::Refused { detail }) => {
                vec![web_problem(e, detail)]
            }
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

/// mote-web's refusal as a problem at its key under `roles.web`.
fn web_problem(e: &WebCheckError, detail: &str) -> Problem {
    let (path, found) = match e.key_and_message() {
        Some((".", message)) => ("roles.web".to_string(), message),
        Some((key, message)) => (format!("roles.web.{key}"), message),
        None => ("roles.web".to_string(), detail),
    };
    Problem {
        path,
        found: found.to_string(),
        allowed: "a value `mote-web --check` accepts (docs/web.md#errors)".into(),
        hint: None,
    }
}

/// `7`, `7 or 8`.
fn versions(v: &[u64]) -> String {
    let v: Vec<String> = v.iter().map(u64::to_string).collect();
    v.join(" or ")
}

/// JSON body extraction with our error shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
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

//! `/v1/settings`: the whole tree, a path into it, merge patches, history,
//! revert.
//!
//! Optimistic concurrency: the whole tree and every change answer with the
//! settings version as `ETag: "N"`. A PATCH or revert that carries
//! `If-Match: "N"` (or a bare `N`) is applied only while the settings are
//! still at version N; otherwise it is refused with 412 and changes nothing,
//! so a client that read, edited and wrote back cannot overwrite what
//! another writer stored in between. Without `If-Match` a write applies to
//! whatever version is current, as before.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::{header, request::Parts, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use mote_api::api::{
    settings_etag, settings_version_of, RevertRequest, SettingsHistory, SettingsStatus,
    SettingsValue, VersionedSettings,
};
use mote_api::control::{NodeSettings, Request, Response as InitResponse};

use super::AppState;
use crate::app::{lock, Caller};
use crate::core::json;
use crate::error::{ApiError, JsonBody};

pub use mote_api::api::REDACTED;

fn redacted(mut current: VersionedSettings) -> VersionedSettings {
    current.settings = mote_api::api::redact(current.settings);
    current
}

/// The longest `what` a history entry keeps of a patch.
pub const MAX_WHAT: usize = 512;

/// How a patch is described in the history: the hash a patch sets is
/// redacted like every answer, and a long patch is cut.
fn describe_patch(patch: &serde_json::Value) -> String {
    let mut shown = patch.clone();
    if let Some(h) = shown
        .get_mut("system")
        .and_then(|s| s.get_mut("admin_password_hash"))
        .filter(|h| h.is_string())
    {
        *h = REDACTED.into();
    }
    crate::audit::truncate(&format!("PATCH /v1/settings {shown}"), MAX_WHAT)
}

/// The settings as an answer: redacted, with their version as `ETag`.
fn tagged(current: VersionedSettings) -> Response {
    let tag = settings_etag(current.version);
    ([(header::ETAG, tag)], Json(redacted(current))).into_response()
}

/// A write's `If-Match`: the settings versions it was made from, `None`
/// without the header or with `*` (any version).
pub struct IfMatch(pub Option<Vec<u64>>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        if_match(parts.headers.get_all(header::IF_MATCH)).map(IfMatch)
    }
}

/// Reads `If-Match` headers: comma-separated tags, each `"N"` or `N`, or `*`.
fn if_match<'a>(
    headers: impl IntoIterator<Item = &'a HeaderValue>,
) -> Result<Option<Vec<u64>>, ApiError> {
    let mut versions = None::<Vec<u64>>;
    for value in headers {
        let text = value.to_str().unwrap_or("(not text)");
        for tag in text.split(',').map(str::trim) {
            if tag == "*" {
                return Ok(None);
            }
            let v = settings_version_of(tag).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "If-Match {tag:?} is not a settings version: send the ETag of \
                     GET /v1/settings (such as \"7\") or the version from its body"
                ))
            })?;
            versions.get_or_insert_with(Vec::new).push(v);
        }
    }
    Ok(versions)
}

pub async fn get(State(app): State<AppState>) -> Result<Response, ApiError> {
    Ok(tagged(lock(&app.store)?.current()))
}

pub async fn get_path(
    State(app): State<AppState>,
    Path(path): Path<String>,
) -> Result<Json<SettingsValue>, ApiError> {
    let cur = redacted(lock(&app.store)?.current());
    let tree = serde_json::to_value(&cur.settings)
        .map_err(|_| ApiError::Unexpected("settings that do not serialize"))?;
    let value = json::lookup(&tree, &path)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("no setting at {path:?}")))?;
    Ok(Json(SettingsValue {
        version: cur.version,
        path: path.replace('/', "."),
        value,
    }))
}

/// Applies a merge patch to `old`, giving typed settings.
pub fn patched(old: &NodeSettings, patch: &serde_json::Value) -> Result<NodeSettings, ApiError> {
    let mut tree = serde_json::to_value(old)
        .map_err(|_| ApiError::Unexpected("settings that do not serialize"))?;
    json::merge_patch(&mut tree, patch);
    serde_json::from_value(tree).map_err(|e| ApiError::BadRequest(format!("after the patch: {e}")))
}

pub async fn patch(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    if_match: Result<IfMatch, ApiError>,
    JsonBody(patch): JsonBody<serde_json::Value>,
) -> Result<Response, ApiError> {
    // Judged after the body is read: refusing a bad If-Match with the body
    // unread made hyper drop the kept-alive connection without a word
    // (found by the schemathesis run).
    let IfMatch(expected) = if_match?;
    if !patch.is_object() {
        return Err(ApiError::BadRequest(
            "a merge patch is a JSON object".into(),
        ));
    }
    let what = describe_patch(&patch);
    Ok(tagged(
        app.change_if(&caller.user, &what, expected.as_deref(), |old| {
            patched(old, &patch)
        })
        .await?,
    ))
}

pub async fn history(State(app): State<AppState>) -> Result<Json<SettingsHistory>, ApiError> {
    let store = lock(&app.store)?;
    Ok(Json(SettingsHistory {
        current: store.current().version,
        versions: store.history()?,
    }))
}

pub async fn status(State(app): State<AppState>) -> Result<Json<SettingsStatus>, ApiError> {
    let stored = lock(&app.store)?.current().version;
    let applied = match app.ask(Request::System).await? {
        InitResponse::System(s) => s.settings,
        _ => return Err(ApiError::Unexpected("system")),
    };
    Ok(Json(SettingsStatus {
        stored,
        in_sync: applied.version == Some(stored) && applied.problem.is_none(),
        applied,
    }))
}

pub async fn revert(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    if_match: Result<IfMatch, ApiError>,
    JsonBody(req): JsonBody<RevertRequest>,
) -> Result<Response, ApiError> {
    // After the body is read, as in `patch`.
    let IfMatch(expected) = if_match?;
    let old = match lock(&app.store)?.load(req.version) {
        Ok(s) => s.settings,
        Err(crate::store::StoreError::NoVersion(v)) => {
            return Err(ApiError::NotFound(format!("no settings version {v}")))
        }
        Err(e) => return Err(e.into()),
    };
    let what = format!("revert to version {}", req.version);
    Ok(tagged(
        app.change_if(&caller.user, &what, expected.as_deref(), |_| Ok(old))
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(values: &[&str]) -> Result<Option<Vec<u64>>, ApiError> {
        let values: Vec<HeaderValue> = values
            .iter()
            .map(|v| HeaderValue::from_str(v).unwrap())
            .collect();
        if_match(&values)
    }

    #[test]
    fn if_match_takes_quoted_or_bare_versions_lists_and_star() {
        assert_eq!(read(&[]).unwrap(), None);
        assert_eq!(read(&["\"7\""]).unwrap(), Some(vec![7]));
        assert_eq!(read(&["7"]).unwrap(), Some(vec![7]));
        assert_eq!(read(&["\"7\", 8", "\"9\""]).unwrap(), Some(vec![7, 8, 9]));
        assert_eq!(read(&["*"]).unwrap(), None);
        for bad in ["", "W/\"7\"", "seven", "\"7"] {
            match read(&[bad]) {
                Err(ApiError::BadRequest(m)) => assert!(m.contains("If-Match"), "{m}"),
                other => panic!("{bad:?}: {:?}", other.map_err(|e| e.to_string())),
            }
        }
    }
}

#[cfg(test)]
#[path = "settings_fuzz.rs"]
mod fuzz;

//! `/v1/settings`: the whole tree, a path into it, merge patches, history,
//! revert.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use mote_api::api::{RevertRequest, SettingsHistory, SettingsValue, VersionedSettings};
use mote_api::control::NodeSettings;

use super::AppState;
use crate::app::{lock, Caller};
use crate::core::json;
use crate::error::{ApiError, JsonBody};

/// What reads show instead of the administrator's password hash: a hash is
/// a secret (it can be attacked offline), and reads never need it. Writing a
/// new one with PATCH still works; writing this text back is refused by
/// validation, so a read-modify-write cannot clobber the credential.
pub const REDACTED: &str = "(redacted; PATCH system.admin_password_hash to change it)";

fn redacted(mut current: VersionedSettings) -> VersionedSettings {
    current.settings.system.admin_password_hash = REDACTED.into();
    current
}

pub async fn get(State(app): State<AppState>) -> Result<Json<VersionedSettings>, ApiError> {
    Ok(Json(redacted(lock(&app.store)?.current())))
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
    JsonBody(patch): JsonBody<serde_json::Value>,
) -> Result<Json<VersionedSettings>, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::BadRequest(
            "a merge patch is a JSON object".into(),
        ));
    }
    let what = format!("PATCH /v1/settings {patch}");
    Ok(Json(redacted(
        app.change(&caller.user, &what, |old| patched(old, &patch))
            .await?,
    )))
}

pub async fn history(State(app): State<AppState>) -> Result<Json<SettingsHistory>, ApiError> {
    let store = lock(&app.store)?;
    Ok(Json(SettingsHistory {
        current: store.current().version,
        versions: store.history()?,
    }))
}

pub async fn revert(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<RevertRequest>,
) -> Result<Json<VersionedSettings>, ApiError> {
    let old = match lock(&app.store)?.load(req.version) {
        Ok(s) => s.settings,
        Err(crate::store::StoreError::NoVersion(v)) => {
            return Err(ApiError::NotFound(format!("no settings version {v}")))
        }
        Err(e) => return Err(e.into()),
    };
    let what = format!("revert to version {}", req.version);
    Ok(Json(redacted(
        app.change(&caller.user, &what, |_| Ok(old)).await?,
    )))
}

//! `/v1/firewall`: rules, each change a settings change applied at once.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use mote_api::api::{Firewall, FirewallRule, VersionedSettings};

use super::AppState;
use crate::app::{lock, Caller};
use crate::error::{ApiError, JsonBody};

pub async fn get(State(app): State<AppState>) -> Result<Json<Firewall>, ApiError> {
    Ok(Json(lock(&app.store)?.current().settings.firewall))
}

pub async fn add(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(rule): JsonBody<FirewallRule>,
) -> Result<Json<VersionedSettings>, ApiError> {
    let what = format!("add firewall rule {}", rule.name);
    Ok(Json(
        app.change(&caller.user, &what, |old| {
            if old.firewall.rules.iter().any(|r| r.name == rule.name) {
                return Err(ApiError::Conflict(format!(
                    "a rule named {:?} exists; delete it first",
                    rule.name
                )));
            }
            let mut s = old.clone();
            s.firewall.rules.push(rule);
            Ok(s)
        })
        .await?,
    ))
}

pub async fn remove(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<VersionedSettings>, ApiError> {
    let what = format!("delete firewall rule {name}");
    Ok(Json(
        app.change(&caller.user, &what, |old| {
            let mut s = old.clone();
            let before = s.firewall.rules.len();
            s.firewall.rules.retain(|r| r.name != name);
            if s.firewall.rules.len() == before {
                return Err(ApiError::NotFound(format!("no firewall rule {name:?}")));
            }
            Ok(s)
        })
        .await?,
    ))
}

pub async fn enable(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, action)): Path<(String, String)>,
) -> Result<Json<VersionedSettings>, ApiError> {
    let on = match action.as_str() {
        "enable" => true,
        "disable" => false,
        other => {
            return Err(ApiError::NotFound(format!(
                "no rule action {other:?}; use enable or disable"
            )))
        }
    };
    let what = format!("{action} firewall rule {name}");
    Ok(Json(
        app.change(&caller.user, &what, |old| {
            let mut s = old.clone();
            let rule = s
                .firewall
                .rules
                .iter_mut()
                .find(|r| r.name == name)
                .ok_or_else(|| ApiError::NotFound(format!("no firewall rule {name:?}")))?;
            rule.enabled = on;
            Ok(s)
        })
        .await?,
    ))
}

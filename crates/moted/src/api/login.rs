//! `POST /v1/login`

use axum::extract::State;
use axum::Extension;
use axum::Json;
use mote_api::api::{LoginRequest, LoginResponse, ADMIN_USER};

use super::AppState;
use crate::app::{lock, Caller};
use crate::error::{ApiError, JsonBody};

pub async fn login(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let ip = caller.addr.ip();
    if let Some(wait) = lock(&app.auth)?.locked(ip) {
        return Err(ApiError::Throttled {
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        });
    }
    let hash = lock(&app.store)?
        .current()
        .settings
        .system
        .admin_password_hash;
    let ok = req.username == ADMIN_USER
        && !hash.is_empty()
        && tokio::task::spawn_blocking(move || mote_config::password::verify(&hash, &req.password))
            .await
            .unwrap_or(false);
    let mut auth = lock(&app.auth)?;
    if !ok {
        let d = auth.failed(ip);
        tracing::warn!(%ip, lock_ms = d.as_millis() as u64, "failed login");
        return Err(ApiError::Unauthorized("wrong user name or password".into()));
    }
    let (token, ttl) = auth
        .issue(ip, ADMIN_USER)
        .ok_or(ApiError::Unexpected("no random bytes for the token"))?;
    Ok(Json(LoginResponse {
        token,
        expires_at_ms: crate::now_ms() + ttl.as_millis() as u64,
    }))
}

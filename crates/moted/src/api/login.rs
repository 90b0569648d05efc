//! `POST /v1/login`, `POST /v1/logout`, `GET /v1/sessions`.
//!
//! A login is admitted by the throttle ([`crate::auth::throttle`]: by
//! source, by user, and a slower lane for clean sources), then its password
//! is checked in the bounded pool ([`crate::auth::password`]), one login at
//! a time. An admitted guess is recorded as a failure before its password
//! is checked (a success takes it back), so parallel guesses are counted
//! before the next is admitted, and hanging up before the answer does not
//! take a guess back. A user name
//! other than [`ADMIN_USER`] costs no check and counts as a failure.

use std::time::Instant;

use axum::extract::State;
use axum::Extension;
use axum::Json;
use mote_api::api::{Done, LoginRequest, LoginResponse, Sessions, ADMIN_USER};

use super::{AppState, SessionToken};
use crate::app::{lock, Caller};
use crate::auth::credential_of;
use crate::error::{ApiError, JsonBody};

/// The largest login body: a user name and a password, not megabytes from
/// whoever connects.
pub const MAX_LOGIN_BYTES: usize = 4096;

fn throttled(wait: std::time::Duration) -> ApiError {
    ApiError::Throttled {
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    }
}

pub async fn login(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<LoginRequest, MAX_LOGIN_BYTES>,
) -> Result<Json<LoginResponse>, ApiError> {
    let ip = crate::auth::throttle::source_of(caller.addr.ip());
    // The user name as the throttle counts it: any unknown name is one.
    let user = if req.username == ADMIN_USER {
        ADMIN_USER
    } else {
        "(unknown)"
    };
    let _turn = app.login_turn.lock().await;
    let hash = lock(&app.store)?
        .settings()
        .system
        .admin_password_hash
        .clone();
    let credential = credential_of(&hash);
    // A client that logged in before (its device id) is not held back by
    // locks aimed at others at its address; it has its own three strikes.
    let device = req.device.as_deref().filter(|d| {
        user == ADMIN_USER && lock(&app.auth).is_ok_and(|mut a| a.device_known(d, credential))
    });
    {
        // Admitted, the guess counts as a failure before the password is
        // checked: a client that hangs up before the answer (and so drops
        // this future) has spent its guess all the same.
        let mut auth = lock(&app.auth)?;
        match device {
            Some(d) => auth.device_failed(d),
            None => {
                auth.throttle
                    .admit(ip, user, Instant::now())
                    .map_err(throttled)?;
                auth.throttle.failed(ip, user, Instant::now());
            }
        }
    }
    let ok = user == ADMIN_USER
        && !hash.is_empty()
        && app.checks.verify(hash.clone(), req.password).await;
    let mut auth = lock(&app.auth)?;
    if !ok {
        if device.is_none() {
            auth.throttle.confirm(ip, user, Instant::now());
        }
        tracing::warn!(%ip, "failed login");
        return Err(ApiError::Unauthorized("wrong user name or password".into()));
    }
    if device.is_none() {
        // (A device's success leaves the address's record alone: a guesser
        // behind the same address stays locked.)
        auth.throttle.succeeded(ip, user);
    }
    let device = auth.remember_device(device, credential);
    let (token, ttl) = auth
        .issue(ip, ADMIN_USER, credential)
        .ok_or(ApiError::Unexpected("no random bytes for the token"))?;
    Ok(Json(LoginResponse {
        token,
        expires_at_ms: crate::now_ms() + ttl.as_millis() as u64,
        device,
    }))
}

pub async fn logout(
    State(app): State<AppState>,
    Extension(SessionToken(token)): Extension<SessionToken>,
) -> Result<Json<Done>, ApiError> {
    lock(&app.auth)?.revoke(&token);
    Ok(Json(Done {
        message: "logged out: the token no longer works".into(),
    }))
}

pub async fn sessions(
    State(app): State<AppState>,
    Extension(SessionToken(token)): Extension<SessionToken>,
) -> Result<Json<Sessions>, ApiError> {
    let credential = super::credential(&app)?;
    Ok(Json(Sessions {
        sessions: lock(&app.auth)?.sessions(credential, &token),
    }))
}

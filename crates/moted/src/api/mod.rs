//! The router: one table of routes (method, path, handler), the auth and
//! audit layer, and one file per resource.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put, MethodRouter};
use axum::Router;

use crate::app::{lock, App, Caller};
use crate::error::ApiError;

mod audit;
mod events;
mod exec;
mod files;
mod firewall;
mod login;
mod network;
pub mod openapi;
mod packages;
mod performance;
mod power;
mod processes;
mod services;
mod settings;
mod system;

/// Shared state of the handlers.
pub type AppState = Arc<App>;

/// Every route: method, path (axum syntax), handler.
pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![
        ("POST", "/v1/login", post(login::login)),
        ("POST", "/v1/logout", post(login::logout)),
        ("GET", "/v1/sessions", get(login::sessions)),
        ("GET", "/v1/openapi.json", get(openapi::document)),
        ("GET", "/v1/system", get(system::get)),
        ("GET", "/v1/settings", get(settings::get)),
        ("PATCH", "/v1/settings", patch(settings::patch)),
        ("GET", "/v1/settings/history", get(settings::history)),
        ("GET", "/v1/settings/status", get(settings::status)),
        ("POST", "/v1/settings/revert", post(settings::revert)),
        ("GET", "/v1/settings/{*path}", get(settings::get_path)),
        ("GET", "/v1/services", get(services::list)),
        ("POST", "/v1/services/{name}/{action}", post(services::act)),
        ("GET", "/v1/services/{name}/logs", get(services::logs)),
        ("GET", "/v1/events", get(events::list)),
        ("GET", "/v1/events/follow", get(events::follow)),
        ("GET", "/v1/network", get(network::get)),
        (
            "PUT",
            "/v1/network/interfaces/{name}",
            put(network::put_interface),
        ),
        ("GET", "/v1/firewall", get(firewall::get)),
        ("POST", "/v1/firewall/rules", post(firewall::add)),
        (
            "DELETE",
            "/v1/firewall/rules/{name}",
            delete(firewall::remove),
        ),
        (
            "POST",
            "/v1/firewall/rules/{name}/{action}",
            post(firewall::enable),
        ),
        ("GET", "/v1/processes", get(processes::list)),
        ("POST", "/v1/processes/{pid}/kill", post(processes::kill)),
        ("GET", "/v1/performance", get(performance::get)),
        ("GET", "/v1/metrics", get(performance::metrics)),
        ("GET", "/v1/files", get(files::get)),
        ("PUT", "/v1/files", put(files::put)),
        ("POST", "/v1/exec", post(exec::exec)),
        ("POST", "/v1/power/{action}", post(power::power)),
        ("GET", "/v1/audit", get(audit::list)),
        ("GET", "/v1/packages", get(packages::list)),
        ("POST", "/v1/packages", post(packages::install)),
        ("PUT", "/v1/packages/{name}", put(packages::upgrade)),
        ("DELETE", "/v1/packages/{name}", delete(packages::remove)),
    ]
}

/// Routes anyone may call without a token.
/// The only route that answers without a token: logging in. Even the API
/// description needs one (nothing on a node answers anonymously but what
/// lets you in).
const PUBLIC: &[&str] = &["/v1/login"];

/// The whole router.
pub fn router(app: AppState) -> Router {
    let mut r = Router::new();
    for (_, path, handler) in routes() {
        r = r.route(path, handler);
    }
    r.route_layer(axum::middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Source address of a connection, put in each request by the server loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The bearer token a request was let in with (for logout and the session
/// list).
#[derive(Debug, Clone)]
pub struct SessionToken(pub String);

/// The digest of the credential in force, that live tokens must carry.
pub fn credential(app: &App) -> Result<u64, ApiError> {
    let store = lock(&app.store)?;
    Ok(crate::auth::credential_of(
        &store.settings().system.admin_password_hash,
    ))
}

/// Checks the token (except on public routes) and audits every change
/// (every method but GET), with its result. Refusals of callers without a
/// valid token are sampled: the first from a source in each window is
/// written, with the count of those left out before it.
async fn guard(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let addr = req
        .extensions()
        .get::<Peer>()
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |p| p.0);
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let user = token.as_deref().and_then(|t| {
        let c = credential(&app).ok()?;
        lock(&app.auth).ok()?.check(t, c)
    });
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let public = PUBLIC.contains(&path.as_str());
    let caller = Caller {
        user: user.clone().unwrap_or_else(|| "-".into()),
        addr,
    };
    let resp = if user.is_none() && !public {
        let why = if token.is_some() {
            "the token is unknown, expired, logged out or older than the password; log in again"
        } else {
            "log in first: POST /v1/login, then send Authorization: Bearer TOKEN"
        };
        ApiError::Unauthorized(why.into()).into_response()
    } else {
        req.extensions_mut().insert(caller.clone());
        if let (Some(t), Some(_)) = (token, &user) {
            req.extensions_mut().insert(SessionToken(t));
        }
        next.run(req).await
    };
    if method == Method::GET {
        return resp;
    }
    let what = format!("{method} {path}");
    let status = resp.status();
    if status.is_success() {
        app.record(&caller, what, "ok".into()).await;
        return resp;
    }
    let skipped = if user.is_none() {
        match app.refusals.sample(
            crate::auth::throttle::source_of(addr.ip()),
            std::time::Instant::now(),
        ) {
            Some(n) => n,
            None => return resp,
        }
    } else {
        0
    };
    // Errors are small JSON bodies: read the message for the log.
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let msg = serde_json::from_slice::<mote_api::api::ErrorBody>(&bytes)
        .map(|b| b.error)
        .unwrap_or_default();
    let mut result = format!("{} {msg}", status.as_u16());
    if skipped > 0 {
        result.push_str(&format!(
            " (and {skipped} refusals not written before this one)"
        ));
    }
    app.record(&caller, what, result).await;
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

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

/// Checks the token (except on public routes) and audits every change
/// (every method but GET), with its result.
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
        .map(str::trim);
    let user = match token {
        Some(t) => lock(&app.auth).ok().and_then(|a| a.check(t)),
        None => None,
    };
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let public = PUBLIC.contains(&path.as_str());
    let caller = Caller {
        user: user.clone().unwrap_or_else(|| "-".into()),
        addr,
    };
    let resp = if user.is_none() && !public {
        let why = if token.is_some() {
            "the token is unknown or expired; log in again"
        } else {
            "log in first: POST /v1/login, then send Authorization: Bearer TOKEN"
        };
        ApiError::Unauthorized(why.into()).into_response()
    } else {
        req.extensions_mut().insert(caller.clone());
        next.run(req).await
    };
    if method == Method::GET {
        return resp;
    }
    let what = match req_query_free(&method, &path) {
        q if q.is_empty() => path.clone(),
        q => q,
    };
    let status = resp.status();
    if status.is_success() {
        app.record(&caller, what, "ok".into()).await;
        return resp;
    }
    // Errors are small JSON bodies: read the message for the log.
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let msg = serde_json::from_slice::<mote_api::api::ErrorBody>(&bytes)
        .map(|b| b.error)
        .unwrap_or_default();
    app.record(&caller, what, format!("{} {msg}", status.as_u16()))
        .await;
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

fn req_query_free(method: &Method, path: &str) -> String {
    format!("{method} {path}")
}

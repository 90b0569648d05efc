//! `/v1/network`: live state and configured interfaces.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use mote_api::api::{Interface, NetworkView, VersionedSettings};
use mote_api::control::{Request, Response};

use super::AppState;
use crate::app::{lock, Caller};
use crate::error::{ApiError, JsonBody};

pub async fn get(State(app): State<AppState>) -> Result<Json<NetworkView>, ApiError> {
    let live = match app.ask(Request::Network).await? {
        Response::Network(n) => n,
        _ => return Err(ApiError::Unexpected("network")),
    };
    let configured = lock(&app.store)?.current().settings.network.interfaces;
    Ok(Json(NetworkView { live, configured }))
}

pub async fn put_interface(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(iface): JsonBody<Interface>,
) -> Result<Json<VersionedSettings>, ApiError> {
    let configured = lock(&app.store)?
        .current()
        .settings
        .network
        .interfaces
        .contains_key(&name);
    if !configured {
        let live = match app.ask(Request::Network).await? {
            Response::Network(n) => n,
            _ => return Err(ApiError::Unexpected("network")),
        };
        if !live.links.iter().any(|l| l.name == name) {
            let names: Vec<&str> = live.links.iter().map(|l| l.name.as_str()).collect();
            return Err(ApiError::NotFound(format!(
                "no interface {name:?} on this node (it has {}); \
                 an interface that is not there yet can be set with PATCH /v1/settings",
                names.join(", ")
            )));
        }
    }
    let what = format!("set interface {name}");
    Ok(Json(
        app.change(&caller.user, &what, |old| {
            let mut s = old.clone();
            s.network.interfaces.insert(name.clone(), iface);
            Ok(s)
        })
        .await?,
    ))
}

//! `GET /v1/system`

use axum::extract::State;
use axum::Json;
use mote_api::control::{Request, Response, SystemInfo};

use super::AppState;
use crate::error::ApiError;

pub async fn get(State(app): State<AppState>) -> Result<Json<SystemInfo>, ApiError> {
    match app.ask(Request::System).await? {
        Response::System(s) => Ok(Json(s)),
        _ => Err(ApiError::Unexpected("system")),
    }
}

//! `POST /v1/power/{reboot|poweroff}`

use axum::extract::{Path, State};
use axum::Json;
use mote_api::api::Done;
use mote_api::control::{PowerAction, Request};

use super::AppState;
use crate::error::ApiError;

pub async fn power(
    State(app): State<AppState>,
    Path(action): Path<String>,
) -> Result<Json<Done>, ApiError> {
    let action = match action.as_str() {
        "reboot" => PowerAction::Reboot,
        "poweroff" => PowerAction::Poweroff,
        other => {
            return Err(ApiError::NotFound(format!(
                "no power action {other:?}; use reboot or poweroff"
            )))
        }
    };
    app.ask(Request::Power { action }).await?;
    Ok(Json(Done {
        message: format!("{action:?} under way").to_lowercase(),
    }))
}

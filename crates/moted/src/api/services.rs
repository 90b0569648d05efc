//! `/v1/services`: list, start/stop/restart, logs.

use axum::extract::{Path, State};
use axum::Json;
use mote_api::api::{Done, Events, EventsQuery, Services};
use mote_api::control::{Request, Response, ServiceAction};

use super::AppState;
use crate::error::{ApiError, QueryArgs};

pub async fn list(State(app): State<AppState>) -> Result<Json<Services>, ApiError> {
    match app.ask(Request::Services).await? {
        Response::Services { services } => Ok(Json(Services { services })),
        _ => Err(ApiError::Unexpected("services")),
    }
}

pub async fn act(
    State(app): State<AppState>,
    Path((name, action)): Path<(String, String)>,
) -> Result<Json<Done>, ApiError> {
    let action = match action.as_str() {
        "start" => ServiceAction::Start,
        "stop" => ServiceAction::Stop,
        "restart" => ServiceAction::Restart,
        other => {
            return Err(ApiError::NotFound(format!(
                "no service action {other:?}; use start, stop or restart"
            )))
        }
    };
    let known = match app.ask(Request::Services).await? {
        Response::Services { services } => services.iter().any(|s| s.name == name),
        _ => return Err(ApiError::Unexpected("services")),
    };
    if !known {
        return Err(ApiError::NotFound(format!("no service {name:?}")));
    }
    app.ask(Request::Service {
        name: name.clone(),
        action,
    })
    .await?;
    Ok(Json(Done {
        message: format!("{name}: {action:?}").to_lowercase(),
    }))
}

pub async fn logs(
    State(app): State<AppState>,
    Path(name): Path<String>,
    QueryArgs(mut q): QueryArgs<EventsQuery>,
) -> Result<Json<Events>, ApiError> {
    q.source = Some(name);
    match app.ask(Request::Events(q.into())).await? {
        Response::Events { events } => Ok(Json(Events { events })),
        _ => Err(ApiError::Unexpected("events")),
    }
}

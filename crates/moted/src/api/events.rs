//! `/v1/events`: query, and follow as NDJSON or server-sent events.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mote_api::api::{Events, EventsQuery};
use mote_api::control::{Request, Response as InitResponse};

use super::AppState;
use crate::error::{ApiError, QueryArgs};

pub async fn list(
    State(app): State<AppState>,
    QueryArgs(q): QueryArgs<EventsQuery>,
) -> Result<Json<Events>, ApiError> {
    match app.ask(Request::Events(q.into())).await? {
        InitResponse::Events { events } => Ok(Json(Events { events })),
        _ => Err(ApiError::Unexpected("events")),
    }
}

pub async fn follow(
    State(app): State<AppState>,
    headers: HeaderMap,
    QueryArgs(q): QueryArgs<EventsQuery>,
) -> Result<Response, ApiError> {
    let sse = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    let rx = app.init.follow(q.into()).await?;
    let stream = futures_util::stream::unfold(rx, move |mut rx| async move {
        let e = rx.recv().await?;
        let json = serde_json::to_string(&e).unwrap_or_default();
        let line = if sse {
            format!("data: {json}\n\n")
        } else {
            format!("{json}\n")
        };
        Some((Ok::<_, Infallible>(line), rx))
    });
    let ct = if sse {
        "text/event-stream"
    } else {
        "application/x-ndjson"
    };
    Ok(([(header::CONTENT_TYPE, ct)], Body::from_stream(stream)).into_response())
}

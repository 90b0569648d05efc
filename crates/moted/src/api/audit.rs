//! `GET /v1/audit`

use axum::extract::State;
use axum::Json;
use mote_api::api::{Audit, AuditQuery};

use super::AppState;
use crate::error::{ApiError, QueryArgs};

pub async fn list(
    State(app): State<AppState>,
    QueryArgs(q): QueryArgs<AuditQuery>,
) -> Result<Json<Audit>, ApiError> {
    let entries = app.audit.query(&q).map_err(|source| ApiError::Io {
        op: "read",
        path: "audit.jsonl".into(),
        source,
    })?;
    Ok(Json(Audit { entries }))
}

//! `GET /v1/openapi.json`: the document kept in the tree.

use axum::http::header;
use axum::response::IntoResponse;

/// The OpenAPI document, `docs/api/openapi.json`.
pub const DOCUMENT: &str = include_str!("../../../../docs/api/openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

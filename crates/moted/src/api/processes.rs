//! `/v1/processes`: list from `/proc`, send a signal.

use axum::extract::{Path, State};
use axum::Json;
use mote_api::api::{Done, KillRequest, Processes};

use super::AppState;
use crate::core::procs;
use crate::error::{ApiError, JsonBody};

pub async fn list(State(_app): State<AppState>) -> Result<Json<Processes>, ApiError> {
    let processes = tokio::task::spawn_blocking(procs::list)
        .await
        .map_err(|_| ApiError::Unexpected("process listing"))?;
    Ok(Json(Processes { processes }))
}

pub async fn kill(
    Path(pid): Path<String>,
    JsonBody(req): JsonBody<KillRequest>,
) -> Result<Json<Done>, ApiError> {
    let pid: i32 = pid
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{pid:?} is not a process id")))?;
    if pid <= 1 {
        return Err(ApiError::BadRequest(
            "pid must be above 1 (PID 1 is the node itself)".into(),
        ));
    }
    if !(1..=64).contains(&req.signal) {
        return Err(ApiError::BadRequest(format!(
            "signal {} is out of range 1-64",
            req.signal
        )));
    }
    // SAFETY: kill(2) takes plain integers; the pid and signal were checked above.
    let r = unsafe { libc::kill(pid, req.signal) };
    if r != 0 {
        return Err(ApiError::Io {
            op: "kill",
            path: format!("pid {pid}"),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(Json(Done {
        message: format!("sent signal {} to {pid}", req.signal),
    }))
}

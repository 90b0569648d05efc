//! `POST /v1/exec`: run a program, stream its output as NDJSON, end with its
//! exit (or the timeout kill).

use std::convert::Infallible;
use std::process::Stdio;
use std::time::Duration;

use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use mote_api::api::{ExecLine, ExecRequest};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::error::{ApiError, JsonBody};

const DEFAULT_TIMEOUT: u64 = 60;

fn pump(
    mut r: impl AsyncRead + Unpin + Send + 'static,
    stream: &'static str,
    tx: mpsc::Sender<ExecLine>,
) {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 8192];
        while let Ok(n) = r.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let data = String::from_utf8_lossy(&buf[..n]).into_owned();
            if tx
                .send(ExecLine::Output {
                    stream: stream.into(),
                    data,
                })
                .await
                .is_err()
            {
                break;
            }
        }
    });
}

pub async fn exec(JsonBody(req): JsonBody<ExecRequest>) -> Result<Response, ApiError> {
    let Some(program) = req.argv.first() else {
        return Err(ApiError::BadRequest("argv is empty".into()));
    };
    if !program.starts_with('/') {
        return Err(ApiError::BadRequest(format!(
            "{program:?} is not an absolute path (there is no PATH search)"
        )));
    }
    let mut child = tokio::process::Command::new(program)
        .args(&req.argv[1..])
        .env_clear()
        .envs(&req.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ApiError::Io {
            op: "run",
            path: program.clone(),
            source,
        })?;
    let (tx, rx) = mpsc::channel(64);
    let (otx, mut orx) = mpsc::channel(64);
    if let Some(o) = child.stdout.take() {
        pump(o, "stdout", otx.clone());
    }
    if let Some(e) = child.stderr.take() {
        pump(e, "stderr", otx.clone());
    }
    drop(otx);
    let timeout = Duration::from_secs(req.timeout_secs.unwrap_or(DEFAULT_TIMEOUT));
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut timed_out = false;
        // Forward output until both pipes close or the deadline passes.
        loop {
            tokio::select! {
                line = orx.recv() => match line {
                    Some(l) => { let _ = tx.send(l).await; }
                    None => break,
                },
                _ = &mut deadline, if !timed_out => {
                    timed_out = true;
                    let _ = child.start_kill();
                }
            }
        }
        let status = if timed_out {
            child.wait().await.ok()
        } else {
            tokio::select! {
                s = child.wait() => s.ok(),
                _ = &mut deadline => {
                    timed_out = true;
                    let _ = child.start_kill();
                    child.wait().await.ok()
                }
            }
        };
        use std::os::unix::process::ExitStatusExt;
        let _ = tx
            .send(ExecLine::Exit {
                exit_code: status.and_then(|s| s.code()),
                signal: status.and_then(|s| s.signal()),
                timed_out,
            })
            .await;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        let mut s = serde_json::to_string(&line).unwrap_or_default();
        s.push('\n');
        Some((Ok::<_, Infallible>(s), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

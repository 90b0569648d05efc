//! The control socket: how `moted` asks PID 1 to act.
//!
//! # The protocol, step by step
//!
//! 1. At boot, before any service starts, PID 1 binds the unix socket
//!    [`SOCKET`] (`/run/mote/control.sock`, mode 0600: root only); a stale
//!    socket file is replaced.
//! 2. A client connects and writes one JSON [`Request`] per line (at most
//!    [`MAX_LINE`] bytes). PID 1 answers each with one JSON [`Response`]
//!    line, in order. Many clients may be connected at once; each
//!    connection is its own task.
//! 3. A line that is not a request (bad JSON, unknown `op`, too long) is
//!    answered with [`Response::Error`] naming what was wrong; the
//!    connection stays open for the next line.
//! 4. [`Request::Follow`] turns the connection into a stream: one
//!    [`Response::Event`] line per new matching event, until the client
//!    hangs up (or sends anything). A follower that falls more than a
//!    thousand events behind gets a last `Error` line and is disconnected:
//!    PID 1 never waits for a reader.
//! 5. [`Request::Power`] is answered `Ok` first; then the node stops in
//!    the same order as for the power button.
//!
//! What each request does is in [`handle`]; [`Request::Apply`] in
//! [`apply`].

mod apply;
mod handle;
mod packages;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

pub use mote_api::control::{Request, Response, SOCKET};
use mote_api::events::EventQuery;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;

pub use self::apply::{apply, apply_boot, ApplyError};
pub use self::handle::{handle, BootInfo, Node, NodeOptions};

/// How long one event line may take to write to a follower.
const FOLLOW_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Longest request line accepted.
pub const MAX_LINE: usize = 1 << 20;

/// Bind `path` (mode 0600, its directory made) and serve it in the
/// background for as long as the runtime runs.
pub fn serve(path: &Path, node: Arc<Node>) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, Arc::clone(&node)));
                }
                Err(e) => {
                    node.events
                        .warn("init", format!("control socket: accept failed: {e}"));
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

enum Line {
    Text,
    TooLong,
    End,
}

/// Read one line into `buf` (newline stripped), never more than
/// [`MAX_LINE`] bytes of it; the rest of a longer line is skipped.
async fn read_line(reader: &mut BufReader<OwnedReadHalf>, buf: &mut Vec<u8>) -> io::Result<Line> {
    buf.clear();
    let n = (&mut *reader)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .await?;
    if n == 0 {
        return Ok(Line::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(Line::Text);
    }
    if buf.len() <= MAX_LINE {
        return Ok(Line::Text); // the last line, without a newline
    }
    let mut skipped = Vec::new();
    loop {
        skipped.clear();
        let n = (&mut *reader)
            .take(64 * 1024)
            .read_until(b'\n', &mut skipped)
            .await?;
        if n == 0 || skipped.last() == Some(&b'\n') {
            return Ok(Line::TooLong);
        }
    }
}

async fn send(writer: &mut OwnedWriteHalf, response: &Response) -> io::Result<()> {
    let mut line = serde_json::to_vec(response).unwrap_or_else(|e| {
        format!(r#"{{"kind":"error","message":"cannot encode the answer: {e}"}}"#).into_bytes()
    });
    line.push(b'\n');
    writer.write_all(&line).await
}

/// One client, until it hangs up.
async fn connection(stream: UnixStream, node: Arc<Node>) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        let request = match read_line(&mut reader, &mut buf).await {
            Ok(Line::End) | Err(_) => return,
            Ok(Line::TooLong) => Err(format!(
                "request line longer than {MAX_LINE} bytes; nothing done"
            )),
            Ok(Line::Text) if buf.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Line::Text) => serde_json::from_slice::<Request>(&buf)
                .map_err(|e| format!("not a request: {e}; nothing done")),
        };
        let request = match request {
            Ok(r) => r,
            Err(message) => {
                let reason = mote_api::control::ErrorKind::Invalid;
                if send(&mut writer, &Response::Error { reason, message })
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        match request {
            Request::Follow(query) => {
                follow(&query, &node, &mut reader, &mut writer).await;
                return;
            }
            Request::Power { action } => {
                let _ = send(&mut writer, &Response::Ok).await;
                let _ = writer.flush().await;
                node.request_power(action).await;
            }
            other => {
                let response = handle(&node, other).await;
                if send(&mut writer, &response).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Stream matching events until the client hangs up, sends anything, or
/// falls too far behind.
async fn follow(
    query: &EventQuery,
    node: &Node,
    reader: &mut BufReader<OwnedReadHalf>,
    writer: &mut OwnedWriteHalf,
) {
    let mut events = node.events.subscribe();
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if query.matches(&event) {
                        // A reader that stops reading is dropped too.
                        let sent = tokio::time::timeout(
                            FOLLOW_WRITE_TIMEOUT,
                            send(writer, &Response::Event(event)),
                        )
                        .await;
                        if !matches!(sent, Ok(Ok(()))) {
                            return;
                        }
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let message = format!(
                        "follower too slow: {missed} events missed; disconnected (ask again with since_ms to catch up)"
                    );
                    let reason = mote_api::control::ErrorKind::Failed;
                    let _ = send(writer, &Response::Error { reason, message }).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            },
            _ = reader.read(&mut probe) => return,
        }
    }
}

#[cfg(test)]
mod tests;

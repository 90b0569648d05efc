//! A service's stdout and stderr, turned into events line by line.

use std::os::fd::OwnedFd;

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::events::{Events, Level, MAX_MESSAGE};

/// Read `fd` until it closes, emitting each line (cut at [`MAX_MESSAGE`]) as
/// an event from `source`. Runs as its own task.
pub fn forward(fd: OwnedFd, source: String, level: Level, events: Events) {
    tokio::spawn(async move {
        let Ok(mut reader) = pipe::Receiver::from_owned_fd(fd) else {
            events.warn(&source, "cannot read the service's output pipe");
            return;
        };
        let mut pending: Vec<u8> = Vec::with_capacity(256);
        let mut chunk = [0u8; 4096];
        loop {
            let n = match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for part in chunk[..n].split_inclusive(|&b| b == b'\n') {
                if let Some(line) = part.strip_suffix(b"\n") {
                    pending.extend_from_slice(line);
                    emit(&events, &source, level, &mut pending);
                } else {
                    pending.extend_from_slice(part);
                    if pending.len() >= MAX_MESSAGE {
                        emit(&events, &source, level, &mut pending);
                    }
                }
            }
        }
        if !pending.is_empty() {
            emit(&events, &source, level, &mut pending);
        }
    });
}

fn emit(events: &Events, source: &str, level: Level, line: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    if !text.is_empty() {
        events.emit(source, level, text);
    }
    line.clear();
}

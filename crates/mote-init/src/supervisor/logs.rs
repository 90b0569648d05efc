//! A service's stdout and stderr, turned into events line by line.
//!
//! Each line keeps its own level when it says one, so an ordinary `INFO`
//! line on stderr is not shown as a warning: a leading `<N>` syslog
//! priority (as systemd's `SyslogLevelPrefix` reads it) or, within the
//! first few words, a level word as `tracing`, `log` and most loggers write
//! it (`ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE`). Otherwise the stream's
//! level applies (warn for stderr, info for stdout). Terminal escape
//! sequences (colours) are removed: they belong to no event and must not
//! reach the serial console.

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
    strip_escapes(line);
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    if !text.is_empty() {
        let (level, text) = own_level(text).unwrap_or((level, text));
        events.emit(source, level, text);
    }
    line.clear();
}

/// Remove ANSI/VT100 escape sequences in place: CSI (`ESC [ … final`),
/// OSC (`ESC ] … BEL` or `ESC \\`) and two-byte escapes; other control
/// bytes but tab become nothing too.
fn strip_escapes(line: &mut Vec<u8>) {
    if !line.iter().any(|&b| b < 0x20 && b != b'\t') {
        return; // the common case: nothing to do, no copy
    }
    let mut out = 0;
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        if b == 0x1b {
            i += 1;
            match line.get(i) {
                Some(b'[') => {
                    i += 1;
                    while i < line.len() && !(0x40..=0x7e).contains(&line[i]) {
                        i += 1;
                    }
                    i += 1;
                }
                Some(b']') => {
                    while i < line.len() && line[i] != 0x07 && line[i] != 0x1b {
                        i += 1;
                    }
                    i += if line.get(i) == Some(&0x1b) { 2 } else { 1 };
                }
                Some(_) => i += 1,
                None => {}
            }
            continue;
        }
        if b >= 0x20 || b == b'\t' {
            line[out] = b;
            out += 1;
        }
        i += 1;
    }
    line.truncate(out.min(line.len()));
}

/// The level a line gives itself, and the line without a syslog prefix.
fn own_level(text: &str) -> Option<(Level, &str)> {
    if let Some(rest) = text.strip_prefix('<') {
        let (digit, rest) = rest.split_once('>')?;
        let level = match digit.parse::<u8>().ok()? {
            0..=3 => Level::Error,
            4 => Level::Warn,
            5 | 6 => Level::Info,
            7 => Level::Debug,
            _ => return None,
        };
        return Some((level, rest));
    }
    text.split_whitespace().take(3).find_map(|word| {
        let word = word.trim_matches(|c: char| c == '[' || c == ']' || c == ':');
        let level = match word {
            "ERROR" | "error" | "FATAL" | "CRIT" => Level::Error,
            "WARN" | "WARNING" | "warn" | "warning" => Level::Warn,
            "INFO" | "info" | "NOTICE" => Level::Info,
            "DEBUG" | "TRACE" | "debug" | "trace" => Level::Debug,
            _ => return None,
        };
        Some((level, text))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripped(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        strip_escapes(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn colours_are_removed() {
        let line = "\x1b[2m2026-12-04T16:00:00Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mmoted\x1b[0m: listening";
        assert_eq!(
            stripped(line),
            "2026-12-04T16:00:00Z  INFO moted: listening"
        );
        assert_eq!(stripped("plain\ttext"), "plain\ttext");
        assert_eq!(stripped("\x1b]0;title\x07after"), "after");
        assert_eq!(stripped("cut\x1b["), "cut");
    }

    #[test]
    fn lines_keep_the_level_they_state() {
        let level = |s| own_level(s).map(|(l, _)| l);
        assert_eq!(
            level("2026-12-04T16:00:00.1Z  INFO moted: listening on 0.0.0.0:5986"),
            Some(Level::Info)
        );
        assert_eq!(
            level("2026-12-04T16:00:00Z ERROR moted: boom"),
            Some(Level::Error)
        );
        assert_eq!(level("[WARN] disk nearly full"), Some(Level::Warn));
        assert_eq!(own_level("<3>broken"), Some((Level::Error, "broken")));
        assert_eq!(own_level("<6>fine"), Some((Level::Info, "fine")));
        assert_eq!(level("listening on port 8080"), None);
        assert_eq!(level("a b c ERROR late"), None, "only the first words");
    }
}

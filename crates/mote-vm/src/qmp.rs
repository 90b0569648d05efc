//! A minimal client of QEMU's machine protocol (QMP) over the node's unix
//! socket, `qmp.sock` (QEMU listens there: `-qmp unix:…,server=on,wait=off`).
//!
//! QMP is JSON, one object per line each way. A session goes:
//! 1. Connect. QEMU sends a greeting at once:
//!    `{"QMP": {"version": {…}, "capabilities": […]}}`.
//! 2. Leave negotiation mode: send `{"execute": "qmp_capabilities"}`, read
//!    `{"return": {}}`.
//! 3. Send a command, `{"execute": "system_powerdown"}`, and read its answer:
//!    `{"return": …}` on success, `{"error": {"class": …, "desc": …}}` when
//!    refused.
//!
//! At any time QEMU may also send events, `{"event": "POWERDOWN",
//! "timestamp": …}`, interleaved with the answers (a `system_powerdown`'s
//! `POWERDOWN` event often comes before its `return`); the client skips them
//! while it waits for an answer. Commands are answered in order, so without
//! `id`s the next `return` or `error` answers the last command.
//!
//! We need two commands, `qmp_capabilities` and `system_powerdown` (which
//! presses the ACPI power button), so a dozen lines of serde_json do the job
//! instead of a QMP crate with its code generation and async runtime.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A QMP failure.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// The socket does not answer.
    #[error("cannot connect to {path}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("QMP connection failed")]
    Io(#[from] std::io::Error),
    /// QEMU closed the connection.
    #[error("QEMU closed the QMP connection")]
    Closed,
    /// QEMU sent something that is not QMP.
    #[error("unexpected QMP message: {0}")]
    Protocol(String),
    /// QEMU refused a command.
    #[error("QEMU refused {command}: {class}: {desc}")]
    Command {
        /// The command.
        command: String,
        /// QMP's error class.
        class: String,
        /// QMP's description.
        desc: String,
    },
}

/// A QMP session in command mode.
pub(crate) struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connect to `path`, retrying while the socket is not there yet (QEMU
    /// creates it a moment after it starts) until `patience` is spent, then
    /// read the greeting and negotiate capabilities.
    pub(crate) fn connect(path: &Path, patience: Duration) -> Result<Self, QmpError> {
        let started = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(source) if started.elapsed() >= patience => {
                    return Err(QmpError::Connect {
                        path: path.to_path_buf(),
                        source,
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let writer = stream.try_clone()?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(greeting.to_string()));
        }
        qmp.execute("qmp_capabilities")?;
        Ok(qmp)
    }

    /// Run a command without arguments and return its `return` value.
    pub(crate) fn execute(&mut self, command: &str) -> Result<Value, QmpError> {
        let mut line = json!({ "execute": command }).to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let message = self.read_message()?;
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                let text = |key: &str| {
                    error
                        .get(key)
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string()
                };
                return Err(QmpError::Command {
                    command: command.to_string(),
                    class: text("class"),
                    desc: text("desc"),
                });
            }
            if message.get("event").is_none() {
                return Err(QmpError::Protocol(message.to_string()));
            }
        }
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(QmpError::Closed);
        }
        serde_json::from_str(&line).map_err(|_| QmpError::Protocol(line.trim().to_string()))
    }
}

/// Press the ACPI power button of the QEMU listening on `socket`.
pub(crate) fn system_powerdown(socket: &Path, patience: Duration) -> Result<(), QmpError> {
    Qmp::connect(socket, patience)?.execute("system_powerdown")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A fake QEMU: greets, then answers each line with the scripted replies,
    /// recording what the client sent.
    fn fake_qemu(
        dir: &Path,
        greeting: &'static str,
        replies: Vec<Vec<&'static str>>,
    ) -> (PathBuf, std::thread::JoinHandle<Vec<String>>) {
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            writeln!(writer, "{greeting}").unwrap();
            let mut got = Vec::new();
            for reply in replies {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                got.push(line.trim().to_string());
                for message in reply {
                    writeln!(writer, "{message}").unwrap();
                }
            }
            got
        });
        (path, handle)
    }

    const GREETING: &str = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}"#;

    #[test]
    fn powerdown_negotiates_and_skips_events() {
        let dir = tempfile::tempdir().unwrap();
        let (path, server) = fake_qemu(
            dir.path(),
            GREETING,
            vec![
                vec![r#"{"return": {}}"#],
                vec![
                    r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "POWERDOWN"}"#,
                    r#"{"return": {}}"#,
                ],
            ],
        );
        system_powerdown(&path, Duration::from_secs(2)).unwrap();
        let sent = server.join().unwrap();
        assert_eq!(
            sent,
            vec![
                r#"{"execute":"qmp_capabilities"}"#,
                r#"{"execute":"system_powerdown"}"#
            ]
        );
    }

    #[test]
    fn refused_commands_carry_class_and_desc() {
        let dir = tempfile::tempdir().unwrap();
        let (path, server) = fake_qemu(
            dir.path(),
            GREETING,
            vec![
                vec![r#"{"return": {}}"#],
                vec![r#"{"error": {"class": "GenericError", "desc": "no power button"}}"#],
            ],
        );
        let err = system_powerdown(&path, Duration::from_secs(2)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "QEMU refused system_powerdown: GenericError: no power button"
        );
        server.join().unwrap();
    }

    #[test]
    fn a_server_that_is_not_qmp_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (path, server) = fake_qemu(dir.path(), r#"{"hello": 1}"#, vec![]);
        let err = Qmp::connect(&path, Duration::from_secs(2)).err().unwrap();
        assert!(matches!(err, QmpError::Protocol(_)), "{err:?}");
        server.join().unwrap();
    }

    #[test]
    fn a_missing_socket_fails_after_the_patience() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let err = Qmp::connect(&dir.path().join("none.sock"), Duration::from_millis(200))
            .err()
            .unwrap();
        assert!(matches!(err, QmpError::Connect { .. }), "{err:?}");
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}

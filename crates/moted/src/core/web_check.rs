//! Has `mote-web --check` judge a new `roles.web` before it is stored.
//!
//! moted does not know the web role's schema (it lives in `roles/web`, see
//! `mote_config::Roles`), so a settings change that alters `roles.web` on a
//! node with the web package is checked by the web server itself, step by
//! step:
//!
//! 1. make a private directory (mode 0700) under the temporary directory;
//! 2. write the new section there as `web.json`, as PID 1 would write it;
//! 3. run `mote-web --check FILE` (no environment, no stdin), killed after
//!    [`TIMEOUT`];
//! 4. exit 0: good; exit 1: refused, with mote-web's `mote-web: FILE: key:
//!    message` on stderr, which becomes the answer's error (422, see
//!    [`crate::error::ApiError::WebCheck`]); the directory is removed.
//!
//! `--check` parses and validates exactly as a reload does, but does not
//! build the sites: a root, certificate or port the server cannot use still
//! fails at the reload (mote-web keeps its previous settings and logs it).
//!
//! Limits: a node without `mote-web` at [`BINARY`] (no web package) is not
//! checked, as before.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Where the image builder puts the web server and PID 1 runs it from: the
/// same path as `mote_init::management::WEB` (a unit test compares them).
/// `moted --web-binary` (`MOTE_WEB_BINARY`) overrides it.
pub const BINARY: &str = "/usr/bin/mote-web";

/// The longest a check may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// At most this much of mote-web's stderr is kept.
const MAX_MESSAGE: usize = 2000;

/// Why a `roles.web` was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum WebCheckError {
    /// mote-web refused the section.
    #[error(
        "mote-web refuses roles.web: {detail}; nothing was stored or applied: correct that key \
         under roles.web and write it again (docs/web.md lists every key and check)"
    )]
    Refused {
        /// mote-web's message without its `mote-web: FILE: ` prefix, such
        /// as `sites[0].root: must be an absolute path`.
        detail: String,
    },
    /// The check did not end in time.
    #[error(
        "{} --check did not finish within {} s; nothing was stored or applied: try again",
        .binary.display(), .timeout.as_secs()
    )]
    TimedOut {
        /// The web server.
        binary: PathBuf,
        /// How long it had.
        timeout: Duration,
    },
    /// The check could not be run, or ended without an answer.
    #[error(
        "cannot check roles.web with {} --check: {reason}; nothing was stored or applied",
        .binary.display()
    )]
    Failed {
        /// The web server.
        binary: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl WebCheckError {
    /// The key mote-web named, relative to `roles.web`, and its message,
    /// when the refusal has that shape (`sites[0].root: must be …`).
    pub fn key_and_message(&self) -> Option<(&str, &str)> {
        let WebCheckError::Refused { detail } = self else {
            return None;
        };
        let (key, message) = detail.split_once(": ")?;
        let is_key = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-[]".contains(c));
        is_key.then_some((key, message))
    }
}

/// Checks `section` (the new `roles.web`) with `binary --check`, killed
/// after [`TIMEOUT`].
pub async fn check(binary: &Path, section: &serde_json::Value) -> Result<(), WebCheckError> {
    check_within(binary, section, TIMEOUT).await
}

async fn check_within(
    binary: &Path,
    section: &serde_json::Value,
    timeout: Duration,
) -> Result<(), WebCheckError> {
    let failed = |reason: String| WebCheckError::Failed {
        binary: binary.to_owned(),
        reason,
    };
    let dir = tempfile::Builder::new()
        .prefix("moted-web-check-")
        .tempdir()
        .map_err(|e| failed(format!("cannot make a temporary directory: {e}")))?;
    let file = dir.path().join("web.json");
    let mut bytes = serde_json::to_vec_pretty(section)
        .map_err(|e| failed(format!("roles.web does not serialize: {e}")))?;
    bytes.push(b'\n');
    tokio::fs::write(&file, bytes)
        .await
        .map_err(|e| failed(format!("cannot write {}: {e}", file.display())))?;
    let run = tokio::process::Command::new(binary)
        .arg("--check")
        .arg(&file)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(timeout, run).await {
        Err(_) => {
            return Err(WebCheckError::TimedOut {
                binary: binary.to_owned(),
                timeout,
            })
        }
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Ok(Ok(out)) => out,
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(WebCheckError::Refused {
            detail: detail(stderr, &file),
        }),
        _ => Err(failed(format!(
            "it ended with {} ({})",
            out.status,
            if stderr.is_empty() {
                "no message"
            } else {
                shorten(stderr)
            }
        ))),
    }
}

/// mote-web's message without `mote-web: `, the temporary file's name and
/// a position in that file (` at line 6 column 16`), which mean nothing to
/// the caller.
fn detail(stderr: &str, file: &Path) -> String {
    let line = stderr.strip_prefix("mote-web: ").unwrap_or(stderr);
    let file = format!("{}: ", file.display());
    let line = line.strip_prefix(&file).unwrap_or(line);
    let line = without_position(line);
    if line.is_empty() {
        "(no message)".into()
    } else {
        shorten(line).to_owned()
    }
}

/// `text` without a trailing ` at line N column M` (serde_json's).
fn without_position(text: &str) -> &str {
    let Some((head, tail)) = text.rsplit_once(" at line ") else {
        return text;
    };
    let is_position = tail.split_once(" column ").is_some_and(|(l, c)| {
        [l, c]
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    if is_position {
        head
    } else {
        text
    }
}

/// At most [`MAX_MESSAGE`] bytes, cut at a character boundary.
fn shorten(s: &str) -> &str {
    let mut end = s.len().min(MAX_MESSAGE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in for mote-web: a shell script.
    fn fake(dir: &Path, script: &str) -> PathBuf {
        let p = dir.join("mote-web");
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn the_path_is_the_one_pid1_runs() {
        let init = include_str!("../../../mote-init/src/management.rs");
        assert!(
            init.contains(&format!("pub const WEB: &str = \"{BINARY}\";")),
            "mote-init runs mote-web from elsewhere than {BINARY}"
        );
    }

    #[tokio::test]
    async fn exit_0_is_good_and_the_file_holds_the_section() {
        let d = tempfile::tempdir().unwrap();
        let bin = fake(
            d.path(),
            "grep -q '\"sites\"' \"$2\" && [ \"$1\" = --check ]",
        );
        check(&bin, &serde_json::json!({"sites": []}))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn exit_1_is_refused_with_the_key_and_without_the_file() {
        let d = tempfile::tempdir().unwrap();
        let bin = fake(
            d.path(),
            "echo \"mote-web: $2: sites[0].root: must be an absolute path\" >&2; exit 1",
        );
        let e = check(&bin, &serde_json::json!({})).await.unwrap_err();
        assert_eq!(
            e.key_and_message(),
            Some(("sites[0].root", "must be an absolute path"))
        );
        let text = e.to_string();
        assert!(
            text.starts_with(
                "mote-web refuses roles.web: sites[0].root: must be an absolute path;"
            ),
            "{text}"
        );
        assert!(!text.contains("web.json"), "{text}");
    }

    #[test]
    fn the_message_loses_the_temporary_file_and_its_positions() {
        let f = Path::new("/tmp/moted-web-check-x/web.json");
        assert_eq!(
            detail(
                "mote-web: /tmp/moted-web-check-x/web.json: sites[0].hots: unknown field `hots` at line 6 column 16",
                f
            ),
            "sites[0].hots: unknown field `hots`"
        );
        assert_eq!(
            detail("mote-web: limits.x: 3 at line 6", f),
            "limits.x: 3 at line 6"
        );
        assert_eq!(detail("", f), "(no message)");
    }

    #[tokio::test]
    async fn a_hung_check_is_killed_at_the_timeout() {
        let d = tempfile::tempdir().unwrap();
        let bin = fake(d.path(), "exec sleep 30");
        let t = std::time::Instant::now();
        let e = check_within(&bin, &serde_json::json!({}), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(e, WebCheckError::TimedOut { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_crash_or_a_missing_binary_is_a_failure_not_a_refusal() {
        let d = tempfile::tempdir().unwrap();
        let bin = fake(d.path(), "kill -9 $$");
        let e = check(&bin, &serde_json::json!({})).await.unwrap_err();
        assert!(matches!(e, WebCheckError::Failed { .. }), "{e}");
        let e = check(&d.path().join("absent"), &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(matches!(e, WebCheckError::Failed { .. }), "{e}");
        assert_eq!(e.key_and_message(), None);
    }
}

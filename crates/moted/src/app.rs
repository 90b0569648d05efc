//! The agent's state and the actions every resource file calls: settings
//! changes with rollback, and the audit trail.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mote_api::api::{AuditEntry, VersionedSettings};
use mote_api::control::{NodeSettings, Request, Response};
use mote_api::events::Level;

use crate::audit::AuditLog;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::init::Init;
use mote_api::store::Store;

/// Shared by every handler.
pub struct App {
    /// PID 1.
    pub init: Arc<dyn Init>,
    /// The settings store.
    pub store: Mutex<Store>,
    /// Tokens and throttling.
    pub auth: Mutex<Auth>,
    /// The bounded pool password checks run in.
    pub checks: crate::auth::password::Checks,
    /// Logins are checked one at a time (admit → check → record), so
    /// parallel guesses all count.
    pub login_turn: tokio::sync::Mutex<()>,
    /// Samples unauthenticated refusals for the audit log.
    pub refusals: crate::audit::Sampler,
    /// The audit log.
    pub audit: AuditLog,
    /// Serialises settings changes (apply + store).
    pub changing: tokio::sync::Mutex<()>,
    /// The state directory (measured for disk use).
    pub state_dir: PathBuf,
    /// The previous `/proc/stat` sample, for CPU deltas.
    pub cpu: Mutex<Option<(Instant, crate::core::perf::CpuTimes)>>,
    /// Token lifetime.
    pub token_ttl: Duration,
}

/// The caller of a request, as the auth layer found it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// User name (`-` when not logged in).
    pub user: String,
    /// Source address.
    pub addr: SocketAddr,
}

/// Reads a lock, or fails the call instead of panicking on poison.
pub fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, ApiError> {
    m.lock()
        .map_err(|_| ApiError::Unexpected("a poisoned lock (an earlier call panicked)"))
}

impl App {
    /// Asks PID 1 and turns an error answer into [`ApiError::Node`], with
    /// the status its reason calls for.
    pub async fn ask(&self, req: Request) -> Result<Response, ApiError> {
        match self.init.call(req).await? {
            Response::Error { reason, message } => Err(ApiError::Node { reason, message }),
            other => Ok(other),
        }
    }

    /// Changes the settings: `edit` makes the new tree from the current one;
    /// it is validated (each role's section by its library),
    /// applied by PID 1 and stored as a new version. When PID 1 refuses, the
    /// previous settings are applied again and nothing is stored.
    pub async fn change(
        &self,
        who: &str,
        what: &str,
        edit: impl FnOnce(&NodeSettings) -> Result<NodeSettings, ApiError>,
    ) -> Result<VersionedSettings, ApiError> {
        self.change_if(who, what, None, edit).await
    }

    /// [`App::change`], only while the settings are at one of `expected`
    /// (a write's `If-Match`; `None` for any version), else
    /// [`ApiError::Stale`] and nothing is edited, applied or stored. The
    /// version is checked after taking the lock every change holds, so no
    /// other change can come between the check and the store.
    pub async fn change_if(
        &self,
        who: &str,
        what: &str,
        expected: Option<&[u64]>,
        edit: impl FnOnce(&NodeSettings) -> Result<NodeSettings, ApiError>,
    ) -> Result<VersionedSettings, ApiError> {
        let _one_at_a_time = self.changing.lock().await;
        self.change_held(who, what, expected, edit).await
    }

    /// [`App::change_if`] for a caller that holds [`App::changing`]
    /// already (a package change: stage, settings, commit).
    pub async fn change_held(
        &self,
        who: &str,
        what: &str,
        expected: Option<&[u64]>,
        edit: impl FnOnce(&NodeSettings) -> Result<NodeSettings, ApiError>,
    ) -> Result<VersionedSettings, ApiError> {
        let old = lock(&self.store)?.current();
        if let Some(expected) = expected {
            if !expected.contains(&old.version) {
                return Err(ApiError::Stale {
                    current: old.version,
                    expected: expected.to_vec(),
                });
            }
        }
        let new = edit(&old.settings)?;
        if new == old.settings {
            // A write that changes nothing: no apply, no new version.
            return Ok(old);
        }
        // Every role's section by its own library, in process (the registry).
        new.validate_with(mote_roles::ALL)
            .map_err(ApiError::Invalid)?;
        let version = lock(&self.store)?.next_version()?;
        let applied = self
            .init
            .call(Request::Apply {
                settings: Box::new(new.clone()),
                version: Some(version),
            })
            .await;
        let failure = match applied {
            Ok(Response::Ok) => None,
            Ok(Response::Error { reason, message }) => Some((reason, message)),
            Ok(_) => Some((
                mote_api::control::ErrorKind::Failed,
                "an unexpected answer to apply".to_string(),
            )),
            Err(e) => Some((mote_api::control::ErrorKind::Failed, e.to_string())),
        };
        if let Some((reason, message)) = failure {
            let back = self
                .init
                .call(Request::Apply {
                    settings: Box::new(old.settings),
                    version: Some(old.version),
                })
                .await;
            let rolled_back = matches!(back, Ok(Response::Ok));
            tracing::warn!(%message, rolled_back, "settings change refused");
            return Err(ApiError::Refused {
                reason,
                message,
                rolled_back,
            });
        }
        let saved = lock(&self.store)?.save(new, who, what);
        match saved {
            Ok(saved) => Ok(saved),
            Err(e) => {
                // Applied but not stored: the node would boot the old
                // settings, so it must not run the new ones either.
                let back = self
                    .init
                    .call(Request::Apply {
                        settings: Box::new(old.settings),
                        version: Some(old.version),
                    })
                    .await;
                tracing::error!(error = %e, rolled_back = matches!(back, Ok(Response::Ok)),
                    "settings applied but not stored");
                Err(e.into())
            }
        }
    }

    /// Records a change in the audit log and sends it to PID 1 as an event.
    pub async fn record(&self, caller: &Caller, what: String, result: String) {
        let entry = AuditEntry {
            time_ms: crate::now_ms(),
            who: caller.user.clone(),
            source: caller.addr.to_string(),
            what: crate::audit::truncate(&what, crate::audit::MAX_WHAT),
            result,
        };
        if let Err(e) = self.audit.append(&entry) {
            tracing::error!(error = %e, "cannot write the audit log");
        }
        let level = if entry.result == "ok" {
            Level::Info
        } else {
            Level::Warn
        };
        let message = format!(
            "{} from {}: {} -> {}",
            entry.who, entry.source, entry.what, entry.result
        );
        tracing::info!(target: "audit", "{message}");
        if let Err(e) = self
            .init
            .call(Request::Emit {
                source: "audit".into(),
                level,
                message,
            })
            .await
        {
            tracing::warn!(error = %e, "cannot send the audit event to PID 1");
        }
    }
}

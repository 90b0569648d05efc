//! `/v1/packages`: the installed packages; install, upgrade and remove one.
//!
//! Each change is one settings transaction, under the lock every settings
//! change takes: PID 1 verifies the upload against the node's trusted keys
//! and unpacks it (staged), the settings gain the package and its role's
//! default section (its services start, its ports open, through the same
//! apply as any change), then PID 1 keeps the archive (commit). A failure
//! at any step aborts the staged package and re-applies the previous
//! settings: the node is as it was. A removal takes the package out of
//! the settings first (services stop, ports close), then its files.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use mote_api::api::{PackageChange, Packages, MAX_UPLOAD_BYTES, SIGNATURE_HEADER};
use mote_api::control::{PackageInfo, Request, Response};

use super::AppState;
use crate::app::{App, Caller};
use crate::error::ApiError;

pub async fn list(State(app): State<AppState>) -> Result<Json<Packages>, ApiError> {
    Ok(Json(installed(&app).await?))
}

pub async fn install(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PackageChange>, ApiError> {
    upload(&app, &caller, &headers, body, None).await.map(Json)
}

pub async fn upgrade(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PackageChange>, ApiError> {
    upload(&app, &caller, &headers, body, Some(name))
        .await
        .map(Json)
}

pub async fn remove(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<PackageChange>, ApiError> {
    let _one_at_a_time = app.changing.lock().await;
    let listed = installed(&app).await?;
    let Some(package) = listed.packages.iter().find(|p| p.name == name).cloned() else {
        return Err(ApiError::NotFound(format!(
            "no package {name:?} is installed; `mote -n NODE package list` shows them"
        )));
    };
    if let Some(user) = listed.packages.iter().find(|p| {
        p.active
            && p.name != name
            && p.dependencies
                .iter()
                .any(|d| d.split(' ').next() == Some(name.as_str()))
    }) {
        return Err(ApiError::Conflict(format!(
            "{} {} depends on {name}; remove it first",
            user.name, user.version
        )));
    }
    let what = format!("remove package {} {}", package.name, package.version);
    let saved = app
        .change_held(&caller.user, &what, None, |old| {
            let mut s = old.clone();
            s.packages.retain(|p| *p != name);
            if let Some(section) = &package.settings {
                s.roles.remove(section);
            }
            Ok(s)
        })
        .await?;
    let message = if package.in_image {
        format!(
            "{} {} deactivated: its services stopped and its ports closed; it stays in the \
             image (install it again with `settings`, or build an image without it)",
            package.name, package.version
        )
    } else {
        app.ask(Request::RemovePackage { name: name.clone() })
            .await?;
        format!(
            "{} {} removed: its services stopped, its ports closed, its files deleted",
            package.name, package.version
        )
    };
    Ok(Json(PackageChange {
        message,
        package: PackageInfo {
            active: false,
            ..package
        },
        previous: None,
        settings_version: saved.version,
    }))
}

async fn installed(app: &App) -> Result<Packages, ApiError> {
    match app.ask(Request::Packages).await? {
        Response::Packages {
            packages,
            allow_unsigned,
        } => Ok(Packages {
            packages,
            allow_unsigned,
        }),
        _ => Err(ApiError::Unexpected("packages")),
    }
}

/// The signature header: base64 of the `.minisig` text.
fn signature(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    use base64::Engine as _;
    let Some(value) = headers.get(SIGNATURE_HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::BadRequest(format!(
            "the {SIGNATURE_HEADER} header must be the package's .minisig file in base64"
        ))
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_bytes())
        .map_err(|_| bad())?;
    String::from_utf8(bytes).map(Some).map_err(|_| bad())
}

async fn upload(
    app: &App,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
    upgrade: Option<String>,
) -> Result<PackageChange, ApiError> {
    let signature = signature(headers)?;
    let data = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        axum::body::to_bytes(body, MAX_UPLOAD_BYTES),
    )
    .await
    .map_err(|_| ApiError::SlowBody { secs: 120 })?
    .map_err(|_| ApiError::TooLarge {
        limit: MAX_UPLOAD_BYTES,
    })?;
    // Opened here for its name; PID 1 verifies the signature and opens it
    // again before anything is unpacked.
    let package = mote_package::open(&data).map_err(|e| {
        ApiError::Unprocessable(format!(
            "the body is not a package (.mpkg) that opens: {e}; send the file `mote package build` made"
        ))
    })?;
    let name = package.manifest.name.clone();
    let version = package.manifest.version.to_string();
    drop(package);
    let _one_at_a_time = app.changing.lock().await;
    let listed = installed(app).await?;
    let there = listed.packages.iter().find(|p| p.name == name);
    match (&upgrade, there) {
        (None, Some(p)) => {
            return Err(ApiError::Conflict(format!(
                "{name} {} is installed already; upgrade it (PUT /v1/packages/{name}, `mote -n NODE package upgrade FILE`)",
                p.version
            )))
        }
        (Some(route), _) if *route != name => {
            return Err(ApiError::BadRequest(format!(
                "the package is {name}, not {route}; upgrade it at /v1/packages/{name}"
            )))
        }
        (Some(_), None) => {
            return Err(ApiError::NotFound(format!(
                "{name} is not installed; install it first (POST /v1/packages)"
            )))
        }
        _ => {}
    }
    let dir = app.state_dir.join("packages-upload");
    let archive = dir.join(format!("{name}.mpkg"));
    let io = |op: &'static str| {
        let path = archive.display().to_string();
        move |source| ApiError::Io { op, path, source }
    };
    tokio::fs::create_dir_all(&dir).await.map_err(io("make"))?;
    tokio::fs::write(&archive, &data)
        .await
        .map_err(io("write"))?;
    drop(data);
    let staged = app
        .ask(Request::StagePackage {
            archive: archive.clone(),
            signature,
        })
        .await;
    let _ = tokio::fs::remove_file(&archive).await;
    let (info, previous) = match staged? {
        Response::Staged { package, previous } => (package, previous),
        _ => return Err(ApiError::Unexpected("stage package")),
    };
    let what = match &previous {
        Some(p) => format!("upgrade package {name} {p} -> {version}"),
        None => format!("install package {name} {version}"),
    };
    let role = info.settings.clone();
    let saved = app
        .change_held(&caller.user, &what, None, |old| {
            let mut s = old.clone();
            if !s.packages.contains(&name) {
                s.packages.push(name.clone());
            }
            if let Some(section) = &role {
                if !s.roles.contains_key(section) {
                    if let Some(r) = mote_roles::find(section) {
                        s.roles.insert(section.clone(), r.defaults());
                    }
                }
            }
            Ok(s)
        })
        .await;
    let saved = match saved {
        Ok(saved) => saved,
        Err(e) => {
            let _ = app.ask(Request::AbortPackage { name: name.clone() }).await;
            return Err(e);
        }
    };
    if let Err(e) = app.ask(Request::CommitPackage { name: name.clone() }).await {
        // The settings name it and it runs, but it would not come back
        // after a reboot: say so rather than pretend.
        return Err(ApiError::Node {
            reason: mote_api::control::ErrorKind::Failed,
            message: format!(
                "{name} {version} runs, but keeping it on the state disk failed ({e}); it will \
                 be gone after a reboot: install it again"
            ),
        });
    }
    let message = match &previous {
        Some(p) => format!("{name} upgraded from {p} to {version}; its services restarted"),
        None => format!("{name} {version} installed; its services started"),
    };
    Ok(PackageChange {
        message,
        package: PackageInfo {
            active: true,
            ..info
        },
        previous,
        settings_version: saved.version,
    })
}

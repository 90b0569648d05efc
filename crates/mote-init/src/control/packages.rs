//! Package requests: stage, commit, abort and remove a package installed
//! online ([`crate::package_store`] does the files). moted drives them as
//! one settings transaction: stage, then a settings change that names the
//! package (its services start, its ports open), then commit; any failure
//! aborts, and the node is as it was.

use std::collections::BTreeSet;
use std::path::Path;

use mote_api::control::{ErrorKind, Response};
use mote_package::PackageManifest;

use super::apply::apply_locked;
use super::handle::failure;
use super::Node;
use crate::{net, package_store, packages};

/// Verifies and unpacks the archive at `archive`; an upgrade of an active
/// package restarts its services on the new files.
pub(super) async fn stage(node: &Node, archive: &Path, signature: Option<&str>) -> Response {
    let _one_at_a_time = node.applying.lock().await;
    let bytes = match tokio::fs::read(archive).await {
        Ok(b) => b,
        Err(e) => {
            return failure(
                ErrorKind::Failed,
                format!(
                    "cannot read the uploaded package {}: {e}",
                    archive.display()
                ),
            )
        }
    };
    let installed = node.installed();
    let image: BTreeSet<String> = installed
        .packages
        .keys()
        .filter(|n| node.in_image(n))
        .cloned()
        .collect();
    let store = node.options.store.clone();
    let signature = signature.map(str::to_owned);
    let staged = tokio::task::spawn_blocking(move || {
        store.stage(&bytes, signature.as_deref(), &installed, &image)
    })
    .await;
    let staged = match staged {
        Ok(Ok(s)) => s,
        Ok(Err(refusal)) => return failure(refusal.kind, refusal.message),
        Err(e) => return failure(ErrorKind::Failed, format!("staging stopped: {e}")),
    };
    let name = staged.manifest.name.clone();
    node.set_package(
        &name,
        Some(staged.manifest.clone()),
        Some(staged.trust.clone()),
    );
    let settings = node.settings();
    let active = settings.packages.contains(&name);
    if active {
        if let Err(e) = rerun(node, &staged.manifest).await {
            undo(node, &name, &staged.manifest).await;
            return failure(
                e.0,
                format!(
                    "{}: {}; the previous version is back",
                    staged.manifest.id(),
                    e.1
                ),
            );
        }
    }
    let previous = staged.previous.as_ref().map(|p| p.version.to_string());
    node.events.info(
        &name,
        match &previous {
            Some(v) => format!("package {} staged, replacing {v}", staged.manifest.id()),
            None => format!("package {} staged", staged.manifest.id()),
        },
    );
    Response::Staged {
        package: package_store::info(&staged.manifest, false, active, Some(staged.trust)),
        previous,
    }
}

/// Keeps a staged package.
pub(super) async fn commit(node: &Node, name: &str) -> Response {
    let _one_at_a_time = node.applying.lock().await;
    match node.options.store.commit(name) {
        Ok(()) => {
            node.events.info(name, format!("package {name} installed"));
            Response::Ok
        }
        Err(r) => failure(r.kind, r.message),
    }
}

/// Undoes a staged package: the committed version comes back, or none.
pub(super) async fn abort(node: &Node, name: &str) -> Response {
    let _one_at_a_time = node.applying.lock().await;
    let Some(staged) = node.installed().packages.get(name).cloned() else {
        return failure(
            ErrorKind::NotFound,
            format!("no package {name:?} is staged"),
        );
    };
    undo(node, name, &staged).await;
    Response::Ok
}

/// Removes a package installed online that no settings name.
pub(super) async fn remove(node: &Node, name: &str) -> Response {
    let _one_at_a_time = node.applying.lock().await;
    let installed = node.installed();
    let Some(manifest) = installed.packages.get(name).cloned() else {
        return failure(
            ErrorKind::NotFound,
            format!("no package {name:?} is installed"),
        );
    };
    if node.in_image(name) {
        return failure(
            ErrorKind::Conflict,
            format!("{name} is part of the image; it is only deactivated, not removed"),
        );
    }
    if node.settings().packages.iter().any(|p| p == name) {
        return failure(
            ErrorKind::Conflict,
            format!("the settings still name {name} in packages; take it out first"),
        );
    }
    let store = node.options.store.clone();
    let removed = tokio::task::spawn_blocking(move || store.remove(&manifest)).await;
    match removed {
        Ok(Ok(())) => {
            node.set_package(name, None, None);
            node.events.info(name, format!("package {name} removed"));
            Response::Ok
        }
        Ok(Err(r)) => failure(r.kind, r.message),
        Err(e) => failure(ErrorKind::Failed, format!("removing stopped: {e}")),
    }
}

/// Puts the committed version (or nothing) back in place of `staged`, and
/// the services on it when the package is active.
async fn undo(node: &Node, name: &str, staged: &PackageManifest) {
    let store = node.options.store.clone();
    let (n, s) = (name.to_owned(), staged.clone());
    let previous = tokio::task::spawn_blocking(move || {
        store.abort(&n, &s);
        store.committed(&n)
    })
    .await
    .ok()
    .flatten();
    match previous.clone() {
        Some((m, trust)) => node.set_package(name, Some(m), Some(trust)),
        None => node.set_package(name, None, None),
    }
    if node.settings().packages.iter().any(|p| p == name) {
        if let Some((previous, _)) = previous {
            if let Err(e) = rerun(node, &previous).await {
                node.events
                    .error(name, format!("after undoing an upgrade: {}", e.1));
            }
        }
    }
    node.events.warn(
        name,
        format!(
            "package {} not installed; the node is as before",
            staged.id()
        ),
    );
}

/// After the files of an active package changed: the firewall and the
/// services again from the installed set, and a restart of the services
/// whose definition did not change (they still run the old files).
async fn rerun(node: &Node, package: &PackageManifest) -> Result<(), (ErrorKind, String)> {
    let settings = node.settings();
    let installed = node.installed();
    if node.options.firewall {
        let ports = packages::open_ports(&settings, &installed);
        net::apply_firewall(&settings.firewall, &ports, &node.events)
            .map_err(|e| (ErrorKind::Failed, format!("firewall: {e}")))?;
    }
    let before = node.supervisor.specs();
    apply_locked(node, settings, true)
        .await
        .map_err(|e| (e.kind, e.message))?;
    let after = node.supervisor.specs();
    for name in package.services.keys() {
        if before.contains_key(name) && before.get(name) == after.get(name) {
            node.supervisor
                .restart(name)
                .await
                .map_err(|e| (ErrorKind::Failed, format!("services.{name}: {e}")))?;
        }
    }
    Ok(())
}

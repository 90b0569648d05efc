//! The installed packages at run time: their services join the supervised
//! set, their settings sections are written where their services read them
//! ([`mote_config::paths::role_settings`]), their directories are made,
//! and a changed section reloads their services with their signal. PID 1
//! knows no package by name: it loops over what the image builder left in
//! [`mote_config::paths::IMAGE_PACKAGES`] and the role registry.

use std::collections::BTreeMap;
use std::path::Path;

use mote_config::{NodeSettings, Port, Service};
use mote_package::Installed;

use crate::events::Events;
use crate::management;

/// Reads the image's installed packages; a `package.toml` that does not
/// parse is an error event and is left out.
pub fn read(dir: &Path, events: &Events) -> Installed {
    let (installed, problems) = Installed::read(dir);
    for p in problems {
        events.error("init", format!("installed package left out: {p}"));
    }
    installed
}

/// The services PID 1 runs for `settings` and the built-ins to start
/// first: the settings' services, `moted` ([`management::services`]) and
/// every active package's services.
pub fn services(
    settings: &NodeSettings,
    installed: &Installed,
    moted: &Path,
) -> (BTreeMap<String, Service>, Vec<String>) {
    let (mut services, first) = management::services(settings, moted);
    installed.add_services(settings, &mut services);
    (services, first)
}

/// Every inbound port for `settings`: services, management, packages and
/// the roles' sections.
pub fn open_ports(settings: &NodeSettings, installed: &Installed) -> Vec<Port> {
    installed.open_ports(settings, mote_roles::ALL)
}

/// Makes the active packages' directories (each boot: `/` is rebuilt
/// from the image every time); a failure is a warning event.
pub fn make_directories(settings: &NodeSettings, installed: &Installed, events: &Events) {
    use std::os::unix::fs::PermissionsExt;
    for package in installed.active(settings) {
        for dir in &package.directories {
            let made = std::fs::create_dir_all(&dir.path).and_then(|()| {
                let (uid, gid) = mote_config::parse_owner(&dir.owner).unwrap_or((0, 0));
                std::os::unix::fs::chown(&dir.path, Some(uid), Some(gid))?;
                let mode = mote_config::parse_mode(&dir.mode).unwrap_or(0o755);
                std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(mode))
            });
            if let Err(e) = made {
                events.warn(
                    &package.name,
                    format!("cannot make directory {}: {e}", dir.path),
                );
            }
        }
    }
}

/// Writes every active package's section to `dir/NAME.json`, world-readable
/// (services run unprivileged), each through a temporary file renamed into
/// place; the first failure names its file.
pub fn write_sections(
    settings: &NodeSettings,
    installed: &Installed,
    dir: &Path,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for (name, section) in installed.sections(settings, mote_roles::ALL) {
        let path = dir.join(format!("{name}.json"));
        let written = (|| {
            std::fs::create_dir_all(dir)?;
            let tmp = path.with_extension("json.tmp");
            let mut bytes = serde_json::to_vec_pretty(&section).unwrap_or_default();
            bytes.push(b'\n');
            std::fs::write(&tmp, bytes)?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
            std::fs::rename(&tmp, &path)
        })();
        written.map_err(|e| format!("roles.{name}: cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "name = \"app\"\nversion = \"1.0.0\"\ndescription = \"x\"\n\
        settings = \"app\"\n\
        [[directories]]\npath = \"DIR\"\nmode = \"0700\"\n\
        [services.app]\nargv = [\"/usr/bin/app\"]\nuser = \"nobody\"\n";

    #[test]
    fn an_active_package_gets_its_service_section_and_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("made/here");
        let packages = dir.path().join("packages");
        std::fs::create_dir(&packages).unwrap();
        std::fs::write(
            packages.join("app.toml"),
            APP.replace("DIR", &made.to_string_lossy()),
        )
        .unwrap();
        let events = Events::new(false);
        let installed = read(&packages, &events);
        let mut settings = NodeSettings::default();
        settings.management.enabled = false;
        assert!(services(&settings, &installed, Path::new("/none"))
            .0
            .is_empty());

        settings.packages = vec!["app".into()];
        settings
            .roles
            .insert("app".into(), serde_json::json!({"k": 1}));
        assert_eq!(
            services(&settings, &installed, Path::new("/none")).0["app"].argv,
            ["/usr/bin/app"]
        );
        make_directories(&settings, &installed, &events);
        if rustix::process::geteuid().is_root() {
            let mode = std::fs::metadata(&made).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let roles = dir.path().join("roles");
        write_sections(&settings, &installed, &roles).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(roles.join("app.json")).unwrap())
                .unwrap();
        assert_eq!(back, serde_json::json!({"k": 1}));
    }
}

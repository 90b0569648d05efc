//! The packages a node has: what PID 1 runs, opens and writes for them,
//! and what `moted` reports, read from the `package.toml` files the image
//! builder left in [`mote_config::paths::IMAGE_PACKAGES`].
//!
//! A package is *active* when the node's settings list it in `packages`:
//! its services run, its ports are open, its settings section is written
//! to [`mote_config::paths::role_settings`] and its services get its
//! reload signal when that section changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mote_config::{NodeSettings, Port, Role, Service};

use crate::manifest::{PackageManifest, ReloadSignal};

/// The installed packages, by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Installed {
    /// Each package's manifest, by name.
    pub packages: BTreeMap<String, PackageManifest>,
}

impl Installed {
    /// Reads every `NAME.toml` in `dir` (none when `dir` does not exist);
    /// a file that does not parse is left out and described in the second
    /// value.
    pub fn read(dir: &Path) -> (Self, Vec<String>) {
        let mut installed = Self::default();
        let mut problems = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return (installed, problems);
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: {e}", path.display()))
                .and_then(|text| PackageManifest::parse(&text, &path).map_err(|e| e.to_string()));
            match parsed {
                Ok(m) => {
                    installed.packages.insert(m.name.clone(), m);
                }
                Err(e) => problems.push(e),
            }
        }
        (installed, problems)
    }

    /// The installed packages that `settings` list.
    pub fn active<'a>(
        &'a self,
        settings: &'a NodeSettings,
    ) -> impl Iterator<Item = &'a PackageManifest> + 'a {
        settings
            .packages
            .iter()
            .filter_map(|name| self.packages.get(name))
    }

    /// Adds the services of every active package to `services`; a
    /// package's service replaces a settings service of the same name.
    pub fn add_services(&self, settings: &NodeSettings, services: &mut BTreeMap<String, Service>) {
        for package in self.active(settings) {
            for (name, service) in &package.services {
                services.insert(name.clone(), service.clone());
            }
        }
    }

    /// Every port the node opens: the settings' own
    /// ([`NodeSettings::open_ports`]), each active package's, and those the
    /// roles' sections name; sorted, each once.
    pub fn open_ports(&self, settings: &NodeSettings, roles: &[&dyn Role]) -> Vec<Port> {
        let mut ports = settings.open_ports();
        for package in self.active(settings) {
            ports.extend(package.open_ports());
        }
        ports.extend(mote_config::role_ports(settings, roles));
        ports.sort();
        ports.dedup();
        ports
    }

    /// The settings sections of the active packages that read one, with
    /// the section from `settings`, else the role's defaults, else `{}`.
    pub fn sections(
        &self,
        settings: &NodeSettings,
        roles: &[&dyn Role],
    ) -> Vec<(String, serde_json::Value)> {
        self.active(settings)
            .filter_map(|p| p.settings.clone())
            .map(|name| {
                let value = settings.roles.get(&name).cloned().or_else(|| {
                    roles
                        .iter()
                        .find(|r| r.name() == name)
                        .map(|r| r.defaults())
                });
                (name, value.unwrap_or_else(|| serde_json::json!({})))
            })
            .collect()
    }

    /// The services to signal, and with what, because their package's
    /// section differs between `old` and `new`.
    pub fn reloads(&self, old: &NodeSettings, new: &NodeSettings) -> Vec<(String, ReloadSignal)> {
        let mut out = Vec::new();
        for package in self.active(new) {
            let (Some(section), Some(signal)) = (&package.settings, package.reload_signal) else {
                continue;
            };
            if old.roles.get(section) != new.roles.get(section) {
                out.extend(package.services.keys().map(|s| (s.clone(), signal)));
            }
        }
        out
    }
}

impl ReloadSignal {
    /// The signal's number.
    pub fn number(self) -> i32 {
        match self {
            Self::Hup => 1,
            Self::Usr1 => 10,
            Self::Usr2 => 12,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(text: &str) -> PackageManifest {
        PackageManifest::parse(text, Path::new("t.toml")).unwrap()
    }

    const APP: &str = "name = \"app\"\nversion = \"1.0.0\"\ndescription = \"x\"\n\
        settings = \"app\"\nreload_signal = \"SIGHUP\"\n\
        [firewall]\nports = [\"53/udp\"]\n\
        [services.app]\nargv = [\"/usr/bin/app\"]\nuser = \"nobody\"\nports = [8080]\n";

    #[test]
    fn only_listed_packages_run_open_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.toml"), APP).unwrap();
        std::fs::write(dir.path().join("bad.toml"), "name = 1").unwrap();
        let (installed, problems) = Installed::read(dir.path());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("bad.toml"));
        assert_eq!(installed.packages["app"], manifest(APP));

        let mut settings = NodeSettings::default();
        settings.management.enabled = false;
        let mut services = BTreeMap::new();
        installed.add_services(&settings, &mut services);
        assert!(services.is_empty(), "not listed, not run");
        assert!(installed.open_ports(&settings, &[]).is_empty());

        settings.packages = vec!["app".into()];
        installed.add_services(&settings, &mut services);
        assert_eq!(services["app"].argv, ["/usr/bin/app"]);
        let ports: Vec<String> = installed
            .open_ports(&settings, &[])
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ports, ["53/udp", "8080/tcp"]);
        assert_eq!(
            installed.sections(&settings, &[]),
            [("app".to_string(), serde_json::json!({}))]
        );

        let mut changed = settings.clone();
        assert!(installed.reloads(&settings, &changed).is_empty());
        changed
            .roles
            .insert("app".into(), serde_json::json!({"a": 1}));
        assert_eq!(
            installed.reloads(&settings, &changed),
            [("app".to_string(), ReloadSignal::Hup)]
        );
    }
}

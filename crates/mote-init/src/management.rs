//! The built-in management service: `moted`, the HTTPS agent, supervised
//! by PID 1 as service `moted` when `[management]` is enabled and the image
//! carries `/usr/bin/moted`; and the certificate fingerprint it leaves for
//! the console.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use mote_config::{NodeSettings, Port, Protocol, RestartPolicy, Service};

/// Where the image builder puts the agent.
pub const MOTED: &str = mote_config::paths::MOTED;
/// The built-in service's name.
pub const SERVICE: &str = "moted";
/// Where `moted` writes its certificate's SHA-256 fingerprint.
pub const FINGERPRINT: &str = "/state/mote/tls/fingerprint";

/// The services PID 1 runs for `settings`, and the built-ins to start first:
/// the user's services plus `moted` (which replaces a user service of that
/// name) when management is enabled and `moted` exists.
pub fn services(settings: &NodeSettings, moted: &Path) -> (BTreeMap<String, Service>, Vec<String>) {
    let mut services = settings.services.clone();
    let mut first = Vec::new();
    if settings.management.enabled && moted.exists() {
        let mut environment = BTreeMap::new();
        environment.insert(
            "MOTE_MANAGEMENT_PORT".to_owned(),
            settings.management.port.to_string(),
        );
        services.insert(
            SERVICE.to_owned(),
            Service {
                argv: vec![moted.to_string_lossy().into_owned()],
                environment,
                user: "root".into(),
                restart: RestartPolicy::Always,
                after: Vec::new(),
                ports: vec![Port {
                    number: settings.management.port,
                    protocol: Protocol::Tcp,
                }],
                stop_timeout_secs: 5,
                capabilities: Vec::new(),
                open_files: None,
            },
        );
        first.push(SERVICE.to_owned());
    }
    (services, first)
}

/// The fingerprint `moted` wrote, waiting up to `wait` for the file.
pub async fn fingerprint(path: &Path, wait: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            let fp = text.trim();
            if !fp.is_empty() && fp.len() < 256 && !fp.contains(char::is_whitespace) {
                return Some(fp.to_owned());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moted_is_added_first_only_when_enabled_and_present() {
        let dir = tempfile::tempdir().unwrap();
        let moted = dir.path().join("moted");
        let mut settings = NodeSettings::default();
        settings.management.port = 6000;
        assert!(services(&settings, &moted).1.is_empty(), "absent binary");
        std::fs::write(&moted, "").unwrap();
        let (all, first) = services(&settings, &moted);
        assert_eq!(first, ["moted"]);
        let spec = &all["moted"];
        assert_eq!(spec.environment["MOTE_MANAGEMENT_PORT"], "6000");
        assert_eq!(spec.ports[0].number, 6000);
        assert_eq!(spec.argv, [moted.to_string_lossy()]);
        settings.management.enabled = false;
        assert!(services(&settings, &moted).0.is_empty());
    }

    #[tokio::test]
    async fn the_fingerprint_is_read_when_it_appears() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fingerprint");
        assert_eq!(fingerprint(&path, Duration::from_millis(60)).await, None);
        std::fs::write(&path, "AB:CD\n").unwrap();
        assert_eq!(
            fingerprint(&path, Duration::from_millis(60))
                .await
                .as_deref(),
            Some("AB:CD")
        );
    }
}

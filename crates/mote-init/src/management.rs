//! The built-in management service: `moted`, the HTTPS agent, supervised
//! by PID 1 as service `moted` when `[management]` is enabled and the image
//! carries `/usr/bin/moted`; and the certificate fingerprint it leaves for
//! the console.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use mote_config::{NodeSettings, Port, Protocol, RestartPolicy, Service};

/// Where the image builder puts the agent.
pub const MOTED: &str = "/usr/bin/moted";
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

/// Where the image builder puts the web server (package `web`).
pub const WEB: &str = "/usr/bin/mote-web";
/// The web package's built-in service.
pub const WEB_SERVICE: &str = "web";
/// Where PID 1 writes the `roles.web` section for `mote-web --config`.
pub const WEB_CONFIG: &str = "/run/mote/roles/web.json";
/// The loopback address of mote-web's Prometheus metrics.
pub const WEB_METRICS: &str = "127.0.0.1:9180";
/// The unprivileged user the web server runs as (`www-data`).
pub const WEB_USER: &str = "33:33";

/// mote-web's default log directory, made for `www-data` before it starts.
pub const WEB_LOGS: &str = "/var/log/mote-web";

/// Creates `dir` owned by `www-data` (33:33), mode 0755, so the web server
/// can write its sites' logs there.
pub fn prepare_web_logs(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::os::unix::fs::chown(dir, Some(33), Some(33))
}

/// Whether `settings` install the web package.
pub fn has_web(settings: &NodeSettings) -> bool {
    settings.packages.iter().any(|p| p == "web")
}

/// Adds the built-in `web` service (replacing a user service of that name)
/// when the settings name the web package and `web` exists: `mote-web
/// --config CONFIG --metrics 127.0.0.1:9180` as `www-data` with only
/// `CAP_NET_BIND_SERVICE`. The spec does not depend on `roles.web`, so a
/// change of the sites reloads the server (SIGHUP) instead of restarting it.
pub fn add_web(
    services: &mut BTreeMap<String, Service>,
    settings: &NodeSettings,
    web: &Path,
    config: &Path,
) {
    if !has_web(settings) || !web.exists() {
        return;
    }
    services.insert(
        WEB_SERVICE.to_owned(),
        Service {
            argv: vec![
                web.to_string_lossy().into_owned(),
                "--config".into(),
                config.to_string_lossy().into_owned(),
                "--metrics".into(),
                WEB_METRICS.into(),
            ],
            environment: BTreeMap::new(),
            user: WEB_USER.into(),
            restart: RestartPolicy::Always,
            after: Vec::new(),
            ports: Vec::new(),
            stop_timeout_secs: 5,
            capabilities: vec!["net_bind_service".into()],
            open_files: None,
        },
    );
}

/// Writes `roles.web` (no sites when absent) to `config`, world-readable,
/// through a temporary file renamed into place.
pub fn write_web_config(settings: &NodeSettings, config: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let section = settings
        .roles
        .web
        .clone()
        .unwrap_or_else(|| serde_json::json!({ "sites": [] }));
    if let Some(dir) = config.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = config.with_extension("json.tmp");
    let mut bytes = serde_json::to_vec_pretty(&section).unwrap_or_default();
    bytes.push(b'\n');
    std::fs::write(&tmp, bytes)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, config)
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

    #[test]
    fn web_is_added_with_its_config_only_for_the_package() {
        let dir = tempfile::tempdir().unwrap();
        let web = dir.path().join("mote-web");
        let config = dir.path().join("roles/web.json");
        std::fs::write(&web, "").unwrap();
        let mut settings = NodeSettings::default();
        let mut all = BTreeMap::new();
        add_web(&mut all, &settings, &web, &config);
        assert!(all.is_empty(), "no package, no service");
        settings.packages = vec!["web".into()];
        add_web(&mut all, &settings, &web, &config);
        let spec = &all["web"];
        assert_eq!(spec.user, "33:33");
        assert_eq!(spec.capabilities, ["net_bind_service"]);
        assert_eq!(spec.argv[1..3], ["--config", &*config.to_string_lossy()]);
        assert_eq!(spec.argv[3..], ["--metrics", "127.0.0.1:9180"]);

        write_web_config(&settings, &config).unwrap();
        let text = std::fs::read_to_string(&config).unwrap();
        assert_eq!(text, "{\n  \"sites\": []\n}\n");
        settings.roles.web = Some(serde_json::json!({"sites": [{"name": "a"}]}));
        write_web_config(&settings, &config).unwrap();
        let back: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        assert_eq!(back["sites"][0]["name"], "a");
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

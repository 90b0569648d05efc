//! `GET /v1/settings/status`: moted compares the version it stored with the
//! one PID 1 says it applied, so a node can never quietly run other settings
//! than the ones its API reports (the settings-loss defect of issue 9).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mote_api::client::Client;
use mote_api::control::SettingsSource;
use moted::{Config, FakeInit};
use serde_json::json;

fn cheap_hash(pw: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    a.hash_password(pw.as_bytes(), &salt).unwrap().to_string()
}

/// moted over `dir` with a fresh fake PID 1 (as after a boot).
async fn start(dir: &Path) -> (FakeInit, moted::Running) {
    let image = dir.join("settings.json");
    if !image.exists() {
        let mut s = mote_config::NodeSettings::default();
        s.system.hostname = "node1".into();
        s.system.admin_password_hash = cheap_hash("secret");
        std::fs::write(&image, serde_json::to_vec(&s).unwrap()).unwrap();
    }
    let fake = FakeInit::new();
    let running = moted::start(
        Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            state_dir: dir.join("state"),
            image_settings: image,
            token_ttl: Duration::from_secs(3600),
            throttle_base: Duration::from_millis(300),
            throttle_max: Duration::from_secs(30),
        },
        Arc::new(fake.clone()),
    )
    .await
    .unwrap();
    (fake, running)
}

async fn client(r: &moted::Running) -> Client {
    let mut c = Client::connect(&r.addr.to_string(), Some(&r.fingerprint))
        .await
        .unwrap();
    c.login("admin", "secret").await.unwrap();
    c
}

#[tokio::test]
async fn the_status_compares_the_stored_version_with_the_applied_one() {
    let dir = tempfile::tempdir().unwrap();
    let (fake, running) = start(dir.path()).await;
    // First boot: the image's settings become version 1, and PID 1 is told.
    assert_eq!(fake.state.lock().unwrap().applied_versions, [Some(1)]);
    let c = client(&running).await;
    let st = c.settings_status().await.unwrap();
    assert_eq!(
        (st.stored, st.applied.version, st.in_sync),
        (1, Some(1), true)
    );

    // A change is applied as the version it is stored as.
    c.patch_settings(&json!({"system": {"hostname": "web01"}}))
        .await
        .unwrap();
    let st = c.settings_status().await.unwrap();
    assert_eq!(
        (st.stored, st.applied.version, st.in_sync),
        (2, Some(2), true)
    );
    assert_eq!(st.applied.source, SettingsSource::Store);

    // A refused change is rolled back to the stored version.
    fake.state.lock().unwrap().refuse_next_apply = Some("no".into());
    c.patch_settings(&json!({"system": {"hostname": "web02"}}))
        .await
        .unwrap_err();
    let st = c.settings_status().await.unwrap();
    assert_eq!(
        (st.stored, st.applied.version, st.in_sync),
        (2, Some(2), true)
    );
    running.task.abort();

    // A PID 1 that booted without the stored settings (the defect) is seen:
    // moted does not paper over it, and says the node is out of sync.
    let (fake, running) = start(dir.path()).await;
    assert!(fake.state.lock().unwrap().applied_versions.is_empty());
    let st = client(&running).await.settings_status().await.unwrap();
    assert_eq!(st.stored, 2);
    assert_eq!(st.applied.version, None);
    assert!(!st.in_sync);
}

/// A full state disk: the change is refused with 507 and a message that
/// says so, the node is rolled back to the stored version, and nothing of
/// the refused version is left for the next boot to pick up. The state
/// directory is a 1 MiB tmpfs this test mounts (root only, as the suite).
#[tokio::test]
async fn a_full_state_disk_refuses_the_change_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&state)
        .status()
        .expect("mount runs");
    assert!(
        mounted.success(),
        "cannot mount a tmpfs (the suite runs as root)"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(state.clone());

    let (fake, running) = start(dir.path()).await;
    let c = client(&running).await;
    c.patch_settings(&json!({"system": {"hostname": "web01"}}))
        .await
        .unwrap();
    // Fill the disk.
    let filler = state.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);

    let err = c
        .patch_settings(&json!({"system": {"hostname": "web02"}}))
        .await
        .unwrap_err();
    let text = err.to_string();
    match err {
        mote_api::client::ClientError::Status { status, body, .. } => {
            assert_eq!(status, 507, "{text}");
            assert!(body.error.contains("No space left"), "{}", body.error);
        }
        other => panic!("not a status: {other}"),
    }
    // PID 1 was told the old version again, and the status says so.
    let last = fake.state.lock().unwrap().applied.last().cloned().unwrap();
    assert_eq!(last.system.hostname, "web01");
    let st = c.settings_status().await.unwrap();
    assert_eq!(
        (st.stored, st.applied.version, st.in_sync),
        (2, Some(2), true)
    );
    // What a booting node would read: version 2, not the refused one.
    let committed = mote_api::store::read_committed(&state.join("settings")).unwrap();
    let newest = committed.newest.unwrap();
    assert_eq!(newest.entry.version, 2);
    assert_eq!(newest.settings.system.hostname, "web01");

    // Room again: the next change goes through.
    std::fs::remove_file(&filler).unwrap();
    let v = c
        .patch_settings(&json!({"system": {"hostname": "web03"}}))
        .await
        .unwrap();
    assert_eq!(v.version, 3);
    running.task.abort();
}

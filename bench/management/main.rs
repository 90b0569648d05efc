//! `cargo xtask bench management`: request latency of the management API
//! and the time one verb takes across 50 concurrent sessions.
//!
//! The server is the real `moted` (its library: TLS, login, settings store,
//! audit log) on 127.0.0.1 with `moted::FakeInit`, the in-memory PID 1 its
//! own tests use, so figures are moted's and the client's, not a node's
//! services. The client is `mote_api::client::Client`, as `mote` uses it:
//! one TLS connection per call, the certificate pinned.
//!
//! - read: `GET /v1/system`, sequential, `--runs` calls;
//! - write: `PATCH /v1/settings` (the hostname, alternating), applied by the
//!   fake PID 1 and acknowledged with the new version, `--runs / 4` calls;
//! - fan-out: 50 logged-in sessions each run `GET /v1/services` at once;
//!   the wall time until the last answer, `--runs / 20` rounds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mote_api::client::Client;
use serde_json::json;

const GOAL_READ_P50_MS: f64 = 2.0;
const GOAL_WRITE_P50_MS: f64 = 50.0;
const SESSIONS: usize = 50;

fn cheap_hash(pw: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let params = argon2::Params::new(8, 1, 1, None).expect("argon2 parameters");
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"0123456789abcdef").expect("salt");
    a.hash_password(pw.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (pct(&ms, 0.5), pct(&ms, 0.99))
}

fn main() -> anyhow::Result<()> {
    let mut runs = 400usize;
    let mut as_json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--json" => as_json = true,
            other => anyhow::bail!("unknown argument {other}; usage: [--runs N] [--json]"),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(bench(runs.max(20), as_json))
}

async fn bench(runs: usize, as_json: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut s = mote_config::NodeSettings::default();
    s.system.hostname = "bench".into();
    s.system.admin_password_hash = cheap_hash("secret");
    let image = dir.path().join("settings.json");
    std::fs::write(&image, serde_json::to_vec(&s)?)?;
    let running = moted::start(
        moted::Config {
            listen: "127.0.0.1:0".parse()?,
            state_dir: dir.path().join("state"),
            image_settings: image,
            token_ttl: Duration::from_secs(3600),
            throttle_base: Duration::from_millis(250),
            throttle_max: Duration::from_secs(30),
        },
        Arc::new(moted::FakeInit::new()),
    )
    .await?;
    let addr = running.addr.to_string();
    let fp = running.fingerprint.clone();
    let mut c = Client::connect(&addr, Some(&fp)).await?;
    c.login("admin", "secret").await?;

    // Warm-up.
    for _ in 0..10 {
        c.system().await?;
    }
    let mut read = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        c.system().await?;
        read.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut write = Vec::new();
    for i in 0..runs / 4 {
        let patch = json!({ "system": { "hostname": format!("bench{}", i % 2) } });
        let t = Instant::now();
        let v = c.patch_settings(&patch).await?;
        write.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(v.settings.system.hostname == format!("bench{}", i % 2));
    }
    let mut sessions = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let mut s = Client::connect(&addr, Some(&fp)).await?;
        s.login("admin", "secret").await?;
        sessions.push(Arc::new(s));
    }
    let mut fanout = Vec::new();
    for _ in 0..(runs / 20).max(3) {
        let t = Instant::now();
        let tasks: Vec<_> = sessions
            .iter()
            .map(|s| {
                let s = s.clone();
                tokio::spawn(async move { s.services().await.map(|_| ()) })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        fanout.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (r50, r99) = summary(read);
    let (w50, w99) = summary(write);
    let (f50, f99) = summary(fanout);
    let server = "moted library on 127.0.0.1 with moted::FakeInit (in-memory fake PID 1); \
                  client mote_api::client::Client, one TLS connection per call";
    if as_json {
        println!(
            "{}",
            json!({
                "server": server, "runs": runs,
                "read_get_system_ms": {"p50": r50, "p99": r99, "goal_p50": GOAL_READ_P50_MS},
                "write_patch_settings_ms": {"p50": w50, "p99": w99, "goal_p50": GOAL_WRITE_P50_MS},
                "fanout_50_sessions_services_ms": {"p50": f50, "p99": f99},
            })
        );
        return Ok(());
    }
    let mark = |v: f64, goal: f64| if v <= goal { "met" } else { "MISSED" };
    println!("server: {server}");
    println!("{:<44} {:>9} {:>9}  goal", "", "p50 ms", "p99 ms");
    println!(
        "{:<44} {r50:>9.2} {r99:>9.2}  p50 ≤ {GOAL_READ_P50_MS} ms: {}",
        format!("read  GET /v1/system ({runs})"),
        mark(r50, GOAL_READ_P50_MS)
    );
    println!(
        "{:<44} {w50:>9.2} {w99:>9.2}  p50 ≤ {GOAL_WRITE_P50_MS} ms: {}",
        format!("write PATCH /v1/settings ({})", runs / 4),
        mark(w50, GOAL_WRITE_P50_MS)
    );
    println!(
        "{:<44} {f50:>9.2} {f99:>9.2}  (no goal)",
        format!("GET /v1/services × {SESSIONS} concurrent sessions")
    );
    running.task.abort();
    Ok(())
}

//! `/v1/performance` (JSON) and `/v1/metrics` (Prometheus text).

use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use mote_api::api::{Cpu, Performance};
use mote_api::control::{Request, Response};

use super::AppState;
use crate::app::lock;
use crate::core::perf;
use crate::error::ApiError;

/// The metrics text of every active package that declares an endpoint
/// and answers in time (asked side by side), with the role that reads the
/// package's settings section, if this build has one.
async fn packages_text(
    app: &AppState,
) -> Result<Vec<(Option<&'static dyn mote_config::Role>, String)>, ApiError> {
    let endpoints: Vec<(Option<&'static dyn mote_config::Role>, String)> =
        match app.ask(Request::Packages).await? {
            Response::Packages { packages, .. } => packages
                .into_iter()
                .filter(|p| p.active)
                .filter_map(|p| {
                    let role = p.settings.as_deref().and_then(mote_roles::find);
                    Some((role, p.metrics?))
                })
                .collect(),
            _ => return Err(ApiError::Unexpected("packages")),
        };
    let texts = futures_util::future::join_all(
        endpoints
            .iter()
            .map(|(_, url)| crate::core::role_metrics::fetch(url)),
    )
    .await;
    Ok(endpoints
        .into_iter()
        .zip(texts)
        .filter_map(|((role, _), text)| Some((role, text?)))
        .collect())
}

/// The figures, and the packages' own metrics text for `/v1/metrics`.
async fn measure(app: &AppState) -> Result<(Performance, String), ApiError> {
    let prev = *lock(&app.cpu)?;
    let (t0, a) = match prev {
        Some(p) if p.0.elapsed() >= Duration::from_millis(50) => p,
        _ => {
            let a = perf::read_cpu();
            tokio::time::sleep(Duration::from_millis(100)).await;
            (Instant::now() - Duration::from_millis(100), a)
        }
    };
    let b = perf::read_cpu();
    let now = Instant::now();
    *lock(&app.cpu)? = Some((now, b));
    let services = match app.ask(Request::Services).await? {
        Response::Services { services } => services.iter().map(perf::service).collect(),
        _ => return Err(ApiError::Unexpected("services")),
    };
    let mut disks = Vec::new();
    for p in [Path::new("/"), app.state_dir.as_path()] {
        disks.extend(perf::disk(p));
    }
    let texts = packages_text(app).await?;
    let roles = texts
        .iter()
        .filter_map(|(role, text)| (*role)?.performance(text))
        .collect();
    let mut packages_text = String::new();
    for (_, text) in &texts {
        packages_text.push_str(text);
        if !packages_text.ends_with('\n') {
            packages_text.push('\n');
        }
    }
    let p = Performance {
        time_ms: crate::now_ms(),
        cpu: Cpu {
            cpus: perf::cpus(),
            busy_percent: perf::busy_percent(a, b),
            interval_ms: now.duration_since(t0).as_millis() as u64,
            load: perf::load(),
        },
        memory: perf::memory(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default()),
        disks,
        network: perf::net_dev(&std::fs::read_to_string("/proc/net/dev").unwrap_or_default()),
        services,
        roles,
    };
    Ok((p, packages_text))
}

pub async fn get(State(app): State<AppState>) -> Result<Json<Performance>, ApiError> {
    Ok(Json(measure(&app).await?.0))
}

/// The same figures in Prometheus text format.
pub fn prometheus(p: &Performance) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# TYPE mote_cpu_busy_percent gauge");
    let _ = writeln!(o, "mote_cpu_busy_percent {}", p.cpu.busy_percent);
    let _ = writeln!(o, "# TYPE mote_cpus gauge\nmote_cpus {}", p.cpu.cpus);
    let _ = writeln!(o, "# TYPE mote_load1 gauge\nmote_load1 {}", p.cpu.load[0]);
    let _ = writeln!(o, "# TYPE mote_memory_total_bytes gauge");
    let _ = writeln!(o, "mote_memory_total_bytes {}", p.memory.total_bytes);
    let _ = writeln!(o, "# TYPE mote_memory_available_bytes gauge");
    let _ = writeln!(
        o,
        "mote_memory_available_bytes {}",
        p.memory.available_bytes
    );
    let _ = writeln!(o, "# TYPE mote_disk_total_bytes gauge");
    for d in &p.disks {
        let _ = writeln!(
            o,
            "mote_disk_total_bytes{{path={:?}}} {}",
            d.path, d.total_bytes
        );
    }
    let _ = writeln!(o, "# TYPE mote_disk_available_bytes gauge");
    for d in &p.disks {
        let _ = writeln!(
            o,
            "mote_disk_available_bytes{{path={:?}}} {}",
            d.path, d.available_bytes
        );
    }
    let _ = writeln!(o, "# TYPE mote_network_receive_bytes_total counter");
    for n in &p.network {
        let _ = writeln!(
            o,
            "mote_network_receive_bytes_total{{interface={:?}}} {}",
            n.name, n.rx_bytes
        );
    }
    let _ = writeln!(o, "# TYPE mote_network_transmit_bytes_total counter");
    for n in &p.network {
        let _ = writeln!(
            o,
            "mote_network_transmit_bytes_total{{interface={:?}}} {}",
            n.name, n.tx_bytes
        );
    }
    let _ = writeln!(o, "# TYPE mote_service_cpu_usec_total counter");
    for s in &p.services {
        if let Some(v) = s.cpu_usec {
            let _ = writeln!(o, "mote_service_cpu_usec_total{{service={:?}}} {v}", s.name);
        }
    }
    let _ = writeln!(o, "# TYPE mote_service_memory_bytes gauge");
    for s in &p.services {
        if let Some(v) = s.memory_bytes {
            let _ = writeln!(o, "mote_service_memory_bytes{{service={:?}}} {v}", s.name);
        }
    }
    o
}

pub async fn metrics(State(app): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let (p, packages_text) = measure(&app).await?;
    let mut text = prometheus(&p);
    // The packages' own figures, unchanged.
    text.push_str(&packages_text);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

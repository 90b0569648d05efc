//! Per-site counters and a latency histogram, served in Prometheus text
//! format on a separate loopback-only listener (`--metrics 127.0.0.1:PORT`).
//!
//! Design: relaxed atomics, one set per site name, kept across reloads in a
//! registry so counters never go backwards while the process lives.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
pub(crate) struct SiteMetrics {
    requests: AtomicU64,
    /// 1xx … 5xx.
    classes: [AtomicU64; 5],
    bytes: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_us: AtomicU64,
    /// Log lines dropped because the site's log writer fell behind.
    pub log_dropped: AtomicU64,
}

impl SiteMetrics {
    pub(crate) fn record(&self, status: u16, bytes: u64, took: Duration) {
        self.requests.fetch_add(1, Relaxed);
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.classes[class].fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
        let s = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_us.fetch_add(took.as_micros() as u64, Relaxed);
    }
}

/// All sites' metrics by name.
#[derive(Default)]
pub(crate) struct Registry {
    sites: Mutex<BTreeMap<String, Arc<SiteMetrics>>>,
}

impl Registry {
    pub(crate) fn site(&self, name: &str) -> Arc<SiteMetrics> {
        let mut m = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name.to_owned()).or_default().clone()
    }

    /// Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let m = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        let mut o = String::with_capacity(4096);
        o.push_str("# TYPE mote_web_requests_total counter\n");
        for (n, s) in m.iter() {
            let _ = writeln!(
                o,
                "mote_web_requests_total{{site=\"{n}\"}} {}",
                s.requests.load(Relaxed)
            );
        }
        o.push_str("# TYPE mote_web_responses_total counter\n");
        for (n, s) in m.iter() {
            for (i, c) in s.classes.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "mote_web_responses_total{{site=\"{n}\",class=\"{}xx\"}} {}",
                    i + 1,
                    c.load(Relaxed)
                );
            }
        }
        o.push_str("# TYPE mote_web_sent_bytes_total counter\n");
        for (n, s) in m.iter() {
            let _ = writeln!(
                o,
                "mote_web_sent_bytes_total{{site=\"{n}\"}} {}",
                s.bytes.load(Relaxed)
            );
        }
        o.push_str("# TYPE mote_web_log_dropped_total counter\n");
        for (n, s) in m.iter() {
            let _ = writeln!(
                o,
                "mote_web_log_dropped_total{{site=\"{n}\"}} {}",
                s.log_dropped.load(Relaxed)
            );
        }
        o.push_str("# TYPE mote_web_request_duration_seconds histogram\n");
        for (n, s) in m.iter() {
            let mut acc = 0;
            for (b, c) in BUCKETS.iter().zip(&s.buckets) {
                acc += c.load(Relaxed);
                let _ = writeln!(
                    o,
                    "mote_web_request_duration_seconds_bucket{{site=\"{n}\",le=\"{b}\"}} {acc}"
                );
            }
            let total = s.requests.load(Relaxed);
            let _ = writeln!(
                o,
                "mote_web_request_duration_seconds_bucket{{site=\"{n}\",le=\"+Inf\"}} {total}"
            );
            let _ = writeln!(
                o,
                "mote_web_request_duration_seconds_sum{{site=\"{n}\"}} {}",
                s.latency_us.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                o,
                "mote_web_request_duration_seconds_count{{site=\"{n}\"}} {total}"
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts() {
        let r = Registry::default();
        let s = r.site("a");
        s.record(200, 10, Duration::from_micros(300));
        s.record(404, 5, Duration::from_millis(2));
        let t = r.render();
        assert!(t.contains("mote_web_requests_total{site=\"a\"} 2"), "{t}");
        assert!(t.contains("class=\"4xx\"} 1"));
        assert!(t.contains("mote_web_sent_bytes_total{site=\"a\"} 15"));
        assert!(t.contains("le=\"0.0005\"} 1"));
        assert!(t.contains("le=\"+Inf\"} 2"));
        assert!(t.contains("mote_web_log_dropped_total{site=\"a\"} 0"));
    }
}

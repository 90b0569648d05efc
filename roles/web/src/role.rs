//! The web role's side of the role contract ([`mote_config::Role`]): the
//! `roles.web` section typed by [`WebSettings`], its defaults, and the
//! ports its sites listen on. `mote check`, `moted` and PID 1 reach it
//! through the registry (`mote-roles`), never by name.

use std::collections::BTreeMap;

use mote_config::prometheus::{parse_line, quantile};
use mote_config::{Invalid, PerfColumn, PerfRow, PerfUnit, Port, Protocol, Role, RolePerf};

use crate::config::{ConfigError, WebSettings};

/// The web role.
pub struct Web;

/// The registry's entry.
pub static ROLE: Web = Web;

impl Role for Web {
    fn name(&self) -> &'static str {
        "web"
    }

    /// Site `default` on `http://*:80`, serving `/srv/www` (the package
    /// installs a page there).
    fn defaults(&self) -> serde_json::Value {
        serde_json::json!({
            "sites": [{
                "name": "default",
                "root": "/srv/www",
                "bindings": [{"scheme": "http", "port": 80}],
            }]
        })
    }

    fn check(&self, section: &serde_json::Value) -> Result<(), Vec<Invalid>> {
        let settings: WebSettings = mote_config::section(section).map_err(|p| vec![p])?;
        settings.validate().map_err(|e| {
            let (key, message) = match e {
                ConfigError::Invalid { key, message } => (key, message),
                other => (String::new(), other.to_string()),
            };
            let found = found_at(section, &key);
            vec![Invalid::new(key, found, message)]
        })
    }

    fn ports(&self, section: &serde_json::Value) -> Vec<Port> {
        let Ok(settings) = mote_config::section::<WebSettings>(section) else {
            return Vec::new();
        };
        settings
            .sites
            .iter()
            .flat_map(|s| &s.bindings)
            .map(|b| Port {
                number: b.port,
                protocol: Protocol::Tcp,
            })
            .collect()
    }

    /// A row per site from the `mote_web_*` families of `mote-web
    /// --metrics`: requests, responses by class, bytes sent, and the median
    /// and 99th percentile latency estimated from the histogram.
    fn performance(&self, metrics: &str) -> Option<RolePerf> {
        let rows = site_rows(metrics);
        if rows.is_empty() {
            return None;
        }
        let column = |name: &str, unit| PerfColumn {
            name: name.into(),
            unit,
        };
        Some(RolePerf {
            role: "web".into(),
            row: "site".into(),
            columns: vec![
                column("requests", PerfUnit::Count),
                column("2xx", PerfUnit::Count),
                column("3xx", PerfUnit::Count),
                column("4xx", PerfUnit::Count),
                column("5xx", PerfUnit::Count),
                column("sent", PerfUnit::Bytes),
                column("p50", PerfUnit::Milliseconds),
                column("p99", PerfUnit::Milliseconds),
            ],
            rows,
        })
    }
}

/// The per site rows of [`Web::performance`], by site name.
fn site_rows(text: &str) -> Vec<PerfRow> {
    // requests, 2xx, 3xx, 4xx, 5xx, sent
    let mut counts: BTreeMap<String, [f64; 6]> = BTreeMap::new();
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in text.lines().filter_map(parse_line) {
        let Some(site) = s.label("site") else {
            continue;
        };
        let slot = match (s.name.as_str(), s.label("class")) {
            ("mote_web_requests_total", _) => 0,
            ("mote_web_responses_total", Some("2xx")) => 1,
            ("mote_web_responses_total", Some("3xx")) => 2,
            ("mote_web_responses_total", Some("4xx")) => 3,
            ("mote_web_responses_total", Some("5xx")) => 4,
            ("mote_web_sent_bytes_total", _) => 5,
            ("mote_web_request_duration_seconds_bucket", _) => {
                let le = match s.label("le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(x) => match x.parse() {
                        Ok(x) => x,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                counts.entry(site.to_string()).or_default();
                buckets
                    .entry(site.to_string())
                    .or_default()
                    .push((le, s.value));
                continue;
            }
            _ => continue,
        };
        counts.entry(site.to_string()).or_default()[slot] = s.value.max(0.0);
    }
    counts
        .into_iter()
        .map(|(name, c)| {
            let b = buckets.get(&name).map_or(&[][..], Vec::as_slice);
            let ms = |q| quantile(q, b).map(|s| s * 1000.0);
            let mut values: Vec<Option<f64>> = c.iter().copied().map(Some).collect();
            values.extend([ms(0.5), ms(0.99)]);
            PerfRow { name, values }
        })
        .collect()
}

/// The value at key path `key` (`sites[0].root`) of `section`, as JSON, for
/// the "found" of a problem; `this value` when the path does not lead to one.
fn found_at(section: &serde_json::Value, key: &str) -> String {
    let mut at = section;
    for part in key.split('.') {
        let (name, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            match at.get(name) {
                Some(v) => at = v,
                None => return "this value".into(),
            }
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let Some(v) = index
                .trim_end_matches(']')
                .parse::<usize>()
                .ok()
                .and_then(|i| at.get(i))
            else {
                return "this value".into();
            };
            at = v;
        }
    }
    let text = at.to_string();
    if text.len() > 60 {
        format!("{}…", text.chars().take(60).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Real `mote-web --metrics` output: one site, a 200 and a 404, both
    /// under 0.5 ms.
    const SAMPLE: &str = include_str!("../tests/metrics_sample.txt");

    #[test]
    fn performance_reads_mote_webs_real_metrics() {
        let p = ROLE.performance(SAMPLE).expect("figures");
        assert_eq!(p.row, "site");
        assert_eq!(p.rows.len(), 1, "{p:?}");
        let v = &p.rows[0].values;
        assert_eq!(v.len(), p.columns.len());
        assert_eq!(v[0], Some(2.0), "requests");
        assert_eq!(v[1].unwrap() + v[3].unwrap(), 2.0, "a 2xx and a 4xx");
        assert!(v[5].unwrap() > 0.0, "bytes sent");
        let (p50, p99) = (v[6].unwrap(), v[7].unwrap());
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= 5000.0, "{p50} {p99}");
        assert_eq!(ROLE.performance("# nothing\n"), None);
    }

    #[test]
    fn the_defaults_pass_their_own_check() {
        assert_eq!(ROLE.check(&ROLE.defaults()), Ok(()));
        assert_eq!(
            ROLE.ports(&ROLE.defaults()),
            [Port {
                number: 80,
                protocol: Protocol::Tcp
            }]
        );
    }

    #[test]
    fn a_type_error_names_the_key_inside_the_section() {
        let bad = json!({"sites": [{"name": "a", "root": "/srv", "bindings": [{"scheme": "http", "port": "eighty"}]}]});
        let p = &ROLE.check(&bad).unwrap_err()[0];
        assert_eq!(p.path, "sites[0].bindings[0].port");
        assert_eq!(p.found, "string \"eighty\"");
        assert_eq!(p.allowed, "a port from 1 to 65535");
    }

    #[test]
    fn an_unknown_key_is_refused_with_the_allowed_keys() {
        let p = &ROLE.check(&json!({"sitez": []})).unwrap_err()[0];
        assert_eq!(p.path, "sitez");
        assert!(p.allowed.contains("\"sites\""), "{p:?}");
    }

    #[test]
    fn a_rule_names_the_key_and_what_was_found() {
        let bad = json!({"sites": [{"name": "a", "root": "srv", "bindings": [{"scheme": "http", "port": 80}]}]});
        let p = &ROLE.check(&bad).unwrap_err()[0];
        assert_eq!(p.path, "sites[0].root");
        assert_eq!(p.found, "\"srv\"");
        assert_eq!(p.allowed, "must be an absolute path");
    }

    #[test]
    fn ports_are_every_binding() {
        let s = json!({"sites": [
            {"name": "a", "root": "/a", "bindings": [{"scheme": "http", "port": 8080}]},
            {"name": "b", "root": "/b", "bindings": [{"scheme": "http", "port": 8081}]},
        ]});
        let ports: Vec<u16> = ROLE.ports(&s).iter().map(|p| p.number).collect();
        assert_eq!(ports, [8080, 8081]);
    }
}

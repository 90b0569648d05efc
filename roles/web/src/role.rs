//! The web role's side of the role contract ([`mote_config::Role`]): the
//! `roles.web` section typed by [`WebSettings`], its defaults, and the
//! ports its sites listen on. `mote check`, `moted` and PID 1 reach it
//! through the registry (`mote-roles`), never by name.

use mote_config::{Invalid, Port, Protocol, Role};

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

//! Node events: time, source, level, message.

use serde::{Deserialize, Serialize};

/// Severity of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum Level {
    /// Detail for debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something is off but the node carries on.
    Warn,
    /// Something failed.
    Error,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Event {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// `init`, `net`, `firewall`, `dhcp`, `audit`, or a service name.
    pub source: String,
    /// Severity.
    pub level: Level,
    /// What happened, one line.
    pub message: String,
}

/// Which events to return. Every field narrows; absent fields match all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventQuery {
    /// Only events at or after this time (ms since the Unix epoch).
    #[serde(default)]
    pub since_ms: Option<u64>,
    /// Only events from this source.
    #[serde(default)]
    pub source: Option<String>,
    /// Only events at this level or worse.
    #[serde(default)]
    pub level: Option<Level>,
    /// Only events whose message contains this text.
    #[serde(default)]
    pub text: Option<String>,
    /// At most this many, the newest (default 1000).
    #[serde(default)]
    pub limit: Option<usize>,
}

impl EventQuery {
    /// Does `event` pass every filter?
    pub fn matches(&self, event: &Event) -> bool {
        self.since_ms.is_none_or(|t| event.time_ms >= t)
            && self.source.as_ref().is_none_or(|s| &event.source == s)
            && self.level.is_none_or(|l| event.level >= l)
            && self
                .text
                .as_ref()
                .is_none_or(|t| event.message.contains(t.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_narrow_by_every_field() {
        let e = Event {
            time_ms: 10,
            source: "web".into(),
            level: Level::Warn,
            message: "slow start".into(),
        };
        assert!(EventQuery::default().matches(&e));
        assert!(EventQuery {
            level: Some(Level::Info),
            ..Default::default()
        }
        .matches(&e));
        assert!(!EventQuery {
            level: Some(Level::Error),
            ..Default::default()
        }
        .matches(&e));
        assert!(!EventQuery {
            since_ms: Some(11),
            ..Default::default()
        }
        .matches(&e));
        assert!(!EventQuery {
            source: Some("dns".into()),
            ..Default::default()
        }
        .matches(&e));
        assert!(EventQuery {
            text: Some("slow".into()),
            ..Default::default()
        }
        .matches(&e));
    }
}

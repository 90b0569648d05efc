//! Service start order and the ports services open.

use std::collections::{BTreeMap, BTreeSet};

use crate::settings::{NodeSettings, Port, Service};

impl NodeSettings {
    /// Service names in start order: a service comes after everything in its
    /// `after` list; among services free to start, by name. Unknown names and
    /// self-references in `after` are ignored, and services caught in a cycle
    /// come last, by name ([`NodeSettings::validate`] rejects both).
    pub fn service_order(&self) -> Vec<String> {
        start_order(&self.services)
    }

    /// Every port some service opens, and the management port when
    /// management is enabled, sorted and without duplicates.
    pub fn open_ports(&self) -> Vec<Port> {
        let mut ports: BTreeSet<Port> = self
            .services
            .values()
            .flat_map(|s| s.ports.iter().copied())
            .collect();
        if self.management.enabled {
            ports.insert(Port {
                number: self.management.port,
                protocol: crate::settings::Protocol::Tcp,
            });
        }
        ports.into_iter().collect()
    }
}

/// The `after` entries of `name` that name another existing service.
fn deps<'a>(
    services: &'a BTreeMap<String, Service>,
    name: &'a str,
    service: &'a Service,
) -> impl Iterator<Item = &'a str> + 'a {
    service
        .after
        .iter()
        .map(String::as_str)
        .filter(move |dep| *dep != name && services.contains_key(*dep))
}

/// Kahn's algorithm with the ready set ordered by name.
pub(crate) fn start_order(services: &BTreeMap<String, Service>) -> Vec<String> {
    let mut waiting: BTreeMap<&str, BTreeSet<&str>> = services
        .iter()
        .map(|(name, service)| (name.as_str(), deps(services, name, service).collect()))
        .collect();
    let mut ready: BTreeSet<&str> = waiting
        .iter()
        .filter(|(_, deps)| deps.is_empty())
        .map(|(&name, _)| name)
        .collect();
    waiting.retain(|_, deps| !deps.is_empty());
    let mut order = Vec::with_capacity(services.len());
    while let Some(next) = ready.pop_first() {
        order.push(next.to_owned());
        waiting.retain(|&name, deps| {
            deps.remove(next);
            if deps.is_empty() {
                ready.insert(name);
            }
            !deps.is_empty()
        });
    }
    order.extend(waiting.into_keys().map(str::to_owned));
    order
}

/// Every cycle among `after` entries, each once, as names starting from its
/// smallest and ending with it again: `["a", "b", "a"]`.
pub(crate) fn cycles(services: &BTreeMap<String, Service>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    fn visit<'a>(
        services: &'a BTreeMap<String, Service>,
        name: &'a str,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        found: &mut BTreeSet<Vec<String>>,
    ) {
        marks.insert(name, Mark::OnStack);
        stack.push(name);
        if let Some(service) = services.get(name) {
            for dep in deps(services, name, service) {
                match marks.get(dep).copied().unwrap_or(Mark::New) {
                    Mark::New => visit(services, dep, marks, stack, found),
                    Mark::OnStack => {
                        let start = stack.iter().rposition(|&n| n == dep).unwrap_or(0);
                        let ring = &stack[start..];
                        let smallest = (0..ring.len()).min_by_key(|&i| ring[i]).unwrap_or(0);
                        let mut cycle: Vec<String> = ring[smallest..]
                            .iter()
                            .chain(&ring[..smallest])
                            .map(|&n| n.to_owned())
                            .collect();
                        if let Some(first) = cycle.first().cloned() {
                            cycle.push(first);
                            found.insert(cycle);
                        }
                    }
                    Mark::Done => {}
                }
            }
        }
        stack.pop();
        marks.insert(name, Mark::Done);
    }

    let mut marks = BTreeMap::new();
    let mut found = BTreeSet::new();
    for name in services.keys() {
        if !marks.contains_key(name.as_str()) {
            visit(services, name, &mut marks, &mut Vec::new(), &mut found);
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Protocol, RestartPolicy};

    fn service(after: &[&str], ports: &[Port]) -> Service {
        Service {
            argv: vec!["/bin/x".into()],
            environment: BTreeMap::new(),
            user: "root".into(),
            restart: RestartPolicy::Always,
            after: after.iter().map(|s| s.to_string()).collect(),
            ports: ports.to_vec(),
            stop_timeout_secs: 5,
            capabilities: Vec::new(),
            open_files: None,
        }
    }

    fn node(services: &[(&str, &[&str])]) -> NodeSettings {
        NodeSettings {
            services: services
                .iter()
                .map(|(name, after)| (name.to_string(), service(after, &[])))
                .collect(),
            ..NodeSettings::default()
        }
    }

    #[test]
    fn dependencies_first_then_by_name() {
        let n = node(&[
            ("web", &["db", "cache"]),
            ("db", &[]),
            ("cache", &["db"]),
            ("app", &[]),
        ]);
        assert_eq!(n.service_order(), ["app", "db", "cache", "web"]);
    }

    #[test]
    fn ties_by_name() {
        let n = node(&[("c", &[]), ("b", &[]), ("a", &[])]);
        assert_eq!(n.service_order(), ["a", "b", "c"]);
    }

    #[test]
    fn a_freed_service_waits_its_turn_by_name() {
        // `b` becomes ready after `z`, but `c` was ready first: order is by
        // readiness rounds through the sorted ready set.
        let n = node(&[("z", &[]), ("b", &["z"]), ("c", &[])]);
        assert_eq!(n.service_order(), ["c", "z", "b"]);
    }

    #[test]
    fn unknown_and_self_dependencies_are_ignored_and_cycles_go_last() {
        let n = node(&[
            ("a", &["a", "ghost"]),
            ("x", &["y"]),
            ("y", &["x"]),
            ("b", &[]),
        ]);
        assert_eq!(n.service_order(), ["a", "b", "x", "y"]);
    }

    #[test]
    fn cycles_are_found_once_each() {
        let n = node(&[
            ("a", &["b"]),
            ("b", &["c"]),
            ("c", &["a"]),
            ("d", &["d"]),
            ("e", &["a"]),
        ]);
        assert_eq!(cycles(&n.services), vec![vec!["a", "b", "c", "a"]]);
        let n = node(&[("x", &["y"]), ("y", &["x"]), ("p", &["q"]), ("q", &["p"])]);
        assert_eq!(
            cycles(&n.services),
            vec![vec!["p", "q", "p"], vec!["x", "y", "x"]]
        );
    }

    #[test]
    fn open_ports_are_a_sorted_union() {
        let tcp = |number| Port {
            number,
            protocol: Protocol::Tcp,
        };
        let udp = Port {
            number: 53,
            protocol: Protocol::Udp,
        };
        let mut n = NodeSettings::default();
        n.management.enabled = false;
        n.services
            .insert("web".into(), service(&[], &[tcp(443), tcp(80)]));
        n.services
            .insert("dns".into(), service(&[], &[udp, tcp(53)]));
        n.services.insert("api".into(), service(&[], &[tcp(80)]));
        assert_eq!(n.open_ports(), vec![tcp(53), udp, tcp(80), tcp(443)]);
        n.management.enabled = true;
        assert_eq!(
            n.open_ports(),
            vec![tcp(53), udp, tcp(80), tcp(443), tcp(5986)]
        );
    }
}

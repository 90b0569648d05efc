//! Dependency resolution: from requested packages and the available ones to
//! an install set in dependency order (dependencies first).
//!
//! One version per name. Each name is settled when first reached, breadth
//! first from the requests in the order given, at the highest available
//! version meeting every requirement known by then; a later requirement
//! that the settled version does not meet is a conflict naming both
//! requirers. There is no backtracking: a conflict is reported, not solved
//! by trying older versions of the requirers.

// An error is made once per failed resolution and names both sides in
// full: its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use semver::{Version, VersionReq};

/// A package that can be installed: its name, version and dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Package name.
    pub name: String,
    /// Its version.
    pub version: Version,
    /// Dependency name → version requirement.
    pub dependencies: BTreeMap<String, VersionReq>,
}

impl From<&crate::PackageManifest> for Candidate {
    fn from(m: &crate::PackageManifest) -> Self {
        Self {
            name: m.name.clone(),
            version: m.version.clone(),
            dependencies: m.dependencies.clone(),
        }
    }
}

/// A package asked for by name with a version requirement (`*` for any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Package name.
    pub name: String,
    /// Which versions will do.
    pub requirement: VersionReq,
}

/// Why no install set exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A requested package that is not available in a fitting version.
    #[error("{name} {requirement} was requested but is not available (available: {}); add the package or loosen the request", versions(available))]
    NotAvailable {
        /// The name.
        name: String,
        /// The requested versions.
        requirement: VersionReq,
        /// The versions there are.
        available: Vec<Version>,
    },
    /// A dependency no available version satisfies.
    #[error("{package} {version} needs {dependency} {requirement}, which is not available (available: {}); add a fitting {dependency} package", versions(available))]
    MissingDependency {
        /// The package that needs it.
        package: String,
        /// Its version.
        version: Version,
        /// The needed package.
        dependency: String,
        /// The needed versions.
        requirement: VersionReq,
        /// The versions there are.
        available: Vec<Version>,
    },
    /// Two packages need versions of a third that no one version meets.
    #[error("version conflict over {dependency}: {needed_by} needs {dependency} {requirement}, but {dependency} {chosen} was chosen for {chosen_for}; make their requirements overlap")]
    Conflict {
        /// `name version` of the package whose requirement fails, or `the request`.
        needed_by: String,
        /// The package both need.
        dependency: String,
        /// What `package` needs.
        requirement: VersionReq,
        /// The version already settled.
        chosen: Version,
        /// Who it was settled for (`web 1.0.0` or `the request`).
        chosen_for: String,
    },
    /// Packages that need each other.
    #[error("dependency cycle: {}; break it by removing one of these dependencies", cycle.join(" → "))]
    Cycle {
        /// `name version` of each package on the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
}

fn versions(list: &[Version]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The install set for `requested` from `available`, dependencies before
/// the packages that need them (ties in name order).
pub fn resolve<'a>(
    requested: &[Request],
    available: &'a [Candidate],
) -> Result<Vec<&'a Candidate>, ResolveError> {
    let versions_of = |name: &str| -> Vec<&'a Candidate> {
        let mut found: Vec<&Candidate> = available.iter().filter(|c| c.name == name).collect();
        found.sort_by(|a, b| b.version.cmp(&a.version));
        found
    };
    let all_versions = |name: &str| -> Vec<Version> {
        let mut v: Vec<Version> = versions_of(name)
            .iter()
            .map(|c| c.version.clone())
            .collect();
        v.reverse();
        v
    };

    // name → (chosen candidate, who it was chosen for)
    let mut chosen: BTreeMap<&str, (&'a Candidate, String)> = BTreeMap::new();
    // (name, requirement, requirer): requirer None for the request.
    let mut queue: VecDeque<(String, VersionReq, Option<&'a Candidate>)> = requested
        .iter()
        .map(|r| (r.name.clone(), r.requirement.clone(), None))
        .collect();
    while let Some((name, requirement, requirer)) = queue.pop_front() {
        if let Some((settled, chosen_for)) = chosen.get(name.as_str()) {
            if !requirement.matches(&settled.version) {
                return Err(ResolveError::Conflict {
                    needed_by: requirer.map_or_else(
                        || "the request".to_string(),
                        |p| format!("{} {}", p.name, p.version),
                    ),
                    dependency: name,
                    requirement,
                    chosen: settled.version.clone(),
                    chosen_for: chosen_for.clone(),
                });
            }
            continue;
        }
        let Some(pick) = versions_of(&name)
            .into_iter()
            .find(|c| requirement.matches(&c.version))
        else {
            return Err(match requirer {
                None => ResolveError::NotAvailable {
                    available: all_versions(&name),
                    name,
                    requirement,
                },
                Some(p) => ResolveError::MissingDependency {
                    package: p.name.clone(),
                    version: p.version.clone(),
                    available: all_versions(&name),
                    dependency: name,
                    requirement,
                },
            });
        };
        let chosen_for = requirer.map_or_else(
            || "the request".to_string(),
            |p| format!("{} {}", p.name, p.version),
        );
        chosen.insert(&pick.name, (pick, chosen_for));
        for (dep, req) in &pick.dependencies {
            queue.push_back((dep.clone(), req.clone(), Some(pick)));
        }
    }
    order(&chosen.iter().map(|(n, (c, _))| (*n, *c)).collect())
}

/// Dependencies first; a cycle is an error listing it.
fn order<'a>(chosen: &BTreeMap<&str, &'a Candidate>) -> Result<Vec<&'a Candidate>, ResolveError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        name: &str,
        chosen: &BTreeMap<&str, &'a Candidate>,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
        out: &mut Vec<&'a Candidate>,
    ) -> Result<(), ResolveError> {
        let Some(candidate) = chosen.get(name) else {
            return Ok(());
        };
        match marks.get(name) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Visiting) => {
                let start = path.iter().position(|p| p == name).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..]
                    .iter()
                    .filter_map(|n| chosen.get(n.as_str()))
                    .map(|c| format!("{} {}", c.name, c.version))
                    .collect();
                cycle.push(format!("{} {}", candidate.name, candidate.version));
                return Err(ResolveError::Cycle { cycle });
            }
            None => {}
        }
        marks.insert(name.to_string(), Mark::Visiting);
        path.push(name.to_string());
        let deps: BTreeSet<&String> = candidate.dependencies.keys().collect();
        for dep in deps {
            visit(dep, chosen, marks, path, out)?;
        }
        path.pop();
        marks.insert(name.to_string(), Mark::Done);
        out.push(candidate);
        Ok(())
    }
    let mut marks = BTreeMap::new();
    let mut out = Vec::new();
    for name in chosen.keys() {
        visit(name, chosen, &mut marks, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str, deps: &[(&str, &str)]) -> Candidate {
        Candidate {
            name: name.into(),
            version: version.parse().unwrap(),
            dependencies: deps
                .iter()
                .map(|(n, r)| (n.to_string(), r.parse().unwrap()))
                .collect(),
        }
    }

    fn want(name: &str) -> Request {
        Request {
            name: name.into(),
            requirement: VersionReq::STAR,
        }
    }

    fn ids(set: &[&Candidate]) -> Vec<String> {
        set.iter()
            .map(|c| format!("{} {}", c.name, c.version))
            .collect()
    }

    #[test]
    fn dependencies_come_first_at_their_highest_fitting_version() {
        let available = [
            pkg("app", "1.0.0", &[("web", "^1"), ("tls", "^0.3")]),
            pkg("web", "1.2.0", &[("tls", ">=0.3, <0.5")]),
            pkg("web", "2.0.0", &[]),
            pkg("tls", "0.3.1", &[]),
            pkg("tls", "0.4.0", &[]),
            pkg("tls", "0.5.0", &[]),
        ];
        let set = resolve(&[want("app")], &available).unwrap();
        assert_eq!(ids(&set), ["tls 0.3.1", "web 1.2.0", "app 1.0.0"]);
    }

    #[test]
    fn a_missing_dependency_names_both_packages_and_versions() {
        let available = [
            pkg("app", "1.0.0", &[("web", "^2")]),
            pkg("web", "1.2.0", &[]),
        ];
        let err = resolve(&[want("app")], &available).unwrap_err();
        assert_eq!(
            err.to_string(),
            "app 1.0.0 needs web ^2, which is not available (available: 1.2.0); add a fitting web package"
        );
    }

    #[test]
    fn a_version_conflict_names_both_requirers() {
        let available = [
            pkg("a", "1.0.0", &[("lib", "^1")]),
            pkg("b", "2.0.0", &[("lib", "^2")]),
            pkg("lib", "1.4.0", &[]),
            pkg("lib", "2.1.0", &[]),
        ];
        let err = resolve(&[want("a"), want("b")], &available).unwrap_err();
        assert_eq!(
            err.to_string(),
            "version conflict over lib: b 2.0.0 needs lib ^2, but lib 1.4.0 was chosen for a 1.0.0; \
             make their requirements overlap"
        );
    }

    #[test]
    fn a_cycle_is_listed() {
        let available = [
            pkg("a", "1.0.0", &[("b", "*")]),
            pkg("b", "1.0.0", &[("c", "*")]),
            pkg("c", "1.0.0", &[("a", "*")]),
        ];
        let err = resolve(&[want("a")], &available).unwrap_err();
        assert_eq!(
            err,
            ResolveError::Cycle {
                cycle: vec![
                    "a 1.0.0".into(),
                    "b 1.0.0".into(),
                    "c 1.0.0".into(),
                    "a 1.0.0".into()
                ]
            }
        );
    }

    #[test]
    fn an_unavailable_request_lists_what_there_is() {
        let available = [pkg("web", "1.0.0", &[])];
        let err = resolve(
            &[Request {
                name: "web".into(),
                requirement: "^2".parse().unwrap(),
            }],
            &available,
        )
        .unwrap_err();
        assert!(err.to_string().contains("web ^2 was requested"), "{err}");
        assert!(err.to_string().contains("available: 1.0.0"), "{err}");
        let err = resolve(&[want("dns")], &available).unwrap_err();
        assert!(err.to_string().contains("available: none"), "{err}");
    }
}

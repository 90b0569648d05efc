//! Property tests of [`merge_patch`] and [`lookup`] (issue 9: fuzz targets,
//! run bounded in the suite and longer by `cargo xtask fuzz`), and the
//! runner the settings patch properties share ([`run`]).
//!
//! Properties: no panic; RFC 7396 §2 as a definition, key by key; a patch
//! applied twice gives what it gave once; nulls in a patch never end up in
//! the result; any object can be patched into any other (Appendix A's
//! round trip, with a diff written here); `lookup` finds every node by the
//! path that leads to it, with `.` or `/`, and never panics on any path.
//!
//! `MOTE_FUZZ_CASES` sets the cases per property and round (default
//! [`CASES`]); `MOTE_FUZZ_UNTIL` (Unix seconds) keeps running rounds until
//! then.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};

use super::{lookup, merge_patch};

/// Cases per property in the suite.
pub(crate) const CASES: u32 = 5000;

/// Runs `test` on values of `strategy`: `MOTE_FUZZ_CASES` cases (default
/// `default`), then more rounds while the clock is before `MOTE_FUZZ_UNTIL`.
pub(crate) fn run<S: Strategy>(
    name: &str,
    default: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let number = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<u64>().ok());
    let cases = number("MOTE_FUZZ_CASES").map_or(default, |n| n.clamp(1, u32::MAX.into()) as u32);
    let until = number("MOTE_FUZZ_UNTIL").unwrap_or(0);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let started = std::time::Instant::now();
    let mut rounds = 0u64;
    loop {
        // A runner per round: each starts from a new random seed.
        if let Err(e) = TestRunner::new(config.clone()).run(&strategy, &test) {
            panic!("{name}: {e}");
        }
        rounds += 1;
        if crate::now_ms() / 1000 >= until {
            break;
        }
    }
    eprintln!(
        "fuzz {name}: {} cases in {:.1} s",
        rounds * u64::from(cases),
        started.elapsed().as_secs_f64()
    );
}

/// Keys from a small set, so that targets and patches share many; some
/// hold the separators `lookup` splits on.
const KEYS: &[&str] = &["a", "b", "c", "", "0", "1", "d.e", "f/g", "é"];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "\\PC{0,6}",
    ]
}

fn leaf(nulls: bool) -> BoxedStrategy<Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
    ];
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        number,
        "\\PC{0,8}".prop_map(Value::String),
    ];
    if nulls {
        prop_oneof![1 => Just(Value::Null), 4 => leaf].boxed()
    } else {
        leaf.prop_filter("not null", |v| !v.is_null()).boxed()
    }
}

/// A JSON value; with `nulls` false, no object member is null (arrays may
/// still hold nulls: a merge patch copies arrays whole).
fn json(nulls: bool) -> impl Strategy<Value = Value> {
    leaf(nulls).prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(prop_oneof![inner.clone(), Just(Value::Null)], 0..4)
                .prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A patch: usually an object, with nulls.
fn patch() -> impl Strategy<Value = Value> {
    prop_oneof![
        6 => prop::collection::btree_map(key(), json(true), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => json(true),
    ]
}

fn applied(target: &Value, patch: &Value) -> Value {
    let mut t = target.clone();
    merge_patch(&mut t, patch);
    t
}

/// No object member anywhere along objects is null.
fn members_null_free(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().all(|v| !v.is_null() && members_null_free(v)),
        _ => true,
    }
}

/// A merge patch that turns `from` into `to` (RFC 7396 Appendix A, read
/// backwards), for a `to` whose object members are never null.
pub(crate) fn diff(from: &Value, to: &Value) -> Value {
    let (Value::Object(f), Value::Object(t)) = (from, to) else {
        return to.clone();
    };
    let mut out = Map::new();
    for k in f.keys().filter(|k| !t.contains_key(*k)) {
        out.insert(k.clone(), Value::Null);
    }
    for (k, v) in t {
        match f.get(k) {
            Some(old) if old == v => {}
            Some(old) => {
                out.insert(k.clone(), diff(old, v));
            }
            None => {
                out.insert(k.clone(), diff(&Value::Null, v));
            }
        }
    }
    Value::Object(out)
}

#[test]
fn merge_patch_is_rfc_7396_key_by_key() {
    run(
        "json: RFC 7396 definition",
        CASES,
        (json(true), patch()),
        |(target, patch)| {
            let result = applied(&target, &patch);
            let Value::Object(p) = &patch else {
                prop_assert_eq!(&result, &patch, "a patch that is no object replaces");
                return Ok(());
            };
            let Value::Object(r) = &result else {
                return Err(TestCaseError::fail(format!("{result} is no object")));
            };
            let empty = Map::new();
            let t = target.as_object().unwrap_or(&empty);
            for (k, v) in p {
                if v.is_null() {
                    prop_assert!(!r.contains_key(k), "{k:?} is removed");
                } else {
                    let before = t.get(k).unwrap_or(&Value::Null);
                    prop_assert_eq!(r.get(k), Some(&applied(before, v)), "{:?} merged", k);
                }
            }
            for (k, v) in t.iter().filter(|(k, _)| !p.contains_key(*k)) {
                prop_assert_eq!(r.get(k), Some(v), "{:?} untouched", k);
            }
            for k in r.keys() {
                prop_assert!(t.contains_key(k) || p.contains_key(k), "{k:?} from nowhere");
            }
            Ok(())
        },
    );
}

#[test]
fn merge_patch_twice_is_once_and_leaves_no_null_member() {
    run(
        "json: idempotent, null-free",
        CASES,
        (json(false), patch()),
        |(target, patch)| {
            let once = applied(&target, &patch);
            prop_assert_eq!(&applied(&once, &patch), &once, "twice differs from once");
            if patch.is_object() {
                prop_assert!(members_null_free(&once), "a null member in {once}");
            }
            let empty = Value::Object(Map::new());
            let unchanged = if target.is_object() { &target } else { &empty };
            prop_assert_eq!(&applied(&target, &empty), unchanged, "{{}} changes nothing");
            Ok(())
        },
    );
}

#[test]
fn any_object_can_be_patched_into_any_other() {
    run(
        "json: diff round trip",
        CASES,
        (json(false), json(false)),
        |(from, to)| {
            let d = diff(&from, &to);
            prop_assert_eq!(&applied(&from, &d), &to, "patch {}", d);
            Ok(())
        },
    );
}

/// Every node of `v` with a path of keys that `lookup` can spell (no `.`
/// or `/` in them, not empty), and array indexes.
fn nodes<'a>(v: &'a Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, &'a Value)>) {
    out.push((path.clone(), v));
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m
            .iter()
            .filter(|(k, _)| !k.is_empty() && !k.contains(['.', '/']))
            .map(|(k, v)| (k.clone(), v))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    for (k, child) in children {
        path.push(k);
        nodes(child, path, out);
        path.pop();
    }
}

#[test]
fn lookup_finds_every_node_by_its_path_and_never_panics() {
    let separators = prop::collection::vec(prop::sample::select(&[".", "/", "..", "./"][..]), 8);
    run(
        "json: lookup",
        CASES,
        (json(true), separators, "\\PC{0,12}"),
        |(v, seps, junk)| {
            prop_assert_eq!(lookup(&v, ""), Some(&v));
            let _ = lookup(&v, &junk);
            let mut all = Vec::new();
            nodes(&v, &mut Vec::new(), &mut all);
            for (segments, node) in all {
                let mut path = String::new();
                for (i, s) in segments.iter().enumerate() {
                    if i > 0 {
                        path.push_str(seps[i % seps.len()]);
                    }
                    path.push_str(s);
                }
                // A key that reads as an index of an object still finds it;
                // first matching member wins, which is the only one.
                prop_assert_eq!(lookup(&v, &path), Some(node), "path {:?}", path);
            }
            Ok(())
        },
    );
}

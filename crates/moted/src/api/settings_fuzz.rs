//! Property tests of [`patched`], the settings merge patch behind `PATCH
//! /v1/settings` (issue 9: fuzz targets, run bounded in the suite and
//! longer by `cargo xtask fuzz`).
//!
//! Inputs: valid settings (the examples' and a minimal one) and merge
//! patches, either arbitrary objects over the settings' own keys and values
//! of the kinds they take, or the diff to a mutated copy of the settings
//! (a member set, removed or added, arrays changed inside).
//! Properties: no panic, and a refusal is always a 400 (never a 500);
//! the result is what deserializing the merged tree gives (an oracle:
//! the mutated copy itself); a patch applied twice gives what it gave once;
//! a result that passes `validate()` survives a JSON round trip unchanged;
//! `{}` changes nothing; an unknown key is refused.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use mote_api::control::NodeSettings;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Map, Value};

use super::patched;
use crate::core::json::fuzz::{diff, run, CASES};
use crate::error::ApiError;

/// The examples' settings and a minimal node's: all valid.
fn bases() -> Vec<NodeSettings> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut out: Vec<NodeSettings> = ["hello.toml", "web.toml"]
        .iter()
        .map(|name| {
            let path = examples.join(name);
            mote_config::load(&path)
                .unwrap_or_else(|e| panic!("{e}"))
                .settings()
        })
        .collect();
    let mut minimal = NodeSettings::default();
    minimal.system.hostname = "node1".into();
    minimal.system.admin_password_hash = out[0].system.admin_password_hash.clone();
    out.push(minimal);
    for s in &out {
        assert_eq!(s.validate(), Ok(()), "a base that does not validate");
    }
    out
}

/// The settings' own keys, and a few that are no key of theirs.
const KEYS: &[&str] = &[
    "system",
    "hostname",
    "timezone",
    "admin_password_hash",
    "network",
    "interfaces",
    "eth0",
    "eth1",
    "ipv4",
    "ipv6",
    "gateway4",
    "gateway6",
    "dns",
    "mtu",
    "firewall",
    "inbound",
    "rules",
    "name",
    "port",
    "protocol",
    "source",
    "action",
    "enabled",
    "services",
    "web",
    "argv",
    "environment",
    "user",
    "restart",
    "after",
    "ports",
    "number",
    "stop_timeout_secs",
    "capabilities",
    "first_boot",
    "timeout_secs",
    "management",
    "packages",
    "roles",
    "sites",
    "root",
    "bindings",
    "scheme",
    "bogus",
    "",
];

fn text() -> impl Strategy<Value = Value> {
    let words = prop::sample::select(
        &[
            "",
            "web01",
            "node-1",
            "UTC",
            "Europe/Paris",
            "dhcp",
            "static",
            "slaac",
            "none",
            "10.0.0.5/24",
            "10.0.0.1",
            "10.0.0.0/8",
            "::1",
            "fe80::1/64",
            "2001:db8::1",
            "0.0.0.0/0",
            "tcp",
            "udp",
            "allow",
            "deny",
            "always",
            "never",
            "on-failure",
            "x",
            "/usr/bin/hello",
            "bin/hello",
            "8080",
            "8080/tcp",
            "80/udp",
            "root",
            "nobody",
            "www-data",
            "CAP_NET_BIND_SERVICE",
            "web",
            "eth0",
            "http",
            "https",
            "/srv/www",
            "$argon2id$v=19$m=8,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$abc",
            super::REDACTED,
        ][..],
    )
    .prop_map(|w| Value::String(w.to_owned()));
    prop_oneof![4 => words, 1 => "\\PC{0,10}".prop_map(Value::String)]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => text(),
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => prop::sample::select(&[0i64, 1, 22, 53, 80, 443, 1500, 5986, 8080, 65535, 65536, -1][..])
            .prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "\\PC{0,6}",
    ]
}

/// A value from the settings' vocabulary, nested a little.
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A change at a node of the settings tree, found by walking fractions.
#[derive(Debug, Clone)]
enum Change {
    Set(Vec<f64>, Value),
    Remove(Vec<f64>),
    Add(Vec<f64>, String, Value),
}

fn change() -> impl Strategy<Value = Change> {
    let walk = prop::collection::vec(0.0..1.0f64, 0..6);
    prop_oneof![
        4 => (walk.clone(), value()).prop_map(|(w, v)| Change::Set(w, v)),
        2 => walk.clone().prop_map(Change::Remove),
        2 => (walk, key(), value()).prop_map(|(w, k, v)| Change::Add(w, k, v)),
    ]
}

/// Makes `change` to `tree`: the walk's fractions pick a member or item at
/// each level, as deep as containers go.
fn apply(tree: &mut Value, change: &Change) {
    let walk = match change {
        Change::Set(w, _) | Change::Remove(w) | Change::Add(w, _, _) => w,
    };
    let mut path: Vec<String> = Vec::new();
    let mut node = &*tree;
    for f in walk {
        let pick = |n: usize| ((f * n as f64) as usize).min(n.saturating_sub(1));
        let (segment, next) = match node {
            Value::Object(m) if !m.is_empty() => match m.iter().nth(pick(m.len())) {
                Some((k, v)) => (k.clone(), v),
                None => break,
            },
            Value::Array(a) if !a.is_empty() => {
                let i = pick(a.len());
                (i.to_string(), &a[i])
            }
            _ => break,
        };
        path.push(segment);
        node = next;
    }
    let Some((last, above)) = path.split_last() else {
        match (change, tree) {
            (Change::Set(_, v), tree) => *tree = v.clone(),
            (Change::Add(_, k, v), Value::Object(m)) => {
                m.insert(k.clone(), v.clone());
            }
            _ => {}
        }
        return;
    };
    let pointer: String = above
        .iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect();
    let Some(parent) = tree.pointer_mut(&pointer) else {
        return;
    };
    let index = last.parse::<usize>().unwrap_or(0);
    match (change, parent) {
        (Change::Remove(_), Value::Object(m)) => {
            m.remove(last);
        }
        (Change::Remove(_), Value::Array(a)) => {
            a.remove(index);
        }
        (Change::Set(_, v), Value::Object(m)) => {
            m.insert(last.clone(), v.clone());
        }
        (Change::Set(_, v), Value::Array(a)) => a[index] = v.clone(),
        (Change::Add(_, k, v), Value::Object(m)) => match m.get_mut(last) {
            Some(Value::Object(child)) => {
                child.insert(k.clone(), v.clone());
            }
            _ => {
                m.insert(k.clone(), v.clone());
            }
        },
        (Change::Add(_, _, v), Value::Array(a)) => a.insert(index, v.clone()),
        _ => {}
    }
}

/// `patched`, with a refusal that is not a 400 failing the case.
fn patch_of(old: &NodeSettings, patch: &Value) -> Result<Option<NodeSettings>, TestCaseError> {
    match patched(old, patch) {
        Ok(new) => Ok(Some(new)),
        Err(ApiError::BadRequest(_)) => Ok(None),
        Err(e) => Err(TestCaseError::fail(format!("not a 400: {e}"))),
    }
}

/// Patches refused, accepted, and accepted with settings that validate
/// (shared by the tests running at once: a rough view of the reach).
static OUTCOMES: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

fn outcomes() -> String {
    let [refused, accepted, valid] = &OUTCOMES;
    format!(
        "settings patches so far: {} refused, {} accepted, {} of them valid",
        refused.load(Ordering::Relaxed),
        accepted.load(Ordering::Relaxed),
        valid.load(Ordering::Relaxed)
    )
}

/// The properties of any outcome.
fn check(old: &NodeSettings, patch: &Value) -> Result<Option<NodeSettings>, TestCaseError> {
    let Some(new) = patch_of(old, patch)? else {
        OUTCOMES[0].fetch_add(1, Ordering::Relaxed);
        return Ok(None);
    };
    OUTCOMES[1].fetch_add(1, Ordering::Relaxed);
    let again = patch_of(&new, patch)?;
    prop_assert_eq!(again.as_ref(), Some(&new), "twice differs from once");
    if new.validate().is_ok() {
        OUTCOMES[2].fetch_add(1, Ordering::Relaxed);
        let text = serde_json::to_string(&new).expect("settings serialize");
        let back: NodeSettings =
            serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(&back, &new, "changed in a JSON round trip: {}", text);
    }
    Ok(Some(new))
}

#[test]
fn mutated_settings_patch_to_exactly_themselves() {
    let bases = bases();
    let strategy = (0..bases.len(), prop::collection::vec(change(), 1..4));
    run(
        "settings: diff to mutated settings",
        CASES,
        strategy,
        |(base, changes)| {
            let old = &bases[base];
            let tree = serde_json::to_value(old).expect("settings serialize");
            let mut target = tree.clone();
            for c in &changes {
                apply(&mut target, c);
            }
            let patch = diff(&tree, &target);
            if !patch.is_object() {
                return Ok(()); // the root replaced by a non-object: PATCH refuses it earlier
            }
            let new = check(old, &patch)?;
            // Merging the diff gives `target` with null members dropped.
            let mut merged = tree.clone();
            crate::core::json::merge_patch(&mut merged, &patch);
            let oracle = serde_json::from_value::<NodeSettings>(merged).ok();
            prop_assert_eq!(new, oracle, "patch {}", patch);
            Ok(())
        },
    );
    eprintln!("{}", outcomes());
}

#[test]
fn arbitrary_patches_are_a_400_or_settings_that_hold() {
    let bases = bases();
    let patch = prop::collection::btree_map(key(), value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    run(
        "settings: arbitrary patches",
        CASES,
        (0..bases.len(), patch),
        |(base, patch)| {
            check(&bases[base], &patch)?;
            Ok(())
        },
    );
    eprintln!("{}", outcomes());
}

#[test]
fn an_empty_patch_changes_nothing_and_unknown_keys_are_refused() {
    for old in bases() {
        assert_eq!(patched(&old, &json!({})).ok(), Some(old.clone()));
        for patch in [
            json!({"bogus": 1}),
            json!({"system": {"bogus": 1}}),
            json!({"network": {"interfaces": {"eth0": {"bogus": 1}}}}),
            json!({"management": {"port": 5986, "bogus": true}}),
        ] {
            match patched(&old, &patch) {
                Err(ApiError::BadRequest(m)) => assert!(m.contains("bogus"), "{m}"),
                other => panic!("{patch}: {:?}", other.map_err(|e| e.to_string())),
            }
        }
        // Any base can be patched into any other.
        for new in bases() {
            let from = serde_json::to_value(&old).expect("serialize");
            let to = serde_json::to_value(&new).expect("serialize");
            let mut members = Map::new();
            if let Value::Object(m) = diff(&from, &to) {
                members = m;
            }
            assert_eq!(patched(&old, &Value::Object(members)).ok(), Some(new));
        }
    }
}

/// Found by `mutated_settings_patch_to_exactly_themselves`: `roles.web` is
/// free JSON that `validate()` passes, and serde_json without its
/// `float_roundtrip` feature read `1.0235035536796033e-26` back one ulp
/// off, so stored settings were not the settings written.
#[test]
fn regression_a_float_in_the_settings_reads_back_exactly() {
    let old = bases().pop().expect("a base");
    let new = patched(&old, &json!({"roles": {"web": [1.0235035536796033e-26]}}))
        .unwrap_or_else(|e| panic!("{e}"));
    let text = serde_json::to_string(&new).expect("serialize");
    let back: NodeSettings = serde_json::from_str(&text).expect("deserialize");
    assert_eq!(back, new, "{text}");
}

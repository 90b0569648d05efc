//! RFC 7396 merge patches of the settings tree: one implementation for
//! moted (`PATCH /v1/settings`), `mote settings set` and `mote image edit`.

use serde_json::{Map, Value};

/// Applies `patch` to `target` as RFC 7396 says: objects merge key by key,
/// `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// `a.b.c` and a value → `{"a":{"b":{"c":value}}}`, the merge patch that
/// sets one dotted key; `None` when a segment is empty.
pub fn dotted_patch(path: &str, value: Value) -> Option<Value> {
    let keys: Vec<&str> = path.split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        return None;
    }
    Some(keys.iter().rev().fold(value, |v, k| {
        let mut m = Map::new();
        m.insert((*k).to_string(), v);
        Value::Object(m)
    }))
}

/// The value at a `.`- or `/`-separated path; array items by index.
pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split(['.', '/'])
        .filter(|s| !s.is_empty())
        .try_fold(root, |v, seg| match v {
            Value::Object(m) => m.get(seg),
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc7396_examples() {
        // RFC 7396 appendix A, a selection.
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }

    #[test]
    fn dotted_patch_nests_and_refuses_empty_segments() {
        assert_eq!(dotted_patch("a.b", json!(1)), Some(json!({"a":{"b":1}})));
        assert_eq!(dotted_patch("a..b", json!(1)), None);
        assert_eq!(dotted_patch("", json!(1)), None);
    }

    #[test]
    fn lookup_walks_objects_and_arrays() {
        let v = json!({"a":{"b":[10,{"c":"x"}]}});
        assert_eq!(lookup(&v, "a.b.1.c"), Some(&json!("x")));
        assert_eq!(lookup(&v, "/a/b/0"), Some(&json!(10)));
        assert_eq!(lookup(&v, "a.b.7"), None);
        assert_eq!(lookup(&v, "a.z"), None);
    }
}

//! JSON merge patch (RFC 7396, shared with the CLI in `mote_config::json`)
//! and path lookup in a JSON tree.

use serde_json::Value;

pub use mote_config::json::merge_patch;

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
    fn rfc7396_examples() {
        let mut t = json!({"a":"b","c":{"d":"e","f":"g"}});
        merge_patch(&mut t, &json!({"a":"z","c":{"f":null}}));
        assert_eq!(t, json!({"a":"z","c":{"d":"e"}}));
        let mut t = json!({"a":["b"]});
        merge_patch(&mut t, &json!({"a":"c"}));
        assert_eq!(t, json!({"a":"c"}));
    }

    #[test]
    fn paths_walk_objects_and_arrays() {
        let v = json!({"a":{"b":[1,2]}});
        assert_eq!(lookup(&v, "a.b.1"), Some(&json!(2)));
        assert_eq!(lookup(&v, "a/b"), Some(&json!([1, 2])));
        assert_eq!(lookup(&v, "a.x"), None);
    }
}

#[cfg(test)]
#[path = "json_fuzz.rs"]
pub(crate) mod fuzz;

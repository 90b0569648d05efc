//! JSON merge patch (RFC 7396) and path lookup, shared with the CLI in
//! `mote_config::json`; their tests and properties live here.

pub use mote_config::json::{lookup, merge_patch};

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

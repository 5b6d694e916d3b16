//! Small helpers over the JSON form of objects: metadata access, names, timestamps.

use rand::Rng;
use serde_json::{Map, Value};

/// `metadata` of an object, created if missing (or replaced if not an object).
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(map) = obj else {
        unreachable!("obj was just made an object")
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// A string field of `metadata` (empty if absent).
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.name`.
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

/// `metadata.namespace`.
pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}

/// `metadata.labels` as pairs (non-string values are ignored).
pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    !meta_str(obj, "deletionTimestamp").is_empty()
}

/// Now as an RFC 3339 timestamp with second precision, as metav1.Time serializes.
pub fn now_rfc3339() -> String {
    // The fixed-format writer: `format` parses its pattern on every call.
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Upstream's name generator: base (cut to 58 characters) + 5 random characters from an
/// alphabet without vowels or look-alikes.
pub fn generate_name(base: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    const MAX_BASE: usize = 63 - 5;
    let base: String = base.chars().take(MAX_BASE).collect();
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

/// Whether two objects agree outside `metadata` and `status` (a change there bumps
/// `metadata.generation`). Compared in place: objects can be hundreds of KB.
pub fn spec_equal(a: &Value, b: &Value) -> bool {
    equal_except(a, b, |k| {
        matches!(k, "metadata" | "status" | "apiVersion" | "kind")
    })
}

/// Whether two values are equal, ignoring top-level keys `skip` accepts (when both are
/// objects).
pub fn equal_except(a: &Value, b: &Value, skip: impl Fn(&str) -> bool) -> bool {
    let (Value::Object(a), Value::Object(b)) = (a, b) else {
        return a == b;
    };
    let kept = |m: &'_ Map<String, Value>| m.keys().filter(|k| !skip(k)).count();
    kept(a) == kept(b)
        && a.iter()
            .filter(|(k, _)| !skip(k))
            .all(|(k, v)| b.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generate_name_cuts_base_and_appends_five() {
        let long = "a".repeat(80);
        let n = generate_name(&long);
        assert_eq!(n.len(), 63);
        let n = generate_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9);
    }

    #[test]
    fn metadata_mut_repairs_junk() {
        let mut v = json!({"metadata": 5});
        metadata_mut(&mut v).insert("name".into(), json!("x"));
        assert_eq!(name(&v), "x");
        let mut v = json!([1, 2]);
        metadata_mut(&mut v);
        assert!(v.is_object());
    }

    #[test]
    fn spec_equal_ignores_metadata_and_status() {
        let a = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"x": 1}, "status": {"y": 2}});
        let b = json!({"metadata": {}, "spec": {"x": 1}});
        assert!(spec_equal(&a, &b));
        let c = json!({"metadata": {}, "spec": {"x": 2}});
        assert!(!spec_equal(&a, &c));
        let d = json!({"metadata": {}, "spec": {"x": 1}, "extra": true});
        assert!(!spec_equal(&a, &d) && !spec_equal(&d, &a));
    }
}

/// Upstream stores objects through typed structs whose metadata collections are
/// `omitempty`: `labels: {}`, `annotations: {}`, `finalizers: []`, `ownerReferences: []`
/// (or `null`) written by a client are not kept. Dropping them here keeps reads, diffs
/// and managed fields the same as upstream's.
pub fn drop_empty_collections(obj: &mut Value) {
    let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    m.retain(|k, v| {
        let collection = matches!(
            k.as_str(),
            "labels" | "annotations" | "finalizers" | "ownerReferences"
        );
        let empty = match v {
            Value::Null => true,
            Value::Object(o) => o.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        !(collection && empty)
    });
}

#[cfg(test)]
mod empty_collection_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn empty_metadata_collections_are_dropped() {
        let mut obj = json!({"metadata": {"name": "x", "labels": {}, "annotations": null,
            "finalizers": [], "ownerReferences": [], "uid": ""}});
        drop_empty_collections(&mut obj);
        assert_eq!(obj, json!({"metadata": {"name": "x", "uid": ""}}));
        let mut kept = json!({"metadata": {"labels": {"a": "b"}, "finalizers": ["f"]}});
        drop_empty_collections(&mut kept);
        assert_eq!(kept["metadata"]["labels"]["a"], "b");
        assert_eq!(kept["metadata"]["finalizers"][0], "f");
    }
}

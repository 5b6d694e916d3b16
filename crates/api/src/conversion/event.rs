//! events.k8s.io/v1 Event ↔ core/v1 Event (the stored form). The two carry the same data;
//! events.k8s.io renames some fields and marks the legacy ones `deprecated*`. Both sides
//! are total: a field of the other version's name is dropped rather than carried over
//! (the schema check has pruned it already), so a round trip is lossless.

use serde_json::{Map, Value, json};

/// (events.k8s.io/v1 name, core/v1 name) of every renamed field. `eventTime`, `series`,
/// `action`, `reason`, `related`, `type` and `reportingInstance` keep their names.
pub(crate) const RENAMED: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

/// An events.k8s.io/v1 Event → its core/v1 form.
pub(crate) fn to_core(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    for (new, core) in RENAMED {
        rename(map, new, core);
    }
    map.insert("apiVersion".into(), json!("v1"));
}

/// A core/v1 Event → its events.k8s.io/v1 form.
pub(crate) fn from_core(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    for (new, core) in RENAMED {
        rename(map, core, new);
    }
    map.insert("apiVersion".into(), json!("events.k8s.io/v1"));
}

/// Move `from` to `to`; whatever `to` held is not a field of the source version.
fn rename(map: &mut Map<String, Value>, from: &str, to: &str) {
    let moved = map.remove(from);
    map.remove(to);
    if let Some(v) = moved {
        map.insert(to.to_string(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_style() -> Value {
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "d"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:01.000000Z"},
            "reportingController": "example.com/ctl", "reportingInstance": "i",
            "action": "Act", "reason": "Why", "type": "Normal", "note": "hello",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "d"},
            "related": {"kind": "Node", "name": "n"},
            "deprecatedSource": {"component": "c"},
            "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2024-01-01T00:00:00Z",
            "deprecatedCount": 3
        })
    }

    #[test]
    fn renames_every_field_and_round_trips() {
        let mut ev = new_style();
        to_core(&mut ev);
        assert_eq!(ev["apiVersion"], "v1");
        assert_eq!(ev["message"], "hello");
        assert_eq!(ev["involvedObject"]["name"], "p");
        assert_eq!(ev["reportingComponent"], "example.com/ctl");
        assert_eq!(ev["source"]["component"], "c");
        assert_eq!(ev["count"], 3);
        assert_eq!(ev["firstTimestamp"], "2024-01-01T00:00:00Z");
        assert_eq!(ev["series"]["count"], 2);
        for (new, _) in RENAMED {
            assert!(ev.get(new).is_none(), "{new} left behind");
        }
        from_core(&mut ev);
        assert_eq!(ev, new_style());
    }

    #[test]
    fn other_version_names_do_not_leak() {
        let mut ev = json!({"note": "n", "message": "stale"});
        to_core(&mut ev);
        assert_eq!(ev["message"], "n");
        let mut core = json!({"message": "m", "note": "stale"});
        from_core(&mut core);
        assert_eq!(core["note"], "m");
        assert!(core.get("message").is_none());
        let mut junk = json!([1]);
        to_core(&mut junk);
        from_core(&mut junk);
        assert_eq!(junk, json!([1]));
    }
}

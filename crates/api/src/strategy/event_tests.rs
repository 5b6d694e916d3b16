use serde_json::{Value, json};

use crate::strategy::for_kind;
use crate::strategy::test_support::{assert_has, create, update};

/// A valid new-style event in its stored (core/v1) form.
fn new_style() -> Value {
    json!({
        "metadata": {"name": "e.1", "namespace": "d"},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingComponent": "example.com/ctl", "reportingInstance": "ctl-1",
        "action": "Scale", "reason": "Scaled", "type": "Normal", "message": "m",
        "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "d"}
    })
}

#[test]
fn legacy_namespace_rules() {
    // Old-style (no eventTime): the namespace is the object's, or default for
    // cluster-scoped objects.
    let ok = json!({"metadata": {"name": "x", "namespace": "d"}, "involvedObject": {"kind": "Pod", "namespace": "d"}});
    assert!(create("", "Event", ok).1.is_empty());
    let node = json!({"metadata": {"name": "x", "namespace": "default"}, "involvedObject": {"kind": "Node", "name": "n"}});
    assert!(create("", "Event", node).1.is_empty());
    let (_, errs) = create(
        "",
        "Event",
        json!({"metadata": {"name": "x", "namespace": "d"}, "involvedObject": {"kind": "Pod", "namespace": "other"}}),
    );
    assert_eq!(
        errs,
        ["involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"]
    );
    let (_, errs) = create(
        "",
        "Event",
        json!({"metadata": {"name": "x", "namespace": "d"}, "involvedObject": {"kind": "Node"}}),
    );
    assert_eq!(errs.len(), 1);
}

#[test]
fn legacy_rules_for_new_style_events() {
    assert!(create("", "Event", new_style()).1.is_empty());
    // A core/v1 write of a new-style event still needs the reporting fields.
    let (_, errs) = create(
        "",
        "Event",
        json!({"metadata": {"name": "x", "namespace": "kube-system"}, "eventTime": "2024-01-01T00:00:00Z", "message": "m".repeat(1025)}),
    );
    assert_has(
        &errs,
        &[
            "reportingController: Required value",
            "reportingInstance: Required value",
            "action: Required value",
            "reason: Required value",
            "message: Invalid value: \"\": can have at most 1024 characters",
        ],
    );
    let mut long = new_style();
    long["reportingComponent"] = json!("Not Qualified!");
    long["action"] = json!("a".repeat(129));
    long["involvedObject"]["namespace"] = json!("");
    let (_, errs) = create("", "Event", long);
    assert_has(
        &errs,
        &[
            "action: Invalid value: \"\": can have at most 128 characters",
            "involvedObject.namespace: Invalid value: \"\": does not match event.namespace",
        ],
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("reportingController: Invalid value: \"Not Qualified!\""))
    );
}

#[test]
fn events_v1_strict_create() {
    let (_, errs) = create("events.k8s.io", "Event", new_style());
    assert!(errs.is_empty(), "{errs:?}");
    let old_style = json!({
        "metadata": {"name": "x", "namespace": "d"},
        "involvedObject": {"kind": "Pod", "namespace": "d"}, "reason": "R", "type": "Info",
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z",
        "count": 2, "source": {"component": "kubelet"},
        "series": {"count": 1}
    });
    let (_, errs) = create("events.k8s.io", "Event", old_style);
    assert_eq!(
        errs,
        [
            "series.count: Invalid value: \"\": should be at least 2",
            "series.lastObservedTime: Required value",
            "eventTime: Required value",
            "type: Invalid value: \"\": has invalid value: Info",
            "firstTimestamp: Invalid value: \"\": needs to be unset",
            "lastTimestamp: Invalid value: \"\": needs to be unset",
            "count: Invalid value: \"\": needs to be unset",
            "source: Invalid value: \"\": needs to be unset",
        ]
    );
    // Go's zero time counts as unset.
    let mut zero = new_style();
    zero["firstTimestamp"] = json!("0001-01-01T00:00:00Z");
    zero["count"] = json!(0);
    assert!(create("events.k8s.io", "Event", zero).1.is_empty());
}

#[test]
fn events_v1_update_immutability() {
    let old = new_style();
    // Same data, other spellings of the same instant and zero values: no change.
    let mut same = old.clone();
    same["eventTime"] = json!("2024-01-01T00:00:00Z");
    same["count"] = json!(0);
    same["related"] = json!(null);
    let (_, errs) = update("events.k8s.io", "Event", same, &old);
    assert!(errs.is_empty(), "{errs:?}");
    // A series may be added (that is how a recorder counts repeats).
    let mut series = old.clone();
    series["series"] = json!({"count": 2, "lastObservedTime": "2024-01-01T00:01:00.000000Z"});
    assert!(update("events.k8s.io", "Event", series, &old).1.is_empty());
    let mut bad_series = old.clone();
    bad_series["series"] = json!({"count": 1});
    assert_eq!(
        update("events.k8s.io", "Event", bad_series, &old).1.len(),
        2
    );
    let mut changed = old.clone();
    changed["message"] = json!("other");
    changed["reportingComponent"] = json!("example.com/other");
    changed["involvedObject"]["name"] = json!("db");
    let (_, errs) = update("events.k8s.io", "Event", changed.clone(), &old);
    assert_has(
        &errs,
        &[
            "message: Invalid value: \"other\": field is immutable",
            "reportingController: Invalid value: \"example.com/other\": field is immutable",
        ],
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("involvedObject: Invalid value"))
    );
    // The core API lets old clients change anything (legacy rules only).
    assert!(update("", "Event", changed, &old).1.is_empty());
}

#[test]
fn field_selectors_per_api() {
    let core = json!({
        "involvedObject": {"kind": "Pod", "namespace": "d", "name": "p", "uid": "u", "apiVersion": "v1", "resourceVersion": "5", "fieldPath": "spec.containers{c}"},
        "reason": "Started", "reportingComponent": "kubelet", "source": {"component": "kubelet"}, "type": "Normal"
    });
    let f = for_kind("", "Event").field_selector_fields(&core);
    assert_eq!(f.len(), 11);
    assert_eq!(f[0], ("involvedObject.kind", "Pod".to_string()));
    assert_eq!(
        f[6],
        ("involvedObject.fieldPath", "spec.containers{c}".to_string())
    );
    assert_eq!(f[9], ("source", "kubelet".to_string()));
    // Without a legacy source, `source` selects the reporting controller.
    let new_in_core = json!({"reportingComponent": "ctl"});
    let f = for_kind("", "Event").field_selector_fields(&new_in_core);
    assert_eq!(f[9], ("source", "ctl".to_string()));
    // events.k8s.io/v1 selects by its own field names, on its own form.
    let v1 = json!({"regarding": {"kind": "Node", "name": "n"}, "reportingController": "ctl", "reason": "R", "type": "Warning"});
    let f = for_kind("events.k8s.io", "Event").field_selector_fields(&v1);
    assert_eq!(f[0], ("regarding.kind", "Node".to_string()));
    assert_eq!(f[2], ("regarding.name", "n".to_string()));
    assert_eq!(f[8], ("reportingController", "ctl".to_string()));
    assert_eq!(f[9], ("source", "ctl".to_string()));
    assert!(!f.iter().any(|(k, _)| k.starts_with("involvedObject")));
}

#[test]
fn names_and_create_on_update() {
    use crate::strategy::NameRule;
    assert_eq!(for_kind("", "Event").name_rule(), NameRule::PathSegment);
    assert_eq!(
        for_kind("events.k8s.io", "Event").name_rule(),
        NameRule::Dns1123Subdomain
    );
    assert!(for_kind("", "Event").allow_create_on_update());
    assert!(for_kind("events.k8s.io", "Event").allow_create_on_update());
}

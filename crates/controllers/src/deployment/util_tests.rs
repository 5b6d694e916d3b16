//! Unit tests of the deployment helpers.

use super::*;
use serde_json::json;

fn ios(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    assert_eq!(
        resolve_fenceposts(Some(&ios("25%")), Some(&ios("25%")), 10),
        Ok((3, 2))
    );
    assert_eq!(
        resolve_fenceposts(Some(&ios("25%")), Some(&ios("25%")), 3),
        Ok((1, 0))
    );
    assert_eq!(
        resolve_fenceposts(Some(&IntOrString::Int(2)), Some(&ios("50%")), 5),
        Ok((2, 2))
    );
    // Both zero after rounding: one pod may be unavailable so the rollout can move.
    assert_eq!(
        resolve_fenceposts(Some(&ios("0%")), Some(&ios("25%")), 1),
        Ok((0, 1))
    );
    assert!(resolve_fenceposts(Some(&ios("3")), None, 5).is_err());
}

fn deployment(replicas: i32, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "annotations": {
            "team": "blue", REVISION: "9",
            "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": strategy,
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "v1"}]}}},
    }))
    .expect("deployment")
}

#[test]
fn max_surge_and_unavailable_by_strategy() {
    let d = deployment(
        4,
        json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 10}}),
    );
    assert_eq!(
        (max_surge(&d), max_unavailable(&d)),
        (2, 4),
        "unavailable capped at replicas"
    );
    let r = deployment(4, json!({"type": "Recreate"}));
    assert_eq!((max_surge(&r), max_unavailable(&r)), (0, 0));
    let zero = deployment(
        0,
        json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}),
    );
    assert_eq!(max_unavailable(&zero), 0);
}

#[test]
fn hash_is_stable_and_safe() {
    let d = deployment(1, json!({}));
    let t = d_template(&d);
    let h = compute_hash(&t, None);
    assert_eq!(h, compute_hash(&t.clone(), None));
    assert!(!h.is_empty() && h.len() <= 10);
    assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
    assert_ne!(
        h,
        compute_hash(&t, Some(1)),
        "collision count changes the hash"
    );
    let mut other = t.clone();
    if let Some(c) = other.spec.as_mut().and_then(|s| s.containers.first_mut()) {
        c.image = Some("v2".into());
    }
    assert_ne!(h, compute_hash(&other, None));
}

#[test]
fn templates_compare_without_hash_label_and_empty_fields() {
    let d = deployment(1, json!({}));
    let t = d_template(&d);
    let mut with_hash = t.clone();
    if let Some(l) = with_hash.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.insert(POD_TEMPLATE_HASH.into(), "abc".into());
    }
    if let Some(s) = with_hash.spec.as_mut() {
        s.volumes = Some(Vec::new());
    }
    assert!(equal_ignore_hash(&t, &with_hash));
    let mut other = t.clone();
    if let Some(l) = other.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        l.insert("x".into(), "y".into());
    }
    assert!(!equal_ignore_hash(&t, &other));
}

#[test]
fn new_replica_set_annotations() {
    let d = deployment(
        4,
        json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
    );
    let mut rs = ReplicaSet::default();
    assert!(set_new_rs_annotations(&d, &mut rs, "3", false));
    let ann = rs.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(ann.get(REVISION).map(String::as_str), Some("3"));
    assert_eq!(ann.get(DESIRED_REPLICAS).map(String::as_str), Some("4"));
    assert_eq!(ann.get(MAX_REPLICAS).map(String::as_str), Some("5"));
    assert_eq!(ann.get("team").map(String::as_str), Some("blue"));
    assert!(!ann.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    assert!(!ann.contains_key(REVISION_HISTORY));
    // Nothing new: no change.
    assert!(!set_new_rs_annotations(&d, &mut rs, "3", true));
    // Re-used for a later revision (rollback): the old revision goes to the history.
    assert!(set_new_rs_annotations(&d, &mut rs, "5", true));
    assert!(set_new_rs_annotations(&d, &mut rs, "8", true));
    let ann = rs.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(ann.get(REVISION).map(String::as_str), Some("8"));
    assert_eq!(ann.get(REVISION_HISTORY).map(String::as_str), Some("3,5"));
    // A lower revision never replaces a higher one.
    assert!(!set_new_rs_annotations(&d, &mut rs, "7", true));
}

#[test]
fn revision_history_is_bounded() {
    let d = deployment(1, json!({}));
    let mut rs = ReplicaSet::default();
    let long: Vec<String> = (0..600).map(|i| i.to_string()).collect();
    rs.metadata.annotations = Some(BTreeMap::from([
        (REVISION.to_string(), "1000".to_string()),
        (REVISION_HISTORY.to_string(), long.join(",")),
    ]));
    set_new_rs_annotations(&d, &mut rs, "1001", true);
    let h = rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_HISTORY))
        .cloned()
        .unwrap_or_default();
    assert!(h.len() <= MAX_REV_HISTORY_CHARS);
    assert!(h.ends_with(",1000"));
    assert!(!h.starts_with("0,"), "oldest entries dropped first");
}

#[test]
fn orderings() {
    let mk = |name: &str, rev: Option<&str>, created: &str, replicas: i32| -> ReplicaSet {
        let mut rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"replicas": replicas, "selector": {}},
        }))
        .expect("rs");
        if let Some(r) = rev {
            rs.metadata.annotations = Some(BTreeMap::from([(REVISION.to_string(), r.to_string())]));
        }
        rs
    };
    let a = mk("a", Some("10"), "2024-01-01T00:00:02Z", 1);
    let b = mk("b", Some("9"), "2024-01-01T00:00:01Z", 3);
    let c = mk("c", None, "2024-01-01T00:00:01Z", 3);
    assert_eq!(by_revision(&b, &a), Ordering::Less);
    assert_eq!(by_creation(&b, &c), Ordering::Less, "same time: by name");
    assert_eq!(by_size_older(&b, &a), Ordering::Less, "bigger first");
    assert_eq!(by_size_older(&b, &c), Ordering::Less);
    assert_eq!(by_size_newer(&b, &c), Ordering::Greater);
    assert_eq!(max_revision([&a, &b, &c]), 10);
}

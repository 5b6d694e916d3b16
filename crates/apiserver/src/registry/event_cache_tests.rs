use super::*;
use r8s_api::catalog;
use serde_json::json;

fn info(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
    catalog::find(group, version, plural).expect("catalog entry")
}

fn kv(key: &str, rev: Revision, obj: &Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: serde_json::to_vec(obj).expect("json"),
        create_revision: 1,
        mod_revision: rev,
        lease: 0,
    }
}

fn cm(name: &str) -> Value {
    json!({"metadata": {"name": name, "namespace": "d"}, "data": {"k": "v"}})
}

#[test]
fn one_decode_is_shared_by_every_caller() {
    let cache = EventCache::default();
    let cms = info("", "v1", "configmaps");
    let stored = kv("/registry/configmaps/d/a", 7, &cm("a"));
    let a = cache.decode(cms, &stored, 7).expect("decoded");
    let b = cache.decode(cms, &stored, 7).expect("decoded");
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(cache.len(), 1);
    assert_eq!(a.value()["metadata"]["resourceVersion"], "7");
    assert_eq!(a.value()["apiVersion"], "v1");
    assert_eq!(a.value()["kind"], "ConfigMap");
    // The serialized form is computed once and is serde_json's own.
    assert_eq!(a.json(), serde_json::to_vec(a.value()).expect("json"));
    assert!(std::ptr::eq(a.json(), b.json()));
}

#[test]
fn entries_are_bounded_oldest_first() {
    let cache = EventCache::with_limits(3, usize::MAX);
    let cms = info("", "v1", "configmaps");
    let stored: Vec<KeyValue> = (1..=5)
        .map(|i| {
            kv(
                &format!("/registry/configmaps/d/c{i}"),
                i,
                &cm(&format!("c{i}")),
            )
        })
        .collect();
    let first: Vec<_> = stored
        .iter()
        .map(|s| cache.decode(cms, s, s.mod_revision).expect("decoded"))
        .collect();
    assert_eq!(cache.len(), 3);
    // The newest are still shared; the oldest were dropped and decode afresh.
    let newest = cache.decode(cms, &stored[4], 5).expect("decoded");
    assert!(Arc::ptr_eq(&first[4], &newest));
    let oldest = cache.decode(cms, &stored[0], 1).expect("decoded");
    assert!(!Arc::ptr_eq(&first[0], &oldest));
    assert_eq!(first[0], oldest);
    assert_eq!(cache.len(), 3);
}

#[test]
fn entries_are_bounded_by_stored_bytes() {
    let cms = info("", "v1", "configmaps");
    let stored: Vec<KeyValue> = (1..=4)
        .map(|i| {
            kv(
                &format!("/registry/configmaps/d/c{i}"),
                i,
                &cm(&format!("c{i}")),
            )
        })
        .collect();
    let size = stored[0].value.len();
    let cache = EventCache::with_limits(100, size * 2);
    for s in &stored {
        cache.decode(cms, s, s.mod_revision);
    }
    assert_eq!(cache.len(), 2);
    // One object larger than the whole budget is still cached (alone) for its fan-out.
    let tiny = EventCache::with_limits(100, 1);
    let a = tiny.decode(cms, &stored[0], 1).expect("decoded");
    let b = tiny.decode(cms, &stored[0], 1).expect("decoded");
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(tiny.len(), 1);
}

#[test]
fn each_served_version_gets_its_own_conversion() {
    let cache = EventCache::default();
    let core_event = json!({
        "metadata": {"name": "e", "namespace": "d"},
        "involvedObject": {"kind": "Pod", "name": "db"},
        "message": "started",
        "reason": "Started",
    });
    let stored = kv("/registry/events/d/e", 9, &core_event);
    let core = cache
        .decode(info("", "v1", "events"), &stored, 9)
        .expect("core");
    let new = cache
        .decode(info("events.k8s.io", "v1", "events"), &stored, 9)
        .expect("events.k8s.io");
    assert_eq!(cache.len(), 2);
    assert_eq!(core.value()["apiVersion"], "v1");
    assert_eq!(core.value()["involvedObject"]["name"], "db");
    assert_eq!(core.value()["message"], "started");
    assert_eq!(new.value()["apiVersion"], "events.k8s.io/v1");
    assert_eq!(new.value()["regarding"]["name"], "db");
    assert_eq!(new.value()["note"], "started");
    assert!(new.value().get("involvedObject").is_none());

    let hpa = json!({"metadata": {"name": "h", "namespace": "d"},
        "spec": {"minReplicas": 1, "maxReplicas": 3,
            "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}]}});
    let stored = kv("/registry/horizontalpodautoscalers/d/h", 10, &hpa);
    let v1 = cache
        .decode(
            info("autoscaling", "v1", "horizontalpodautoscalers"),
            &stored,
            10,
        )
        .expect("v1");
    let v2 = cache
        .decode(
            info("autoscaling", "v2", "horizontalpodautoscalers"),
            &stored,
            10,
        )
        .expect("v2");
    assert_eq!(v1.value()["apiVersion"], "autoscaling/v1");
    assert_eq!(v1.value()["spec"]["targetCPUUtilizationPercentage"], 50);
    assert_eq!(v2.value()["apiVersion"], "autoscaling/v2");
    assert!(v2.value()["spec"].get("metrics").is_some());
}

#[test]
fn a_deletes_revision_does_not_alias_the_stored_version() {
    let cache = EventCache::default();
    let cms = info("", "v1", "configmaps");
    let stored = kv("/registry/configmaps/d/a", 7, &cm("a"));
    let live = cache.decode(cms, &stored, 7).expect("live");
    let deleted = cache.decode(cms, &stored, 12).expect("deleted");
    assert_eq!(live.value()["metadata"]["resourceVersion"], "7");
    assert_eq!(deleted.value()["metadata"]["resourceVersion"], "12");
    // Shared between watchers of the delete too.
    let again = cache.decode(cms, &stored, 12).expect("deleted");
    assert!(Arc::ptr_eq(&deleted, &again));
    assert_eq!(
        cache.decode(cms, &stored, 7).expect("live").value()["metadata"]["resourceVersion"],
        "7"
    );
}

#[test]
fn stored_junk_is_skipped() {
    let cache = EventCache::default();
    let mut stored = kv("/registry/configmaps/d/a", 3, &cm("a"));
    stored.value = b"not json".to_vec();
    assert!(
        cache
            .decode(info("", "v1", "configmaps"), &stored, 3)
            .is_none()
    );
}

#[test]
fn watch_lines_match_serializing_the_event() {
    let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "a", "resourceVersion": "5"}, "data": {"q": "\"x\"\n"}});
    let shared = SharedObject::new(obj.clone());
    for kind in ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"] {
        let mut want = serde_json::to_vec(&json!({"type": kind, "object": obj})).expect("json");
        want.push(b'\n');
        assert_eq!(watch_line(kind, shared.json()), want, "{kind}");
    }
}

#[test]
fn metadata_form_is_rendered_once() {
    let shared = SharedObject::new(cm("a"));
    let mut calls = 0;
    let first = shared
        .encoded(Form::Metadata, |v| {
            calls += 1;
            serde_json::to_vec(&v["metadata"]).expect("json")
        })
        .to_vec();
    let second = shared.encoded(Form::Metadata, |_| unreachable!("rendered twice"));
    assert_eq!(calls, 1);
    assert_eq!(first, second);
    assert_eq!(shared.encoded(Form::Object, |_| Vec::new()), shared.json());
}

#[test]
fn into_value_clones_only_when_shared() {
    let shared = SharedObject::new(cm("a"));
    let other = shared.clone();
    assert_eq!(shared.into_value(), cm("a"));
    assert_eq!(other.into_value(), cm("a"));
}

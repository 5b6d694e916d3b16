use super::*;
use k8s_openapi::api::core::v1::PodStatus;
use serde_json::json;

fn set(replicas: i32) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid",
                     "annotations": {"kubernetes.io/change-cause": "v1"}},
        "spec": {
            "replicas": replicas,
            "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}],
                         "volumes": [{"name": "www", "emptyDir": {}}, {"name": "cfg", "emptyDir": {}}]}
            },
            "volumeClaimTemplates": [{"metadata": {"name": "www", "labels": {"tier": "data"}},
                                      "spec": {"accessModes": ["ReadWriteOnce"]}}],
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "podManagementPolicy": "OrderedReady"
        }
    }))
    .unwrap()
}

#[test]
fn ordinals_parse_like_upstream() {
    assert_eq!(parent_and_ordinal("web-0"), ("web", 0));
    assert_eq!(parent_and_ordinal("my-web-12"), ("my-web", 12));
    assert_eq!(parent_and_ordinal("web"), ("", -1));
    assert_eq!(parent_and_ordinal("web-x"), ("", -1));
    assert_eq!(parent_and_ordinal("web-"), ("", -1));
    assert_eq!(parent_and_ordinal("web-99999999999"), ("web", -1));
}

#[test]
fn new_pod_has_identity_storage_and_owner() {
    let s = set(3);
    let p = new_pod(&s, 2);
    assert_eq!(p.metadata.name.as_deref(), Some("web-2"));
    assert_eq!(p.metadata.namespace.as_deref(), Some("ns"));
    let labels = p.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[POD_NAME_LABEL], "web-2");
    assert_eq!(labels[POD_INDEX_LABEL], "2");
    assert_eq!(labels["app"], "web");
    let spec = p.spec.as_ref().unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-2"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let vols = spec.volumes.as_ref().unwrap();
    // The claim replaces the same-named template volume; other volumes stay.
    assert_eq!(vols.len(), 2);
    let www = vols.iter().find(|v| v.name == "www").unwrap();
    assert_eq!(
        www.persistent_volume_claim.as_ref().unwrap().claim_name,
        "www-web-2"
    );
    assert!(
        vols.iter()
            .any(|v| v.name == "cfg" && v.empty_dir.is_some())
    );
    assert!(identity_matches(&s, &p));
    assert!(storage_matches(&s, &p));
    let owner = podutil::controller_of(&p.metadata).unwrap();
    assert_eq!(owner.uid, "set-uid");
    assert!(is_member_of(&s, &p));
}

#[test]
fn claims_merge_selector_labels() {
    let s = set(1);
    let p = new_pod(&s, 0);
    let claims = claims_for(&s, &p);
    let c = &claims["www"];
    assert_eq!(c.metadata.name.as_deref(), Some("www-web-0"));
    let l = c.metadata.labels.as_ref().unwrap();
    assert_eq!(l["app"], "web");
    assert_eq!(l["tier"], "data");
}

#[test]
fn ordinal_range_with_start() {
    let mut s = set(2);
    let p = |n: i64| new_pod(&s.clone(), n);
    assert!(in_ordinal_range(&p(1), &s));
    assert!(!in_ordinal_range(&p(2), &s));
    s.spec.as_mut().unwrap().ordinals =
        Some(k8s_openapi::api::apps::v1::StatefulSetOrdinals { start: Some(5) });
    assert_eq!(start_ordinal(&s), 5);
    assert_eq!(end_ordinal(&s), 6);
    assert!(in_ordinal_range(&new_pod(&s, 6), &s));
    assert!(!in_ordinal_range(&new_pod(&s, 4), &s));
}

#[test]
fn versioned_pods_respect_partition() {
    let mut cur = set(3);
    cur.spec
        .as_mut()
        .unwrap()
        .update_strategy
        .as_mut()
        .unwrap()
        .rolling_update = Some(
        k8s_openapi::api::apps::v1::RollingUpdateStatefulSetStrategy {
            partition: Some(2),
            max_unavailable: None,
        },
    );
    let mut upd = cur.clone();
    upd.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("nginx:2".into());
    let p1 = new_versioned_pod(&cur, &upd, "r1", "r2", 1);
    assert_eq!(pod_revision(&p1), "r1");
    let p2 = new_versioned_pod(&cur, &upd, "r1", "r2", 2);
    assert_eq!(pod_revision(&p2), "r2");
    assert_eq!(
        p2.spec.as_ref().unwrap().containers[0].image.as_deref(),
        Some("nginx:2")
    );
}

#[test]
fn revisions_round_trip_the_template() {
    let s = set(1);
    let r = new_revision(&s, 1, 0).unwrap();
    assert_eq!(r.revision, 1);
    assert!(r.metadata.name.as_deref().unwrap().starts_with("web-"));
    assert_eq!(
        r.metadata.annotations.as_ref().unwrap()["kubernetes.io/change-cause"],
        "v1"
    );
    assert_eq!(r.metadata.labels.as_ref().unwrap()["app"], "web");
    let mut other = s.clone();
    other
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("x".into());
    let restored = apply_revision(&other, &r).unwrap();
    assert_eq!(restored.spec.unwrap().template, s.spec.unwrap().template);
}

#[test]
fn max_unavailable_resolution() {
    assert_eq!(resolve_max_unavailable(None, 10), 1);
    assert_eq!(resolve_max_unavailable(Some(&IntOrString::Int(3)), 10), 3);
    assert_eq!(
        resolve_max_unavailable(Some(&IntOrString::String("25%".into())), 10),
        2
    );
    assert_eq!(
        resolve_max_unavailable(Some(&IntOrString::String("1%".into())), 10),
        1
    );
}

#[test]
fn rolling_update_completion() {
    let s = set(2);
    let mut st = StatefulSetStatus {
        replicas: 2,
        ready_replicas: Some(2),
        updated_replicas: Some(2),
        current_replicas: Some(0),
        current_revision: Some("a".into()),
        update_revision: Some("b".into()),
        ..Default::default()
    };
    complete_rolling_update(&s, &mut st);
    assert_eq!(st.current_revision.as_deref(), Some("b"));
    assert_eq!(st.current_replicas, Some(2));
    assert!(inconsistent_status(&s, &st));
}

#[test]
fn health_predicates() {
    let now = Timestamp::now();
    let mut p = new_pod(&set(1), 0);
    assert!(!is_created(&p));
    assert!(is_unavailable(&p, 0, now));
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![k8s_openapi::api::core::v1::PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now)),
            ..Default::default()
        }]),
        ..Default::default()
    });
    assert!(is_created(&p));
    assert!(is_healthy(&p));
    assert!(!is_unavailable(&p, 0, now));
    assert!(is_unavailable(&p, 60, now));
}

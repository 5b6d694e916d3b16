//! VolumeBinding and VolumeZone tests.

use super::*;
use crate::framework::Code;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

/// A pod in namespace `d` with the given volumes.
fn pod(volumes: Value) -> PodInfo {
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p", "uid": "p-uid", "namespace": "d"},
        "spec": {"containers": [{"name": "c"}], "volumes": volumes}}),
    )
    .expect("pod");
    PodInfo::from_pod(&p)
}

fn claim_vol(claim: &str) -> Value {
    json!({"name": claim, "persistentVolumeClaim": {"claimName": claim}})
}

fn node(labels: Value) -> NodeSpec {
    let n: Node = serde_json::from_value(json!({"metadata": {"name": "n1", "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
    .expect("node");
    NodeSpec::from_node(&n)
}

fn pvc(v: Value) -> Pvc {
    let mut obj = json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {}});
    for (k, val) in v.as_object().into_iter().flatten() {
        obj[k] = val.clone();
    }
    Pvc::from_api(&serde_json::from_value(obj).expect("pvc"))
}

fn pv(labels: Value, spec: Value) -> Pv {
    Pv::from_api(
        &serde_json::from_value(json!({"metadata": {"name": "v", "labels": labels}, "spec": spec}))
            .expect("pv"),
    )
}

/// Claims `d/<name>` and volumes by name; classes `wffc` (WaitForFirstConsumer) and `fast`.
fn volumes(claims: Vec<(&str, Pvc)>, pvs: Vec<(&str, Pv)>) -> Volumes {
    let mut v = Volumes::default();
    for (n, mut c) in claims {
        c.name = n.into();
        v.pvcs.insert(format!("d/{n}"), c);
    }
    for (n, p) in pvs {
        v.pvs.insert(n.into(), p);
    }
    v.classes.insert("wffc".into(), true);
    v.classes.insert("fast".into(), false);
    v
}

fn hostname_affinity(host: &str) -> Value {
    json!({"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}})
}

/// A plugin's rejection: (plugin, code, message).
type Rejection = (Plugin, Code, String);

/// Run PreFilter then both filters.
fn run(p: &PodInfo, v: &Volumes, n: &NodeSpec) -> Result<(), Rejection> {
    let err = |s: Status| (s.plugin, s.code, s.message());
    let Some(state) = prefilter(p, v).map_err(err)? else {
        return Ok(());
    };
    binding_filter(&state, n).map_err(err)?;
    zone_filter(&state, n).map_err(err)
}

#[test]
fn parses_claims_pvcs_and_pvs() {
    let p = pod(
        json!([claim_vol("data"), {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
        {"name": "cfg", "emptyDir": {}}]),
    );
    assert_eq!(
        p.claims,
        vec![
            crate::model::PodClaim {
                name: "data".into(),
                ephemeral: false
            },
            crate::model::PodClaim {
                name: "p-scratch".into(),
                ephemeral: true
            },
        ]
    );
    let c = pvc(json!({"metadata": {"name": "c", "namespace": "d",
        "annotations": {"volume.beta.kubernetes.io/storage-class": "beta"}},
        "spec": {"storageClassName": "ga", "volumeName": "v"}, "status": {"phase": "Lost"}}));
    assert_eq!(
        (c.class.as_str(), c.volume_name.as_str(), c.lost),
        ("beta", "v", true)
    );
    let v = pv(
        json!({"topology.kubernetes.io/zone": "a__b", "failure-domain.beta.kubernetes.io/region": "r",
               "topology.kubernetes.io/region": "bad__"}),
        json!({}),
    );
    assert_eq!(
        v.topology,
        vec![
            (BETA_REGION, vec!["r".to_string()]),
            (ZONE, vec!["a".to_string(), "b".to_string()]),
        ]
    );
    assert!(v.node_affinity.is_none());
}

#[test]
fn volume_binding_table() {
    let bound = |vol: &str| pvc(json!({"spec": {"volumeName": vol}}));
    let unbound = |class: Option<&str>| pvc(json!({"spec": {"storageClassName": class}}));
    let on_n1 = pv(json!({}), hostname_affinity("n1"));
    let on_n2 = pv(json!({}), hostname_affinity("n2"));
    let n1 = node(json!({"kubernetes.io/hostname": "n1"}));
    let conflict = Err((
        Plugin::VolumeBinding,
        Code::UnschedulableAndUnresolvable,
        ERR_NODE_CONFLICT.to_string(),
    ));
    let prefilter_err =
        |plugin, msg: &str| Err((plugin, Code::UnschedulableAndUnresolvable, msg.to_string()));
    let cases: Vec<(&str, Value, Volumes, Result<(), Rejection>)> = vec![
        ("no claims", json!([]), volumes(vec![], vec![]), Ok(())),
        (
            "claim missing",
            json!([claim_vol("x")]),
            volumes(vec![], vec![]),
            prefilter_err(
                Plugin::VolumeBinding,
                "persistentvolumeclaim \"x\" not found",
            ),
        ),
        (
            "ephemeral claim not created yet",
            json!([{"name": "s", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]),
            volumes(vec![], vec![]),
            prefilter_err(
                Plugin::VolumeBinding,
                "waiting for ephemeral volume controller to create the persistentvolumeclaim \"p-s\"",
            ),
        ),
        (
            "ephemeral claim of another pod",
            json!([{"name": "s", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]),
            volumes(vec![("p-s", bound("v"))], vec![("v", on_n1.clone())]),
            prefilter_err(
                Plugin::VolumeBinding,
                "PVC d/p-s was not created for pod d/p (pod is not owner)",
            ),
        ),
        (
            "ephemeral claim owned by the pod",
            json!([{"name": "s", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]),
            volumes(
                vec![(
                    "p-s",
                    pvc(
                        json!({"metadata": {"name": "p-s", "namespace": "d", "ownerReferences": [
                        {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "p-uid", "controller": true}]},
                        "spec": {"volumeName": "v"}}),
                    ),
                )],
                vec![("v", on_n1.clone())],
            ),
            Ok(()),
        ),
        (
            "claim being deleted",
            json!([claim_vol("x")]),
            volumes(
                vec![(
                    "x",
                    pvc(
                        json!({"metadata": {"name": "x", "namespace": "d", "deletionTimestamp": "2024-01-01T00:00:00Z"}}),
                    ),
                )],
                vec![],
            ),
            prefilter_err(
                Plugin::VolumeBinding,
                "persistentvolumeclaim \"x\" is being deleted",
            ),
        ),
        (
            "claim lost",
            json!([claim_vol("x")]),
            volumes(
                vec![(
                    "x",
                    pvc(json!({"spec": {"volumeName": "gone"}, "status": {"phase": "Lost"}})),
                )],
                vec![],
            ),
            prefilter_err(
                Plugin::VolumeBinding,
                "persistentvolumeclaim \"x\" bound to non-existent persistentvolume \"gone\"",
            ),
        ),
        (
            "unbound, no class",
            json!([claim_vol("x")]),
            volumes(vec![("x", unbound(None))], vec![]),
            Ok(()),
        ),
        (
            "unbound, immediate class",
            json!([claim_vol("x")]),
            volumes(vec![("x", unbound(Some("fast")))], vec![]),
            Ok(()),
        ),
        (
            "unbound, unknown class",
            json!([claim_vol("x")]),
            volumes(vec![("x", unbound(Some("nope")))], vec![]),
            Ok(()),
        ),
        (
            "unbound, WaitForFirstConsumer: let through",
            json!([claim_vol("x")]),
            volumes(vec![("x", unbound(Some("wffc")))], vec![]),
            Ok(()),
        ),
        (
            "bound, volume without affinity",
            json!([claim_vol("x")]),
            volumes(
                vec![("x", bound("v"))],
                vec![("v", pv(json!({}), json!({})))],
            ),
            Ok(()),
        ),
        (
            "bound, affinity matches",
            json!([claim_vol("x")]),
            volumes(vec![("x", bound("v"))], vec![("v", on_n1.clone())]),
            Ok(()),
        ),
        (
            "bound, affinity conflicts",
            json!([claim_vol("x")]),
            volumes(vec![("x", bound("v"))], vec![("v", on_n2.clone())]),
            conflict.clone(),
        ),
        (
            "second of two claims conflicts",
            json!([claim_vol("x"), claim_vol("y")]),
            volumes(
                vec![("x", bound("v1")), ("y", bound("v2"))],
                vec![("v1", on_n1.clone()), ("v2", on_n2.clone())],
            ),
            conflict.clone(),
        ),
        (
            "bound to a missing volume",
            json!([claim_vol("x")]),
            volumes(vec![("x", bound("v"))], vec![]),
            prefilter_err(Plugin::VolumeZone, "persistentvolume \"v\" not found"),
        ),
    ];
    for (name, vols, v, want) in cases {
        assert_eq!(run(&pod(vols), &v, &n1), want, "{name}");
    }
    // An ephemeral claim's missing volume is VolumeBinding's to report (VolumeZone skips
    // ephemeral volumes).
    let owned = pvc(
        json!({"metadata": {"name": "p-s", "namespace": "d", "ownerReferences": [
        {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "p-uid", "controller": true}]},
        "spec": {"volumeName": "gone"}}),
    );
    let v = volumes(vec![("p-s", owned)], vec![]);
    let eph = pod(json!([{"name": "s", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]));
    assert_eq!(
        run(&eph, &v, &n1),
        Err((
            Plugin::VolumeBinding,
            Code::UnschedulableAndUnresolvable,
            ERR_PV_NOT_EXIST.to_string()
        ))
    );
    // Like upstream, matchFields on metadata.name never match a volume's affinity.
    let by_name = pv(
        json!({}),
        json!({"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}),
    );
    let v = volumes(vec![("x", bound("v"))], vec![("v", by_name)]);
    assert_eq!(run(&pod(json!([claim_vol("x")])), &v, &n1), conflict);
    // The Filter on its own: a bound volume missing from the cache.
    let state = FilterState {
        bound: vec![("v", None)],
        zones: vec![],
    };
    assert_eq!(
        binding_filter(&state, &n1).map_err(|s| s.message()),
        Err(ERR_PV_NOT_EXIST.to_string())
    );
}

#[test]
fn volume_zone_table() {
    let zoned = |labels: Value| {
        volumes(
            vec![("x", pvc(json!({"spec": {"volumeName": "v"}})))],
            vec![("v", pv(labels, json!({})))],
        )
    };
    let conflict = Err((
        Plugin::VolumeZone,
        Code::UnschedulableAndUnresolvable,
        ERR_ZONE_CONFLICT.to_string(),
    ));
    let cases = [
        (
            "volume without zone labels",
            json!({}),
            json!({ZONE: "a"}),
            Ok(()),
        ),
        ("same zone", json!({ZONE: "a"}), json!({ZONE: "a"}), Ok(())),
        (
            "other zone",
            json!({ZONE: "a"}),
            json!({ZONE: "b"}),
            conflict.clone(),
        ),
        (
            "multi-zone volume",
            json!({ZONE: "a__b"}),
            json!({ZONE: "b"}),
            Ok(()),
        ),
        (
            "node without any topology label",
            json!({ZONE: "a"}),
            json!({"other": "x"}),
            Ok(()),
        ),
        (
            "node has region but not zone",
            json!({ZONE: "a"}),
            json!({REGION: "r"}),
            conflict.clone(),
        ),
        (
            "region and zone must both match",
            json!({ZONE: "a", REGION: "r1"}),
            json!({ZONE: "a", REGION: "r2"}),
            conflict.clone(),
        ),
        (
            "beta volume label, GA node label",
            json!({BETA_ZONE: "a"}),
            json!({ZONE: "a"}),
            Ok(()),
        ),
        (
            "beta labels on both",
            json!({BETA_ZONE: "a"}),
            json!({BETA_ZONE: "b"}),
            conflict.clone(),
        ),
        (
            "GA volume label, beta-only node",
            json!({ZONE: "a"}),
            json!({BETA_ZONE: "a"}),
            conflict.clone(),
        ),
    ];
    for (name, pv_labels, node_labels, want) in cases {
        assert_eq!(
            run(
                &pod(json!([claim_vol("x")])),
                &zoned(pv_labels),
                &node(node_labels)
            ),
            want,
            "{name}"
        );
    }
    // Unbound WaitForFirstConsumer claims add no zone constraint.
    let v = volumes(
        vec![("x", pvc(json!({"spec": {"storageClassName": "wffc"}})))],
        vec![],
    );
    assert_eq!(
        run(&pod(json!([claim_vol("x")])), &v, &node(json!({ZONE: "z"}))),
        Ok(())
    );
}

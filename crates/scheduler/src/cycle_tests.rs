//! Scheduling-cycle tests over a hand-built cache.

use super::*;
use crate::model::NodeSpec;
use k8s_openapi::api::core::v1::{Node, Pod};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use serde_json::{Value, json};
use std::sync::Arc;

pub fn node(name: &str, cpu: &str, labels: Value, spec: Value) -> NodeSpec {
    let n: Node = serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": spec,
        "status": {"allocatable": {"cpu": cpu, "memory": "16Gi", "pods": "110"}, "conditions": [{"type": "Ready", "status": "True"}]}}))
    .expect("node");
    NodeSpec::from_node(&n)
}

pub fn pod(name: &str, cpu: &str, spec: Value) -> PodInfo {
    let mut s = json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]});
    for (k, v) in spec.as_object().into_iter().flatten() {
        s[k] = v.clone();
    }
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": name, "uid": name, "namespace": "d"}, "spec": s}),
    )
    .expect("pod");
    PodInfo::from_pod(&p)
}

pub fn place(c: &mut Cache, node: &str, mut p: PodInfo) {
    p.node_name = node.into();
    c.upsert_bound_pod(Arc::new(p));
}

fn sampling() -> Sampling {
    Sampling {
        percentage: 0,
        next_start: 0,
    }
}

fn rng() -> SmallRng {
    SmallRng::seed_from_u64(7)
}

fn name(c: &Cache, id: usize) -> &str {
    &c.nodes[id].name
}

fn fit_message(r: Result<usize, Failure>) -> String {
    match r {
        Err(Failure::Fit(d)) => d.message(None),
        other => panic!("expected a fit failure, got {other:?}"),
    }
}

#[test]
fn prefers_the_least_allocated_node() {
    let mut c = Cache::default();
    for n in ["a", "b", "c"] {
        c.upsert_node(node(n, "4", json!({}), json!({})));
    }
    place(&mut c, "a", pod("x", "3", json!({})));
    place(&mut c, "b", pod("y", "1", json!({})));
    let id = schedule(
        &mut c,
        &pod("p", "1", json!({})),
        &mut sampling(),
        &mut rng(),
    )
    .expect("fits");
    assert_eq!(name(&c, id), "c");
}

#[test]
fn failure_diagnosis_counts_every_node() {
    let mut c = Cache::default();
    c.upsert_node(node("a", "1", json!({}), json!({})));
    c.upsert_node(node(
        "b",
        "8",
        json!({}),
        json!({"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}),
    ));
    c.upsert_node(node("c", "8", json!({}), json!({"unschedulable": true})));
    let msg = fit_message(schedule(
        &mut c,
        &pod("p", "2", json!({})),
        &mut sampling(),
        &mut rng(),
    ));
    assert_eq!(
        msg,
        "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: v}, 1 node(s) were unschedulable."
    );
}

#[test]
fn no_nodes_and_prefilter_rejections() {
    let mut c = Cache::default();
    assert!(matches!(
        schedule(
            &mut c,
            &pod("p", "1", json!({})),
            &mut sampling(),
            &mut rng()
        ),
        Err(Failure::NoNodes)
    ));
    c.upsert_node(node("a", "4", json!({}), json!({})));
    c.upsert_node(node("b", "4", json!({}), json!({})));
    // Pinned to a node that does not exist.
    let pinned = pod(
        "p",
        "1",
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["missing"]}]}]}}}}),
    );
    assert_eq!(
        fit_message(schedule(&mut c, &pinned, &mut sampling(), &mut rng())),
        "0/2 nodes are available: 2 node(s) didn't satisfy plugin(s) [NodeAffinity]."
    );
    // Pinned to an existing node: only that one is considered.
    let pinned_b = pod(
        "p",
        "1",
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}}),
    );
    let id = schedule(&mut c, &pinned_b, &mut sampling(), &mut rng()).expect("fits");
    assert_eq!(name(&c, id), "b");
    // Invalid pod affinity is a PreFilter rejection with a clear message.
    let bad = pod(
        "p",
        "1",
        json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, "topologyKey": "zone"}]}}}),
    );
    assert_eq!(
        fit_message(schedule(&mut c, &bad, &mut sampling(), &mut rng())),
        "0/2 nodes are available: parsing pod: \"Bogus\" is not a valid label selector operator."
    );
}

#[test]
fn sampling_rotates_and_limits_work() {
    let mut c = Cache::default();
    for i in 0..1000 {
        c.upsert_node(node(&format!("n{i}"), "4", json!({}), json!({})));
    }
    let mut s = sampling();
    schedule(&mut c, &pod("p", "1", json!({})), &mut s, &mut rng()).expect("fits");
    // 1000 nodes → 42% → 420 feasible nodes looked at, and the next cycle starts after them.
    assert_eq!(s.next_start, 420);
    schedule(&mut c, &pod("q", "1", json!({})), &mut s, &mut rng()).expect("fits");
    assert_eq!(s.next_start, 840);
    let mut all = Sampling {
        percentage: 100,
        next_start: 0,
    };
    schedule(&mut c, &pod("r", "1", json!({})), &mut all, &mut rng()).expect("fits");
    assert_eq!(all.next_start, 0);
}

#[test]
fn nominated_node_is_tried_first_and_reserved_for_others() {
    let mut c = Cache::default();
    c.upsert_node(node("a", "4", json!({}), json!({})));
    c.upsert_node(node("b", "4", json!({}), json!({})));
    place(&mut c, "a", pod("x", "3", json!({})));
    let mut p = pod("p", "1", json!({}));
    p.nominated_node = "a".into();
    let id = schedule(&mut c, &p, &mut sampling(), &mut rng()).expect("fits");
    assert_eq!(
        name(&c, id),
        "a",
        "the nominated node wins even though b is emptier"
    );
    // A high-priority pod nominated to b reserves its room against lower-priority pods.
    let mut big = pod("big", "4", json!({}));
    big.priority = Some(100);
    c.set_nominated(&Arc::new(big), "b");
    let msg = fit_message(schedule(
        &mut c,
        &pod("q", "2", json!({})),
        &mut sampling(),
        &mut rng(),
    ));
    assert_eq!(msg, "0/2 nodes are available: 2 Insufficient cpu.");
}

#[test]
fn scores_combine_with_upstream_weights() {
    let mut c = Cache::default();
    c.upsert_node(node(
        "soft",
        "4",
        json!({}),
        json!({"taints": [{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]}),
    ));
    c.upsert_node(node("plain", "4", json!({"disk": "hdd"}), json!({})));
    c.upsert_node(node("ssd", "4", json!({"disk": "ssd"}), json!({})));
    // Preferred affinity (weight 2 in the sum) beats the PreferNoSchedule-free nodes' tie.
    let p = pod(
        "p",
        "1",
        json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}}),
    );
    let id = schedule(&mut c, &p, &mut sampling(), &mut rng()).expect("fits");
    assert_eq!(name(&c, id), "ssd");
    // Without preferences the tainted node loses to the others.
    for seed in 0..20 {
        let mut r = SmallRng::seed_from_u64(seed);
        let id =
            schedule(&mut c, &pod("q", "1", json!({})), &mut sampling(), &mut r).expect("fits");
        assert_ne!(name(&c, id), "soft");
    }
}

#[test]
fn ties_are_broken_randomly() {
    let mut picks = std::collections::HashSet::new();
    let mut r = rng();
    for _ in 0..50 {
        picks.insert(select_host(&[1, 2, 3], &[5, 5, 5], &mut r));
    }
    assert_eq!(picks.len(), 3);
    assert_eq!(select_host(&[1, 2, 3], &[5, 9, 5], &mut r), 2);
}

#[test]
fn volume_failures_aggregate_like_upstream() {
    use crate::plugins::volume::{Pv, Pvc};
    let mut c = Cache::default();
    for n in ["a", "b", "c"] {
        c.upsert_node(node(
            n,
            "4",
            json!({"kubernetes.io/hostname": n, "topology.kubernetes.io/zone": "z1"}),
            json!({}),
        ));
    }
    let claim = |vol: &str| {
        Pvc::from_api(
            &serde_json::from_value(json!({"metadata": {"name": "data", "namespace": "d"},
                "spec": {"volumeName": vol, "storageClassName": "fast"}}))
            .expect("pvc"),
        )
    };
    let p = pod(
        "p",
        "1",
        json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}]}),
    );
    // Claim missing: PreFilter rejects for every node.
    let r = schedule(&mut c, &p, &mut sampling(), &mut rng());
    let Err(Failure::Fit(d)) = &r else {
        panic!("expected a fit failure, got {r:?}")
    };
    assert_eq!(
        d.plugins,
        Plugin::VolumeBinding.bit() | Plugin::VolumeZone.bit()
    );
    assert_eq!(
        fit_message(r),
        "0/3 nodes are available: persistentvolumeclaim \"data\" not found."
    );
    // Bound to a local volume on a node that does not exist.
    c.volumes.pvcs.insert("d/data".into(), claim("local"));
    let local: k8s_openapi::api::core::v1::PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": "local"}, "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["gone"]}]}]}}}}))
    .expect("pv");
    c.volumes.pvs.insert("local".into(), Pv::from_api(&local));
    assert_eq!(
        fit_message(schedule(&mut c, &p, &mut sampling(), &mut rng())),
        "0/3 nodes are available: 3 node(s) had volume node affinity conflict."
    );
    // A zonal volume elsewhere.
    let zonal: k8s_openapi::api::core::v1::PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": "zonal", "labels": {"topology.kubernetes.io/zone": "z2"}}}))
    .expect("pv");
    c.volumes.pvs.insert("zonal".into(), Pv::from_api(&zonal));
    c.volumes.pvcs.insert("d/data".into(), claim("zonal"));
    assert_eq!(
        fit_message(schedule(&mut c, &p, &mut sampling(), &mut rng())),
        "0/3 nodes are available: 3 node(s) had no available volume zone."
    );
    // A local volume on "b" pins the pod there.
    let on_b: k8s_openapi::api::core::v1::PersistentVolume = serde_json::from_value(json!({
        "metadata": {"name": "local"}, "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["b"]}]}]}}}}))
    .expect("pv");
    c.volumes.pvs.insert("local".into(), Pv::from_api(&on_b));
    c.volumes.pvcs.insert("d/data".into(), claim("local"));
    let id = schedule(&mut c, &p, &mut sampling(), &mut rng()).expect("fits");
    assert_eq!(name(&c, id), "b");
}

use super::*;
use serde_json::json;

fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints}
    }))
    .unwrap()
}

fn ds(spec: serde_json::Value) -> DaemonSet {
    serde_json::from_value(json!({
        "metadata": {"name": "d", "namespace": "ns"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}}, "spec": spec}}
    }))
    .unwrap()
}

#[test]
fn node_selector_and_affinity() {
    let n = node("n1", json!({"disk": "ssd", "cpus": "8"}), json!([]));
    let base = json!({"containers": [{"name": "c"}]});
    assert_eq!(node_should_run(&n, &ds(base.clone())), (true, true));
    let mut s = base.clone();
    s["nodeSelector"] = json!({"disk": "hdd"});
    assert_eq!(node_should_run(&n, &ds(s)), (false, false));
    let mut s = base.clone();
    s["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [
        {"matchExpressions": [{"key": "cpus", "operator": "Gt", "values": ["16"]}]},
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]},
                              {"key": "gpu", "operator": "DoesNotExist"}]}
    ]}}});
    assert_eq!(node_should_run(&n, &ds(s)), (true, true));
    let mut s = base.clone();
    s["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{}]}}});
    assert_eq!(node_should_run(&n, &ds(s)), (false, false));
    let mut s = base;
    s["nodeName"] = json!("other");
    assert_eq!(node_should_run(&n, &ds(s)), (false, false));
}

#[test]
fn taints_and_tolerations() {
    let base = json!({"containers": [{"name": "c"}]});
    let no_sched = node(
        "n",
        json!({}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    );
    // Not scheduled there, but an existing pod may stay (NoSchedule does not evict).
    assert_eq!(node_should_run(&no_sched, &ds(base.clone())), (false, true));
    let no_exec = node(
        "n",
        json!({}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoExecute"}]),
    );
    assert_eq!(node_should_run(&no_exec, &ds(base.clone())), (false, false));
    let mut s = base.clone();
    s["tolerations"] = json!([{"key": "dedicated", "operator": "Equal", "value": "db"}]);
    assert_eq!(node_should_run(&no_exec, &ds(s)), (true, true));
    let mut s = base.clone();
    s["tolerations"] = json!([{"operator": "Exists"}]);
    assert_eq!(node_should_run(&no_exec, &ds(s)), (true, true));
    // The automatic daemon tolerations cover node conditions.
    let not_ready = node(
        "n",
        json!({}),
        json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
               {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
               {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}]),
    );
    assert_eq!(node_should_run(&not_ready, &ds(base.clone())), (true, true));
    // Network-unavailable only for host-network pods.
    let net = node(
        "n",
        json!({}),
        json!([{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
    );
    assert_eq!(node_should_run(&net, &ds(base.clone())), (false, true));
    let mut s = base;
    s["hostNetwork"] = json!(true);
    assert_eq!(node_should_run(&net, &ds(s)), (true, true));
    // PreferNoSchedule never blocks.
    let soft = node(
        "n",
        json!({}),
        json!([{"key": "x", "effect": "PreferNoSchedule"}]),
    );
    assert_eq!(
        node_should_run(&soft, &ds(json!({"containers": []}))),
        (true, true)
    );
}

#[test]
fn tolerations_are_added_once() {
    let mut spec = PodSpec::default();
    add_daemon_tolerations(&mut spec);
    add_daemon_tolerations(&mut spec);
    assert_eq!(spec.tolerations.as_ref().unwrap().len(), 6);
}

#[test]
fn pinning_and_target_node() {
    let mut spec: PodSpec = serde_json::from_value(json!({
        "containers": [],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]}}}
    }))
    .unwrap();
    pin_to_node(&mut spec, "n7");
    let terms = &spec
        .affinity
        .as_ref()
        .unwrap()
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    assert_eq!(terms.len(), 1);
    let pod = Pod {
        spec: Some(spec.clone()),
        ..Default::default()
    };
    assert_eq!(target_node(&pod).as_deref(), Some("n7"));
    let n7 = node("n7", json!({}), json!([]));
    let n8 = node("n8", json!({}), json!([]));
    assert!(fits_node_affinity(&spec, &n7));
    assert!(!fits_node_affinity(&spec, &n8));
    let mut bound = pod;
    bound.spec.as_mut().unwrap().node_name = Some("n9".into());
    assert_eq!(target_node(&bound).as_deref(), Some("n9"));
    assert_eq!(target_node(&Pod::default()), None);
}

//! The scheduler against an in-process API server with simulated nodes: placement by
//! resources, selectors, affinity, spreading and taints; unschedulable pods and retries.

mod common;

use common::{Env, nodes, pod};
use serde_json::json;
use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_pods_and_respects_resources() {
    let env = Env::start(Some(nodes("n", 3, "2"))).await;
    // 3 nodes × 2 CPU; six 1-CPU pods fill them exactly, two per node.
    for i in 0..6 {
        env.create(pod(&format!("p{i}"), "1", json!({}), json!({})))
            .await;
    }
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for i in 0..6 {
        *per_node
            .entry(env.bound(&format!("p{i}")).await)
            .or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    assert!(per_node.values().all(|&n| n == 2), "{per_node:?}");
    // The seventh does not fit anywhere.
    env.create(pod("extra", "1", json!({}), json!({}))).await;
    let (reason, message) = env.unschedulable("extra").await;
    assert_eq!(reason, "Unschedulable");
    assert_eq!(
        message,
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );
    let events = env.events("extra", "FailedScheduling").await;
    assert!(!events.is_empty());
    // Nothing changes in the cluster, so the pod is not retried (no busy loop): the one
    // aggregated event keeps a small count.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let events = env.events("extra", "FailedScheduling").await;
    assert_eq!(events.len(), 1);
    assert!(
        events[0].count.unwrap_or(1) <= 2,
        "retried {:?} times",
        events[0].count
    );
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    assert_eq!(
        events[0]
            .source
            .as_ref()
            .and_then(|s| s.component.as_deref()),
        Some("default-scheduler")
    );
    // Freeing a slot lets it in.
    env.pods()
        .delete("p0", &Default::default())
        .await
        .expect("delete");
    env.bound("extra").await;
    assert!(!env.events("p1", "Scheduled").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_affinity_and_clear_failures() {
    let mut env = Env::start(None).await;
    let mut ssd = nodes("ssd", 2, "4");
    ssd.labels.insert("disk".into(), "ssd".into());
    let mut hdd = nodes("hdd", 2, "4");
    hdd.labels.insert("disk".into(), "hdd".into());
    env.add_nodes(ssd).await;
    env.add_nodes(hdd).await;

    env.create(pod(
        "sel",
        "100m",
        json!({"nodeSelector": {"disk": "ssd"}}),
        json!({}),
    ))
    .await;
    assert!(env.bound("sel").await.starts_with("ssd-"));
    let required = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}]}}}});
    env.create(pod("req", "100m", required, json!({}))).await;
    assert!(env.bound("req").await.starts_with("hdd-"));
    let preferred = json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}}]}}});
    for i in 0..3 {
        env.create(pod(
            &format!("pref{i}"),
            "100m",
            preferred.clone(),
            json!({}),
        ))
        .await;
        assert!(env.bound(&format!("pref{i}")).await.starts_with("hdd-"));
    }

    // No node carries the label.
    env.create(pod(
        "nvme",
        "100m",
        json!({"nodeSelector": {"disk": "nvme"}}),
        json!({}),
    ))
    .await;
    let (reason, msg) = env.unschedulable("nvme").await;
    assert_eq!(reason, "Unschedulable");
    assert_eq!(
        msg,
        "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
    );
    // Naming a node that does not exist.
    let missing = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["no-such-node"]}]}]}}}});
    env.create(pod("missing", "100m", missing, json!({}))).await;
    let (_, msg) = env.unschedulable("missing").await;
    assert_eq!(
        msg,
        "0/4 nodes are available: 4 node(s) didn't satisfy plugin(s) [NodeAffinity]. \
         preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
    );
    env.create(pod(
        "hostname",
        "100m",
        json!({"nodeSelector": {"kubernetes.io/hostname": "no-such-node"}}),
        json!({}),
    ))
    .await;
    let (_, msg) = env.unschedulable("hostname").await;
    assert!(
        msg.starts_with(
            "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector."
        ),
        "{msg}"
    );
    // Invalid affinity: the API server accepts it, the scheduler explains why it cannot.
    let invalid = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": []}]}, "topologyKey": "kubernetes.io/hostname"}]}}});
    env.create(pod("invalid", "100m", invalid, json!({}))).await;
    let (reason, msg) = env.unschedulable("invalid").await;
    assert_eq!(reason, "Unschedulable");
    assert!(
        msg.starts_with("0/4 nodes are available: parsing pod: values: Invalid value"),
        "{msg}"
    );
    assert!(
        msg.ends_with(
            "preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
        ),
        "{msg}"
    );
    // Impossible resources.
    env.create(pod("huge", "1000", json!({}), json!({}))).await;
    let (_, msg) = env.unschedulable("huge").await;
    assert_eq!(
        msg,
        "0/4 nodes are available: 4 Insufficient cpu. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
    );

    // The nvme pod fits as soon as a matching node appears.
    let mut nvme = nodes("nvme", 1, "4");
    nvme.labels.insert("disk".into(), "nvme".into());
    env.add_nodes(nvme).await;
    assert_eq!(env.bound("nvme").await, "nvme-0");
    // The others stay pending.
    for name in ["missing", "hostname", "invalid", "huge"] {
        assert_eq!(env.node_of(name).await, None, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_nodes_then_a_node_appears() {
    let mut env = Env::start(None).await;
    env.create(pod("early", "100m", json!({}), json!({}))).await;
    let (reason, msg) = env.unschedulable("early").await;
    assert_eq!(
        (reason.as_str(), msg.as_str()),
        ("Unschedulable", "no nodes available to schedule pods")
    );
    env.add_nodes(nodes("late", 1, "2")).await;
    assert_eq!(env.bound("early").await, "late-0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taints_cordons_and_host_ports() {
    let mut env = Env::start(None).await;
    let mut gpu = nodes("gpu", 2, "4");
    gpu.taints = vec![
        serde_json::from_value(json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}))
            .expect("taint"),
    ];
    env.add_nodes(gpu).await;
    env.create(pod("plain", "100m", json!({}), json!({}))).await;
    let (_, msg) = env.unschedulable("plain").await;
    assert_eq!(
        msg,
        "0/2 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    let tolerant = json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]});
    env.create(pod("tolerant", "100m", tolerant, json!({})))
        .await;
    assert!(env.bound("tolerant").await.starts_with("gpu-"));

    // "plain" fits as soon as an untainted node is added (the new node retries it).
    env.add_nodes(nodes("hard", 1, "4")).await;
    assert_eq!(env.bound("plain").await, "hard-0");
    // PreferNoSchedule: avoided while an untainted node exists.
    let mut soft = nodes("soft", 1, "4");
    soft.taints = vec![
        serde_json::from_value(
            json!({"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}),
        )
        .expect("taint"),
    ];
    env.add_nodes(soft).await;
    for i in 0..3 {
        env.create(pod(&format!("s{i}"), "100m", json!({}), json!({})))
            .await;
        assert_eq!(env.bound(&format!("s{i}")).await, "hard-0");
    }

    // Cordoned nodes take nothing new.
    let nodes_api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(env.client.clone());
    for n in ["hard-0", "soft-0"] {
        let patch = json!({"spec": {"unschedulable": true}});
        nodes_api
            .patch(n, &Default::default(), &kube::api::Patch::Merge(&patch))
            .await
            .expect("cordon");
    }
    env.create(pod("cordoned", "100m", json!({}), json!({})))
        .await;
    let msg = env
        .unschedulable_where("cordoned", |m| m.contains("were unschedulable"))
        .await;
    assert_eq!(
        msg,
        "0/4 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}, 2 node(s) were unschedulable. \
         preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
    );
    let patch = json!({"spec": {"unschedulable": false}});
    nodes_api
        .patch(
            "hard-0",
            &Default::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("uncordon");
    assert_eq!(env.bound("cordoned").await, "hard-0");

    // Host ports: one pod per node and port (hard-0 is the only open node without taints).
    let port = json!({"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
    env.create(pod("port1", "", port.clone(), json!({}))).await;
    assert_eq!(env.bound("port1").await, "hard-0");
    env.create(pod("port2", "", port, json!({}))).await;
    let (_, msg) = env.unschedulable("port2").await;
    assert!(
        msg.contains("1 node(s) didn't have free ports for the requested pod ports"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignores_other_schedulers_and_gated_pods() {
    let env = Env::start(Some(nodes("n", 1, "4"))).await;
    env.create(pod(
        "other",
        "100m",
        json!({"schedulerName": "someone-else"}),
        json!({}),
    ))
    .await;
    env.create(pod(
        "gated",
        "100m",
        json!({"schedulingGates": [{"name": "example.com/wait"}]}),
        json!({}),
    ))
    .await;
    env.create(pod("mine", "100m", json!({}), json!({}))).await;
    env.bound("mine").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(env.node_of("other").await, None);
    assert_eq!(env.node_of("gated").await, None);
    // Removing the gate lets it be scheduled.
    let patch = json!({"spec": {"schedulingGates": null}});
    env.pods()
        .patch(
            "gated",
            &Default::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("ungate");
    env.bound("gated").await;
}

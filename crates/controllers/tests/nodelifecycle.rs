//! The node lifecycle controller (health monitor, taint eviction, pod CIDRs) and pod GC
//! against an in-process API server, with nodes and Leases played by the test.

mod support;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use r8s_controllers::{Context, nodelifecycle, podgc};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use support::{namespace, start, wait_for};
use tokio::time::Instant;

fn fast_config() -> nodelifecycle::Config {
    nodelifecycle::Config {
        node_monitor_grace_period: Duration::from_secs(3),
        node_startup_grace_period: Duration::from_secs(5),
        node_monitor_period: Duration::from_millis(300),
        ..Default::default()
    }
}

fn now_json() -> Value {
    serde_json::to_value(Time(jiff::Timestamp::now())).expect("time")
}

async fn create_node(client: &Client, name: &str) {
    let api: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).expect("node");
    api.create(&PostParams::default(), &node)
        .await
        .expect("create node");
}

/// Post a Ready condition with a fresh heartbeat, as a kubelet does.
async fn post_ready(client: &Client, name: &str, status: &str) {
    let api: Api<Node> = Api::all(client.clone());
    let patch = json!({"status": {"conditions": [{
        "type": "Ready", "status": status, "reason": "KubeletReady",
        "lastHeartbeatTime": now_json(), "lastTransitionTime": now_json(),
    }]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("post node status");
}

async fn renew_lease(client: &Client, name: &str) {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let renew = serde_json::to_value(MicroTime(jiff::Timestamp::now())).expect("time");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew},
    });
    api.patch(
        name,
        &PatchParams::apply("test-kubelet").force(),
        &Patch::Apply(&lease),
    )
    .await
    .expect("renew lease");
}

/// Kubelet modes for [`heartbeat`].
const ALIVE: u8 = 0;
const DEAD: u8 = 1;
const NOT_READY: u8 = 2;

/// A fake kubelet for `name`: renews the Lease and posts status every 500 ms unless dead.
fn heartbeat(client: Client, name: &str, mode: Arc<AtomicU8>) -> tokio::task::JoinHandle<()> {
    let name = name.to_string();
    tokio::spawn(async move {
        let mut last = u8::MAX;
        loop {
            let m = mode.load(Ordering::SeqCst);
            if m != DEAD {
                renew_lease(&client, &name).await;
                // Post status on change (as the kubelet does) and as a heartbeat.
                if m != last || m == ALIVE {
                    post_ready(&client, &name, if m == ALIVE { "True" } else { "False" }).await;
                }
            }
            last = m;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

async fn get_node(client: &Client, name: &str) -> Node {
    Api::<Node>::all(client.clone())
        .get(name)
        .await
        .expect("get node")
}

fn has_taint(node: &Node, key: &str, effect: &str) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == key && t.effect == effect))
}

fn ready_status(node: &Node) -> Option<(String, Option<String>)> {
    let c = node
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((c.status.clone(), c.reason.clone()))
}

async fn create_pod(client: &Client, ns: &str, name: &str, node: &str, tolerations: Value) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "tolerations": tolerations,
            "containers": [{"name": "c", "image": "busybox"}],
        },
    }))
    .expect("pod");
    api.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
}

/// Gone or terminating.
async fn is_evicted(client: &Client, ns: &str, name: &str) -> bool {
    match Api::<Pod>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
    {
        Ok(Some(p)) => p.metadata.deletion_timestamp.is_some(),
        Ok(None) => true,
        Err(_) => false,
    }
}

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

#[tokio::test]
async fn dead_node_goes_unknown_and_pods_are_evicted() {
    let (_server, client) = start().await;
    namespace(&client, "evict").await;
    tokio::spawn(nodelifecycle::run_with(
        Context::new(client.clone()),
        fast_config(),
    ));
    create_node(&client, "n1").await;
    let mode = Arc::new(AtomicU8::new(ALIVE));
    let _kubelet = heartbeat(client.clone(), "n1", mode.clone());
    wait_for("n1 ready", 10, || async {
        (ready_status(&get_node(&client, "n1").await).map(|s| s.0) == Some("True".into()))
            .then_some(())
    })
    .await;
    let short = json!([
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
        {"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
    ]);
    create_pod(&client, "evict", "short", "n1", short).await;
    let forever = json!([{"operator": "Exists"}]);
    create_pod(&client, "evict", "forever", "n1", forever).await;

    // Alive for longer than the grace period: nothing happens.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let node = get_node(&client, "n1").await;
    assert!(!has_taint(&node, UNREACHABLE, "NoExecute"));
    assert!(!is_evicted(&client, "evict", "short").await);

    mode.store(DEAD, Ordering::SeqCst);
    let died = Instant::now();
    let node = wait_for("n1 unreachable", 15, || async {
        let n = get_node(&client, "n1").await;
        (has_taint(&n, UNREACHABLE, "NoExecute") && has_taint(&n, UNREACHABLE, "NoSchedule"))
            .then_some(n)
    })
    .await;
    let tainted = Instant::now();
    assert!(
        died.elapsed() >= Duration::from_secs(2),
        "tainted too early"
    );
    assert_eq!(
        ready_status(&node),
        Some(("Unknown".into(), Some("NodeStatusUnknown".into())))
    );
    let time_added = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .and_then(|ts| {
            ts.iter()
                .find(|t| t.key == UNREACHABLE && t.effect == "NoExecute")
        })
        .and_then(|t| t.time_added.clone());
    assert!(time_added.is_some(), "NoExecute taint has timeAdded");

    wait_for("short-toleration pod evicted", 15, || async {
        is_evicted(&client, "evict", "short").await.then_some(())
    })
    .await;
    assert!(
        tainted.elapsed() >= Duration::from_millis(1500),
        "evicted before tolerationSeconds: {:?}",
        tainted.elapsed()
    );
    if let Ok(Some(p)) = Api::<Pod>::namespaced(client.clone(), "evict")
        .get_opt("short")
        .await
    {
        let conds = p.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            conds.iter().any(|c| c.type_ == "DisruptionTarget"
                && c.reason.as_deref() == Some("DeletionByTaintManager")),
            "DisruptionTarget condition: {conds:?}"
        );
    }
    assert!(!is_evicted(&client, "evict", "forever").await);

    // A NoExecute taint the pod does not tolerate at all evicts at once.
    create_node(&client, "n2").await;
    let mode2 = Arc::new(AtomicU8::new(ALIVE));
    let _kubelet2 = heartbeat(client.clone(), "n2", mode2);
    create_pod(&client, "evict", "plain", "n2", json!([])).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!is_evicted(&client, "evict", "plain").await);
    let n2 = get_node(&client, "n2").await;
    let mut taints: Vec<Value> = n2
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| {
            ts.iter()
                .map(|t| serde_json::to_value(t).expect("taint"))
                .collect()
        })
        .unwrap_or_default();
    taints.push(json!({"key": "example.com/drain", "effect": "NoExecute"}));
    Api::<Node>::all(client.clone())
        .patch(
            "n2",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": taints}})),
        )
        .await
        .expect("taint n2");
    let t = Instant::now();
    wait_for("untolerating pod evicted", 5, || async {
        is_evicted(&client, "evict", "plain").await.then_some(())
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(2), "not evicted at once");
    // Foreign taints are left alone.
    assert!(has_taint(
        &get_node(&client, "n2").await,
        "example.com/drain",
        "NoExecute"
    ));
}

#[tokio::test]
async fn not_ready_and_recovery_update_taints() {
    let (_server, client) = start().await;
    tokio::spawn(nodelifecycle::run_with(
        Context::new(client.clone()),
        fast_config(),
    ));
    create_node(&client, "n1").await;
    let mode = Arc::new(AtomicU8::new(ALIVE));
    let _kubelet = heartbeat(client.clone(), "n1", mode.clone());

    mode.store(NOT_READY, Ordering::SeqCst);
    wait_for("not-ready taints", 10, || async {
        let n = get_node(&client, "n1").await;
        (has_taint(&n, NOT_READY_TAINT, "NoExecute")
            && has_taint(&n, NOT_READY_TAINT, "NoSchedule"))
        .then_some(())
    })
    .await;

    mode.store(DEAD, Ordering::SeqCst);
    wait_for("unreachable replaces not-ready", 15, || async {
        let n = get_node(&client, "n1").await;
        (has_taint(&n, UNREACHABLE, "NoExecute") && !has_taint(&n, NOT_READY_TAINT, "NoExecute"))
            .then_some(())
    })
    .await;

    mode.store(ALIVE, Ordering::SeqCst);
    wait_for("taints removed on recovery", 10, || async {
        let n = get_node(&client, "n1").await;
        let clean = [UNREACHABLE, NOT_READY_TAINT]
            .iter()
            .all(|k| !has_taint(&n, k, "NoExecute") && !has_taint(&n, k, "NoSchedule"));
        (clean && ready_status(&n).map(|s| s.0) == Some("True".into())).then_some(())
    })
    .await;
}

#[tokio::test]
async fn pod_cidrs_are_allocated_uniquely() {
    let (_server, client) = start().await;
    // One node exists before the allocator starts, with a CIDR already set.
    create_node(&client, "pre").await;
    Api::<Node>::all(client.clone())
        .patch(
            "pre",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"]}}),
            ),
        )
        .await
        .expect("preset cidr");
    tokio::spawn(nodelifecycle::run_with(
        Context::new(client.clone()),
        fast_config(),
    ));
    for n in ["a", "b", "c"] {
        create_node(&client, n).await;
    }
    let cidrs = wait_for("3 pod CIDRs", 10, || async {
        let mut out = Vec::new();
        for n in ["a", "b", "c"] {
            let node = get_node(&client, n).await;
            let spec = node.spec?;
            let cidr = spec.pod_cidr?;
            assert_eq!(spec.pod_cidrs, Some(vec![cidr.clone()]));
            out.push(cidr);
        }
        Some(out)
    })
    .await;
    let mut sorted = cidrs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 3, "distinct: {cidrs:?}");
    for c in &cidrs {
        assert!(c.starts_with("10.42.") && c.ends_with(".0/24"), "{c}");
        assert_ne!(c, "10.42.0.0/24", "pre-assigned block reused");
    }
}

#[tokio::test]
async fn pod_gc_collects_orphans_and_terminated() {
    let (_server, client) = start().await;
    namespace(&client, "gc").await;
    tokio::spawn(podgc::run_with(
        Context::new(client.clone()),
        podgc::Config {
            terminated_pod_gc_threshold: 2,
            gc_check_period: Duration::from_millis(300),
            quarantine: Duration::from_secs(1),
        },
    ));
    create_node(&client, "gone").await;
    create_node(&client, "stays").await;
    create_pod(&client, "gc", "orphan", "gone", json!([])).await;
    create_pod(&client, "gc", "kept", "stays", json!([])).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "gc");
    // A pod left terminating on the doomed node (no kubelet finishes its deletion).
    create_pod(&client, "gc", "terminating", "gone", json!([])).await;
    pods.delete("terminating", &DeleteParams::default())
        .await
        .expect("delete");

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pods.get_opt("orphan").await.expect("get").is_some());
    Api::<Node>::all(client.clone())
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete node");
    wait_for("orphans collected", 15, || async {
        let o = pods.get_opt("orphan").await.ok()?;
        let t = pods.get_opt("terminating").await.ok()?;
        (o.is_none() && t.is_none()).then_some(())
    })
    .await;
    assert!(pods.get_opt("kept").await.expect("get").is_some());

    // Terminated pods beyond the threshold (2) go, oldest first.
    for i in 0..4 {
        let name = format!("done-{i}");
        create_pod(&client, "gc", &name, "stays", json!([])).await;
        pods.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Succeeded"}})),
        )
        .await
        .expect("succeed");
    }
    wait_for("terminated pods trimmed to 2", 10, || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let done: Vec<String> = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded"))
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        (done.len() == 2).then_some(())
    })
    .await;
    assert!(pods.get_opt("kept").await.expect("get").is_some());
}

#[tokio::test]
async fn replicaset_replaces_pods_evicted_from_dead_node() {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use support::{Kubelet, is_active};
    let (_server, client) = start().await;
    namespace(&client, "rs").await;
    let ctx = Context::new(client.clone());
    tokio::spawn(nodelifecycle::run_with(ctx.clone(), fast_config()));
    tokio::spawn(r8s_controllers::replicaset::run(ctx));
    create_node(&client, "n1").await;
    let mode = Arc::new(AtomicU8::new(ALIVE));
    let _hb = heartbeat(client.clone(), "n1", mode.clone());
    // Binds pods to n1 and leaves terminating ones alone, like a kubelet that died.
    let _kubelet = Kubelet {
        node: Some("n1".into()),
        keep_terminating: true,
        ..Default::default()
    }
    .spawn(client.clone(), "rs");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "c", "image": "busybox"}],
                    "tolerations": [{"key": UNREACHABLE, "operator": "Exists",
                        "effect": "NoExecute", "tolerationSeconds": 1}],
                },
            },
        },
    }))
    .expect("rs");
    Api::<ReplicaSet>::namespaced(client.clone(), "rs")
        .create(&PostParams::default(), &rs)
        .await
        .expect("create rs");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "rs");
    let first = wait_for("bound pod", 15, || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|p| is_active(p) && p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
            .and_then(|p| p.metadata.name)
    })
    .await;
    mode.store(DEAD, Ordering::SeqCst);
    wait_for("original evicted and replaced", 20, || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let original_terminating = list.items.iter().any(|p| {
            p.metadata.name.as_ref() == Some(&first) && p.metadata.deletion_timestamp.is_some()
        });
        let replacement = list
            .items
            .iter()
            .any(|p| p.metadata.name.as_ref() != Some(&first));
        (original_terminating && replacement).then_some(())
    })
    .await;
}

//! Priority and preemption end to end: PriorityClass resolution, victims, nominations,
//! PodDisruptionBudgets, and `preemptionPolicy: Never`.

mod common;

use common::{Env, eventually, nodes, pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, PostParams};
use serde_json::json;

async fn classes(env: &Env) {
    let api: Api<PriorityClass> = Api::all(env.client.clone());
    for (name, value) in [("low", 100), ("high", 1000)] {
        let pc: PriorityClass = serde_json::from_value(
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value}),
        )
        .expect("class");
        api.create(&PostParams::default(), &pc)
            .await
            .expect("create class");
    }
}

fn on(node: &str, class: &str) -> serde_json::Value {
    json!({"nodeName": node, "priorityClassName": class})
}

async fn gone(env: &Env, name: &str) {
    let pods = env.pods();
    eventually(&format!("{name} deleted"), || {
        let pods = pods.clone();
        async move {
            pods.get_opt(name)
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_priority_pod_preempts_low_priority_ones() {
    let env = Env::start(Some(nodes("n", 2, "2"))).await;
    classes(&env).await;
    // Fill both nodes with low-priority pods through the scheduler.
    for i in 0..4 {
        env.create(pod(
            &format!("low{i}"),
            "1",
            json!({"priorityClassName": "low"}),
            json!({}),
        ))
        .await;
        env.bound(&format!("low{i}")).await;
    }
    env.create(pod(
        "vip",
        "2",
        json!({"priorityClassName": "high"}),
        json!({}),
    ))
    .await;
    let node = env.bound("vip").await;
    // Exactly the two pods on that node were preempted.
    let mut evicted = Vec::new();
    for i in 0..4 {
        let name = format!("low{i}");
        match env.node_of(&name).await {
            Some(n) if n == node => evicted.push(name),
            Some(_) => {}
            None => evicted.push(name),
        }
    }
    for name in &evicted {
        gone(&env, name).await;
    }
    assert_eq!(evicted.len(), 2, "{evicted:?}");
    let preempted = env.events(&evicted[0], "Preempted").await;
    assert!(!preempted.is_empty());
    assert!(
        preempted[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains(&format!("on node {node}"))
    );
    // The preemptor reported itself unschedulable while waiting, then was bound.
    let failed = env.events("vip", "FailedScheduling").await;
    assert!(
        failed[0]
            .message
            .as_deref()
            .unwrap_or("")
            .starts_with("0/2 nodes are available: 2 Insufficient cpu.")
    );

    // A pod that may not preempt says so.
    env.create(pod(
        "polite",
        "2",
        json!({"priorityClassName": "high", "preemptionPolicy": "Never"}),
        json!({}),
    ))
    .await;
    let (_, msg) = env.unschedulable("polite").await;
    assert_eq!(
        msg,
        "0/2 nodes are available: 2 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    );
    // Equal (or higher) priority pods are never victims.
    env.create(pod(
        "peer",
        "2",
        json!({"priorityClassName": "low"}),
        json!({}),
    ))
    .await;
    let (_, msg) = env.unschedulable("peer").await;
    assert_eq!(
        msg,
        "0/2 nodes are available: 2 Insufficient cpu. \
         preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemption_prefers_nodes_without_pdb_violations() {
    let env = Env::start(Some(nodes("n", 2, "2"))).await;
    classes(&env).await;
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "guard"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "guarded"}}}}))
    .expect("pdb");
    Api::<PodDisruptionBudget>::namespaced(env.client.clone(), "default")
        .create(&PostParams::default(), &pdb)
        .await
        .expect("create pdb");
    env.create(pod(
        "guarded",
        "2",
        on("n-0", "low"),
        json!({"app": "guarded"}),
    ))
    .await;
    env.create(pod("free", "2", on("n-1", "low"), json!({"app": "free"})))
        .await;
    // Both running before the preemptor arrives.
    for name in ["guarded", "free"] {
        let pods = env.pods();
        eventually("running", || {
            let pods = pods.clone();
            async move {
                let p = pods.get(name).await.ok()?;
                (p.status?.phase.as_deref() == Some("Running")).then_some(())
            }
        })
        .await;
    }
    env.create(pod(
        "vip",
        "2",
        json!({"priorityClassName": "high"}),
        json!({}),
    ))
    .await;
    assert_eq!(env.bound("vip").await, "n-1");
    gone(&env, "free").await;
    assert_eq!(env.node_of("guarded").await.as_deref(), Some("n-0"));
}

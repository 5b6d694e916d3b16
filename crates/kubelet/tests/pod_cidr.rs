//! The node's pod CIDR: with a controller manager the agent waits for `spec.podCIDR`
//! (never allocating, so the two cannot race); standalone it allocates the first free
//! block. Needs only the in-process API server (no containerd, no root).
#![allow(clippy::unwrap_used)]

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use r8s_apiserver::testing::TestServer;
use r8s_kubelet::cni;
use std::time::Duration;

async fn client(server: &TestServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

async fn create_node(nodes: &Api<Node>, name: &str, cidr: Option<&str>) {
    let mut v = serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    if let Some(c) = cidr {
        v["spec"] = serde_json::json!({"podCIDR": c, "podCIDRs": [c]});
    }
    let node: Node = serde_json::from_value(v).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
}

#[tokio::test]
async fn the_agent_waits_for_the_controller_managers_pod_cidr() {
    let server = TestServer::start().await;
    let client = client(&server).await;
    let nodes: Api<Node> = Api::all(client.clone());
    create_node(&nodes, "n1", None).await;
    let waiter = tokio::spawn({
        let client = client.clone();
        async move { cni::wait_pod_cidr(&client, "n1").await }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !waiter.is_finished(),
        "must wait while spec.podCIDR is empty"
    );
    let node = nodes.get("n1").await.unwrap();
    assert!(
        node.spec.and_then(|s| s.pod_cidr).is_none(),
        "must not allocate"
    );
    // What the controller manager's node IPAM does.
    let patch =
        serde_json::json!({"spec": {"podCIDR": "10.42.7.0/24", "podCIDRs": ["10.42.7.0/24"]}});
    nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let cidr = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("wait ends once podCIDR is set")
        .unwrap()
        .unwrap();
    assert_eq!(cidr.to_string(), "10.42.7.0/24");
}

#[tokio::test]
async fn a_standalone_agent_allocates_the_first_free_block() {
    let server = TestServer::start().await;
    let client = client(&server).await;
    let nodes: Api<Node> = Api::all(client.clone());
    create_node(&nodes, "other", Some("10.42.0.0/24")).await;
    create_node(&nodes, "n1", None).await;
    let cluster: cni::Cidr = "10.42.0.0/16".parse().unwrap();
    let cidr = cni::ensure_pod_cidr(&client, "n1", &cluster).await.unwrap();
    assert_eq!(cidr.to_string(), "10.42.1.0/24");
    let spec = nodes.get("n1").await.unwrap().spec.unwrap();
    assert_eq!(spec.pod_cidr.as_deref(), Some("10.42.1.0/24"));
    // Already set: returned as is (also by the waiting variant).
    assert_eq!(
        cni::ensure_pod_cidr(&client, "n1", &cluster).await.unwrap(),
        cidr
    );
    assert_eq!(cni::wait_pod_cidr(&client, "n1").await.unwrap(), cidr);
}

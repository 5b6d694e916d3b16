//! The seed's nginx-pod: Running and Ready, serving HTTP on its pod IP; deleting it
//! removes its containers, sandbox and veth.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use std::time::{Duration, Instant};

/// The node registered itself with labels, capacity, addresses, nodeInfo, a pod CIDR,
/// a Ready condition, and a Lease.
async fn check_node(env: &Env) {
    let nodes: Api<Node> = Api::all(env.client.clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    let node = loop {
        let n = nodes.get(&env.node).await.expect("node");
        let is_ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if is_ready {
            break n;
        }
        assert!(Instant::now() < deadline, "node not Ready: {:?}", n.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("kubernetes.io/hostname"), Some(&env.node));
    assert_eq!(
        labels.get("kubernetes.io/os").map(String::as_str),
        Some("linux")
    );
    assert!(labels.contains_key("kubernetes.io/arch"));
    let spec = node.spec.clone().unwrap_or_default();
    assert_eq!(spec.pod_cidr.as_deref(), Some("10.199.1.0/24"));
    let status = node.status.clone().unwrap();
    let cap = status.capacity.clone().unwrap();
    assert_eq!(cap["pods"].0, "110");
    assert!(
        cap.contains_key("cpu")
            && cap.contains_key("memory")
            && cap.contains_key("ephemeral-storage")
    );
    assert!(status.allocatable.is_some());
    let addrs = status.addresses.clone().unwrap();
    assert!(
        addrs
            .iter()
            .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1")
    );
    assert!(addrs.iter().any(|a| a.type_ == "Hostname"));
    let info = status.node_info.clone().unwrap();
    assert_eq!(info.kubelet_version, "v1.33.0");
    assert!(
        info.container_runtime_version
            .starts_with("containerd://1."),
        "{}",
        info.container_runtime_version
    );
    assert_eq!(info.operating_system, "linux");
    assert!(!info.kernel_version.is_empty());
    let conds = status.conditions.clone().unwrap();
    for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(conds.iter().any(|c| c.type_ == t), "missing condition {t}");
    }
    let images = status.images.clone().unwrap_or_default();
    assert!(
        images
            .iter()
            .any(|i| i.names.iter().flatten().any(|n| n.contains("nginx:1.14.2"))),
        "{images:?}"
    );
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "kube-node-lease");
    let lease = leases.get(&env.node).await.expect("node lease");
    let ls = lease.spec.unwrap();
    assert_eq!(ls.holder_identity.as_deref(), Some(env.node.as_str()));
    assert_eq!(ls.lease_duration_seconds, Some(40));
    assert!(ls.renew_time.is_some());
    let owner = lease.metadata.owner_references.unwrap_or_default();
    assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("Node"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_pod_serves_http_and_deletes_cleanly() {
    run_test(1, |env| async move {
        check_node(&env).await;
        let t0 = Instant::now();
        env.create_pod(serde_json::json!({
            "metadata": {"name": "nginx-pod"},
            "spec": {"containers": [{"name": "nginx-container", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}]}]}
        }))
        .await;
        let pod = env.wait_pod("nginx-pod", Duration::from_secs(30), "Running and Ready", |p| phase(p) == "Running" && ready(p)).await;
        eprintln!("nginx-pod ready after {:?}", t0.elapsed());
        let ip = pod_ip(&pod);
        assert!(ip.starts_with("10.199.1."), "pod IP {ip}");
        let st = container_status(&pod, "nginx-container").expect("status");
        assert!(st.container_id.as_deref().unwrap_or_default().starts_with("containerd://"));
        assert_eq!(st.restart_count, 0);
        assert!(st.ready);
        assert_eq!(pod.status.as_ref().unwrap().host_ip.as_deref(), Some("127.0.0.1"));
        // Without a readiness probe a pod is Ready once its container started, which may be
        // a moment before httpd listens (as upstream): retry briefly.
        let mut attempt = http_get(&ip, 80, "/").await;
        for _ in 0..50 {
            if attempt.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            attempt = http_get(&ip, 80, "/").await;
        }
        let body = attempt.expect("GET /");
        assert!(body.starts_with("HTTP/1.") && body.contains(" 200 "), "{body}");
        assert!(body.contains("Welcome to nginx!"), "{body}");
        assert_eq!(env.bridge_ports(), 1);

        let uid = pod.metadata.uid.clone().unwrap();
        env.delete_pod("nginx-pod").await;
        env.wait_gone("nginx-pod", Duration::from_secs(20)).await;
        let cri = env.cri();
        let sandboxes = cri.list_pod_sandbox(None).await.unwrap();
        assert!(sandboxes.is_empty(), "sandboxes left: {sandboxes:?}");
        assert!(cri.list_containers(None).await.unwrap().is_empty());
        assert_eq!(env.bridge_ports(), 0, "veth left on the bridge");
        assert!(!env.dir.path().join("agent/pods").join(&uid).exists());
        let cgroup = format!("/sys/fs/cgroup/memory/kubepods/besteffort/pod{uid}");
        assert!(!std::path::Path::new(&cgroup).exists(), "{cgroup} left behind");
    })
    .await;
}

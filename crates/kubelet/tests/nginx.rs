//! The seed's nginx-pod: Running and Ready, serving HTTP on its pod IP; deleting it
//! removes its containers, sandbox and veth.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_pod_serves_http_and_deletes_cleanly() {
    run_test(1, |env| async move {
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
    let body = http_get(&ip, 80, "/").await.expect("GET /");
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
    })
    .await;
}

//! Simulated nodes against the in-process API server: registration, leases, and the pod
//! lifecycle a kubelet would drive.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use r8s_apiserver::testing::TestServer;
use r8s_simnodes::SimOptions;
use serde_json::json;
use std::time::Duration;

async fn client(server: &TestServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

/// Poll `f` every 50 ms for up to 20 s.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..400 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn pod(name: &str, node: &str, extra: serde_json::Value) -> Pod {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    });
    if let Some(spec) = extra.get("spec").and_then(|s| s.as_object()) {
        for (k, v) in spec {
            p["spec"][k] = v.clone();
        }
    }
    if let Some(a) = extra.get("annotations") {
        p["metadata"]["annotations"] = a.clone();
    }
    serde_json::from_value(p).expect("pod")
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_leases_and_pod_lifecycle() {
    let server = TestServer::start().await;
    let c = client(&server).await;
    let opts = SimOptions {
        count: 3,
        ready_delay: Duration::from_millis(100),
        pods_per_node: 2,
        zones: 2,
        ..Default::default()
    };
    let sim = tokio::spawn(r8s_simnodes::run(c.clone(), opts));

    let nodes: Api<Node> = Api::all(c.clone());
    let list = eventually("3 nodes", || {
        let nodes = nodes.clone();
        async move {
            nodes
                .list(&Default::default())
                .await
                .ok()
                .filter(|l| l.items.len() == 3)
        }
    })
    .await;
    let n1 = list
        .items
        .iter()
        .find(|n| n.metadata.name.as_deref() == Some("sim-1"))
        .expect("sim-1");
    let labels = n1.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("kubernetes.io/hostname").map(String::as_str),
        Some("sim-1")
    );
    assert_eq!(labels.get("type").map(String::as_str), Some("sim"));
    assert_eq!(
        labels
            .get("topology.kubernetes.io/zone")
            .map(String::as_str),
        Some("zone-1")
    );
    let status = n1.status.clone().unwrap_or_default();
    assert_eq!(
        status.node_info.map(|i| i.kubelet_version),
        Some("v1.33.0".to_string())
    );
    let ready = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.status, "True");

    let leases: Api<Lease> = Api::namespaced(c.clone(), "kube-node-lease");
    let lease = eventually("lease", || {
        let leases = leases.clone();
        async move { leases.get_opt("sim-2").await.ok().flatten() }
    })
    .await;
    let spec = lease.spec.expect("lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some("sim-2"));
    assert_eq!(spec.lease_duration_seconds, Some(40));

    // A pod bound to sim-1 becomes Running and Ready with addresses from sim-1's ranges.
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    pods.create(&PostParams::default(), &pod("web", "sim-1", json!({})))
        .await
        .expect("create");
    let running = eventually("web running", || {
        let pods = pods.clone();
        async move { pods.get("web").await.ok().filter(|p| phase(p) == "Running") }
    })
    .await;
    let st = running.status.expect("status");
    assert_eq!(st.host_ip.as_deref(), Some("10.200.0.2"));
    assert!(
        st.pod_ip.as_deref().unwrap_or("").starts_with("10.128.1."),
        "{:?}",
        st.pod_ip
    );
    let conds = st.conditions.unwrap_or_default();
    for t in ["Ready", "ContainersReady", "Initialized", "PodScheduled"] {
        assert!(
            conds.iter().any(|c| c.type_ == t && c.status == "True"),
            "{t}"
        );
    }
    let cs = st.container_statuses.unwrap_or_default();
    assert_eq!(cs[0].started, Some(true));
    assert!(
        cs[0]
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .is_some()
    );

    // Graceful deletion: the API server marks it, the simulated kubelet finishes it.
    pods.delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("web gone", || {
        let pods = pods.clone();
        async move {
            pods.get_opt("web")
                .await
                .ok()
                .filter(|p| p.is_none())
                .map(|_| ())
        }
    })
    .await;

    // Exit-code annotation: Succeeded on 0, Failed otherwise.
    for (name, code, want) in [("ok", "0", "Succeeded"), ("bad", "3", "Failed")] {
        let p = pod(
            name,
            "sim-0",
            json!({"spec": {"restartPolicy": "Never"}, "annotations": {"sim.r8s.io/exit-code": code}}),
        );
        pods.create(&PostParams::default(), &p)
            .await
            .expect("create");
        let done = eventually(want, || {
            let pods = pods.clone();
            async move { pods.get(name).await.ok().filter(|p| phase(p) == want) }
        })
        .await;
        let term = done
            .status
            .and_then(|s| s.container_statuses)
            .unwrap_or_default()[0]
            .state
            .clone()
            .and_then(|s| s.terminated)
            .expect("terminated");
        assert_eq!(term.exit_code.to_string(), code);
    }

    // Admission: sim-2 takes two pods; the third is rejected like a full kubelet would.
    for name in ["a", "b"] {
        pods.create(&PostParams::default(), &pod(name, "sim-2", json!({})))
            .await
            .expect("create");
        eventually("running", || {
            let pods = pods.clone();
            async move { pods.get(name).await.ok().filter(|p| phase(p) == "Running") }
        })
        .await;
    }
    pods.create(&PostParams::default(), &pod("c", "sim-2", json!({})))
        .await
        .expect("create");
    let rejected = eventually("rejected", || {
        let pods = pods.clone();
        async move { pods.get("c").await.ok().filter(|p| phase(p) == "Failed") }
    })
    .await;
    assert_eq!(
        rejected.status.and_then(|s| s.reason).as_deref(),
        Some("OutOfpods")
    );

    sim.abort();
}

/// The InternalIP and podCIDR of `name`, once it exists.
async fn addresses(nodes: &Api<Node>, name: &str) -> (String, String) {
    let n = eventually(
        name,
        || async move { nodes.get_opt(name).await.ok().flatten() },
    )
    .await;
    let ip = n
        .status
        .and_then(|s| s.addresses)
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .expect("InternalIP");
    let cidr = n.spec.and_then(|s| s.pod_cidr).expect("podCIDR");
    (ip, cidr)
}

/// Two groups started at the same time claim disjoint index blocks: no node or pod shares
/// an address, and a restarted group keeps its block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_side_by_side_do_not_share_addresses() {
    let server = TestServer::start().await;
    let c = client(&server).await;
    let group = |prefix: &str| SimOptions {
        count: 2,
        name_prefix: prefix.into(),
        ready_delay: Duration::from_millis(50),
        ..Default::default()
    };
    let good = tokio::spawn(r8s_simnodes::run(c.clone(), group("good")));
    let bad = tokio::spawn(r8s_simnodes::run(c.clone(), group("bad")));

    let nodes: Api<Node> = Api::all(c.clone());
    let mut seen = Vec::new();
    for name in ["good-0", "good-1", "bad-0", "bad-1"] {
        seen.push((name, addresses(&nodes, name).await));
    }
    for (i, (a, (ip_a, cidr_a))) in seen.iter().enumerate() {
        for (b, (ip_b, cidr_b)) in &seen[i + 1..] {
            assert_ne!(ip_a, ip_b, "{a} and {b} share an InternalIP");
            assert_ne!(cidr_a, cidr_b, "{a} and {b} share a podCIDR");
        }
    }
    // Each node records its global index; the two blocks are 0..2 and 2..4 in some order.
    let mut indices: Vec<usize> = Vec::new();
    for (name, _) in &seen {
        let n = nodes.get(name).await.expect("node");
        let a = n.metadata.annotations.unwrap_or_default();
        indices.push(a[r8s_simnodes::INDEX_ANNOTATION].parse().expect("index"));
    }
    indices.sort();
    assert_eq!(indices, [0, 1, 2, 3]);

    // Pods on good-1 and bad-1 get addresses from different ranges.
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let mut pod_ips = Vec::new();
    for (name, node) in [("g", "good-1"), ("b", "bad-1")] {
        pods.create(&PostParams::default(), &pod(name, node, json!({})))
            .await
            .expect("create");
        let running = eventually("running", || {
            let pods = pods.clone();
            async move { pods.get(name).await.ok().filter(|p| phase(p) == "Running") }
        })
        .await;
        let st = running.status.expect("status");
        let (ip, cidr) = addresses(&nodes, node).await;
        assert_eq!(st.host_ip.as_deref(), Some(ip.as_str()));
        let pod_ip = st.pod_ip.expect("podIP");
        let prefix = cidr.trim_end_matches("0/24");
        assert!(pod_ip.starts_with(prefix), "{pod_ip} not in {cidr}");
        pod_ips.push(pod_ip);
    }
    assert_ne!(pod_ips[0], pod_ips[1]);

    // A restarted group keeps its addresses; a new group takes the next free block.
    let before = addresses(&nodes, "bad-1").await;
    bad.abort();
    let _ = bad.await;
    let bad = tokio::spawn(r8s_simnodes::run(c.clone(), group("bad")));
    let third = tokio::spawn(r8s_simnodes::run(c.clone(), group("third")));
    let (ip, cidr) = addresses(&nodes, "third-0").await;
    assert_eq!(
        (ip.as_str(), cidr.as_str()),
        ("10.200.0.5", "10.128.4.0/24")
    );
    assert_eq!(addresses(&nodes, "bad-1").await, before);
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(c.clone(), "kube-node-lease");
    let registry = cms
        .get(r8s_simnodes::REGISTRY_NAME)
        .await
        .expect("registry");
    let data = registry.data.unwrap_or_default();
    assert_eq!(data.get("third").map(String::as_str), Some("4..6"));
    assert_eq!(data.len(), 3);

    // An explicit offset beyond the global limit is refused up front.
    let err = r8s_simnodes::run(
        c.clone(),
        SimOptions {
            index_offset: Some(r8s_simnodes::MAX_NODES - 1),
            ..group("late")
        },
    )
    .await
    .expect_err("over the limit");
    assert!(err.to_string().contains("exceeds the maximum"), "{err}");

    for t in [good, bad, third] {
        t.abort();
    }
}

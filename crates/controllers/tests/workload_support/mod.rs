//! Shared by the ReplicaSet and Deployment integration tests: an in-process API server, a
//! client, bounded waits, and a stand-in "kubelet" that marks pods Running + Ready (pods
//! never really run in these tests).
#![allow(dead_code)]

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use r8s_apiserver::testing::TestServer;
use serde_json::json;
use std::future::Future;
use std::time::Duration;

/// A test server and an admin client for it.
pub async fn start() -> (TestServer, Client) {
    let server = TestServer::start().await;
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("client config");
    let client = Client::try_from(cfg).expect("client");
    (server, client)
}

/// Create namespace `name`.
pub async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

/// Poll `check` until it returns `Some`, failing the test after `secs` seconds.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How the fake kubelet treats pods.
#[derive(Clone, Default)]
pub struct Kubelet {
    /// Bind pods to this node first (then deletions are graceful and the kubelet finishes
    /// them, as a real one would after stopping the containers).
    pub node: Option<String>,
    /// Never make ready pods whose first container's image contains this.
    pub broken_image: Option<String>,
    /// Leave terminating pods alone (they stay terminating).
    pub keep_terminating: bool,
}

impl Kubelet {
    /// Watch pods in `ns` and act on them until the test ends.
    pub fn spawn(self, client: Client, ns: &str) -> tokio::task::JoinHandle<()> {
        let api: Api<Pod> = Api::namespaced(client, ns);
        tokio::spawn(async move {
            let mut stream = watcher(api.clone(), watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(ev) = stream.next().await {
                let Ok(pod) = ev else { continue };
                self.handle(&api, &pod).await;
            }
        })
    }

    async fn handle(&self, api: &Api<Pod>, pod: &Pod) {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if pod.metadata.deletion_timestamp.is_some() {
            if !self.keep_terminating && node.is_some() {
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                };
                let _ = api.delete(&name, &dp).await;
            }
            return;
        }
        let image = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        if let Some(b) = &self.broken_image
            && image.contains(b.as_str())
        {
            return;
        }
        if let (Some(want), None) = (&self.node, &node) {
            let _ = bind(api, &name, want).await;
            // The bound pod comes back as a new event; finish there.
            return;
        }
        if is_ready(pod) {
            return;
        }
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({"status": {
            "phase": "Running",
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ],
        }});
        let _ = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await;
    }
}

/// Bind pod `name` to node `node` through the binding subresource.
pub async fn bind(
    api: &Api<Pod>,
    name: &str,
    node: &str,
) -> Result<serde_json::Value, kube::Error> {
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        name,
        &PostParams::default(),
        &binding,
    )
    .await
}

/// Whether a pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether a pod is neither terminating nor finished.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    pod.metadata.deletion_timestamp.is_none() && phase != "Succeeded" && phase != "Failed"
}

/// Label selector string `k=v`.
pub fn label(k: &str, v: &str) -> String {
    format!("{k}={v}")
}

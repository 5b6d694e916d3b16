//! Test plumbing shared by every controllers integration test: an in-process API server
//! and an admin client, controllers running in the background for the duration of a test,
//! bounded polling, and stand-in kubelets (pods never really run in these tests).
//!
//! Each test binary includes it with `mod support;` (`core_controllers` by `#[path]`), so
//! any one binary uses only part of it.
#![allow(dead_code)]

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use r8s_apiserver::testing::TestServer;
use r8s_controllers::Context;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An admin client for `server`.
pub async fn client_for(server: &TestServer) -> Client {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("client config");
    Client::try_from(cfg).expect("client")
}

/// A test server and an admin client for it.
pub async fn start() -> (TestServer, Client) {
    let server = TestServer::start().await;
    let client = client_for(&server).await;
    (server, client)
}

/// Aborts the task when dropped, so a controller stops with its test.
pub struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Run a controller's `run(ctx)` in the background.
pub fn run<F, Fut>(client: &Client, f: F) -> Running
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let fut = f(Context::new(client.clone()));
    Running(tokio::spawn(async move {
        if let Err(e) = fut.await {
            panic!("controller failed: {e}");
        }
    }))
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
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait for an Event with `reason` about object `name` in `ns` (events are written
/// asynchronously).
pub async fn wait_event(client: &Client, ns: &str, name: &str, reason: &str) -> Event {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("event {reason} for {name}"), 20, || async {
        api.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.reason.as_deref() == Some(reason)
            })
    })
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

/// Bind pod `name` to node `node` through the binding subresource.
pub async fn bind(api: &Api<Pod>, name: &str, node: &str) -> Result<Value, kube::Error> {
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    api.create_subresource::<_, Value>("binding", name, &PostParams::default(), &binding)
        .await
}

/// Set a pod Running with a Ready condition of `ready`, as a kubelet reports it.
pub async fn set_running(api: &Api<Pod>, name: &str, ready: bool) -> kube::Result<Pod> {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now}],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
}

/// Run `handle` on each pod of `api` as the watch reports it (added or changed), one at a
/// time, until the test ends.
pub fn watch_pods<F, Fut>(api: Api<Pod>, mut handle: F) -> tokio::task::JoinHandle<()>
where
    F: FnMut(Pod) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(ev) = stream.next().await {
            let Ok(pod) = ev else { continue };
            handle(pod).await;
        }
    })
}

/// A stand-in kubelet that acts at once: how it treats pods.
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
        watch_pods(api.clone(), move |pod| {
            let (kubelet, api) = (self.clone(), api.clone());
            async move { kubelet.handle(&api, &pod).await }
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

/// A stand-in scheduler and kubelet that act after a delay, once per pod and state: a
/// Pending pod is bound to the node `place` picks (left alone if it picks none) and set
/// Running + Ready; a terminating pod is deleted for good. Pods whose names are
/// [held](DelayedKubelet::hold) stay Pending.
#[derive(Clone)]
pub struct DelayedKubelet {
    held: Arc<Mutex<HashSet<String>>>,
}

impl DelayedKubelet {
    /// Watch pods in `ns` until the test ends.
    pub fn spawn<P>(client: Client, ns: &str, delay: Duration, place: P) -> Self
    where
        P: Fn(&Pod) -> Option<String> + Send + Sync + 'static,
    {
        let k = DelayedKubelet {
            held: Arc::default(),
        };
        let held = k.held.clone();
        let place = Arc::new(place);
        let api: Api<Pod> = Api::namespaced(client, ns);
        tokio::spawn(async move {
            let handled: Arc<Mutex<HashSet<(String, bool)>>> = Arc::default();
            let mut stream = watcher(api.clone(), watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(Ok(pod)) = stream.next().await {
                let terminating = pod.metadata.deletion_timestamp.is_some();
                let phase = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                let is_held = || held.lock().expect("held").contains(&pod.name_any());
                if !terminating && (phase != "Pending" || is_held()) {
                    continue;
                }
                let uid = pod.uid().unwrap_or_default();
                if !handled
                    .lock()
                    .expect("handled")
                    .insert((uid.clone(), terminating))
                {
                    continue;
                }
                let (api, handled, place) = (api.clone(), handled.clone(), place.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let name = pod.name_any();
                    if terminating {
                        let _ = api
                            .delete(&name, &DeleteParams::default().grace_period(0))
                            .await;
                        return;
                    }
                    if pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_ref())
                        .is_none()
                    {
                        let Some(node) = place(&pod) else {
                            return;
                        };
                        let _ = bind(&api, &name, &node).await;
                    }
                    if set_running(&api, &name, true).await.is_err() {
                        // Retry on the next event for this pod.
                        handled.lock().expect("handled").remove(&(uid, false));
                    }
                });
            }
        });
        k
    }

    /// Keep pod `name` Pending from now on.
    pub fn hold(&self, name: &str) {
        self.held.lock().expect("held").insert(name.to_string());
    }
}

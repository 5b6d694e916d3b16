//! Shared helpers: an in-process API server, simulated nodes and the scheduler.

#![allow(dead_code)]

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use r8s_apiserver::testing::TestServer;
use r8s_scheduler::SchedulerConfig;
use r8s_simnodes::SimOptions;
use serde_json::{Value, json};
use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;

pub struct Env {
    pub server: TestServer,
    pub client: kube::Client,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Env {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub async fn client(server: &TestServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

/// Fast retries so tests do not wait for the production 1 s backoff.
pub fn test_config() -> SchedulerConfig {
    let mut cfg = SchedulerConfig::default();
    cfg.queue.initial_backoff = Duration::from_millis(100);
    cfg.queue.max_backoff = Duration::from_millis(500);
    cfg
}

impl Env {
    /// A server with the scheduler running and `nodes` simulated (if any).
    pub async fn start(nodes: Option<SimOptions>) -> Env {
        let server = TestServer::start().await;
        let client = client(&server).await;
        let mut env = Env {
            server,
            client,
            tasks: Vec::new(),
        };
        if let Some(opts) = nodes {
            env.add_nodes(opts).await;
        }
        env.tasks.push(tokio::spawn(r8s_scheduler::run(
            env.client.clone(),
            test_config(),
        )));
        env
    }

    /// Start more simulated nodes and wait until they are registered.
    pub async fn add_nodes(&mut self, opts: SimOptions) {
        let want: Vec<String> = (0..opts.count)
            .map(|i| r8s_simnodes::node_name(&opts.name_prefix, i))
            .collect();
        self.tasks
            .push(tokio::spawn(r8s_simnodes::run(self.client.clone(), opts)));
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client.clone());
        eventually("nodes registered", || {
            let nodes = nodes.clone();
            let want = want.clone();
            async move {
                let list = nodes.list(&ListParams::default()).await.ok()?;
                let have: Vec<String> = list
                    .items
                    .iter()
                    .filter_map(|n| n.metadata.name.clone())
                    .collect();
                want.iter().all(|w| have.contains(w)).then_some(())
            }
        })
        .await;
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    pub async fn create(&self, pod: Value) -> Pod {
        let p: Pod = serde_json::from_value(pod).expect("pod json");
        self.pods()
            .create(&PostParams::default(), &p)
            .await
            .expect("create pod")
    }

    /// Wait for the pod to be bound; returns its node.
    pub async fn bound(&self, name: &str) -> String {
        let pods = self.pods();
        eventually(&format!("{name} bound"), || {
            let pods = pods.clone();
            async move {
                let p = pods.get(name).await.ok()?;
                p.spec.and_then(|s| s.node_name).filter(|n| !n.is_empty())
            }
        })
        .await
    }

    /// Wait for PodScheduled=False; returns (reason, message).
    pub async fn unschedulable(&self, name: &str) -> (String, String) {
        let pods = self.pods();
        eventually(&format!("{name} unschedulable"), || {
            let pods = pods.clone();
            async move {
                let p = pods.get(name).await.ok()?;
                let c = p
                    .status?
                    .conditions?
                    .into_iter()
                    .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
                Some((c.reason.unwrap_or_default(), c.message.unwrap_or_default()))
            }
        })
        .await
    }

    /// Wait until a PodScheduled=False condition satisfies `f`.
    pub async fn unschedulable_where(&self, name: &str, f: impl Fn(&str) -> bool) -> String {
        let pods = self.pods();
        let f = &f;
        eventually(&format!("{name} unschedulable message"), || {
            let pods = pods.clone();
            async move {
                let p = pods.get(name).await.ok()?;
                let c = p
                    .status?
                    .conditions?
                    .into_iter()
                    .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
                let m = c.message.unwrap_or_default();
                f(&m).then_some(m)
            }
        })
        .await
    }

    pub async fn node_of(&self, name: &str) -> Option<String> {
        self.pods()
            .get(name)
            .await
            .ok()?
            .spec?
            .node_name
            .filter(|n| !n.is_empty())
    }

    /// Events about pod `name` with `reason`.
    pub async fn events(&self, name: &str, reason: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let list = api.list(&ListParams::default()).await.expect("list events");
        list.items
            .into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.reason.as_deref() == Some(reason)
            })
            .collect()
    }
}

/// Poll every 50 ms for up to 30 s.
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    for _ in 0..600 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A pod named `name` with one container requesting `cpu`/`memory` (if non-empty), plus
/// `extra` merged into the spec (and `labels` into metadata).
pub fn pod(name: &str, cpu: &str, extra_spec: Value, labels: Value) -> Value {
    let mut requests = serde_json::Map::new();
    if !cpu.is_empty() {
        requests.insert("cpu".into(), json!(cpu));
    }
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": requests}}]},
    });
    for (k, v) in extra_spec.as_object().into_iter().flatten() {
        p["spec"][k] = v.clone();
    }
    p
}

/// Simulated nodes with a small CPU capacity so resource tests are easy to reason about.
pub fn nodes(prefix: &str, count: usize, cpu: &str) -> SimOptions {
    SimOptions {
        count,
        name_prefix: prefix.into(),
        cpu: cpu.into(),
        memory: "8Gi".into(),
        ready_delay: Duration::from_millis(50),
        ..Default::default()
    }
}

//! One benchmark environment in this process: an in-process API server (embedded SQLite in
//! a temp dir, HTTPS on loopback), the controller manager, the scheduler and simulated
//! nodes, each with its own kube-rs client (no client-side rate limits: kube-rs has none),
//! plus the benchmark's watches feeding one channel.

use anyhow::{Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use r8s_apiserver::testing::TestServer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Where the benchmark runs its workloads.
pub const NS: &str = "default";

/// What the benchmark's watches deliver, with when.
pub enum Seen {
    Pod(Box<watcher::Event<Pod>>),
    Deployment(Box<Deployment>),
    ReplicaSet(Box<ReplicaSet>),
    ReplicaSetGone(String),
}

pub struct Env {
    pub server: TestServer,
    /// The benchmark's own client (creates, patches).
    pub client: kube::Client,
    tasks: Vec<JoinHandle<()>>,
}

pub async fn client(server: &TestServer) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}

/// The pod template of the Deployment and of the baseline's pods.
pub fn pod_template(app: &str, image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{
            "name": "app", "image": image,
            "ports": [{"containerPort": 8080}],
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
        }]},
    })
}

impl Env {
    /// Start the server and `nodes` simulated nodes (waiting until all are Ready), then
    /// the controllers and the scheduler.
    pub async fn start(nodes: usize, ready_delay: Duration) -> Result<Env> {
        let server = TestServer::start().await;
        let mut tasks = Vec::new();
        let sim = r8s_simnodes::SimOptions {
            count: nodes,
            name_prefix: "sim".into(),
            ready_delay,
            kubelet: true,
            ..Default::default()
        };
        let sim_client = client(&server).await?;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = r8s_simnodes::run(sim_client, sim).await {
                eprintln!("simulated nodes stopped: {e:#}");
            }
        }));
        let node_api: Api<Node> = Api::all(client(&server).await?);
        let t = Instant::now();
        loop {
            let ready = node_api
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                })
                .count();
            if ready >= nodes {
                break;
            }
            if t.elapsed() > Duration::from_secs(60) {
                bail!("only {ready} of {nodes} simulated nodes Ready after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ctl = r8s_controllers::Context::new(client(&server).await?);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = r8s_controllers::run_all(ctl).await {
                eprintln!("controllers stopped: {e:#}");
            }
        }));
        let sched_client = client(&server).await?;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = r8s_scheduler::run(sched_client, Default::default()).await {
                eprintln!("scheduler stopped: {e:#}");
            }
        }));
        let bench = client(&server).await?;
        // Let every informer finish its initial list before anything is measured.
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(Env {
            server,
            client: bench,
            tasks,
        })
    }

    /// Watch pods labelled `app=<app>`, and (when `deployment` is given) that Deployment
    /// and every ReplicaSet in the namespace, into one channel.
    pub async fn watch(
        &mut self,
        app: &str,
        deployment: Option<&str>,
    ) -> Result<mpsc::UnboundedReceiver<(Instant, Seen)>> {
        let (tx, rx) = mpsc::unbounded_channel();
        let pods: Api<Pod> = Api::namespaced(client(&self.server).await?, NS);
        let cfg = watcher::Config::default().labels(&format!("app={app}"));
        let ptx = tx.clone();
        self.tasks.push(tokio::spawn(async move {
            let mut s = watcher(pods, cfg).default_backoff().boxed();
            while let Some(ev) = s.next().await {
                match ev {
                    Ok(ev) => {
                        if ptx.send((Instant::now(), Seen::Pod(Box::new(ev)))).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!("pod watch: {e}"),
                }
            }
        }));
        if let Some(name) = deployment {
            let deps: Api<Deployment> = Api::namespaced(client(&self.server).await?, NS);
            let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let dtx = tx.clone();
            self.tasks.push(tokio::spawn(async move {
                let mut s = watcher(deps, cfg)
                    .default_backoff()
                    .applied_objects()
                    .boxed();
                while let Some(ev) = s.next().await {
                    if let Ok(d) = ev
                        && dtx
                            .send((Instant::now(), Seen::Deployment(Box::new(d))))
                            .is_err()
                    {
                        return;
                    }
                }
            }));
            let rss: Api<ReplicaSet> = Api::namespaced(client(&self.server).await?, NS);
            self.tasks.push(tokio::spawn(async move {
                let mut s = watcher(rss, watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while let Some(ev) = s.next().await {
                    let seen = match ev {
                        Ok(watcher::Event::Apply(r) | watcher::Event::InitApply(r)) => {
                            Seen::ReplicaSet(Box::new(r))
                        }
                        Ok(watcher::Event::Delete(r)) => {
                            Seen::ReplicaSetGone(r.metadata.name.unwrap_or_default())
                        }
                        _ => continue,
                    };
                    if tx.send((Instant::now(), seen)).is_err() {
                        return;
                    }
                }
            }));
        }
        // The watches' initial lists, before the workload starts.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(rx)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

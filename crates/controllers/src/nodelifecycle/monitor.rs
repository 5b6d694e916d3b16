//! Node health monitoring (upstream `monitorNodeHealth` and the NoSchedule/NoExecute
//! tainting passes): every `node_monitor_period`, and whenever a node or its Lease
//! changes, each node is checked; one not seen alive within the grace period gets its
//! kubelet conditions set to `Unknown`, its pods marked not ready, and every node's
//! managed taints are brought in line with its conditions.

use super::health::{Tracker, unknown_conditions};
use super::taints::{condition, desired, reconcile};
use super::{Config, SyncError};
use crate::Context;
use crate::events::{EventType, Recorder};
use crate::util::{
    AbortOnDrop, Informer, InformerEvent, WorkQueue, is_conflict, is_not_found, run_workers,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Namespace of the kubelets' heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
const COMPONENT: &str = "node-controller";
const WORKERS: usize = 2;

struct Monitor {
    client: kube::Client,
    cfg: Config,
    nodes: Informer<Node>,
    leases: Informer<Lease>,
    tracker: Tracker,
    /// Ready status last seen per node, to act on transitions away from `True`.
    last_ready: Mutex<HashMap<String, String>>,
    recorder: Recorder,
}

/// Run the health monitor until the process ends.
pub async fn run(ctx: Context, cfg: Config) -> anyhow::Result<()> {
    let queue: WorkQueue<String> = WorkQueue::new();
    let nodes = ctx.informers.get::<Node>();
    let leases = ctx
        .informers
        .get_namespaced::<Lease>(LEASE_NAMESPACE, watcher::Config::default());
    // The handlers stay registered while this future lives.
    let q = queue.clone();
    let _node_events = nodes.add_handler(move |ev| match ev {
        InformerEvent::Apply { new, .. } => q.add(new.metadata.name.clone().unwrap_or_default()),
        InformerEvent::Delete(old) => q.add(old.metadata.name.clone().unwrap_or_default()),
    });
    let q = queue.clone();
    let _lease_events = leases.add_handler(move |ev| {
        if let InformerEvent::Apply { new, .. } = ev {
            q.add(new.metadata.name.clone().unwrap_or_default());
        }
    });
    nodes.wait_synced().await;
    leases.wait_synced().await;
    let monitor = Arc::new(Monitor {
        client: ctx.client.clone(),
        cfg: cfg.clone(),
        nodes: nodes.clone(),
        leases,
        tracker: Tracker::default(),
        last_ready: Mutex::new(HashMap::new()),
        recorder: ctx.recorder(COMPONENT),
    });
    // The periodic pass: a node that stops talking produces no events of its own.
    let q = queue.clone();
    let period = cfg.node_monitor_period;
    let ticker = tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            for n in nodes.store().state() {
                q.add(n.metadata.name.clone().unwrap_or_default());
            }
        }
    });
    // Ends with this future (it holds the shared node informer).
    let _ticker = AbortOnDrop(ticker.abort_handle());
    run_workers(queue, WORKERS, move |name: String| {
        let m = monitor.clone();
        async move { m.sync(&name).await }
    })
    .await;
    Ok(())
}

impl Monitor {
    async fn sync(&self, name: &str) -> Result<Option<Duration>, SyncError> {
        let Some(node) = self.nodes.get(None, name) else {
            self.tracker.forget(name);
            self.last_ready
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            return Ok(None);
        };
        let mut node = (*node).clone();
        let lease = self.leases.get(Some(LEASE_NAMESPACE), name);
        let silent_for = self
            .tracker
            .observe(&node, lease.as_deref(), tokio::time::Instant::now());
        let grace = if condition(&node, "Ready").is_some() {
            self.cfg.node_monitor_grace_period
        } else {
            self.cfg.node_startup_grace_period
        };
        let api: Api<Node> = Api::all(self.client.clone());
        if silent_for >= grace
            && let Some(conds) = unknown_conditions(&node, jiff::Timestamp::now())
        {
            tracing::info!(
                node = name,
                "node stopped posting status; marking conditions Unknown"
            );
            let patch = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "status": {"conditions": conds},
            });
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(updated) => node = updated,
                Err(e) if is_not_found(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        self.on_ready_transition(&node).await?;
        self.sync_taints(&api, &node).await
    }

    /// On Ready leaving `True`: record `NodeNotReady` and mark the node's pods not ready
    /// (upstream `MarkPodsNotReady`), so endpoints stop routing to them.
    async fn on_ready_transition(&self, node: &Node) -> Result<(), SyncError> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let status = condition(node, "Ready")
            .map(|c| c.status.clone())
            .unwrap_or_default();
        let previous = self
            .last_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&name)
            .cloned();
        if status == "True" || status.is_empty() || previous.as_deref() == Some(status.as_str()) {
            self.remember_ready(&name, status);
            return Ok(());
        }
        if previous.as_deref() == Some("True") {
            self.recorder.publish_for(
                node,
                EventType::Normal,
                "NodeNotReady",
                &format!("Node {name} status is now: NodeNotReady"),
            );
        }
        mark_pods_not_ready(&self.client, &name).await?;
        // Only remembered once the pods are marked, so a failure retries the marking.
        self.remember_ready(&name, status);
        Ok(())
    }

    fn remember_ready(&self, name: &str, status: String) {
        self.last_ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), status);
    }

    async fn sync_taints(
        &self,
        api: &Api<Node>,
        node: &Node,
    ) -> Result<Option<Duration>, SyncError> {
        let current = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let Some(taints) = reconcile(&current, &desired(node), jiff::Timestamp::now()) else {
            return Ok(None);
        };
        let name = node.metadata.name.as_deref().unwrap_or_default();
        tracing::debug!(node = name, ?taints, "updating node taints");
        let patch = json!({
            "metadata": {"resourceVersion": node.metadata.resource_version},
            "spec": {"taints": taints},
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(None),
            // A newer version is on its way through the informer and will queue the node.
            Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Set the Ready condition of every pod on `node` to False.
async fn mark_pods_not_ready(client: &kube::Client, node: &str) -> Result<(), SyncError> {
    let api: Api<Pod> = Api::all(client.clone());
    let pods = api
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    for pod in pods.items {
        if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(node) {
            continue;
        }
        let Some(mut conds) = pod.status.as_ref().and_then(|s| s.conditions.clone()) else {
            continue;
        };
        let Some(ready) = conds.iter_mut().find(|c| c.type_ == "Ready") else {
            continue;
        };
        if ready.status == "False" {
            continue;
        }
        *ready = PodCondition {
            status: "False".to_string(),
            last_transition_time: Some(Time(jiff::Timestamp::now())),
            ..ready.clone()
        };
        let (Some(ns), Some(pname)) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let patch = json!({
            "metadata": {"resourceVersion": pod.metadata.resource_version},
            "status": {"conditions": conds},
        });
        match Api::<Pod>::namespaced(client.clone(), ns)
            .patch_status(pname, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

//! Pod garbage collection (upstream `pkg/controller/podgc`). Every check period it:
//! - force-deletes the oldest terminated (Succeeded/Failed) pods beyond
//!   `terminated_pod_gc_threshold`;
//! - force-deletes terminating pods on not-ready nodes tainted `out-of-service`;
//! - fails and force-deletes pods bound to nodes that no longer exist (after a quarantine,
//!   and a live check that the node really is gone — the cache may be stale);
//! - force-deletes terminating pods that were never scheduled (no kubelet will finish them).
//!
//! Pods and nodes come from the shared informer caches.

use crate::Context;
use crate::util::{Informer, is_conflict, is_not_found};
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Why a GC pass failed (retried next period).
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("api: {0}")]
    Api(#[from] kube::Error),
}

/// Settings (upstream kube-controller-manager flags and constants).
#[derive(Clone, Debug)]
pub struct Config {
    /// Terminated pods kept before the oldest are deleted; 0 disables
    /// (`--terminated-pod-gc-threshold`).
    pub terminated_pod_gc_threshold: usize,
    /// How often to collect (upstream `gcCheckPeriod`).
    pub gc_check_period: Duration,
    /// How long a node must stay missing before its pods count as orphaned
    /// (upstream `quarantineTime`).
    pub quarantine: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            terminated_pod_gc_threshold: 12500,
            gc_check_period: Duration::from_secs(20),
            quarantine: Duration::from_secs(40),
        }
    }
}

/// Run with the default [`Config`].
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    run_with(ctx, Config::default()).await
}

/// Collect every `gc_check_period` until the process ends.
pub async fn run_with(ctx: Context, cfg: Config) -> anyhow::Result<()> {
    let mut gc = PodGc {
        client: ctx.client.clone(),
        cfg: cfg.clone(),
        missing_since: HashMap::new(),
        pods: ctx.informers.get::<Pod>(),
        nodes: ctx.informers.get::<Node>(),
    };
    gc.pods.wait_synced().await;
    gc.nodes.wait_synced().await;
    let mut tick = tokio::time::interval(cfg.gc_check_period);
    loop {
        tick.tick().await;
        if let Err(e) = gc.pass().await {
            tracing::warn!("pod GC pass failed: {e}");
        }
    }
}

struct PodGc {
    client: kube::Client,
    cfg: Config,
    /// Nodes referenced by pods but not found, and since when.
    missing_since: HashMap<String, Instant>,
    /// The shared caches (upstream's podgc reads informers too, not fresh lists).
    pods: Informer<Pod>,
    nodes: Informer<Node>,
}

fn is_terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

fn out_of_service(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| {
            ts.iter()
                .any(|t| t.key == "node.kubernetes.io/out-of-service" && t.effect == "NoExecute")
        })
}

/// The oldest terminated pods beyond `threshold` (by creation time, then name).
fn excess_terminated(pods: &[Arc<Pod>], threshold: usize) -> Vec<&Pod> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut done: Vec<&Pod> = pods
        .iter()
        .map(Arc::as_ref)
        .filter(|p| is_terminated(p))
        .collect();
    if done.len() <= threshold {
        return Vec::new();
    }
    done.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.as_ref().map(|t| t.0),
            &a.metadata.name,
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                &b.metadata.name,
            ))
    });
    let n = done.len() - threshold;
    done.truncate(n);
    done
}

impl PodGc {
    async fn pass(&mut self) -> Result<(), GcError> {
        let pods = self.pods.store().state();
        let nodes: HashMap<String, Arc<Node>> = self
            .nodes
            .store()
            .state()
            .into_iter()
            .map(|n| (n.metadata.name.clone().unwrap_or_default(), n))
            .collect();

        for pod in excess_terminated(&pods, self.cfg.terminated_pod_gc_threshold) {
            self.fail_and_delete(pod, None).await?;
        }

        for pod in pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
        {
            match node_of(pod) {
                None => self.fail_and_delete(pod, None).await?,
                Some(n) => {
                    if let Some(node) = nodes.get(n)
                        && !node_ready(node)
                        && out_of_service(node)
                    {
                        let cond = ("DeletionByPodGC", "PodGC: node is out of service");
                        self.fail_and_delete(pod, Some(cond)).await?;
                    }
                }
            }
        }

        self.collect_orphans(&pods, &nodes).await
    }

    async fn collect_orphans(
        &mut self,
        pods: &[Arc<Pod>],
        nodes: &HashMap<String, Arc<Node>>,
    ) -> Result<(), GcError> {
        let now = Instant::now();
        let missing: HashSet<&str> = pods
            .iter()
            .filter_map(|p| node_of(p))
            .filter(|n| !nodes.contains_key(*n))
            .collect();
        self.missing_since
            .retain(|n, _| missing.contains(n.as_str()));
        let node_api: Api<Node> = Api::all(self.client.clone());
        for name in missing {
            let since = *self.missing_since.entry(name.to_string()).or_insert(now);
            if now.saturating_duration_since(since) < self.cfg.quarantine {
                continue;
            }
            match node_api.get(name).await {
                Ok(_) => {
                    self.missing_since.remove(name);
                    continue;
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
            for pod in pods.iter().filter(|p| node_of(p) == Some(name)) {
                tracing::info!(
                    pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""),
                        pod.metadata.name.as_deref().unwrap_or("")),
                    node = name,
                    "deleting orphaned pod"
                );
                let cond = ("DeletionByPodGC", "PodGC: node no longer exists");
                self.fail_and_delete(pod, Some(cond)).await?;
            }
        }
        Ok(())
    }

    /// Mark a non-terminal pod Failed (with a `DisruptionTarget` condition if given) and
    /// delete it with no grace period.
    async fn fail_and_delete(
        &self,
        pod: &Pod,
        disruption: Option<(&str, &str)>,
    ) -> Result<(), GcError> {
        let (Some(ns), Some(name)) = (
            pod.metadata.namespace.as_deref(),
            pod.metadata.name.as_deref(),
        ) else {
            return Ok(());
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        if !is_terminated(pod) {
            let mut conds: Vec<PodCondition> = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            if let Some((reason, message)) = disruption {
                conds.retain(|c| c.type_ != "DisruptionTarget");
                conds.push(PodCondition {
                    type_: "DisruptionTarget".to_string(),
                    status: "True".to_string(),
                    reason: Some(reason.to_string()),
                    message: Some(message.to_string()),
                    last_transition_time: Some(Time(jiff::Timestamp::now())),
                    ..Default::default()
                });
            }
            let patch = json!({"status": {"phase": "Failed", "conditions": conds}});
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: pod.metadata.uid.clone().map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, created: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "d", "creationTimestamp": created},
            "status": {"phase": phase},
        }))
        .expect("pod")
    }

    #[test]
    fn oldest_terminated_beyond_threshold() {
        let pods: Vec<Arc<Pod>> = [
            pod("c", "2025-01-03T00:00:00Z", "Succeeded"),
            pod("a", "2025-01-01T00:00:00Z", "Failed"),
            pod("r", "2024-01-01T00:00:00Z", "Running"),
            pod("b", "2025-01-02T00:00:00Z", "Succeeded"),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let names = |v: Vec<&Pod>| -> Vec<String> {
            v.into_iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect()
        };
        assert_eq!(names(excess_terminated(&pods, 1)), vec!["a", "b"]);
        assert!(excess_terminated(&pods, 3).is_empty());
        assert!(excess_terminated(&pods, 0).is_empty());
    }
}

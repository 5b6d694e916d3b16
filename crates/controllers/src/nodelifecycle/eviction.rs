//! Taint-based eviction (upstream `pkg/controller/tainteviction`): a pod bound to a node
//! with a NoExecute taint it does not tolerate is deleted at once; one tolerating every
//! such taint for limited `tolerationSeconds` is deleted when the shortest runs out,
//! counted from when the taints first applied to it; removing the taints cancels that.
//! Pods get a `DisruptionTarget` condition before deletion (normal grace period).

use super::SyncError;
use super::taints::{NO_EXECUTE, Verdict, verdict};
use crate::Context;
use crate::events::{EventType, Recorder};
use crate::util::{Informer, InformerEvent, WorkQueue, is_not_found, run_workers};
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const COMPONENT: &str = "taint-eviction-controller";
const WORKERS: usize = 4;

/// A pod by namespace and name.
type PodKey = (String, String);

struct Evictor {
    client: kube::Client,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    /// When each pod (by uid) first became subject to a timed eviction.
    scheduled: Mutex<HashMap<PodKey, (String, Instant)>>,
    recorder: Recorder,
}

fn no_execute(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| {
            ts.iter()
                .filter(|t| t.effect == NO_EXECUTE)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn pod_key(pod: &Pod) -> PodKey {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Run the taint eviction manager until the process ends.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: WorkQueue<PodKey> = WorkQueue::new();
    let pods = ctx.informers.get::<Pod>();
    let nodes = ctx.informers.get::<Node>();
    // The handlers stay registered while this future lives.
    let q = queue.clone();
    let _pod_events = pods.add_handler(move |ev| match ev {
        InformerEvent::Apply { new, .. } => {
            if new.spec.as_ref().is_some_and(|s| s.node_name.is_some()) {
                q.add(pod_key(&new));
            }
        }
        InformerEvent::Delete(old) => q.add(pod_key(&old)),
    });
    let q = queue.clone();
    let pod_cache = pods.clone();
    let _node_events = nodes.add_handler(move |ev| {
        let (name, changed) = match &ev {
            InformerEvent::Apply { old, new } => (
                new.metadata.name.clone(),
                old.as_ref()
                    .is_none_or(|o| no_execute(o) != no_execute(new)),
            ),
            InformerEvent::Delete(old) => (old.metadata.name.clone(), true),
        };
        if !changed {
            return;
        }
        for pod in pod_cache.store().state() {
            if pod.spec.as_ref().and_then(|s| s.node_name.as_ref()) == name.as_ref() {
                q.add(pod_key(&pod));
            }
        }
    });
    pods.wait_synced().await;
    nodes.wait_synced().await;
    let evictor = Arc::new(Evictor {
        client: ctx.client.clone(),
        pods,
        nodes,
        scheduled: Mutex::new(HashMap::new()),
        recorder: ctx.recorder(COMPONENT),
    });
    run_workers(queue, WORKERS, move |key: PodKey| {
        let e = evictor.clone();
        async move { e.sync(key).await }
    })
    .await;
    Ok(())
}

impl Evictor {
    fn scheduled(&self) -> std::sync::MutexGuard<'_, HashMap<PodKey, (String, Instant)>> {
        self.scheduled.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drop a pending timed eviction, telling the pod's watchers if there was one.
    fn cancel(&self, key: &PodKey, pod: Option<&Pod>) {
        let had = self.scheduled().remove(key).is_some();
        if had && let Some(pod) = pod {
            self.recorder.publish_for(
                pod,
                EventType::Normal,
                "TaintManagerEviction",
                &format!("Cancelling deletion of Pod {}/{}", key.0, key.1),
            );
        }
    }

    async fn sync(&self, key: PodKey) -> Result<Option<Duration>, SyncError> {
        let Some(pod) = self.pods.get(Some(&key.0), &key.1) else {
            self.scheduled().remove(&key);
            return Ok(None);
        };
        if pod.metadata.deletion_timestamp.is_some() {
            self.scheduled().remove(&key);
            return Ok(None);
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| self.nodes.get(None, n));
        let taints = node.as_deref().map(no_execute).unwrap_or_default();
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        match verdict(&taints, &tolerations) {
            Verdict::Keep => {
                self.cancel(&key, Some(&pod));
                Ok(None)
            }
            Verdict::EvictNow => self.evict(&key, &pod).await.map(|_| None),
            Verdict::EvictAfter(secs) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let now = Instant::now();
                let start = {
                    let mut s = self.scheduled();
                    let entry = s.entry(key.clone()).or_insert((uid.clone(), now));
                    if entry.0 != uid {
                        *entry = (uid, now);
                    }
                    entry.1
                };
                let fire = start + Duration::from_secs(secs.unsigned_abs());
                if now >= fire {
                    self.evict(&key, &pod).await.map(|_| None)
                } else {
                    Ok(Some(fire - now))
                }
            }
        }
    }

    /// Mark the pod as a disruption target and delete it with its normal grace period.
    async fn evict(&self, key: &PodKey, pod: &Pod) -> Result<(), SyncError> {
        tracing::info!(pod = %format!("{}/{}", key.0, key.1), "evicting pod from tainted node");
        self.recorder.publish_for(
            pod,
            EventType::Normal,
            "TaintManagerEviction",
            &format!("Marking for deletion Pod {}/{}", key.0, key.1),
        );
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &key.0);
        let mut conds: Vec<PodCondition> = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        conds.retain(|c| c.type_ != "DisruptionTarget");
        conds.push(PodCondition {
            type_: "DisruptionTarget".to_string(),
            status: "True".to_string(),
            reason: Some("DeletionByTaintManager".to_string()),
            message: Some("Taint manager: deleting due to NoExecute taint".to_string()),
            last_transition_time: Some(Time(jiff::Timestamp::now())),
            ..Default::default()
        });
        let patch = json!({"status": {"conditions": conds}});
        match api
            .patch_status(&key.1, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let dp = DeleteParams {
            preconditions: pod
                .metadata
                .uid
                .clone()
                .map(|uid| kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
            ..Default::default()
        };
        match api.delete(&key.1, &dp).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) || crate::util::is_conflict(&e) => {}
            Err(e) => return Err(e.into()),
        }
        self.scheduled().remove(key);
        Ok(())
    }
}

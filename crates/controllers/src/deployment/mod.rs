//! The Deployment controller (upstream `pkg/controller/deployment`): rolls a Deployment's
//! pod template out through ReplicaSets named `<deployment>-<pod-template-hash>`, with the
//! RollingUpdate (maxSurge/maxUnavailable) or Recreate strategy; proportional scaling;
//! pause/resume; re-use of an old ReplicaSet on rollback (its revision bumped, the old one
//! kept in `revision-history`); cleanup beyond `revisionHistoryLimit`; and the
//! Progressing/Available/ReplicaFailure conditions with the progress deadline.

mod conditions;
mod plan;
mod progress;
mod recreate;
mod rolling;
mod sync;
pub mod util;

use crate::Context;
use crate::events::{EventType, Recorder};
use crate::replicaset::claim::{ClaimError, controller_of, matches, selector_of};
use crate::replicaset::{api_message, key_of};
use crate::util::{Informer, InformerEvent, WorkQueue, run_workers};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use std::sync::Arc;
use std::time::Duration;

/// Concurrent syncs (upstream `--concurrent-deployment-syncs` default).
const WORKERS: usize = 5;
/// Event source name.
const COMPONENT: &str = "deployment-controller";

/// Why a sync failed; the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error("{}", api_message(.0))]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Invalid(String),
}

/// The Deployment a controller reference points at, if cached.
fn resolve(
    deployments: &Informer<Deployment>,
    ns: &str,
    r: &OwnerReference,
) -> Option<Arc<Deployment>> {
    if r.kind != "Deployment" {
        return None;
    }
    let d = deployments.get(Some(ns), &r.name)?;
    (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(d)
}

/// ReplicaSet event handling (upstream `addReplicaSet`/`updateReplicaSet`/`deleteReplicaSet`).
struct RsHandler {
    queue: WorkQueue<String>,
    deployments: Informer<Deployment>,
}

impl RsHandler {
    /// Deployments whose (non-empty) selector matches an orphan ReplicaSet.
    fn deployments_for_orphan(&self, rs: &ReplicaSet) -> Vec<Arc<Deployment>> {
        if rs.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            return Vec::new();
        }
        let ns = rs.metadata.namespace.as_deref();
        self.deployments
            .store()
            .state()
            .into_iter()
            .filter(|d| d.metadata.namespace.as_deref() == ns)
            .filter(|d| {
                d.spec
                    .as_ref()
                    .and_then(|s| selector_of(&s.selector))
                    .is_some_and(|s| !s.selects_all() && matches(&s, &rs.metadata))
            })
            .collect()
    }

    fn enqueue_owner(&self, rs: &ReplicaSet, r: &OwnerReference) {
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        if let Some(d) = resolve(&self.deployments, ns, r) {
            self.queue.add(key_of(&d.metadata));
        }
    }

    fn on_event(&self, ev: InformerEvent<ReplicaSet>) {
        match ev {
            InformerEvent::Apply { old: None, new } => {
                if let Some(r) = controller_of(&new.metadata) {
                    self.enqueue_owner(&new, r);
                    return;
                }
                if new.metadata.deletion_timestamp.is_none() {
                    for d in self.deployments_for_orphan(&new) {
                        self.queue.add(key_of(&d.metadata));
                    }
                }
            }
            InformerEvent::Apply {
                old: Some(old),
                new,
            } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let cur_ref = controller_of(&new.metadata);
                let old_ref = controller_of(&old.metadata);
                let ref_changed = cur_ref != old_ref;
                if ref_changed && let Some(r) = old_ref {
                    self.enqueue_owner(&old, r);
                }
                if let Some(r) = cur_ref {
                    self.enqueue_owner(&new, r);
                    return;
                }
                if ref_changed || old.metadata.labels != new.metadata.labels {
                    for d in self.deployments_for_orphan(&new) {
                        self.queue.add(key_of(&d.metadata));
                    }
                }
            }
            InformerEvent::Delete(rs) => {
                if let Some(r) = controller_of(&rs.metadata) {
                    self.enqueue_owner(&rs, r);
                }
            }
        }
    }
}

/// Pod deletions matter to Recreate deployments, which wait for old pods to be gone.
struct PodHandler {
    queue: WorkQueue<String>,
    deployments: Informer<Deployment>,
    replicasets: Informer<ReplicaSet>,
}

impl PodHandler {
    fn on_event(&self, ev: InformerEvent<Pod>) {
        let InformerEvent::Delete(pod) = ev else {
            return;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let Some(r) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            return;
        };
        let Some(rs) = self
            .replicasets
            .get(Some(ns), &r.name)
            .filter(|rs| rs.metadata.uid.as_deref() == Some(r.uid.as_str()))
        else {
            return;
        };
        let Some(dr) = controller_of(&rs.metadata) else {
            return;
        };
        if let Some(d) = resolve(&self.deployments, ns, dr)
            && util::is_recreate(&d)
        {
            self.queue.add(key_of(&d.metadata));
        }
    }
}

/// The controller: informers, queue and an API client.
struct Controller {
    client: kube::Client,
    recorder: Recorder,
    deployments: Informer<Deployment>,
    replicasets: Informer<ReplicaSet>,
    pods: Informer<Pod>,
}

/// Run the controller until a fatal error.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: WorkQueue<String> = WorkQueue::new();
    let deployments = ctx.informers.get::<Deployment>();
    let replicasets = ctx.informers.get::<ReplicaSet>();
    let pods = ctx.informers.get::<Pod>();
    // The handlers stay registered while this future lives.
    let q = queue.clone();
    let _deployment_events = deployments.add_handler(move |ev: InformerEvent<Deployment>| {
        let (InformerEvent::Apply { new: d, .. } | InformerEvent::Delete(d)) = &ev;
        q.add(key_of(&d.metadata));
    });
    let rs_handler = RsHandler {
        queue: queue.clone(),
        deployments: deployments.clone(),
    };
    let _rs_events = replicasets.add_handler(move |ev| rs_handler.on_event(ev));
    let pod_handler = PodHandler {
        queue: queue.clone(),
        deployments: deployments.clone(),
        replicasets: replicasets.clone(),
    };
    let _pod_events = pods.add_handler(move |ev| pod_handler.on_event(ev));
    deployments.wait_synced().await;
    replicasets.wait_synced().await;
    pods.wait_synced().await;
    let ctrl = Arc::new(Controller {
        client: ctx.client.clone(),
        recorder: ctx.recorder(COMPONENT),
        deployments,
        replicasets,
        pods,
    });
    run_workers(queue, WORKERS, move |key: String| {
        let ctrl = ctrl.clone();
        async move { ctrl.sync_deployment(&key).await }
    })
    .await;
    Ok(())
}

impl Controller {
    fn event(&self, d: &Deployment, type_: EventType, reason: &str, message: &str) {
        self.recorder.publish_for(d, type_, reason, message);
    }

    /// One reconcile of Deployment `key` (upstream `syncDeployment`); `Ok(Some(d))` asks to
    /// look again after `d` (progress-deadline checks).
    async fn sync_deployment(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((ns, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(cached) = self.deployments.get(Some(ns), name) else {
            return Ok(None);
        };
        let mut d = (*cached).clone();
        let selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        let selects_all = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty());
        if selects_all {
            self.event(
                &d,
                EventType::Warning,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            );
            let st = d.status.get_or_insert_with(Default::default);
            if st.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
                st.observed_generation = d.metadata.generation;
                self.write_status(&mut d, false).await?;
            }
            return Ok(None);
        }
        let mut rs_list = self.replicasets_for(&d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            self.sync_status_only(&mut d, &mut rs_list).await?;
            return Ok(None);
        }
        self.check_paused_conditions(&mut d).await?;
        if util::is_paused(&d) {
            self.sync_scale(&mut d, &mut rs_list).await?;
            return Ok(None);
        }
        if self.is_scaling_event(&mut d, &mut rs_list).await? {
            self.sync_scale(&mut d, &mut rs_list).await?;
            return Ok(None);
        }
        if util::is_recreate(&d) {
            self.rollout_recreate(&mut d, &mut rs_list).await
        } else {
            self.rollout_rolling(&mut d, &mut rs_list).await
        }
    }
}

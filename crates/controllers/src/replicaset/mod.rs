//! The ReplicaSet controller (upstream `pkg/controller/replicaset`): keeps `spec.replicas`
//! active pods matching each ReplicaSet's selector. Pods are created from the template in
//! slow-start batches and deleted in upstream's preference order; owned pods that stop
//! matching are released and matching orphans adopted. Expectations keep a sync from acting
//! on a cache that does not yet show the controller's own creates/deletes. Status reports
//! replicas, fully-labeled/ready/available counts and a `ReplicaFailure` condition.
//!
//! The submodules [`claim`] (controller references), [`pods`] (pod predicates and the
//! scale-down order), [`status`] and [`manage`] helpers are shared with the Deployment
//! controller; [`expectations`] could serve other pod-owning controllers.

pub mod claim;
pub mod expectations;
pub mod manage;
pub mod pods;
pub mod status;

use crate::Context;
use crate::events::Recorder;
use crate::util::{Informer, InformerEvent, WorkQueue, run_workers};
use claim::{ClaimError, Claimer, controller_of, matches, selector_of};
use expectations::Expectations;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use std::sync::Arc;
use std::time::Duration;

/// Most pods created or deleted by one sync (upstream `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;
/// Concurrent syncs (upstream `--concurrent-replicaset-syncs` default).
const WORKERS: usize = 5;
/// Event source name.
const COMPONENT: &str = "replicaset-controller";

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

/// The message of an API error as upstream prints it (the Status message), else the error.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}

/// `namespace/name` of an object.
pub fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

/// State shared by the informer handlers and the workers.
struct Shared {
    queue: WorkQueue<String>,
    expectations: Expectations,
}

impl Shared {
    fn on_replicaset(&self, ev: InformerEvent<ReplicaSet>) {
        match ev {
            InformerEvent::Apply { old, new } => {
                if let Some(old) = old
                    && old.metadata.uid != new.metadata.uid
                {
                    // Deleted and recreated under the same name between two observations.
                    self.expectations.delete(&key_of(&old.metadata));
                }
                self.queue.add(key_of(&new.metadata));
            }
            InformerEvent::Delete(rs) => {
                let key = key_of(&rs.metadata);
                self.expectations.delete(&key);
                self.queue.add(key);
            }
        }
    }
}

/// Pod event handling: needs the ReplicaSet cache to find a pod's owner.
struct PodHandler {
    shared: Arc<Shared>,
    replicasets: Informer<ReplicaSet>,
}

impl PodHandler {
    /// The ReplicaSet a controller reference points at, if it is in the cache.
    fn resolve(&self, ns: &str, r: &OwnerReference) -> Option<Arc<ReplicaSet>> {
        if r.kind != "ReplicaSet" {
            return None;
        }
        let rs = self.replicasets.get(Some(ns), &r.name)?;
        (rs.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(rs)
    }

    /// ReplicaSets whose (non-empty) selector matches an orphan pod.
    fn replicasets_for_orphan(&self, pod: &Pod) -> Vec<Arc<ReplicaSet>> {
        if pod.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            return Vec::new();
        }
        let ns = pod.metadata.namespace.as_deref();
        self.replicasets
            .store()
            .state()
            .into_iter()
            .filter(|rs| rs.metadata.namespace.as_deref() == ns)
            .filter(|rs| {
                rs.spec
                    .as_ref()
                    .and_then(|s| selector_of(&s.selector))
                    .is_some_and(|s| !s.selects_all() && matches(&s, &pod.metadata))
            })
            .collect()
    }

    fn on_pod(&self, ev: InformerEvent<Pod>) {
        match ev {
            InformerEvent::Apply { old: None, new } => self.pod_added(&new),
            InformerEvent::Apply {
                old: Some(old),
                new,
            } => self.pod_updated(&old, &new),
            InformerEvent::Delete(pod) => self.pod_deleted(&pod),
        }
    }

    fn pod_added(&self, pod: &Pod) {
        if pod.metadata.deletion_timestamp.is_some() {
            // Seen for the first time already terminating (e.g. after a restart).
            self.pod_deleted(pod);
            return;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        if let Some(r) = controller_of(&pod.metadata) {
            if let Some(rs) = self.resolve(ns, r) {
                let key = key_of(&rs.metadata);
                self.shared.expectations.creation_observed(&key);
                self.shared.queue.add(key);
            }
            return;
        }
        for rs in self.replicasets_for_orphan(pod) {
            self.shared.queue.add(key_of(&rs.metadata));
        }
    }

    fn pod_updated(&self, old: &Pod, cur: &Pod) {
        if old.metadata.resource_version == cur.metadata.resource_version {
            return;
        }
        let labels_changed = old.metadata.labels != cur.metadata.labels;
        if cur.metadata.deletion_timestamp.is_some() {
            // A terminating pod counts as deleted right away (its owner may replace it).
            self.pod_deleted(cur);
            if labels_changed {
                self.pod_deleted(old);
            }
            return;
        }
        let ns = cur.metadata.namespace.as_deref().unwrap_or("");
        let cur_ref = controller_of(&cur.metadata);
        let old_ref = controller_of(&old.metadata);
        let ref_changed = cur_ref != old_ref;
        if ref_changed
            && let Some(r) = old_ref
            && let Some(rs) = self.resolve(ns, r)
        {
            self.shared.queue.add(key_of(&rs.metadata));
        }
        if let Some(r) = cur_ref {
            let Some(rs) = self.resolve(ns, r) else {
                return;
            };
            let key = key_of(&rs.metadata);
            self.shared.queue.add(key.clone());
            let min_ready = rs
                .spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0);
            if min_ready > 0 && !pods::is_ready(old) && pods::is_ready(cur) {
                // Look again once the pod has been ready long enough to count as available.
                let secs = u64::try_from(min_ready).unwrap_or(0) + 1;
                self.shared.queue.add_after(key, Duration::from_secs(secs));
            }
            return;
        }
        if labels_changed || ref_changed {
            for rs in self.replicasets_for_orphan(cur) {
                self.shared.queue.add(key_of(&rs.metadata));
            }
        }
    }

    fn pod_deleted(&self, pod: &Pod) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let Some(r) = controller_of(&pod.metadata) else {
            return;
        };
        let Some(rs) = self.resolve(ns, r) else {
            return;
        };
        let key = key_of(&rs.metadata);
        self.shared
            .expectations
            .deletion_observed(&key, &key_of(&pod.metadata));
        self.shared.queue.add(key);
    }
}

/// The controller: informers, queue, expectations and an API client.
struct Controller {
    client: kube::Client,
    shared: Arc<Shared>,
    replicasets: Informer<ReplicaSet>,
    pods: Informer<Pod>,
    recorder: Recorder,
}

/// Run the controller until a fatal error.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue = WorkQueue::new();
    let shared = Arc::new(Shared {
        queue: queue.clone(),
        expectations: Expectations::new(),
    });
    let s = shared.clone();
    let replicasets = ctx.informers.get::<ReplicaSet>();
    let pods = ctx.informers.get::<Pod>();
    // The handlers stay registered while this future lives.
    let _rs_events =
        replicasets.add_handler(move |ev: InformerEvent<ReplicaSet>| s.on_replicaset(ev));
    let handler = PodHandler {
        shared: shared.clone(),
        replicasets: replicasets.clone(),
    };
    let _pod_events = pods.add_handler(move |ev: InformerEvent<Pod>| handler.on_pod(ev));
    replicasets.wait_synced().await;
    pods.wait_synced().await;
    let ctrl = Arc::new(Controller {
        client: ctx.client.clone(),
        shared,
        replicasets,
        pods,
        recorder: ctx.recorder(COMPONENT),
    });
    run_workers(queue, WORKERS, move |key: String| {
        let ctrl = ctrl.clone();
        async move { ctrl.sync(&key).await }
    })
    .await;
    Ok(())
}

impl Controller {
    /// Active pods in `ns`.
    fn active_pods(&self, ns: &str) -> Vec<Arc<Pod>> {
        self.pods
            .store()
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && pods::is_active(p))
            .collect()
    }

    /// One reconcile of the ReplicaSet `key`; `Ok(Some(d))` asks to look again after `d`.
    async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((ns, name)) = key.split_once('/') else {
            return Ok(None);
        };
        let Some(rs) = self.replicasets.get(Some(ns), name) else {
            self.shared.expectations.delete(key);
            return Ok(None);
        };
        let needs_sync = self.shared.expectations.satisfied(key);
        let Some(selector) = rs.spec.as_ref().and_then(|s| selector_of(&s.selector)) else {
            tracing::warn!(%key, "invalid selector; not syncing");
            return Ok(None);
        };
        let mut claimer = Claimer::<ReplicaSet, Pod>::new(&self.client, rs.as_ref(), &selector);
        let (owned, claim_err) = claimer.claim(self.active_pods(ns)).await;
        if let Some(e) = claim_err {
            return Err(e.into());
        }
        let mut manage_err = None;
        if needs_sync && rs.metadata.deletion_timestamp.is_none() {
            manage_err = self.manage_replicas(key, &rs, &owned).await.err();
        }
        let new_status = status::calculate(&rs, &owned, manage_err.as_ref());
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), ns);
        let updated = status::update(&api, &rs, new_status).await?;
        if let Some(e) = manage_err {
            return Err(e);
        }
        let spec = updated.spec.clone().unwrap_or_default();
        let st = updated.status.clone().unwrap_or_default();
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        let replicas = spec.replicas.unwrap_or(1);
        if min_ready > 0
            && st.ready_replicas.unwrap_or(0) == replicas
            && st.available_replicas.unwrap_or(0) != replicas
        {
            return Ok(Some(Duration::from_secs(
                u64::try_from(min_ready).unwrap_or(0),
            )));
        }
        Ok(None)
    }
}

//! The StatefulSet controller (upstream `pkg/controller/statefulset`): stable pod identities
//! `<set>-<ordinal>` with per-pod claims from `volumeClaimTemplates`, OrderedReady or
//! Parallel pod management, RollingUpdate (partition, maxUnavailable) and OnDelete updates
//! tracked by ControllerRevisions, and PVC retention via owner references.
//!
//! The ControllerRef claiming, pod helpers and sync error type it shares with the DaemonSet
//! controller live in [`crate::util`].

pub mod control;
pub mod pod_control;
pub mod retention;
pub mod utils;

use crate::Context;
use crate::util::controller_ref::{self, Claimer};
use crate::util::error::Result;
use crate::util::podutil::{self, controller_of};
use crate::util::{InformerEvent, WorkQueue, run_workers};
use control::{SetControl, selector_of};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::core::SelectorExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use pod_control::PodControl;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Concurrent syncs (upstream `ConcurrentStatefulSetSyncs`).
const WORKERS: usize = 5;

/// Work-queue key of a set.
pub type Key = ObjectRef<StatefulSet>;

/// Run the controller until a fatal error.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let queue: WorkQueue<Key> = WorkQueue::new();
    let sets = ctx.informers.get::<StatefulSet>();
    let pods = ctx.informers.get::<Pod>();
    let claims = ctx.informers.get::<PersistentVolumeClaim>();
    let revisions = ctx.informers.get::<ControllerRevision>();
    // The handlers stay registered while this future lives.
    let q = queue.clone();
    let set_events = sets.add_handler(move |ev| {
        let (InformerEvent::Apply { new: s, .. } | InformerEvent::Delete(s)) = ev;
        q.add(ObjectRef::from_obj(s.as_ref()));
    });
    let pod_events = PodEvents {
        queue: queue.clone(),
        sets: sets.store().clone(),
    };
    let pod_events = pods.add_handler(move |ev| pod_events.handle(ev));
    let (q, set_store) = (queue.clone(), sets.store().clone());
    let claim_events = claims.add_handler(move |ev| {
        // A deleted claim may unblock a pod that waited on a stale claim.
        if let InformerEvent::Delete(c) = ev {
            for set in sets_matching(&set_store, c.namespace().as_deref(), c.labels()) {
                q.add(ObjectRef::from_obj(set.as_ref()));
            }
        }
    });
    sets.wait_synced().await;
    pods.wait_synced().await;
    claims.wait_synced().await;
    revisions.wait_synced().await;
    tracing::info!("statefulset controller synced");
    let controller = Arc::new(Controller {
        client: client.clone(),
        sets: sets.store().clone(),
        pods: pods.store().clone(),
        control: SetControl {
            pods: PodControl {
                client,
                claims: claims.store().clone(),
                recorder: ctx.recorder("statefulset-controller"),
            },
            revisions: revisions.store().clone(),
        },
    });
    run_workers(queue, WORKERS, move |key: Key| {
        let c = controller.clone();
        async move { c.sync(&key).await }
    })
    .await;
    // The handlers stay registered until here.
    drop((set_events, pod_events, claim_events));
    Ok(())
}

/// The sync side: caches plus the algorithm.
struct Controller {
    client: kube::Client,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    control: SetControl,
}

impl Controller {
    async fn sync(&self, key: &Key) -> Result<Option<Duration>> {
        let Some(set) = self.sets.get(key) else {
            return Ok(None);
        };
        let selector = match selector_of(&set) {
            Ok(s) => s,
            Err(e) => {
                // A bad selector cannot fix itself; the next spec change re-queues the set.
                tracing::warn!(statefulset = %key, error = %e, "skipping statefulset");
                return Ok(None);
            }
        };
        self.adopt_orphan_revisions(&set).await?;
        let pods = self.pods_for_set(&set, &selector).await?;
        let status = self.control.update_stateful_set(&set, &pods).await?;
        let min_ready = utils::min_ready_seconds(&set);
        let available = i64::from(status.available_replicas.unwrap_or(0));
        if min_ready > 0 && available != utils::replicas(&set) {
            return Ok(Some(Duration::from_secs(min_ready.unsigned_abs().into())));
        }
        Ok(None)
    }

    /// Fails unless the live set is the one we cached and is not being deleted (checked
    /// before adopting anything, as upstream).
    async fn can_adopt(&self, set: &StatefulSet) -> Result<()> {
        let api: Api<StatefulSet> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        controller_ref::ensure_adoptable(&api, set).await
    }

    async fn adopt_orphan_revisions(&self, set: &StatefulSet) -> Result<()> {
        let orphans: Vec<ControllerRevision> = self
            .control
            .list_revisions(set)?
            .into_iter()
            .filter(|r| controller_of(&r.metadata).is_none())
            .collect();
        if orphans.is_empty() {
            return Ok(());
        }
        self.can_adopt(set).await?;
        let api: Api<ControllerRevision> =
            Api::namespaced(self.client.clone(), &set.namespace().unwrap_or_default());
        let owner = podutil::controller_ref(set);
        for r in &orphans {
            controller_ref::adopt(&api, r, &owner).await?;
        }
        Ok(())
    }

    /// The set's pods: members by name that match the selector, adopting orphans and
    /// releasing pods that stopped matching.
    async fn pods_for_set(
        &self,
        set: &StatefulSet,
        selector: &kube::core::Selector,
    ) -> Result<Vec<Arc<Pod>>> {
        let ns = set.namespace().unwrap_or_default();
        let candidates: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
            .collect();
        let owner = podutil::controller_ref(set);
        let claimer = Claimer {
            owner: &owner,
            namespace: &ns,
            deleting: set.metadata.deletion_timestamp.is_some(),
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        controller_ref::claim(
            &api,
            &claimer,
            candidates,
            |p: &Pod| selector.matches(&p.labels().clone()) && utils::is_member_of(set, p),
            || self.can_adopt(set),
        )
        .await
    }
}

/// Pod changes queue the owning set (or, for orphans, every set that could adopt them).
struct PodEvents {
    queue: WorkQueue<Key>,
    sets: Store<StatefulSet>,
}

/// The set a controller reference points at, if it is still that set (same UID).
fn resolve_owner(sets: &Store<StatefulSet>, pod: &Pod) -> Option<Arc<StatefulSet>> {
    let r = controller_of(&pod.metadata)?;
    if r.kind != "StatefulSet" {
        return None;
    }
    let set = sets.get(&ObjectRef::new(&r.name).within(&pod.namespace()?))?;
    (set.uid().as_deref() == Some(r.uid.as_str())).then_some(set)
}

/// Sets in `ns` whose selector matches `labels`.
fn sets_matching(
    sets: &Store<StatefulSet>,
    ns: Option<&str>,
    labels: &BTreeMap<String, String>,
) -> Vec<Arc<StatefulSet>> {
    sets.state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == ns)
        // An empty or invalid selector matches nothing here (upstream skips them).
        .filter(|s| selector_of(s).is_ok_and(|sel| !sel.selects_all() && sel.matches(labels)))
        .collect()
}

impl PodEvents {
    fn enqueue(&self, set: &StatefulSet) {
        self.queue.add(ObjectRef::from_obj(set));
    }

    fn enqueue_owner(&self, pod: &Pod) {
        if let Some(set) = resolve_owner(&self.sets, pod) {
            self.enqueue(&set);
        }
    }

    fn enqueue_matching(&self, pod: &Pod) {
        for set in sets_matching(&self.sets, pod.namespace().as_deref(), pod.labels()) {
            self.enqueue(&set);
        }
    }

    fn handle(&self, ev: InformerEvent<Pod>) {
        match ev {
            InformerEvent::Apply { old: None, new } => self.added(&new),
            InformerEvent::Apply {
                old: Some(old),
                new,
            } => self.updated(&old, &new),
            InformerEvent::Delete(pod) => self.enqueue_owner(&pod),
        }
    }

    fn added(&self, pod: &Pod) {
        if pod.metadata.deletion_timestamp.is_some() || controller_of(&pod.metadata).is_some() {
            self.enqueue_owner(pod);
        } else {
            self.enqueue_matching(pod);
        }
    }

    fn updated(&self, old: &Pod, cur: &Pod) {
        if old.resource_version() == cur.resource_version() {
            return;
        }
        let labels_changed = old.labels() != cur.labels();
        let old_ref = controller_of(&old.metadata);
        let cur_ref = controller_of(&cur.metadata);
        let ref_changed = old_ref != cur_ref;
        if ref_changed && old_ref.is_some() {
            self.enqueue_owner(old);
        }
        if cur_ref.is_some() {
            if let Some(set) = resolve_owner(&self.sets, cur) {
                self.enqueue(&set);
                let min_ready = utils::min_ready_seconds(&set);
                // Look again once the pod has been ready long enough to count as available.
                if min_ready > 0 && !podutil::is_pod_ready(old) && podutil::is_pod_ready(cur) {
                    let delay = Duration::from_secs(u64::from(min_ready.unsigned_abs()) + 1);
                    self.queue
                        .add_after(ObjectRef::from_obj(set.as_ref()), delay);
                }
            }
            return;
        }
        if labels_changed || ref_changed {
            self.enqueue_matching(cur);
        }
    }
}

//! The DaemonSet controller (upstream `pkg/controller/daemon`): one pod per eligible node
//! (node name, `nodeSelector`, required node affinity, taints against the template's and the
//! automatic daemon tolerations), each pinned to its node by a required node-affinity term so
//! the default scheduler binds it there; RollingUpdate (maxUnavailable / maxSurge) and
//! OnDelete updates tracked by ControllerRevisions; status counters for `kubectl rollout`.

pub mod expectations;
mod manage;
pub mod predicates;
mod revisions;
mod update;

use crate::Context;
use crate::events::{EventType, Recorder};
use crate::util::error::Result;
use crate::util::podutil::{self, controller_of};
use crate::util::{InformerEvent, WorkQueue, run_workers};
use expectations::Expectations;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Concurrent syncs (upstream `ConcurrentDaemonSetSyncs`).
const WORKERS: usize = 2;
/// Most pods created or deleted per sync (upstream `BurstReplicas`).
const BURST_REPLICAS: usize = 250;
/// Label: the revision hash a daemon pod was created from.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// Label: the (deprecated) template generation a daemon pod was created from.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Annotation on the DaemonSet carrying its template generation.
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// Work-queue key of a DaemonSet.
pub type Key = ObjectRef<DaemonSet>;

/// Run the controller until a fatal error.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let queue: WorkQueue<Key> = WorkQueue::new();
    let expectations = Arc::new(Expectations::default());
    let dss = ctx.informers.get::<DaemonSet>();
    let pods = ctx.informers.get::<Pod>();
    let nodes = ctx.informers.get::<Node>();
    let revisions = ctx.informers.get::<ControllerRevision>();
    let ds_store = dss.store().clone();

    // The handlers stay registered while this future lives.
    let q = queue.clone();
    let exp = expectations.clone();
    let ds_events = dss.add_handler(move |ev| match ev {
        InformerEvent::Apply { new, .. } => q.add(ObjectRef::from_obj(new.as_ref())),
        InformerEvent::Delete(ds) => {
            exp.forget(&key_string(&ObjectRef::from_obj(ds.as_ref())));
            q.add(ObjectRef::from_obj(ds.as_ref()));
        }
    });

    let pod_events = PodEvents {
        queue: queue.clone(),
        dss: ds_store.clone(),
        expectations: expectations.clone(),
    };
    let pod_events = pods.add_handler(move |ev| pod_events.handle(ev));

    let (q, store) = (queue.clone(), ds_store.clone());
    let node_events = nodes.add_handler(move |ev| node_event(&q, &store, ev));

    let (q, store) = (queue.clone(), ds_store.clone());
    let revision_events = revisions.add_handler(move |ev| {
        let (InformerEvent::Apply { new: r, .. } | InformerEvent::Delete(r)) = ev;
        match resolve_owner(&store, &r.metadata, r.namespace().as_deref()) {
            Some(ds) => q.add(ObjectRef::from_obj(ds.as_ref())),
            None if controller_of(&r.metadata).is_none() => {
                for ds in matching(&store, r.namespace().as_deref(), r.labels()) {
                    q.add(ObjectRef::from_obj(ds.as_ref()));
                }
            }
            None => {}
        }
    });

    dss.wait_synced().await;
    pods.wait_synced().await;
    nodes.wait_synced().await;
    revisions.wait_synced().await;
    tracing::info!("daemonset controller synced");
    let controller = Arc::new(Controller {
        client,
        dss: ds_store,
        pods: pods.store().clone(),
        nodes: nodes.store().clone(),
        revisions: revisions.store().clone(),
        recorder: ctx.recorder("daemonset-controller"),
        expectations,
        failed_backoff: Mutex::new(HashMap::new()),
        queue: queue.clone(),
    });
    run_workers(queue, WORKERS, move |key: Key| {
        let c = controller.clone();
        async move { c.sync(&key).await }
    })
    .await;
    // The handlers stay registered until here.
    drop((ds_events, pod_events, node_events, revision_events));
    Ok(())
}

fn key_string(key: &Key) -> String {
    format!("{}/{}", key.namespace.as_deref().unwrap_or(""), key.name)
}

/// The DaemonSet a controller reference points at, if it still is that one (same UID).
fn resolve_owner(
    dss: &Store<DaemonSet>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ns: Option<&str>,
) -> Option<Arc<DaemonSet>> {
    let r = controller_of(meta)?;
    if r.kind != "DaemonSet" {
        return None;
    }
    let ds = dss.get(&ObjectRef::new(&r.name).within(ns?))?;
    (ds.uid().as_deref() == Some(r.uid.as_str())).then_some(ds)
}

/// The DaemonSet's selector, `None` if invalid.
fn selector(ds: &DaemonSet) -> Option<Selector> {
    Selector::try_from(ds.spec.as_ref()?.selector.clone()).ok()
}

/// DaemonSets in `ns` whose (non-empty) selector matches `labels`.
fn matching(
    dss: &Store<DaemonSet>,
    ns: Option<&str>,
    labels: &BTreeMap<String, String>,
) -> Vec<Arc<DaemonSet>> {
    dss.state()
        .into_iter()
        .filter(|d| d.namespace().as_deref() == ns)
        .filter(|d| selector(d).is_some_and(|s| !s.selects_all() && s.matches(labels)))
        .collect()
}

fn node_event(queue: &WorkQueue<Key>, dss: &Store<DaemonSet>, ev: InformerEvent<Node>) {
    let all = dss.state();
    match ev {
        InformerEvent::Apply { old: None, new } => {
            for ds in all
                .iter()
                .filter(|d| predicates::node_should_run(&new, d).0)
            {
                queue.add(ObjectRef::from_obj(ds.as_ref()));
            }
        }
        InformerEvent::Apply {
            old: Some(old),
            new,
        } => {
            let taints = |n: &Node| n.spec.as_ref().and_then(|s| s.taints.clone());
            if old.labels() == new.labels() && taints(&old) == taints(&new) {
                return;
            }
            for ds in &all {
                if predicates::node_should_run(&old, ds) != predicates::node_should_run(&new, ds) {
                    queue.add(ObjectRef::from_obj(ds.as_ref()));
                }
            }
        }
        // Desired counts shrink with the node: recount every DaemonSet.
        InformerEvent::Delete(_) => {
            for ds in &all {
                queue.add(ObjectRef::from_obj(ds.as_ref()));
            }
        }
    }
}

/// Pod changes: observe expectations and queue the owner (or, for orphans, candidates).
struct PodEvents {
    queue: WorkQueue<Key>,
    dss: Store<DaemonSet>,
    expectations: Arc<Expectations>,
}

impl PodEvents {
    fn owner(&self, pod: &Pod) -> Option<Arc<DaemonSet>> {
        resolve_owner(&self.dss, &pod.metadata, pod.namespace().as_deref())
    }

    fn enqueue(&self, ds: &DaemonSet) {
        self.queue.add(ObjectRef::from_obj(ds));
    }

    fn enqueue_matching(&self, pod: &Pod) {
        for ds in matching(&self.dss, pod.namespace().as_deref(), pod.labels()) {
            self.enqueue(&ds);
        }
    }

    fn handle(&self, ev: InformerEvent<Pod>) {
        match ev {
            InformerEvent::Apply { old: None, new } => self.added(&new),
            InformerEvent::Apply {
                old: Some(old),
                new,
            } => self.updated(&old, &new),
            InformerEvent::Delete(pod) => self.deleted(&pod),
        }
    }

    fn added(&self, pod: &Pod) {
        if pod.metadata.deletion_timestamp.is_some() {
            self.deleted(pod);
            return;
        }
        if controller_of(&pod.metadata).is_some() {
            if let Some(ds) = self.owner(pod) {
                let key = key_string(&ObjectRef::from_obj(ds.as_ref()));
                self.expectations.creation_observed(&key, &pod.name_any());
                self.enqueue(&ds);
            }
            return;
        }
        self.enqueue_matching(pod);
    }

    fn updated(&self, old: &Pod, cur: &Pod) {
        if old.resource_version() == cur.resource_version() {
            return;
        }
        if cur.metadata.deletion_timestamp.is_some() {
            self.deleted(cur);
            if controller_of(&old.metadata) != controller_of(&cur.metadata)
                && let Some(ds) = self.owner(old)
            {
                self.enqueue(&ds);
            }
            return;
        }
        let old_ref = controller_of(&old.metadata);
        let cur_ref = controller_of(&cur.metadata);
        let ref_changed = old_ref != cur_ref;
        if ref_changed
            && old_ref.is_some()
            && let Some(ds) = self.owner(old)
        {
            self.enqueue(&ds);
        }
        if cur_ref.is_some() {
            if let Some(ds) = self.owner(cur) {
                self.enqueue(&ds);
                let min_ready = ds
                    .spec
                    .as_ref()
                    .and_then(|s| s.min_ready_seconds)
                    .unwrap_or(0);
                // Look again once the pod has been ready long enough to count as available.
                if min_ready > 0 && !podutil::is_pod_ready(old) && podutil::is_pod_ready(cur) {
                    let delay = Duration::from_secs(u64::from(min_ready.unsigned_abs()) + 1);
                    self.queue
                        .add_after(ObjectRef::from_obj(ds.as_ref()), delay);
                }
            }
            return;
        }
        if old.labels() != cur.labels() || ref_changed {
            self.enqueue_matching(cur);
        }
    }

    fn deleted(&self, pod: &Pod) {
        if let Some(ds) = self.owner(pod) {
            let key = key_string(&ObjectRef::from_obj(ds.as_ref()));
            self.expectations.deletion_observed(&key, &pod.name_any());
            self.enqueue(&ds);
        }
    }
}

/// The sync side: caches, expectations, and per-node backoff for failed pods.
struct Controller {
    client: Client,
    dss: Store<DaemonSet>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    recorder: Recorder,
    expectations: Arc<Expectations>,
    /// `ds uid/generation/node` -> (current delay, when the last failed pod was deleted).
    failed_backoff: Mutex<HashMap<String, (Duration, Instant)>>,
    queue: WorkQueue<Key>,
}

impl Controller {
    async fn sync(&self, key: &Key) -> Result<Option<Duration>> {
        let skey = key_string(key);
        let Some(ds) = self.dss.get(key) else {
            self.expectations.forget(&skey);
            return Ok(None);
        };
        let nodes = self.nodes.state();
        let Some(sel) = selector(&ds) else {
            return Ok(None);
        };
        if sel.selects_all() {
            self.recorder.publish_for(
                ds.as_ref(),
                EventType::Warning,
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.",
            );
            return Ok(None);
        }
        // Owned history may be mid-deletion: status cannot be computed reliably.
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let (cur, old) = self.construct_history(&ds).await?;
        let hash = cur
            .labels()
            .get(REVISION_HASH_LABEL)
            .cloned()
            .unwrap_or_default();
        let ns = ds.namespace().unwrap_or_default();
        if !self.expectations.satisfied(&skey, &ns, &self.pods) {
            // Only status: observedGeneration waits until this generation is acted on.
            return self.update_status(&ds, &nodes, &hash, false).await;
        }
        let res = self
            .update_daemon_set(&ds, &nodes, &hash, &skey, &old)
            .await;
        let status = self.update_status(&ds, &nodes, &hash, true).await;
        res?;
        status
    }

    async fn update_daemon_set(
        &self,
        ds: &DaemonSet,
        nodes: &[Arc<Node>],
        hash: &str,
        key: &str,
        old: &[ControllerRevision],
    ) -> Result<()> {
        self.manage(ds, nodes, hash).await?;
        let ns = ds.namespace().unwrap_or_default();
        if self.expectations.satisfied(key, &ns, &self.pods) {
            let strategy = ds
                .spec
                .as_ref()
                .and_then(|s| s.update_strategy.as_ref())
                .and_then(|u| u.type_.as_deref())
                .unwrap_or("RollingUpdate");
            if strategy == "RollingUpdate" {
                self.rolling_update(ds, nodes, hash).await?;
            }
        }
        self.cleanup_history(ds, old).await
    }

    /// Fails unless the live DaemonSet is the cached one and not being deleted.
    async fn can_adopt(&self, ds: &DaemonSet) -> Result<()> {
        let api: Api<DaemonSet> =
            Api::namespaced(self.client.clone(), &ds.namespace().unwrap_or_default());
        crate::util::controller_ref::ensure_adoptable(&api, ds).await
    }
}

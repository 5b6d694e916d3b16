//! The disruption controller (upstream `pkg/controller/disruption`): keeps every
//! PodDisruptionBudget's status current so the API server's pods/eviction can honour it.
//!
//! For each budget: the pods of its namespace its selector matches (an empty selector
//! matches all, as in policy/v1); the expected pod count and the desired healthy count
//! (integer `minAvailable`: the matching pods and that number; `maxUnavailable` or a
//! percentage: the scale of the pods' controllers, percentages rounded up — see
//! [`scale`]); the healthy pods (Ready, not being deleted, not evicted within the last
//! two minutes per `status.disruptedPods`); and `disruptionsAllowed`, written with
//! `observedGeneration` and the `DisruptionAllowed` condition. A sync that fails (e.g. a
//! pod whose controller cannot be found) writes the fail-safe status: no disruption
//! allowed, condition reason `SyncFailed`.
//!
//! Budgets are synced when they change, when a pod they match (by its old or new labels)
//! changes, appears or goes away, when a controller's replicas change (budgets that count
//! by scale), and when a recorded disruption expires.
//!
//! The controller also resets stale `DisruptionTarget` pod conditions: a pod an eviction
//! marked but did not delete (the delete lost a race) has the condition set False after
//! two minutes, as upstream.

pub mod budget;
pub mod scale;

use crate::Context;
use crate::events::{EventType, Recorder};
use crate::util::error::{Error, Result, is_conflict};
use crate::util::{InformerEvent, WorkQueue, is_not_found, run_workers, selector};
use budget::Observed;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use scale::Finders;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Concurrent syncs.
const WORKERS: usize = 2;

/// Work-queue key of a budget.
pub type Key = ObjectRef<PodDisruptionBudget>;

/// Work-queue key of a pod whose `DisruptionTarget` condition may be stale.
type PodKey = ObjectRef<Pod>;

/// Run the controller until a fatal error.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: WorkQueue<Key> = WorkQueue::new();
    let pdbs = ctx.informers.get::<PodDisruptionBudget>();
    let pods = ctx.informers.get::<Pod>();
    let replica_sets = ctx.informers.get::<ReplicaSet>();
    let deployments = ctx.informers.get::<Deployment>();
    let stateful_sets = ctx.informers.get::<StatefulSet>();

    let q = queue.clone();
    let pdb_events = pdbs.add_handler(move |ev| {
        let (InformerEvent::Apply { new: b, .. } | InformerEvent::Delete(b)) = ev;
        q.add(ObjectRef::from_obj(b.as_ref()));
    });
    let stale: WorkQueue<PodKey> = WorkQueue::new();
    let (q, store, sq) = (queue.clone(), pdbs.store().clone(), stale.clone());
    let pod_events = pods.add_handler(move |ev| match ev {
        InformerEvent::Apply { old, new } => {
            if let Some(wait) = budget::stale_disruption_wait(&new, Timestamp::now()) {
                sq.add_after(ObjectRef::from_obj(new.as_ref()), wait);
            }
            if old
                .as_ref()
                .is_some_and(|o| o.resource_version() == new.resource_version())
            {
                return;
            }
            let ns = new.namespace();
            let mut keys = budgets_matching(&store, ns.as_deref(), new.metadata.labels.as_ref());
            if let Some(old) = old.filter(|o| o.metadata.labels != new.metadata.labels) {
                keys.extend(budgets_matching(
                    &store,
                    ns.as_deref(),
                    old.metadata.labels.as_ref(),
                ));
            }
            for k in keys {
                q.add(k);
            }
        }
        InformerEvent::Delete(pod) => {
            for k in budgets_matching(
                &store,
                pod.namespace().as_deref(),
                pod.metadata.labels.as_ref(),
            ) {
                q.add(k);
            }
        }
    });
    let scaled = ScaleEvents {
        queue: queue.clone(),
        budgets: pdbs.store().clone(),
    };
    let s = scaled.clone();
    let rs_events = replica_sets.add_handler(move |ev| {
        s.handle(ev, |rs: &ReplicaSet| {
            rs.spec.as_ref().and_then(|s| s.replicas)
        })
    });
    let s = scaled.clone();
    let deployment_events = deployments.add_handler(move |ev| {
        s.handle(ev, |d: &Deployment| {
            d.spec.as_ref().and_then(|s| s.replicas)
        })
    });
    let s = scaled;
    let set_events = stateful_sets.add_handler(move |ev| {
        s.handle(ev, |set: &StatefulSet| {
            set.spec.as_ref().and_then(|s| s.replicas)
        })
    });

    pdbs.wait_synced().await;
    pods.wait_synced().await;
    replica_sets.wait_synced().await;
    deployments.wait_synced().await;
    stateful_sets.wait_synced().await;
    tracing::info!("disruption controller synced");

    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        pdbs: pdbs.store().clone(),
        pods: pods.store().clone(),
        finders: Finders::new(
            ctx.client.clone(),
            replica_sets.store().clone(),
            deployments.store().clone(),
            stateful_sets.store().clone(),
        ),
        recorder: ctx.recorder("controllermanager"),
    });
    let c = controller.clone();
    let budgets = run_workers(queue, WORKERS, move |key: Key| {
        let c = c.clone();
        async move { c.sync(&key).await }
    });
    let stale_conditions = run_workers(stale, 1, move |key: PodKey| {
        let c = controller.clone();
        async move { c.reset_stale_condition(&key).await }
    });
    tokio::join!(budgets, stale_conditions);
    drop((
        pdb_events,
        pod_events,
        rs_events,
        deployment_events,
        set_events,
    ));
    Ok(())
}

/// Whether budget `b` selects pods with `labels` (a missing selector selects nothing, an
/// empty one everything).
fn selects(b: &PodDisruptionBudget, labels: Option<&BTreeMap<String, String>>) -> bool {
    let sel: Option<&LabelSelector> = b.spec.as_ref().and_then(|s| s.selector.as_ref());
    selector::matches(sel, labels)
}

/// Keys of the budgets in `ns` that select `labels`.
fn budgets_matching(
    budgets: &Store<PodDisruptionBudget>,
    ns: Option<&str>,
    labels: Option<&BTreeMap<String, String>>,
) -> Vec<Key> {
    budgets
        .state()
        .iter()
        .filter(|b| b.namespace().as_deref() == ns && selects(b, labels))
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

/// A controller's replicas changing (or the controller going away) changes the expected
/// count of the budgets of its namespace that count by scale.
#[derive(Clone)]
struct ScaleEvents {
    queue: WorkQueue<Key>,
    budgets: Store<PodDisruptionBudget>,
}

impl ScaleEvents {
    fn handle<K: kube::Resource>(
        &self,
        ev: InformerEvent<K>,
        replicas: impl Fn(&K) -> Option<i32>,
    ) {
        let obj = match ev {
            InformerEvent::Apply {
                old: Some(old),
                new,
            } if replicas(&old) != replicas(&new) => new,
            InformerEvent::Delete(old) => old,
            InformerEvent::Apply { .. } => return,
        };
        let ns = obj.meta().namespace.as_deref();
        for b in self.budgets.state() {
            if b.namespace().as_deref() == ns && b.spec.as_ref().is_some_and(budget::needs_scale) {
                self.queue.add(ObjectRef::from_obj(b.as_ref()));
            }
        }
    }
}

/// The sync side: caches, finders and the event recorder.
struct Controller {
    client: kube::Client,
    pdbs: Store<PodDisruptionBudget>,
    pods: Store<Pod>,
    finders: Finders,
    recorder: Recorder,
}

impl Controller {
    async fn sync(&self, key: &Key) -> Result<Option<Duration>> {
        let Some(pdb) = self.pdbs.get(key) else {
            return Ok(None);
        };
        match self.try_sync(&pdb).await {
            Ok(recheck) => Ok(recheck),
            // A stale cache: retried once the newer budget is seen, without failing safe.
            Err(e) if matches!(&e, Error::Api { source, .. } if is_conflict(source)) => Err(e),
            Err(e) => {
                tracing::warn!(pdb = %key, error = %e, "failed to sync PodDisruptionBudget");
                self.fail_safe(&pdb, &e.to_string()).await.map(|()| None)
            }
        }
    }

    /// Matching pods of the budget's namespace, from the cache.
    fn pods_for(&self, pdb: &PodDisruptionBudget) -> Vec<Arc<Pod>> {
        let ns = pdb.namespace();
        self.pods
            .state()
            .into_iter()
            .filter(|p| p.namespace() == ns && selects(pdb, p.metadata.labels.as_ref()))
            .collect()
    }

    async fn try_sync(&self, pdb: &PodDisruptionBudget) -> Result<Option<Duration>> {
        let pods = self.pods_for(pdb);
        if pods.is_empty() {
            self.recorder
                .publish_for(pdb, EventType::Normal, "NoPods", "No matching pods found");
        }
        let (expected, desired, unmanaged) = match self.expected_count(pdb, &pods).await {
            Ok(counts) => counts,
            Err(e) => {
                self.recorder.publish_for(
                    pdb,
                    EventType::Warning,
                    "CalculateExpectedPodCountFailed",
                    &format!("Failed to calculate the number of expected pods: {e}"),
                );
                return Err(Error::Invalid(e));
            }
        };
        if !unmanaged.is_empty() {
            tracing::debug!(pdb = %pdb.name_any(), pods = ?unmanaged, "unmanaged pods");
            self.recorder.publish_for(
                pdb,
                EventType::Warning,
                "UnmanagedPods",
                &format!(
                    "Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
                    selector_string(pdb)
                ),
            );
        }
        let now = Timestamp::now();
        let recorded = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref());
        let disrupted = budget::disrupted_pods(&pods, recorded, now);
        for name in &disrupted.expired {
            if let Some(pod) = pods.iter().find(|p| p.name_any() == *name) {
                self.recorder.publish_for(
                    pod.as_ref(),
                    EventType::Warning,
                    "NotDeleted",
                    &format!(
                        "Pod was expected by PDB {}/{} to be deleted but it wasn't",
                        pdb.namespace().unwrap_or_default(),
                        pdb.name_any()
                    ),
                );
            }
        }
        let healthy = budget::count_healthy(&pods, &disrupted.pods, now);
        let observed = Observed {
            current_healthy: healthy,
            desired_healthy: desired,
            expected_pods: expected,
            disrupted_pods: disrupted.pods,
        };
        if let Some(status) = budget::next_status(pdb, observed, now) {
            self.write_status(pdb, status).await?;
        }
        // Look again just after the first recorded disruption expires.
        Ok(disrupted.recheck.map(|at| {
            let wait = at.duration_since(now).unsigned_abs();
            wait + Duration::from_secs(1)
        }))
    }

    /// `(expectedPods, desiredHealthy, unmanaged pod names)`.
    async fn expected_count(
        &self,
        pdb: &PodDisruptionBudget,
        pods: &[Arc<Pod>],
    ) -> std::result::Result<(i32, i32, Vec<String>), String> {
        let spec = pdb.spec.clone().unwrap_or_default();
        let (scale, unmanaged) = if budget::needs_scale(&spec) {
            self.finders.expected_scale(pods).await?
        } else {
            (0, Vec::new())
        };
        let count = i32::try_from(pods.len()).unwrap_or(i32::MAX);
        let (expected, desired) = budget::expected_and_desired(&spec, count, scale)?;
        Ok((expected, desired, unmanaged))
    }

    /// No disruption allowed, condition `SyncFailed` with the error.
    async fn fail_safe(&self, pdb: &PodDisruptionBudget, error: &str) -> Result<()> {
        let status = budget::failed_status(pdb, error, Timestamp::now());
        self.write_status(pdb, status).await
    }

    /// Set a pod's stale `DisruptionTarget` condition False (or look again when it will
    /// be stale).
    async fn reset_stale_condition(&self, key: &PodKey) -> Result<Option<Duration>> {
        let Some(pod) = self.pods.get(key) else {
            return Ok(None);
        };
        match budget::stale_disruption_wait(&pod, Timestamp::now()) {
            None => return Ok(None),
            Some(wait) if !wait.is_zero() => return Ok(Some(wait)),
            Some(_) => {}
        }
        let mut updated = (*pod).clone();
        let Some(cond) = updated
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
            .and_then(|cs| cs.iter_mut().find(|c| c.type_ == "DisruptionTarget"))
        else {
            return Ok(None);
        };
        *cond = PodCondition {
            type_: "DisruptionTarget".into(),
            status: "False".into(),
            last_transition_time: Some(Time(Timestamp::now())),
            ..Default::default()
        };
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        // Guarded by the cached resourceVersion: a conflict retries with the newer pod.
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {
                tracing::info!(pod = %key, "reset stale DisruptionTarget condition to False");
                Ok(None)
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(Error::api(format!("updating status of pod {ns}/{name}"), e)),
        }
    }

    /// Replace the status, guarded by the cached resourceVersion (a stale cache is a
    /// conflict and a retry).
    async fn write_status(
        &self,
        pdb: &PodDisruptionBudget,
        status: k8s_openapi::api::policy::v1::PodDisruptionBudgetStatus,
    ) -> Result<()> {
        let ns = pdb.namespace().unwrap_or_default();
        let name = pdb.name_any();
        let mut updated = pdb.clone();
        updated.status = Some(status);
        let api: Api<PodDisruptionBudget> = Api::namespaced(self.client.clone(), &ns);
        match api
            .replace_status(&name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::api(
                format!("updating status of PodDisruptionBudget {ns}/{name}"),
                e,
            )),
        }
    }
}

/// The budget's selector as a label selector string (`app=web,tier in (a,b)`).
fn selector_string(pdb: &PodDisruptionBudget) -> String {
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return "<none>".into();
    };
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            op => format!("{} {op} ({values})", e.key),
        });
    }
    if parts.is_empty() {
        "<all>".into()
    } else {
        parts.join(",")
    }
}

//! The StatefulSet update algorithm (upstream `stateful_set_control.go`): pick the current and
//! update revisions, create missing pods in ordinal order (OrderedReady: one at a time, each
//! only after its predecessors are Running and Ready; Parallel: in slow-start batches),
//! delete condemned pods from the highest ordinal down, roll out the update revision from the
//! highest ordinal down to the partition, record status and trim history.

use super::pod_control::PodControl;
use super::utils::*;
use crate::history;
use crate::util::error::{Error, Result, is_not_found};
use crate::util::podutil::{controller_of, is_terminal, is_terminating};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};
use serde_json::json;
use std::sync::Arc;

/// Upper bound on concurrent requests in a Parallel batch (upstream `MaxBatchSize`).
const MAX_BATCH_SIZE: usize = 500;

/// Everything the algorithm needs: pod/claim control and the revision cache.
#[derive(Clone)]
pub struct SetControl {
    pub pods: PodControl,
    pub revisions: Store<ControllerRevision>,
}

/// The set's selector.
pub fn selector_of(set: &StatefulSet) -> Result<Selector> {
    let sel = set
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .unwrap_or_default();
    Selector::try_from(sel).map_err(|e| Error::Invalid(format!("invalid selector: {e}")))
}

fn labels_of<K: kube::Resource>(obj: &K) -> std::collections::BTreeMap<String, String> {
    obj.meta().labels.clone().unwrap_or_default()
}

impl SetControl {
    fn revision_api(&self, set: &StatefulSet) -> Api<ControllerRevision> {
        Api::namespaced(
            self.pods.client.clone(),
            &set.namespace().unwrap_or_default(),
        )
    }

    /// Revisions in the set's namespace matching its selector, owned by it or by nobody.
    pub fn list_revisions(&self, set: &StatefulSet) -> Result<Vec<ControllerRevision>> {
        let sel = selector_of(set)?;
        let ns = set.namespace();
        let uid = set.uid().unwrap_or_default();
        Ok(self
            .revisions
            .state()
            .into_iter()
            .filter(|r| r.namespace() == ns && sel.matches(&labels_of(r.as_ref())))
            .filter(|r| controller_of(&r.metadata).is_none_or(|c| c.uid == uid))
            .map(|r| (*r).clone())
            .collect())
    }

    /// Run one pass of the algorithm and return the status it recorded.
    pub async fn update_stateful_set(
        &self,
        set: &StatefulSet,
        pods: &[Arc<Pod>],
    ) -> Result<StatefulSetStatus> {
        let mut revisions = self.list_revisions(set)?;
        history::sort_revisions(&mut revisions);
        let (current, update, collision_count) = self.get_revisions(set, &revisions).await?;
        let (status, err) = self
            .update_pods(set, &current, &update, collision_count, pods)
            .await;
        let mut errs = Vec::new();
        let mut status = status;
        if let Some(st) = status.as_mut()
            && let Err(e) = self.update_status(set, st).await
        {
            errs.push(e);
        }
        if let Err(e) = err {
            errs.insert(0, e);
        }
        if let Err(e) = self
            .truncate_history(set, pods, &revisions, &current, &update)
            .await
        {
            errs.push(e);
        }
        Error::aggregate(errs)?;
        Ok(status.unwrap_or_default())
    }

    /// The current and update revisions, creating or renumbering the update revision as
    /// needed (a template equal to an older revision rolls back to it).
    async fn get_revisions(
        &self,
        set: &StatefulSet,
        revisions: &[ControllerRevision],
    ) -> Result<(ControllerRevision, ControllerRevision, i32)> {
        let mut collision_count = set
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let candidate = new_revision(set, history::next_revision(revisions), collision_count)?;
        let equal = history::find_equal_revisions(revisions, &candidate);
        let api = self.revision_api(set);
        let update = match (equal.last(), revisions.last()) {
            (Some(eq), Some(last)) if history::equal_revision(last, eq) => last.clone(),
            (Some(eq), _) => history::update_revision_number(&api, eq, candidate.revision).await?,
            (None, _) => {
                history::create_controller_revision(
                    &api,
                    &set.name_any(),
                    &candidate,
                    &mut collision_count,
                )
                .await?
            }
        };
        let current_name = set.status.as_ref().and_then(|s| s.current_revision.clone());
        let current = revisions
            .iter()
            .find(|r| r.metadata.name.is_some() && r.metadata.name == current_name)
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok((current, update, collision_count))
    }

    /// The pod part of the algorithm. Returns the status to record (if the revisions could
    /// be applied) and the first error.
    async fn update_pods(
        &self,
        set: &StatefulSet,
        current: &ControllerRevision,
        update: &ControllerRevision,
        collision_count: i32,
        pods: &[Arc<Pod>],
    ) -> (Option<StatefulSetStatus>, Result<()>) {
        let sets = apply_revision(set, current).and_then(|c| Ok((c, apply_revision(set, update)?)));
        let (current_set, update_set) = match sets {
            Ok(s) => s,
            Err(e) => return (None, Err(e.into())),
        };
        let current_name = current.name_any();
        let update_name = update.name_any();
        let min_ready = min_ready_seconds(set);
        let now = Timestamp::now();
        let mut status = StatefulSetStatus {
            observed_generation: set.metadata.generation,
            current_revision: Some(current_name.clone()),
            update_revision: Some(update_name.clone()),
            collision_count: Some(collision_count),
            ..Default::default()
        };
        let all: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        count_status(
            &mut status,
            min_ready,
            &current_name,
            &update_name,
            &[&all],
            now,
        );

        // Partition into replicas (in ordinal range, indexed by ordinal) and condemned.
        let start = start_ordinal(set);
        let count = usize::try_from(replicas(set).max(0)).unwrap_or(0);
        let mut slots: Vec<Option<Pod>> = vec![None; count];
        let mut condemned: Vec<Pod> = Vec::new();
        for p in pods {
            if in_ordinal_range(p, set) {
                if let Some(slot) = usize::try_from(ordinal(p) - start)
                    .ok()
                    .and_then(|i| slots.get_mut(i))
                {
                    *slot = Some((**p).clone());
                }
            } else if ordinal(p) >= 0 {
                condemned.push((**p).clone());
            }
        }
        let replicas: Vec<Pod> = slots
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                p.unwrap_or_else(|| {
                    new_versioned_pod(
                        &current_set,
                        &update_set,
                        &current_name,
                        &update_name,
                        start + i as i64,
                    )
                })
            })
            .collect();
        condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));

        // The first unavailable pod: lowest replica, else lowest condemned.
        let first_unavailable: Option<String> = replicas
            .iter()
            .chain(condemned.iter().rev())
            .find(|p| is_unavailable(p, min_ready, now))
            .map(|p| p.name_any());

        let recount = |status: &mut StatefulSetStatus, replicas: &[Pod], condemned: &[Pod]| {
            let r: Vec<&Pod> = replicas.iter().collect();
            let c: Vec<&Pod> = condemned.iter().collect();
            count_status(
                status,
                min_ready,
                &current_name,
                &update_name,
                &[&r, &c],
                now,
            );
        };

        if set.metadata.deletion_timestamp.is_some() {
            return (Some(status), Ok(()));
        }
        let monotonic = !allows_burst(set);

        // 1. Living replicas: create missing, replace failed, fix identity/storage.
        let res = run_for_all(replicas.len(), monotonic, |i| {
            self.process_replica(set, &update_set, monotonic, &replicas[i], now)
        })
        .await;
        if !matches!(res, Ok(false)) {
            recount(&mut status, &replicas, &condemned);
            return (Some(status), res.map(|_| ()));
        }

        // 2. Condemned pods' claims get their scale-down owners before the pods go.
        let res = run_for_all(condemned.len(), monotonic, |i| {
            self.fix_condemned_claims(&update_set, &condemned[i])
        })
        .await;
        if !matches!(res, Ok(false)) {
            recount(&mut status, &replicas, &condemned);
            return (Some(status), res.map(|_| ()));
        }

        // 3. Scale down from the highest ordinal.
        let res = run_for_all(condemned.len(), monotonic, |i| {
            self.process_condemned(
                set,
                first_unavailable.as_deref(),
                monotonic,
                &condemned[i],
                now,
            )
        })
        .await;
        if !matches!(res, Ok(false)) {
            recount(&mut status, &replicas, &condemned);
            return (Some(status), res.map(|_| ()));
        }
        recount(&mut status, &replicas, &condemned);

        // 4. Rolling update.
        if is_on_delete(set) {
            return (Some(status), Ok(()));
        }
        let res = if max_unavailable(set).is_some() {
            self.roll_with_max_unavailable(set, &replicas, &update_name, &mut status, now)
                .await
        } else {
            self.roll_one_at_a_time(set, &replicas, &update_name, &mut status, now)
                .await
        };
        (Some(status), res)
    }

    async fn process_replica(
        &self,
        set: &StatefulSet,
        update_set: &StatefulSet,
        monotonic: bool,
        pod: &Pod,
        now: Timestamp,
    ) -> Result<bool> {
        // Failed and Succeeded pods are replaced: delete now, recreate next sync.
        if is_terminal(pod) {
            if !is_terminating(pod) {
                self.pods.delete_stateful_pod(set, pod).await?;
            }
            return Ok(true);
        }
        if !is_created(pod) {
            if self.pods.pod_claim_is_stale(set, pod) {
                return Ok(true);
            }
            self.pods.create_stateful_pod(set, pod).await?;
            // OrderedReady waits for this pod; Parallel moves on (the object we hold is not
            // the stored pod, so there is nothing more to check on it this round).
            return Ok(monotonic);
        }
        if crate::util::podutil::phase(pod) == "Pending" {
            self.pods.create_missing_claims(set, pod).await?;
        }
        let min_ready = min_ready_seconds(set);
        if monotonic
            && (is_terminating(pod)
                || !is_running_and_ready(pod)
                || !is_running_and_available(pod, min_ready, now))
        {
            return Ok(true);
        }
        let retention_ok = self
            .pods
            .claims_match_retention(update_set, pod)
            .unwrap_or(true);
        if identity_matches(set, pod) && storage_matches(set, pod) && retention_ok {
            return Ok(false);
        }
        self.pods.update_stateful_pod(update_set, pod).await?;
        Ok(false)
    }

    async fn fix_condemned_claims(&self, update_set: &StatefulSet, pod: &Pod) -> Result<bool> {
        if !self.pods.claims_match_retention(update_set, pod)? {
            self.pods
                .update_claims_for_retention(update_set, pod)
                .await?;
        }
        Ok(false)
    }

    async fn process_condemned(
        &self,
        set: &StatefulSet,
        first_unavailable: Option<&str>,
        monotonic: bool,
        pod: &Pod,
        now: Timestamp,
    ) -> Result<bool> {
        if is_terminating(pod) {
            // OrderedReady waits for each termination to finish.
            return Ok(monotonic);
        }
        let is_first_unhealthy = first_unavailable == Some(pod.name_any().as_str());
        if monotonic
            && !is_first_unhealthy
            && (!is_running_and_ready(pod)
                || !is_running_and_available(pod, min_ready_seconds(set), now))
        {
            return Ok(true);
        }
        self.pods.delete_stateful_pod(set, pod).await?;
        Ok(true)
    }

    /// Default rolling update: delete the highest-ordinal outdated pod at or above the
    /// partition, one at a time, waiting for each replacement to become available.
    async fn roll_one_at_a_time(
        &self,
        set: &StatefulSet,
        replicas: &[Pod],
        update_name: &str,
        status: &mut StatefulSetStatus,
        now: Timestamp,
    ) -> Result<()> {
        let update_min = partition(set).unwrap_or(0).max(0);
        let min_ready = min_ready_seconds(set);
        for (idx, pod) in replicas.iter().enumerate().rev() {
            if (idx as i64) < update_min {
                break;
            }
            if pod_revision(pod) != update_name && !is_terminating(pod) {
                if let Err(e) = self.pods.delete_stateful_pod(set, pod).await
                    && !matches!(&e, Error::Api { source, .. } if is_not_found(source))
                {
                    return Err(e);
                }
                status.current_replicas = Some(status.current_replicas.unwrap_or(0) - 1);
                return Ok(());
            }
            if is_unavailable(pod, min_ready, now) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// `maxUnavailable` rolling update: keep at most that many replicas unavailable,
    /// deleting outdated pods from the highest ordinal down to the partition.
    async fn roll_with_max_unavailable(
        &self,
        set: &StatefulSet,
        replicas: &[Pod],
        update_name: &str,
        status: &mut StatefulSetStatus,
        now: Timestamp,
    ) -> Result<()> {
        let update_min = partition(set).unwrap_or(0).max(0);
        let max = resolve_max_unavailable(max_unavailable(set), replicas.len() as i64);
        let min_ready = min_ready_seconds(set);
        let unavailable = replicas
            .iter()
            .filter(|p| is_unavailable(p, min_ready, now))
            .count() as i64;
        if unavailable >= max {
            return Ok(());
        }
        let mut to_delete = max - unavailable;
        for (idx, pod) in replicas.iter().enumerate().rev() {
            if (idx as i64) < update_min || to_delete <= 0 {
                break;
            }
            if pod_revision(pod) != update_name && !is_terminating(pod) {
                if let Err(e) = self.pods.delete_stateful_pod(set, pod).await
                    && !matches!(&e, Error::Api { source, .. } if is_not_found(source))
                {
                    return Err(e);
                }
                to_delete -= 1;
                status.current_replicas = Some(status.current_replicas.unwrap_or(0) - 1);
            }
        }
        Ok(())
    }

    /// Complete a finished rolling update and write the status if it changed.
    async fn update_status(&self, set: &StatefulSet, status: &mut StatefulSetStatus) -> Result<()> {
        complete_rolling_update(set, status);
        if !inconsistent_status(set, status) {
            return Ok(());
        }
        let api: Api<StatefulSet> = Api::namespaced(
            self.pods.client.clone(),
            &set.namespace().unwrap_or_default(),
        );
        let patch = json!({"status": {
            "observedGeneration": status.observed_generation,
            "replicas": status.replicas,
            "readyReplicas": status.ready_replicas.unwrap_or(0),
            "currentReplicas": status.current_replicas.unwrap_or(0),
            "updatedReplicas": status.updated_replicas.unwrap_or(0),
            "availableReplicas": status.available_replicas.unwrap_or(0),
            "currentRevision": status.current_revision,
            "updateRevision": status.update_revision,
            "collisionCount": status.collision_count,
        }});
        match api
            .patch_status(
                &set.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(Error::api(
                format!("updating status of statefulset {}", set.name_any()),
                e,
            )),
        }
    }

    /// Delete the oldest revisions that no pod, nor the current or update revision, uses,
    /// beyond `revisionHistoryLimit`.
    async fn truncate_history(
        &self,
        set: &StatefulSet,
        pods: &[Arc<Pod>],
        revisions: &[ControllerRevision],
        current: &ControllerRevision,
        update: &ControllerRevision,
    ) -> Result<()> {
        let mut live: std::collections::HashSet<String> =
            pods.iter().map(|p| pod_revision(p).to_string()).collect();
        live.insert(current.name_any());
        live.insert(update.name_any());
        let old: Vec<&ControllerRevision> = revisions
            .iter()
            .filter(|r| !live.contains(&r.name_any()))
            .collect();
        let limit = set
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let Ok(limit) = usize::try_from(limit) else {
            return Ok(());
        };
        if old.len() <= limit {
            return Ok(());
        }
        let api = self.revision_api(set);
        for r in &old[..old.len() - limit] {
            history::delete_revision(&api, r)
                .await
                .map_err(Error::from)?;
        }
        Ok(())
    }
}

/// Recompute the replica counters over pod lists.
fn count_status(
    status: &mut StatefulSetStatus,
    min_ready: i32,
    current: &str,
    update: &str,
    lists: &[&[&Pod]],
    now: Timestamp,
) {
    let (mut replicas, mut ready, mut available, mut cur, mut upd) = (0, 0, 0, 0, 0);
    for pod in lists.iter().flat_map(|l| l.iter()) {
        if is_created(pod) {
            replicas += 1;
        }
        if is_running_and_ready(pod) {
            ready += 1;
            if is_running_and_available(pod, min_ready, now) {
                available += 1;
            }
        }
        if is_created(pod) && !is_terminating(pod) {
            let rev = pod_revision(pod);
            if rev == current {
                cur += 1;
            }
            if rev == update {
                upd += 1;
            }
        }
    }
    status.replicas = replicas;
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.current_replicas = Some(cur);
    status.updated_replicas = Some(upd);
}

/// Run `f` over `0..n`: in order, stopping at the first "exit" or error (monotonic), or in
/// slow-start batches of doubling size, stopping after a batch with errors (burst).
/// Returns whether processing should stop.
async fn run_for_all<F, Fut>(n: usize, monotonic: bool, f: F) -> Result<bool>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    if monotonic {
        for i in 0..n {
            if f(i).await? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    let mut next = 0;
    let mut batch = n.min(1);
    while batch > 0 {
        let results = futures::future::join_all((next..next + batch).map(&f)).await;
        next += batch;
        let errs: Vec<Error> = results.into_iter().filter_map(|r| r.err()).collect();
        if !errs.is_empty() {
            Error::aggregate(errs)?;
        }
        batch = (2 * batch).min(n - next).min(MAX_BATCH_SIZE);
    }
    Ok(false)
}

#[cfg(test)]
#[path = "control_tests.rs"]
mod tests;

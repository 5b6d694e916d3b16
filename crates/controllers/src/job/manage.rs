//! Creating and deleting a Job's pods (upstream `manageJob`): keep `min(parallelism,
//! remaining completions)` pods active, respecting the failure backoff; delete all when
//! suspended; create in slow-start batches so a failing create does not flood the API.

use super::apierrors::{is_namespace_terminating, is_not_found};
use super::controller::{Controller, JobError};
use super::indexed::{self, Intervals};
use super::pods::{self, deletion_order, is_ready, only_replace_failed, pod_from_template};
use super::status::is_suspended;
use super::sync::{SyncCtx, completions};
use crate::events::EventType;
use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use std::sync::Arc;

/// At most this many pods are created or deleted per sync.
const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;
/// First slow-start batch size.
const SLOW_START_INITIAL_BATCH: usize = 1;

impl Controller {
    /// Returns the number of active pods afterwards and the first error.
    pub(super) async fn manage_job(&self, cx: &mut SyncCtx) -> (i32, Option<JobError>) {
        let job = cx.job.clone();
        let key = cx.key.clone();
        let mut active = cx.active_pods.len() as i32;
        let parallelism = job.spec.as_ref().and_then(|s| s.parallelism).unwrap_or(1);

        if is_suspended(&job) {
            let to_delete = pods_for_removal(&job, &cx.active_pods, active as usize);
            self.expectations.expect_deletions(&key, to_delete.len());
            let (removed_ready, removed, err) = self.delete_job_pods(&job, &key, &to_delete).await;
            cx.terminating += removed;
            cx.ready -= removed_ready;
            return (active - removed, err);
        }

        let want_active = match completions(&job) {
            // Without completions run `parallelism` pods until the first success, then
            // let whatever runs finish.
            None if cx.succeeded > 0 => active,
            None => parallelism,
            Some(c) => (c - cx.succeeded).min(parallelism).max(0),
        };
        let rm_at_least = (active - want_active).max(0) as usize;
        let mut to_delete = pods_for_removal(&job, &cx.active_pods, rm_at_least);
        to_delete.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
        if !to_delete.is_empty() {
            self.expectations.expect_deletions(&key, to_delete.len());
            let (removed_ready, removed, err) = self.delete_job_pods(&job, &key, &to_delete).await;
            cx.terminating += removed;
            cx.ready -= removed_ready;
            // Deletions and creations never happen in the same sync.
            return (active - removed, err);
        }

        let terminating = if only_replace_failed(&job) {
            cx.terminating
        } else {
            0
        };
        let diff = want_active - terminating - active;
        if diff <= 0 {
            return (active, None);
        }
        let remaining = cx.new_backoff.remaining(
            Timestamp::now(),
            self.cfg.pod_failure_backoff,
            self.cfg.max_pod_failure_backoff,
        );
        if !remaining.is_zero() {
            self.enqueue_with_delay(key, remaining);
            return (active, None);
        }
        let mut diff = (diff as usize).min(MAX_POD_CREATE_DELETE_PER_SYNC);
        let mut indexes: Vec<Option<usize>> = vec![None; diff];
        if indexed::is_indexed(&job) {
            let c = completions(&job).unwrap_or(0).max(0) as usize;
            indexes = first_pending_indexes(cx, diff, c)
                .into_iter()
                .map(Some)
                .collect();
            diff = indexes.len();
        }
        if diff == 0 {
            return (active, None);
        }
        self.expectations.expect_creations(&key, diff);
        active += diff as i32;
        let mut first_err = None;
        let mut batch = SLOW_START_INITIAL_BATCH.min(diff);
        let mut pending = indexes.into_iter();
        let mut left = diff;
        while left > 0 {
            let chunk: Vec<Option<usize>> = pending.by_ref().take(batch).collect();
            let results = join_all(chunk.into_iter().map(|ix| self.create_pod(&job, ix))).await;
            let mut failed_now = false;
            for r in results {
                if let Err(e) = r {
                    // The cache will never see this pod.
                    self.expectations.creation_observed(&key);
                    active -= 1;
                    failed_now = true;
                    first_err.get_or_insert(e);
                }
            }
            left -= batch;
            if failed_now && left > 0 {
                // Skip the rest; the next sync retries.
                for _ in 0..left {
                    self.expectations.creation_observed(&key);
                }
                active -= left as i32;
                break;
            }
            batch = (batch * 2).min(left);
        }
        (active, first_err)
    }

    async fn create_pod(&self, job: &Job, index: Option<usize>) -> Result<(), JobError> {
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        match api
            .create(&PostParams::default(), &pod_from_template(job, index))
            .await
        {
            Ok(pod) => {
                let name = pod.metadata.name.as_deref().unwrap_or("");
                self.recorder.publish_for(
                    job,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created pod: {name}"),
                );
                Ok(())
            }
            // Every later create would fail too; not worth an error or event.
            Err(e) if is_namespace_terminating(&e) => {
                Err(JobError::Sync("namespace is terminating".into()))
            }
            Err(e) => {
                self.recorder.publish_for(
                    job,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating: {e}"),
                );
                Err(e.into())
            }
        }
    }

    async fn delete_pod(&self, job: &Job, pod: &Pod) -> Result<(), kube::Error> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                self.recorder.publish_for(
                    job,
                    EventType::Normal,
                    "SuccessfulDelete",
                    &format!("Deleted pod: {name}"),
                );
                Ok(())
            }
            Err(e) => {
                if !is_not_found(&e) {
                    self.recorder.publish_for(
                        job,
                        EventType::Warning,
                        "FailedDelete",
                        &format!("Error deleting: {e}"),
                    );
                }
                Err(e)
            }
        }
    }

    /// Delete pods keeping their finalizers (they are counted as failed afterwards).
    /// Returns (deleted ready pods, deleted pods, first error).
    pub(super) async fn delete_active_pods(
        &self,
        job: &Job,
        pods: &[Arc<Pod>],
    ) -> (i32, i32, Option<JobError>) {
        let results = join_all(pods.iter().map(|p| async move {
            let r = self.delete_pod(job, p).await;
            (is_ready(p), r)
        }))
        .await;
        let mut deleted = pods.len() as i32;
        let mut deleted_ready = 0;
        let mut first = None;
        for (ready, r) in results {
            match r {
                Err(e) if !is_not_found(&e) => {
                    deleted -= 1;
                    first.get_or_insert(JobError::from(e));
                }
                _ => {}
            }
            if ready {
                deleted_ready += 1;
            }
        }
        (deleted_ready, deleted, first)
    }

    /// Delete surplus pods after removing their finalizer: they are not failures.
    async fn delete_job_pods(
        &self,
        job: &Job,
        key: &str,
        pods: &[Arc<Pod>],
    ) -> (i32, i32, Option<JobError>) {
        let results = join_all(pods.iter().map(|p| async move {
            let ns = p.metadata.namespace.as_deref().unwrap_or("");
            let name = p.metadata.name.as_deref().unwrap_or("");
            if pods::has_tracking_finalizer(p)
                && let Err(e) = self.remove_tracking_finalizer(ns, name).await
            {
                return (is_ready(p), Err(e));
            }
            (is_ready(p), self.delete_pod(job, p).await)
        }))
        .await;
        let mut deleted = pods.len() as i32;
        let mut deleted_ready = 0;
        let mut first = None;
        for (ready, r) in results {
            if let Err(e) = r {
                // The cache will not see this deletion.
                self.expectations.deletion_observed(key);
                if !is_not_found(&e) {
                    deleted -= 1;
                    first.get_or_insert(JobError::from(e));
                }
            }
            if ready {
                deleted_ready += 1;
            }
        }
        (deleted_ready, deleted, first)
    }
}

/// Pods to delete: for Indexed Jobs first duplicates (keeping the best pod per index) and
/// pods without a valid index, then the least valuable pods up to `rm_at_least`.
fn pods_for_removal(job: &Job, pods: &[Arc<Pod>], rm_at_least: usize) -> Vec<Arc<Pod>> {
    let mut rm: Vec<Arc<Pod>> = Vec::new();
    let mut left: Vec<Arc<Pod>> = Vec::new();
    if indexed::is_indexed(job) {
        let c = completions(job).unwrap_or(0).max(0) as usize;
        let mut sorted = pods.to_vec();
        sorted.sort_by_key(|p| indexed::completion_index(p));
        let mut i = 0;
        while i < sorted.len() {
            let ix = indexed::completion_index(&sorted[i]);
            let mut j = i + 1;
            while j < sorted.len() && indexed::completion_index(&sorted[j]) == ix {
                j += 1;
            }
            let mut group = sorted[i..j].to_vec();
            match ix {
                Some(ix) if ix < c => {
                    group.sort_by(|a, b| deletion_order(a, b));
                    if let Some(keep) = group.pop() {
                        left.push(keep);
                    }
                    rm.extend(group);
                }
                _ => rm.extend(group),
            }
            i = j;
        }
    } else {
        left = pods.to_vec();
    }
    if rm.len() < rm_at_least {
        left.sort_by(|a, b| deletion_order(a, b));
        let more = (rm_at_least - rm.len()).min(left.len());
        rm.extend(left.into_iter().take(more));
    }
    rm
}

/// The first `count` indexes neither succeeded nor active (nor terminating, when only
/// failed pods are replaced).
fn first_pending_indexes(cx: &SyncCtx, count: usize, completions: usize) -> Vec<usize> {
    let active = cx
        .active_pods
        .iter()
        .filter_map(|p| indexed::completion_index(p));
    let mut non_pending: Intervals = cx.succeeded_indexes.with(active);
    if only_replace_failed(&cx.job) {
        let terminating = cx
            .pods
            .iter()
            .filter(|p| pods::is_terminating(p))
            .filter_map(|p| indexed::completion_index(p));
        non_pending = non_pending.with(terminating);
    }
    non_pending.first_missing(count, completions)
}

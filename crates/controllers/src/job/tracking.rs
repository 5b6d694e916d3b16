//! Counting finished pods safely (upstream `trackJobStatusAndRemoveFinalizers`):
//!
//! 1. finished pods still carrying the tracking finalizer are added to
//!    `status.uncountedTerminatedPods` (or, for Indexed Jobs, `completedIndexes`) and the
//!    status is written;
//! 2. their finalizers are removed;
//! 3. UIDs whose finalizer is gone move from the uncounted lists to the counters;
//! 4. once nothing is uncounted or terminating, the final `Complete`/`Failed` condition
//!    is added.

use super::apierrors::is_not_found;
use super::controller::{Controller, JobError};
use super::indexed;
use super::pods::{self, has_tracking_finalizer, is_failed};
use super::status::{self, COMPLETE, FAILED, FAILURE_TARGET, SUCCESS_CRITERIA_MET, new_condition};
use super::sync::{SyncCtx, completions, nonzero, uid_of};
use crate::events::EventType;
use futures::future::join_all;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::HashSet;
use std::sync::Arc;

/// Cap on `uncountedTerminatedPods` entries per sync (keeps the status small and lets
/// other Jobs be synced).
const MAX_UNCOUNTED_PODS: usize = 500;

fn uncounted(st: &mut JobStatus) -> &mut UncountedTerminatedPods {
    st.uncounted_terminated_pods
        .get_or_insert_with(Default::default)
}

/// Move UIDs whose pods lost the finalizer from the uncounted lists to the counters.
fn clean_uncounted(st: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let mut changed = false;
    let (mut succeeded, mut failed) = (st.succeeded.unwrap_or(0), st.failed.unwrap_or(0));
    let u = uncounted(st);
    for (list, counter) in [
        (&mut u.succeeded, &mut succeeded),
        (&mut u.failed, &mut failed),
    ] {
        let Some(uids) = list else { continue };
        let before = uids.len();
        uids.retain(|uid| with_finalizer.contains(uid));
        if uids.len() != before {
            changed = true;
            *counter += (before - uids.len()) as i32;
        }
        if uids.is_empty() {
            *list = None;
        }
    }
    st.succeeded = nonzero(succeeded);
    st.failed = nonzero(failed);
    changed
}

impl Controller {
    pub(super) async fn track_status_and_remove_finalizers(
        &self,
        cx: &mut SyncCtx,
        mut needs_flush: bool,
    ) -> Result<(), JobError> {
        let is_indexed = indexed::is_indexed(&cx.job);
        let completions = completions(&cx.job).unwrap_or(0).max(0) as usize;
        if is_indexed {
            // Completed indexes are introduced in order.
            cx.pods.sort_by_key(|p| indexed::completion_index(p));
        }
        let mut with_finalizer: HashSet<String> = cx
            .pods
            .iter()
            .filter(|p| has_tracking_finalizer(p) && !cx.expected_rm_finalizers.contains(uid_of(p)))
            .map(|p| uid_of(p).to_string())
            .collect();
        let st = cx.job.status.get_or_insert_with(Default::default);
        if clean_uncounted(st, &with_finalizer) {
            needs_flush = true;
        }

        let job_deleting = cx.job.metadata.deletion_timestamp.is_some();
        let failing = cx
            .finished_condition
            .as_ref()
            .is_some_and(|c| c.type_ != SUCCESS_CRITERIA_MET);
        let mut to_remove: Vec<Arc<Pod>> = Vec::new();
        let mut new_indexes: Vec<usize> = Vec::new();
        let mut reached_max = false;
        for pod in &cx.pods {
            let uid = uid_of(pod);
            if !has_tracking_finalizer(pod) || cx.expected_rm_finalizers.contains(uid) {
                continue; // handled in an earlier sync
            }
            let failed = is_failed(pod, &cx.job);
            let can_remove = job_deleting
                || cx.finished_condition.is_some()
                || pods::is_succeeded(pod)
                || failed;
            if !can_remove {
                continue;
            }
            to_remove.push(pod.clone());
            let ix = indexed::completion_index(pod);
            let u = uncounted(cx.job.status.get_or_insert_with(Default::default));
            if pods::is_succeeded(pod) && !cx.uncounted_failed.contains(uid) {
                if is_indexed {
                    // The index alone prevents counting twice.
                    if let Some(ix) =
                        ix.filter(|ix| *ix < completions && !cx.prev_succeeded_indexes.has(*ix))
                    {
                        new_indexes.push(ix);
                        needs_flush = true;
                    }
                } else if !cx.uncounted_succeeded.contains(uid) {
                    u.succeeded
                        .get_or_insert_with(Vec::new)
                        .push(uid.to_string());
                    needs_flush = true;
                }
            } else if (failed || failing)
                && !cx.uncounted_failed.contains(uid)
                && (!is_indexed || ix.is_some_and(|ix| ix < completions))
            {
                // Once the Job is failing, every unfinished pod counts as failed.
                u.failed.get_or_insert_with(Vec::new).push(uid.to_string());
                needs_flush = true;
            }
            let n = new_indexes.len()
                + u.succeeded.as_ref().map_or(0, Vec::len)
                + u.failed.as_ref().map_or(0, Vec::len);
            if n >= MAX_UNCOUNTED_PODS {
                reached_max = true;
                break;
            }
        }
        if is_indexed {
            cx.succeeded_indexes = cx.succeeded_indexes.with(new_indexes);
            let s = cx.succeeded_indexes.to_string();
            let st = cx.job.status.get_or_insert_with(Default::default);
            if st.completed_indexes.as_deref().unwrap_or("") != s {
                needs_flush = true;
            }
            st.succeeded = nonzero(cx.succeeded_indexes.total() as i32);
            st.completed_indexes = (!s.is_empty()).then_some(s);
        }
        let now = Timestamp::now();
        if let Some(fc) = cx.finished_condition.clone() {
            let reason = fc.reason.as_deref().unwrap_or("");
            let message = fc.message.as_deref().unwrap_or("");
            let conds = cx
                .job
                .status
                .get_or_insert_with(Default::default)
                .conditions
                .get_or_insert_with(Vec::new);
            if fc.type_ == FAILURE_TARGET {
                // Record the interim condition before finalizers go, then aim for Failed.
                conds.push(fc.clone());
                needs_flush = true;
                cx.finished_condition = Some(new_condition(FAILED, "True", reason, message, now));
            } else if fc.type_ == SUCCESS_CRITERIA_MET {
                if status::find(conds, SUCCESS_CRITERIA_MET).is_none_or(|c| c.status != "True") {
                    conds.push(fc.clone());
                    needs_flush = true;
                }
                cx.finished_condition = Some(new_condition(COMPLETE, "True", reason, message, now));
            }
        }

        needs_flush = self
            .flush_and_remove_finalizers(cx, &to_remove, &mut with_finalizer, needs_flush)
            .await?;
        let finished = !reached_max && self.enact_finished(cx, now);
        if finished || needs_flush {
            cx.job = self.update_status(&cx.job).await?;
            if finished {
                self.record_finished(cx);
            }
        }
        Ok(())
    }

    /// Write pending status changes, remove finalizers, count the pods that lost them.
    /// Returns whether status changes are still unwritten.
    async fn flush_and_remove_finalizers(
        &self,
        cx: &mut SyncCtx,
        to_remove: &[Arc<Pod>],
        with_finalizer: &mut HashSet<String>,
        mut needs_flush: bool,
    ) -> Result<bool, JobError> {
        if needs_flush {
            cx.job = self
                .update_status(&cx.job)
                .await
                .map_err(|e| JobError::Sync(format!("adding uncounted pods to status: {e}")))?;
            self.backoff.update(&cx.key, cx.new_backoff.clone());
            needs_flush = false;
        }
        let mut rm_err: Option<JobError> = None;
        if !to_remove.is_empty() {
            self.finalizers
                .expect_removed(&cx.key, to_remove.iter().map(|p| uid_of(p).to_string()));
            let results = join_all(to_remove.iter().map(|p| async move {
                let ns = p.metadata.namespace.as_deref().unwrap_or("");
                let name = p.metadata.name.as_deref().unwrap_or("");
                self.remove_tracking_finalizer(ns, name).await
            }))
            .await;
            for (p, r) in to_remove.iter().zip(results) {
                let uid = uid_of(p);
                match r {
                    Ok(()) => {
                        with_finalizer.remove(uid);
                    }
                    Err(e) => {
                        // No update event will come for this pod.
                        self.finalizers.removal_observed(&cx.key, uid);
                        if is_not_found(&e) {
                            with_finalizer.remove(uid);
                        } else {
                            rm_err.get_or_insert(JobError::from(e));
                        }
                    }
                }
            }
        }
        if clean_uncounted(
            cx.job.status.get_or_insert_with(Default::default),
            with_finalizer,
        ) {
            needs_flush = true;
        }
        if let Some(e) = rm_err {
            if needs_flush {
                cx.job = self.update_status(&cx.job).await?;
            }
            return Err(e);
        }
        Ok(needs_flush)
    }

    /// Add the final condition once every pod is counted and none is terminating.
    fn enact_finished(&self, cx: &mut SyncCtx, now: Timestamp) -> bool {
        let Some(fc) = cx.finished_condition.clone() else {
            return false;
        };
        let st = cx.job.status.get_or_insert_with(Default::default);
        if let Some(u) = &st.uncounted_terminated_pods {
            let n =
                u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len);
            if n > 0 {
                return false;
            }
        }
        if cx.terminating > 0 {
            return false;
        }
        let reason = fc.reason.as_deref().unwrap_or("");
        let message = fc.message.as_deref().unwrap_or("");
        let conds = st.conditions.get_or_insert_with(Vec::new);
        status::ensure(conds, &fc.type_, "True", reason, message, now);
        if fc.type_ == COMPLETE {
            st.completion_time = fc.last_transition_time.clone().or(Some(Time(now)));
        }
        true
    }

    fn record_finished(&self, cx: &SyncCtx) {
        let Some(fc) = &cx.finished_condition else {
            return;
        };
        let job = &cx.job;
        if fc.type_ == COMPLETE {
            let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
            if completions(job).is_some_and(|c| succeeded > c) {
                self.recorder.publish_for(
                    job,
                    EventType::Warning,
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                );
            }
            self.recorder
                .publish_for(job, EventType::Normal, "Completed", "Job completed");
        } else {
            self.recorder.publish_for(
                job,
                EventType::Warning,
                fc.reason.as_deref().unwrap_or(""),
                fc.message.as_deref().unwrap_or(""),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncounted_move_to_counters() {
        let mut st = JobStatus {
            succeeded: Some(1),
            uncounted_terminated_pods: Some(UncountedTerminatedPods {
                succeeded: Some(vec!["a".into(), "b".into()]),
                failed: Some(vec!["c".into()]),
            }),
            ..Default::default()
        };
        let with: HashSet<String> = ["b".to_string()].into();
        assert!(clean_uncounted(&mut st, &with));
        assert_eq!(st.succeeded, Some(2));
        assert_eq!(st.failed, Some(1));
        let u = st.uncounted_terminated_pods.as_ref().expect("uncounted");
        assert_eq!(u.succeeded.as_deref(), Some(&["b".to_string()][..]));
        assert!(u.failed.is_none());
        assert!(!clean_uncounted(&mut st, &with));
    }
}

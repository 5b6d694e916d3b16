//! One Job sync (upstream `syncJob`): count pods, decide whether the Job failed or
//! succeeded, create/delete pods, then track finished pods into the status.

use super::backoff::Record;
use super::controller::{Controller, JobError};
use super::indexed::{self, Intervals};
use super::pods::{self, is_active, is_failed, is_ready, is_terminating};
use super::status::{
    self, FAILED, FAILURE_TARGET, SUCCESS_CRITERIA_MET, SUSPENDED, is_finished, is_suspended,
    new_condition, true_condition,
};
use crate::events::EventType;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::HashSet;
use std::sync::Arc;

/// Everything one sync works with; `job` is the working copy whose status is written.
pub(super) struct SyncCtx {
    pub key: String,
    pub job: Job,
    pub pods: Vec<Arc<Pod>>,
    pub active_pods: Vec<Arc<Pod>>,
    pub finished_condition: Option<JobCondition>,
    pub succeeded: i32,
    pub failed: i32,
    pub prev_succeeded_indexes: Intervals,
    pub succeeded_indexes: Intervals,
    pub new_backoff: Record,
    pub expected_rm_finalizers: HashSet<String>,
    pub uncounted_succeeded: HashSet<String>,
    pub uncounted_failed: HashSet<String>,
    pub terminating: i32,
    pub ready: i32,
}

/// `spec.completions` (None: any success completes the Job).
pub(super) fn completions(job: &Job) -> Option<i32> {
    job.spec.as_ref().and_then(|s| s.completions)
}

pub(super) fn uid_of(p: &Pod) -> &str {
    p.metadata.uid.as_deref().unwrap_or("")
}

impl SyncCtx {
    /// Pods with the finalizer not yet accounted for (not uncounted, not being
    /// un-finalized), with a valid index for Indexed Jobs, passing `filter`.
    fn new_pods(&self, uncounted: &HashSet<String>, filter: impl Fn(&Pod) -> bool) -> Vec<&Pod> {
        let indexed = indexed::is_indexed(&self.job);
        let completions = completions(&self.job).unwrap_or(0).max(0) as usize;
        self.pods
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| {
                let uid = uid_of(p);
                pods::has_tracking_finalizer(p)
                    && !uncounted.contains(uid)
                    && !self.expected_rm_finalizers.contains(uid)
            })
            .filter(|p| !indexed || indexed::completion_index(p).is_some_and(|ix| ix < completions))
            .filter(|p| filter(p))
            .collect()
    }
}

impl Controller {
    pub(super) async fn sync_job(&self, key: &str) -> Result<(), JobError> {
        let Some(shared) = self.cached_job(key)? else {
            self.expectations.delete(key);
            self.finalizers.delete(key);
            self.backoff.remove(key);
            return Ok(());
        };
        if status::managed_externally(&shared).is_some() {
            return Ok(());
        }
        if is_finished(&shared) {
            self.backoff.remove(key);
            return Ok(());
        }
        let mode = shared
            .spec
            .as_ref()
            .and_then(|s| s.completion_mode.as_deref());
        if mode.is_some_and(|m| m != "NonIndexed" && m != "Indexed") {
            self.recorder.publish_for(
                shared.as_ref(),
                EventType::Warning,
                "UnknownCompletionMode",
                "Skipped Job sync because completion mode is unknown",
            );
            return Ok(());
        }
        let mut job = (*shared).clone();
        let st = job.status.get_or_insert_with(Default::default);
        let uncounted = st
            .uncounted_terminated_pods
            .get_or_insert_with(UncountedTerminatedPods::default);
        let uncounted_succeeded: HashSet<String> =
            uncounted.succeeded.iter().flatten().cloned().collect();
        let uncounted_failed: HashSet<String> =
            uncounted.failed.iter().flatten().cloned().collect();

        // Check expectations before reading pods: a pod appearing after the check only
        // delays the next sync, it cannot be missed.
        let satisfied = self.expectations.satisfied(key);
        let pods = self.pods_for_job(&job).await?;
        let active_pods: Vec<Arc<Pod>> = pods.iter().filter(|p| is_active(p)).cloned().collect();
        let mut cx = SyncCtx {
            key: key.to_string(),
            ready: active_pods.iter().filter(|p| is_ready(p)).count() as i32,
            terminating: pods.iter().filter(|p| is_terminating(p)).count() as i32,
            active_pods,
            pods,
            job,
            finished_condition: None,
            succeeded: 0,
            failed: 0,
            prev_succeeded_indexes: Intervals::default(),
            succeeded_indexes: Intervals::default(),
            new_backoff: Record::default(),
            expected_rm_finalizers: self.finalizers.expected(key),
            uncounted_succeeded,
            uncounted_failed,
        };
        let mut active = cx.active_pods.len() as i32;
        let (new_succeeded, new_failed, new_backoff) = {
            let succeeded = cx.new_pods(&cx.uncounted_succeeded, pods::is_succeeded);
            let failed = cx.new_pods(&cx.uncounted_failed, |p| is_failed(p, &cx.job));
            let rec = self.backoff.next_record(key, &succeeded, &failed);
            (succeeded.len() as i32, failed.len() as i32, rec)
        };
        let st = cx.job.status.clone().unwrap_or_default();
        cx.succeeded =
            st.succeeded.unwrap_or(0) + new_succeeded + cx.uncounted_succeeded.len() as i32;
        cx.failed = st.failed.unwrap_or(0) + new_failed + cx.uncounted_failed.len() as i32;
        cx.new_backoff = new_backoff;

        let now = Timestamp::now();
        // First start: only when not suspended.
        if st.start_time.is_none() && !is_suspended(&cx.job) {
            cx.job
                .status
                .get_or_insert_with(Default::default)
                .start_time = Some(Time(now));
        }

        let backoff_limit = cx
            .job
            .spec
            .as_ref()
            .and_then(|s| s.backoff_limit)
            .unwrap_or(6);
        cx.finished_condition = true_condition(&cx.job, SUCCESS_CRITERIA_MET).cloned();
        // With SuccessCriteriaMet the outcome is decided; otherwise look for failures.
        if cx.finished_condition.is_none() {
            if let Some(ft) = true_condition(&cx.job, FAILURE_TARGET) {
                cx.finished_condition = Some(new_condition(
                    FAILED,
                    "True",
                    ft.reason.as_deref().unwrap_or(""),
                    ft.message.as_deref().unwrap_or(""),
                    now,
                ));
            } else if cx.failed > backoff_limit || past_backoff_limit_on_failure(&cx.job, &cx.pods)
            {
                cx.finished_condition = Some(new_condition(
                    FAILURE_TARGET,
                    "True",
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    now,
                ));
            } else if past_active_deadline(&cx.job, now) {
                cx.finished_condition = Some(new_condition(
                    FAILURE_TARGET,
                    "True",
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                    now,
                ));
            } else if let Some(left) = deadline_left(&cx.job, now) {
                self.queue.add_after(key.to_string(), left);
            }
        }

        if indexed::is_indexed(&cx.job) {
            let (prev, all) = succeeded_indexes(&cx.job, &cx.pods);
            cx.succeeded = all.total() as i32;
            cx.prev_succeeded_indexes = prev;
            cx.succeeded_indexes = all;
        }

        let mut suspend_changed = false;
        let mut manage_err: Option<JobError> = None;
        if cx.finished_condition.is_some() {
            // The Job failed or succeeded: stop what is still running.
            let active_pods = cx.active_pods.clone();
            let (deleted_ready, deleted, err) =
                self.delete_active_pods(&cx.job, &active_pods).await;
            if deleted != active || !satisfied {
                // Pods may still be terminating or not in the cache yet: not finished yet.
                cx.finished_condition = None;
            }
            active -= deleted;
            cx.terminating += deleted;
            cx.ready -= deleted_ready;
            manage_err = err;
        } else {
            let mut manage_called = false;
            if satisfied && cx.job.metadata.deletion_timestamp.is_none() {
                let (a, err) = self.manage_job(&mut cx).await;
                active = a;
                manage_err = err;
                manage_called = true;
            }
            let complete = match completions(&cx.job) {
                // Any success completes; wait for the rest to finish.
                None => cx.succeeded > 0 && active == 0,
                Some(c) => cx.succeeded >= c && active == 0,
            };
            if complete {
                cx.finished_condition = Some(new_condition(
                    SUCCESS_CRITERIA_MET,
                    "True",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    now,
                ));
            } else if manage_called {
                suspend_changed = self.update_suspended_condition(&mut cx.job, now);
            }
        }

        let st = cx.job.status.get_or_insert_with(Default::default);
        let needs_update = suspend_changed
            || active != st.active.unwrap_or(0)
            || Some(cx.ready) != st.ready
            || Some(cx.terminating) != st.terminating;
        st.active = nonzero(active);
        st.ready = Some(cx.ready);
        st.terminating = Some(cx.terminating);
        self.track_status_and_remove_finalizers(&mut cx, needs_update)
            .await
            .map_err(|e| JobError::Sync(format!("tracking status: {e}")))?;
        match manage_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Keep the Suspended condition in line with `spec.suspend`; resuming restarts the
    /// active-deadline clock. Returns whether the status changed.
    fn update_suspended_condition(&self, job: &mut Job, now: Timestamp) -> bool {
        let suspended = is_suspended(job);
        let st = job.status.get_or_insert_with(Default::default);
        let conds = st.conditions.get_or_insert_with(Vec::new);
        let changed = if suspended {
            status::ensure(
                conds,
                SUSPENDED,
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            )
        } else {
            status::ensure(conds, SUSPENDED, "False", "JobResumed", "Job resumed", now)
        };
        if conds.is_empty() {
            st.conditions = None;
        }
        if changed {
            if suspended {
                self.recorder
                    .publish_for(job, EventType::Normal, "Suspended", "Job suspended");
            } else {
                job.status.get_or_insert_with(Default::default).start_time = Some(Time(now));
                self.recorder
                    .publish_for(job, EventType::Normal, "Resumed", "Job resumed");
            }
        }
        changed
    }
}

/// Go's `omitempty` for counters: zero is left out.
pub(super) fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

/// `restartPolicy: OnFailure` pods restart in place: their restart counts are failures.
fn past_backoff_limit_on_failure(job: &Job, pods: &[Arc<Pod>]) -> bool {
    let spec = job.spec.as_ref();
    let restart_policy = spec
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.restart_policy.as_deref());
    if restart_policy != Some("OnFailure") {
        return false;
    }
    let limit = spec.and_then(|s| s.backoff_limit).unwrap_or(6);
    let restarts: i32 = pods
        .iter()
        .filter(|p| matches!(pods::phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .map(|s| {
            let sum = |v: &Option<Vec<k8s_openapi::api::core::v1::ContainerStatus>>| -> i32 {
                v.iter().flatten().map(|c| c.restart_count).sum()
            };
            sum(&s.init_container_statuses) + sum(&s.container_statuses)
        })
        .sum();
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

fn active_deadline(job: &Job) -> Option<(Timestamp, i64)> {
    if is_suspended(job) {
        return None;
    }
    let ads = job.spec.as_ref()?.active_deadline_seconds?;
    let start = job.status.as_ref()?.start_time.as_ref()?.0;
    Some((start, ads))
}

fn past_active_deadline(job: &Job, now: Timestamp) -> bool {
    active_deadline(job).is_some_and(|(start, ads)| {
        now.duration_since(start) >= jiff::SignedDuration::from_secs(ads)
    })
}

/// Time until the active deadline passes (when one is set and not yet passed).
fn deadline_left(job: &Job, now: Timestamp) -> Option<std::time::Duration> {
    let (start, ads) = active_deadline(job)?;
    let left = (start + jiff::SignedDuration::from_secs(ads)).duration_since(now);
    left.try_into().ok()
}

/// Succeeded indexes from the status, and those plus pods newly seen succeeded.
fn succeeded_indexes(job: &Job, pods: &[Arc<Pod>]) -> (Intervals, Intervals) {
    let completions = completions(job).unwrap_or(0).max(0) as usize;
    let prev = Intervals::parse(
        job.status
            .as_ref()
            .and_then(|s| s.completed_indexes.as_deref())
            .unwrap_or(""),
        completions,
    );
    let new = pods.iter().filter_map(|p| {
        let ix = indexed::completion_index(p)?;
        (pods::is_succeeded(p) && ix < completions && pods::has_tracking_finalizer(p)).then_some(ix)
    });
    let all = prev.with(new);
    (prev, all)
}

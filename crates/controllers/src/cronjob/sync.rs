//! One CronJob sync (upstream `sync`/`syncCronJob`/`cleanupFinishedJobs`).

use super::controller::{Controller, CronJobError, key_of};
use super::utils::{
    active, by_start_time, delete_from_active, in_active_list, job_from_template, job_name,
    job_ref, next_schedule_delay, next_schedule_time, schedule_for,
};
use crate::events::EventType;
use crate::job::apierrors::{is_already_exists, is_namespace_terminating, is_not_found};
use crate::job::pods::controller_of;
use crate::job::status::{COMPLETE, FAILED, finished_type, split_key};
use jiff::SignedDuration;
use jiff::tz::TimeZone;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use r8s_api::cron::Schedule;
use std::sync::Arc;
use std::time::Duration;

/// Outcome of the scheduling part of a sync.
struct Step {
    requeue: Option<Duration>,
    update: bool,
}

impl Controller {
    /// Sync one CronJob; returns when to look at it again.
    pub(super) async fn sync(&self, key: &str) -> Result<Option<Duration>, CronJobError> {
        let Some((ns, name)) = split_key(key) else {
            return Ok(None);
        };
        let Some(cached) = self.cronjobs.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(None);
        };
        // Jobs this CronJob controls (labels may have drifted; the reference is what counts).
        let jobs: Vec<Arc<Job>> = self
            .jobs
            .state()
            .into_iter()
            .filter(|j| j.metadata.namespace.as_deref() == Some(ns))
            .filter(|j| {
                controller_of(&j.metadata).is_some_and(|r| r.kind == "CronJob" && r.name == name)
            })
            .collect();
        let mut cj = (*cached).clone();
        let cleaned = self.cleanup_finished_jobs(&mut cj, &jobs).await;
        let (step, err) = match self.sync_cronjob(&mut cj, &jobs).await {
            Ok(step) => (step, None),
            Err((step, e)) => (step, Some(e)),
        };
        if cleaned || step.update {
            let api: Api<CronJob> = Api::namespaced(self.client.clone(), ns);
            api.replace_status(name, &PostParams::default(), &cj)
                .await?;
        }
        if step.requeue.is_some() {
            return Ok(step.requeue);
        }
        match err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    async fn sync_cronjob(
        &self,
        cj: &mut CronJob,
        jobs: &[Arc<Job>],
    ) -> Result<Step, (Step, CronJobError)> {
        let now = self.clock.now();
        let mut update = false;
        let ns = cj.metadata.namespace.clone().unwrap_or_default();
        let jobs_api: Api<Job> = Api::namespaced(self.client.clone(), &ns);
        macro_rules! fail {
            ($e:expr) => {
                return Err((
                    Step {
                        requeue: None,
                        update,
                    },
                    CronJobError::from($e),
                ))
            };
        }
        for j in jobs {
            let uid = j.metadata.uid.as_deref();
            let found = in_active_list(cj, uid);
            let finished = finished_type(j);
            if !found && finished.is_none() {
                // Maybe our own status update is not cached yet: check a fresh copy.
                let api: Api<CronJob> = Api::namespaced(self.client.clone(), &ns);
                let fresh = match api.get(cj.metadata.name.as_deref().unwrap_or("")).await {
                    Ok(f) => f,
                    Err(e) => fail!(e),
                };
                if in_active_list(&fresh, uid) {
                    *cj = fresh;
                    continue;
                }
                let jname = j.metadata.name.as_deref().unwrap_or("");
                self.recorder.publish_for(
                    cj,
                    EventType::Warning,
                    "UnexpectedJob",
                    &format!("Saw a job that the controller did not create or forgot: {jname}"),
                );
            } else if found && let Some(status) = finished {
                delete_from_active(cj, uid);
                let jname = j.metadata.name.as_deref().unwrap_or("");
                self.recorder.publish_for(
                    cj,
                    EventType::Normal,
                    "SawCompletedJob",
                    &format!("Saw completed job: {jname}, status: {status}"),
                );
                update = true;
            } else if finished == Some(COMPLETE) {
                // Not in the active list but succeeded: track its completion time.
                let done = j.status.as_ref().and_then(|s| s.completion_time.clone());
                let st = cj.status.get_or_insert_with(Default::default);
                if let Some(done) = done
                    && st
                        .last_successful_time
                        .as_ref()
                        .is_none_or(|t| done.0 > t.0)
                {
                    st.last_successful_time = Some(done);
                    update = true;
                }
            }
        }

        // Forget active Jobs that no longer exist (a slow cache is double-checked).
        let children: Vec<Option<&str>> = jobs.iter().map(|j| j.metadata.uid.as_deref()).collect();
        let missing: Vec<ObjectReference> = active(cj)
            .iter()
            .filter(|r| !children.contains(&r.uid.as_deref()))
            .cloned()
            .collect();
        for r in missing {
            match jobs_api.get(r.name.as_deref().unwrap_or("")).await {
                Err(e) if is_not_found(&e) => {
                    let jname = r.name.as_deref().unwrap_or("");
                    self.recorder.publish_for(
                        cj,
                        EventType::Normal,
                        "MissingJob",
                        &format!("Active job went missing: {jname}"),
                    );
                    delete_from_active(cj, r.uid.as_deref());
                    update = true;
                }
                Err(e) => fail!(e),
                Ok(_) => {}
            }
        }

        let done = |update| {
            Ok(Step {
                requeue: None,
                update,
            })
        };
        if cj.metadata.deletion_timestamp.is_some() {
            return done(update);
        }
        let spec = cj.spec.clone().unwrap_or_default();
        if let Some(tz) = &spec.time_zone
            && let Err(e) = TimeZone::get(tz)
        {
            self.recorder.publish_for(
                cj,
                EventType::Warning,
                "UnknownTimeZone",
                &format!("invalid timeZone: {tz:?}: {e}"),
            );
            return done(update);
        }
        if spec.suspend == Some(true) {
            return done(update);
        }
        let (text, tz) = schedule_for(cj, Some(&self.recorder));
        let sched = match Schedule::parse(&text, tz) {
            Ok(s) => s,
            Err(e) => {
                self.recorder.publish_for(
                    cj,
                    EventType::Warning,
                    "UnparseableSchedule",
                    &format!("unparseable schedule: {:?} : {e}", spec.schedule),
                );
                return done(update);
            }
        };
        let next = |cj: &CronJob| next_schedule_delay(cj, now, &sched);
        let scheduled = match next_schedule_time(cj, now, &sched, &self.recorder) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Ok(Step {
                    requeue: next(cj),
                    update,
                });
            }
            Err(e) => {
                self.recorder.publish_for(
                    cj,
                    EventType::Warning,
                    "InvalidSchedule",
                    &format!("invalid schedule: {} : {e}", spec.schedule),
                );
                return done(update);
            }
        };
        if let Some(sds) = spec.starting_deadline_seconds
            && scheduled + SignedDuration::from_secs(sds) < now
        {
            let when = scheduled
                .to_zoned(TimeZone::UTC)
                .strftime("%a, %d %b %Y %H:%M:%S %z")
                .to_string();
            self.recorder.publish_for(
                cj,
                EventType::Warning,
                "MissSchedule",
                &format!("Missed scheduled time to start a job: {when}"),
            );
            return Ok(Step {
                requeue: next(cj),
                update,
            });
        }
        let name = job_name(cj, scheduled);
        let last = cj
            .status
            .as_ref()
            .and_then(|s| s.last_schedule_time.as_ref())
            .map(|t| t.0);
        if active(cj)
            .iter()
            .any(|r| r.name.as_deref() == Some(name.as_str()))
            || last == Some(scheduled)
        {
            return Ok(Step {
                requeue: next(cj),
                update,
            });
        }
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        if policy == "Forbid" && !active(cj).is_empty() {
            self.recorder.publish_for(
                cj,
                EventType::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            );
            return Ok(Step {
                requeue: next(cj),
                update,
            });
        }
        if policy == "Replace" {
            for r in active(cj).to_vec() {
                let job = match jobs_api.get(r.name.as_deref().unwrap_or("")).await {
                    Ok(j) => j,
                    Err(e) => {
                        self.recorder.publish_for(
                            cj,
                            EventType::Warning,
                            "FailedGet",
                            &format!("Get job: {e}"),
                        );
                        fail!(e);
                    }
                };
                if !self.delete_job(cj, &job).await {
                    let jname = job.metadata.name.as_deref().unwrap_or("");
                    fail!(CronJobError::Sync(format!(
                        "could not replace job {ns}/{jname}"
                    )));
                }
                update = true;
            }
        }

        let created = match jobs_api
            .create(&PostParams::default(), &job_from_template(cj, scheduled))
            .await
        {
            Ok(job) => {
                self.recorder.publish_for(
                    cj,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created job {name}"),
                );
                job
            }
            Err(e) if is_namespace_terminating(&e) => fail!(e),
            Err(e) if is_already_exists(&e) => {
                // Created earlier but the status update was lost, or created by someone else.
                let job = match jobs_api.get(&name).await {
                    Ok(j) => j,
                    Err(e) => fail!(e),
                };
                let ours = controller_of(&job.metadata)
                    .is_some_and(|r| Some(r.uid.as_str()) == cj.metadata.uid.as_deref());
                if !ours || in_active_list(cj, job.metadata.uid.as_deref()) {
                    return Ok(Step {
                        requeue: next(cj),
                        update,
                    });
                }
                tracing::info!(cronjob = %key_of(cj), job = %name, "job already exists");
                job
            }
            Err(e) => {
                self.recorder.publish_for(
                    cj,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating job: {e}"),
                );
                fail!(e);
            }
        };
        let st = cj.status.get_or_insert_with(Default::default);
        st.active
            .get_or_insert_with(Vec::new)
            .push(job_ref(&created));
        st.last_schedule_time = Some(Time(scheduled));
        Ok(Step {
            requeue: next(cj),
            update: true,
        })
    }

    /// Delete finished Jobs beyond the history limits. Returns whether the status changed.
    async fn cleanup_finished_jobs(&self, cj: &mut CronJob, jobs: &[Arc<Job>]) -> bool {
        let spec = cj.spec.clone().unwrap_or_default();
        if spec.successful_jobs_history_limit.is_none() && spec.failed_jobs_history_limit.is_none()
        {
            return false;
        }
        let of = |t: &str| -> Vec<Arc<Job>> {
            jobs.iter()
                .filter(|j| finished_type(j) == Some(t))
                .cloned()
                .collect()
        };
        let mut update = false;
        for (mut list, limit) in [
            (of(COMPLETE), spec.successful_jobs_history_limit),
            (of(FAILED), spec.failed_jobs_history_limit),
        ] {
            let Some(limit) = limit else { continue };
            let extra = list.len().saturating_sub(limit.max(0) as usize);
            if extra == 0 {
                continue;
            }
            list.sort_by(by_start_time);
            for job in list.iter().take(extra) {
                if self.delete_job(cj, job).await {
                    update = true;
                }
            }
        }
        update
    }

    /// Delete a Job (pods in the background) and drop it from the active list.
    async fn delete_job(&self, cj: &mut CronJob, job: &Job) -> bool {
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let name = job.metadata.name.as_deref().unwrap_or("");
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        if let Err(e) = api.delete(name, &DeleteParams::background()).await {
            self.recorder.publish_for(
                cj,
                EventType::Warning,
                "FailedDelete",
                &format!("Deleted job: {e}"),
            );
            tracing::warn!(cronjob = %key_of(cj), job = %name, error = %e, "deleting job failed");
            return false;
        }
        delete_from_active(cj, job.metadata.uid.as_deref());
        self.recorder.publish_for(
            cj,
            EventType::Normal,
            "SuccessfulDelete",
            &format!("Deleted job {name}"),
        );
        true
    }
}

//! One CronJob sync (upstream `sync`/`syncCronJob`/`cleanupFinishedJobs`) and the
//! schedule-time arithmetic behind it.

use super::controller::{Controller, CronJobError, key_of};
use super::schedule::Schedule;
use crate::events::{EventType, Recorder};
use crate::job::apierrors::{is_already_exists, is_namespace_terminating, is_not_found};
use crate::job::pods::controller_of;
use crate::job::status::{COMPLETE, FAILED, finished_type, split_key};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;
use std::time::Duration;

/// Annotation with the schedule time a Job was created for (RFC 3339, CronJob's zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Requeue slack after the next schedule time (absorbs small clock skews).
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Missed {
    None,
    Few,
    Many,
}

/// The schedule to parse and its zone: `spec.timeZone` when valid, else the
/// controller's local zone. Schedules with their own `TZ=` are used as given (with a
/// warning event when `recorder` is set).
pub(super) fn schedule_for(cj: &CronJob, recorder: Option<&Recorder>) -> (String, TimeZone) {
    let spec = cj.spec.as_ref();
    let schedule = spec.map(|s| s.schedule.clone()).unwrap_or_default();
    if schedule.contains("TZ") {
        if let Some(r) = recorder {
            r.publish_for(
                cj,
                EventType::Warning,
                "UnsupportedSchedule",
                &format!("CRON_TZ or TZ used in schedule {schedule:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details"),
            );
        }
        return (schedule, TimeZone::system());
    }
    let tz = spec
        .and_then(|s| s.time_zone.as_deref())
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or_else(TimeZone::system);
    (schedule, tz)
}

/// The earliest time to look from (last schedule time or creation, pushed forward to
/// the starting deadline if asked), the most recent schedule time in (earliest, now],
/// and how many were missed.
pub(super) fn most_recent_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    include_starting_deadline: bool,
) -> Result<(Timestamp, Option<Timestamp>, Missed), String> {
    let created = cj.metadata.creation_timestamp.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    let status = cj.status.as_ref();
    let mut earliest = status
        .and_then(|s| s.last_schedule_time.as_ref())
        .map_or(created, |t| t.0);
    if include_starting_deadline
        && let Some(sds) = cj.spec.as_ref().and_then(|s| s.starting_deadline_seconds)
    {
        let deadline = now - SignedDuration::from_secs(sds);
        if deadline > earliest {
            earliest = deadline;
        }
    }
    let invalid = || "time difference between two schedules is less than 1 second".to_string();
    let t1 = sched.next(earliest).ok_or_else(invalid)?;
    let t2 = sched.next(t1).ok_or_else(invalid)?;
    if now < t1 {
        return Ok((earliest, None, Missed::None));
    }
    if now < t2 {
        return Ok((earliest, Some(t1), Missed::None));
    }
    // Roughly count the missed times from the gap between two schedules, then find
    // the most recent one by stepping from just before it.
    let gap = t2.duration_since(t1).round(jiff::Unit::Second).map_err(|e| e.to_string())?.as_secs();
    if gap < 1 {
        return Err(invalid());
    }
    let elapsed = now.duration_since(t1).as_secs();
    let missed = elapsed / gap + 1;
    let mut t = t1 + SignedDuration::from_secs((missed - 2) * gap);
    let mut most_recent = None;
    while let Some(n) = sched.next(t).filter(|n| *n <= now) {
        most_recent = Some(n);
        t = n;
    }
    let kind = if missed > 100 { Missed::Many } else { Missed::Few };
    Ok((earliest, most_recent, kind))
}

/// How long until the next schedule time (plus slack), counted from the last one.
pub(super) fn next_schedule_delay(cj: &CronJob, now: Timestamp, sched: &Schedule) -> Option<Duration> {
    let from = match most_recent_schedule_time(cj, now, sched, false) {
        Err(_) => now,
        Ok((_, Some(t), _)) => t,
        Ok((earliest, None, Missed::None)) => earliest,
        Ok((_, None, _)) => now,
    };
    let next = sched.next(from)?;
    let d = next.duration_since(now) + SignedDuration::try_from(NEXT_SCHEDULE_DELTA).ok()?;
    Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
}

/// The schedule time to run now, if any.
fn next_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    recorder: &Recorder,
) -> Result<Option<Timestamp>, String> {
    let (_, most_recent, missed) = most_recent_schedule_time(cj, now, sched, true)?;
    let Some(t) = most_recent.filter(|t| *t <= now) else {
        return Ok(None);
    };
    if missed == Missed::Many {
        recorder.publish_for(
            cj,
            EventType::Warning,
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
        );
        tracing::info!(cronjob = %key_of(cj), "too many missed times");
    }
    Ok(Some(t))
}

/// `<cronjob>-<minutes since the epoch>`: one name per schedule time.
pub(super) fn job_name(cj: &CronJob, t: Timestamp) -> String {
    format!("{}-{}", cj.metadata.name.as_deref().unwrap_or(""), t.as_second().div_euclid(60))
}

/// Go's RFC 3339 rendering (`Z` for a zero offset).
fn rfc3339_in(t: Timestamp, tz: TimeZone) -> String {
    let z = t.to_zoned(tz);
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

fn job_from_template(cj: &CronJob, scheduled: Timestamp) -> Job {
    let spec = cj.spec.as_ref();
    let tmeta = spec.and_then(|s| s.job_template.metadata.clone()).unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    // Without a time zone the annotation is in UTC (Go's LoadLocation("")).
    let tz = spec
        .and_then(|s| s.time_zone.as_deref())
        .and_then(|z| TimeZone::get(z).ok())
        .unwrap_or(TimeZone::UTC);
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339_in(scheduled, tz));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(cj, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: cj.metadata.name.clone().unwrap_or_default(),
                uid: cj.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(spec.and_then(|s| s.job_template.spec.clone()).unwrap_or_else(JobSpec::default)),
        status: None,
    }
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

fn active(cj: &CronJob) -> &[ObjectReference] {
    cj.status.as_ref().and_then(|s| s.active.as_deref()).unwrap_or(&[])
}

fn in_active_list(cj: &CronJob, uid: Option<&str>) -> bool {
    active(cj).iter().any(|r| r.uid.as_deref() == uid)
}

fn delete_from_active(cj: &mut CronJob, uid: Option<&str>) {
    if let Some(list) = cj.status.as_mut().and_then(|s| s.active.as_mut()) {
        list.retain(|r| r.uid.as_deref() != uid);
        if list.is_empty() {
            cj.status.get_or_insert_with(Default::default).active = None;
        }
    }
}

/// Finished Jobs oldest first: by start time (unset last), then name.
fn by_start_time(a: &Arc<Job>, b: &Arc<Job>) -> std::cmp::Ordering {
    let start = |j: &Job| j.status.as_ref().and_then(|s| s.start_time.as_ref()).map(|t| t.0);
    match (start(a), start(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        _ => a.metadata.name.cmp(&b.metadata.name),
    }
}

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
            .filter(|j| controller_of(&j.metadata).is_some_and(|r| r.kind == "CronJob" && r.name == name))
            .collect();
        let mut cj = (*cached).clone();
        let cleaned = self.cleanup_finished_jobs(&mut cj, &jobs).await;
        let (step, err) = match self.sync_cronjob(&mut cj, &jobs).await {
            Ok(step) => (step, None),
            Err((step, e)) => (step, Some(e)),
        };
        if cleaned || step.update {
            let api: Api<CronJob> = Api::namespaced(self.client.clone(), ns);
            api.replace_status(name, &PostParams::default(), &cj).await?;
        }
        if step.requeue.is_some() {
            return Ok(step.requeue);
        }
        match err {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    async fn sync_cronjob(&self, cj: &mut CronJob, jobs: &[Arc<Job>]) -> Result<Step, (Step, CronJobError)> {
        let now = self.clock.now();
        let mut update = false;
        let ns = cj.metadata.namespace.clone().unwrap_or_default();
        let jobs_api: Api<Job> = Api::namespaced(self.client.clone(), &ns);
        macro_rules! fail {
            ($e:expr) => {
                return Err((Step { requeue: None, update }, CronJobError::from($e)))
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
                    && st.last_successful_time.as_ref().is_none_or(|t| done.0 > t.0)
                {
                    st.last_successful_time = Some(done);
                    update = true;
                }
            }
        }

        // Forget active Jobs that no longer exist (a slow cache is double-checked).
        let children: Vec<Option<&str>> = jobs.iter().map(|j| j.metadata.uid.as_deref()).collect();
        let missing: Vec<ObjectReference> =
            active(cj).iter().filter(|r| !children.contains(&r.uid.as_deref())).cloned().collect();
        for r in missing {
            match jobs_api.get(r.name.as_deref().unwrap_or("")).await {
                Err(e) if is_not_found(&e) => {
                    let jname = r.name.as_deref().unwrap_or("");
                    self.recorder.publish_for(cj, EventType::Normal, "MissingJob", &format!("Active job went missing: {jname}"));
                    delete_from_active(cj, r.uid.as_deref());
                    update = true;
                }
                Err(e) => fail!(e),
                Ok(_) => {}
            }
        }

        let done = |update| Ok(Step { requeue: None, update });
        if cj.metadata.deletion_timestamp.is_some() {
            return done(update);
        }
        let spec = cj.spec.clone().unwrap_or_default();
        if let Some(tz) = &spec.time_zone
            && let Err(e) = TimeZone::get(tz)
        {
            self.recorder.publish_for(cj, EventType::Warning, "UnknownTimeZone", &format!("invalid timeZone: {tz:?}: {e}"));
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
            Ok(None) => return Ok(Step { requeue: next(cj), update }),
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
            let when = scheduled.to_zoned(TimeZone::UTC).strftime("%a, %d %b %Y %H:%M:%S %z").to_string();
            self.recorder.publish_for(cj, EventType::Warning, "MissSchedule", &format!("Missed scheduled time to start a job: {when}"));
            return Ok(Step { requeue: next(cj), update });
        }
        let name = job_name(cj, scheduled);
        let last = cj.status.as_ref().and_then(|s| s.last_schedule_time.as_ref()).map(|t| t.0);
        if active(cj).iter().any(|r| r.name.as_deref() == Some(name.as_str())) || last == Some(scheduled) {
            return Ok(Step { requeue: next(cj), update });
        }
        let policy = spec.concurrency_policy.as_deref().unwrap_or("Allow");
        if policy == "Forbid" && !active(cj).is_empty() {
            self.recorder.publish_for(
                cj,
                EventType::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            );
            return Ok(Step { requeue: next(cj), update });
        }
        if policy == "Replace" {
            for r in active(cj).to_vec() {
                let job = match jobs_api.get(r.name.as_deref().unwrap_or("")).await {
                    Ok(j) => j,
                    Err(e) => {
                        self.recorder.publish_for(cj, EventType::Warning, "FailedGet", &format!("Get job: {e}"));
                        fail!(e);
                    }
                };
                if !self.delete_job(cj, &job).await {
                    let jname = job.metadata.name.as_deref().unwrap_or("");
                    fail!(CronJobError::Sync(format!("could not replace job {ns}/{jname}")));
                }
                update = true;
            }
        }

        let created = match jobs_api.create(&PostParams::default(), &job_from_template(cj, scheduled)).await {
            Ok(job) => {
                self.recorder.publish_for(cj, EventType::Normal, "SuccessfulCreate", &format!("Created job {name}"));
                job
            }
            Err(e) if is_namespace_terminating(&e) => fail!(e),
            Err(e) if is_already_exists(&e) => {
                // Created earlier but the status update was lost, or created by someone else.
                let job = match jobs_api.get(&name).await {
                    Ok(j) => j,
                    Err(e) => fail!(e),
                };
                let ours = controller_of(&job.metadata).is_some_and(|r| Some(r.uid.as_str()) == cj.metadata.uid.as_deref());
                if !ours || in_active_list(cj, job.metadata.uid.as_deref()) {
                    return Ok(Step { requeue: next(cj), update });
                }
                tracing::info!(cronjob = %key_of(cj), job = %name, "job already exists");
                job
            }
            Err(e) => {
                self.recorder.publish_for(cj, EventType::Warning, "FailedCreate", &format!("Error creating job: {e}"));
                fail!(e);
            }
        };
        let st = cj.status.get_or_insert_with(Default::default);
        st.active.get_or_insert_with(Vec::new).push(job_ref(&created));
        st.last_schedule_time = Some(Time(scheduled));
        Ok(Step { requeue: next(cj), update: true })
    }

    /// Delete finished Jobs beyond the history limits. Returns whether the status changed.
    async fn cleanup_finished_jobs(&self, cj: &mut CronJob, jobs: &[Arc<Job>]) -> bool {
        let spec = cj.spec.clone().unwrap_or_default();
        if spec.successful_jobs_history_limit.is_none() && spec.failed_jobs_history_limit.is_none() {
            return false;
        }
        let of = |t: &str| -> Vec<Arc<Job>> { jobs.iter().filter(|j| finished_type(j) == Some(t)).cloned().collect() };
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
            self.recorder.publish_for(cj, EventType::Warning, "FailedDelete", &format!("Deleted job: {e}"));
            tracing::warn!(cronjob = %key_of(cj), job = %name, error = %e, "deleting job failed");
            return false;
        }
        delete_from_active(cj, job.metadata.uid.as_deref());
        self.recorder.publish_for(cj, EventType::Normal, "SuccessfulDelete", &format!("Deleted job {name}"));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{CronJobSpec, CronJobStatus};

    fn cj(created: &str, last: Option<&str>, sds: Option<i64>) -> CronJob {
        CronJob {
            metadata: ObjectMeta {
                name: Some("cj".into()),
                creation_timestamp: Some(Time(created.parse().expect("ts"))),
                ..Default::default()
            },
            spec: Some(CronJobSpec {
                schedule: "*/1 * * * *".into(),
                starting_deadline_seconds: sds,
                ..Default::default()
            }),
            status: Some(CronJobStatus {
                last_schedule_time: last.map(|l| Time(l.parse().expect("ts"))),
                ..Default::default()
            }),
        }
    }

    fn every_minute() -> Schedule {
        Schedule::parse("*/1 * * * *", TimeZone::UTC).expect("schedule")
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("ts")
    }

    #[test]
    fn most_recent_and_missed() {
        let s = every_minute();
        let c = cj("2024-01-01T10:00:30Z", None, None);
        let r = most_recent_schedule_time(&c, ts("2024-01-01T10:00:50Z"), &s, true).expect("ok");
        assert_eq!(r.1, None);
        let r = most_recent_schedule_time(&c, ts("2024-01-01T10:01:10Z"), &s, true).expect("ok");
        assert_eq!((r.1, r.2), (Some(ts("2024-01-01T10:01:00Z")), Missed::None));
        let r = most_recent_schedule_time(&c, ts("2024-01-01T10:05:10Z"), &s, true).expect("ok");
        assert_eq!((r.1, r.2), (Some(ts("2024-01-01T10:05:00Z")), Missed::Few));
        let r = most_recent_schedule_time(&c, ts("2024-01-01T14:00:10Z"), &s, true).expect("ok");
        assert_eq!((r.1, r.2), (Some(ts("2024-01-01T14:00:00Z")), Missed::Many));
        // A starting deadline hides older misses.
        let c = cj("2024-01-01T10:00:30Z", None, Some(5));
        let r = most_recent_schedule_time(&c, ts("2024-01-01T14:00:10Z"), &s, true).expect("ok");
        assert_eq!(r.1, None);
        let r = most_recent_schedule_time(&c, ts("2024-01-01T14:00:03Z"), &s, true).expect("ok");
        assert_eq!(r.1, Some(ts("2024-01-01T14:00:00Z")));
    }

    #[test]
    fn requeue_at_next_time() {
        let s = every_minute();
        let c = cj("2024-01-01T10:00:30Z", Some("2024-01-01T10:01:00Z"), None);
        let d = next_schedule_delay(&c, ts("2024-01-01T10:01:20Z"), &s).expect("delay");
        assert_eq!(d, Duration::from_millis(40_100));
    }

    #[test]
    fn names_and_annotations() {
        let c = cj("2024-01-01T10:00:30Z", None, None);
        let t = ts("2024-01-01T10:01:00Z");
        assert_eq!(job_name(&c, t), format!("cj-{}", t.as_second() / 60));
        let job = job_from_template(&c, t);
        let ann = job.metadata.annotations.expect("annotations");
        assert_eq!(ann.get(SCHEDULED_TIMESTAMP).map(String::as_str), Some("2024-01-01T10:01:00Z"));
        let tz = TimeZone::get("Asia/Kolkata").expect("tz");
        assert_eq!(rfc3339_in(t, tz), "2024-01-01T15:31:00+05:30");
    }
}

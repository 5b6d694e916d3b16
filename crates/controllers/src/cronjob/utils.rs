//! Schedule-time arithmetic and Job construction for the CronJob controller (upstream
//! `utils.go`).

use super::controller::key_of;
use crate::events::{EventType, Recorder};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use r8s_api::cron::Schedule;
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
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
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
    let gap = t2
        .duration_since(t1)
        .round(jiff::Unit::Second)
        .map_err(|e| e.to_string())?
        .as_secs();
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
    let kind = if missed > 100 {
        Missed::Many
    } else {
        Missed::Few
    };
    Ok((earliest, most_recent, kind))
}

/// How long until the next schedule time (plus slack), counted from the last one.
pub(super) fn next_schedule_delay(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
) -> Option<Duration> {
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
pub(super) fn next_schedule_time(
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
    format!(
        "{}-{}",
        cj.metadata.name.as_deref().unwrap_or(""),
        t.as_second().div_euclid(60)
    )
}

/// Go's RFC 3339 rendering (`Z` for a zero offset).
pub(super) fn rfc3339_in(t: Timestamp, tz: TimeZone) -> String {
    let z = t.to_zoned(tz);
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

pub(super) fn job_from_template(cj: &CronJob, scheduled: Timestamp) -> Job {
    let spec = cj.spec.as_ref();
    let tmeta = spec
        .and_then(|s| s.job_template.metadata.clone())
        .unwrap_or_default();
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
        spec: Some(
            spec.and_then(|s| s.job_template.spec.clone())
                .unwrap_or_default(),
        ),
        status: None,
    }
}

pub(super) fn job_ref(job: &Job) -> ObjectReference {
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

pub(super) fn active(cj: &CronJob) -> &[ObjectReference] {
    cj.status
        .as_ref()
        .and_then(|s| s.active.as_deref())
        .unwrap_or(&[])
}

pub(super) fn in_active_list(cj: &CronJob, uid: Option<&str>) -> bool {
    active(cj).iter().any(|r| r.uid.as_deref() == uid)
}

pub(super) fn delete_from_active(cj: &mut CronJob, uid: Option<&str>) {
    if let Some(list) = cj.status.as_mut().and_then(|s| s.active.as_mut()) {
        list.retain(|r| r.uid.as_deref() != uid);
        if list.is_empty() {
            cj.status.get_or_insert_with(Default::default).active = None;
        }
    }
}

/// Finished Jobs oldest first: by start time (unset last), then name.
pub(super) fn by_start_time(a: &Arc<Job>, b: &Arc<Job>) -> std::cmp::Ordering {
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    match (start(a), start(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        _ => a.metadata.name.cmp(&b.metadata.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{CronJobSpec, CronJobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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
        assert_eq!(
            ann.get(SCHEDULED_TIMESTAMP).map(String::as_str),
            Some("2024-01-01T10:01:00Z")
        );
        let tz = TimeZone::get("Asia/Kolkata").expect("tz");
        assert_eq!(rfc3339_in(t, tz), "2024-01-01T15:31:00+05:30");
    }
}

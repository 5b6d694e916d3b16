//! Job conditions and small spec/status accessors.

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const SUSPENDED: &str = "Suspended";

/// `spec.managedBy` value meaning "this controller".
pub const JOB_CONTROLLER_NAME: &str = "kubernetes.io/job-controller";

/// A condition with both timestamps at `now`.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: (!reason.is_empty()).then(|| reason.to_string()),
        message: (!message.is_empty()).then(|| message.to_string()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of `type_`, if present.
pub fn find<'a>(conds: &'a [JobCondition], type_: &str) -> Option<&'a JobCondition> {
    conds.iter().find(|c| c.type_ == type_)
}

fn conditions(job: &Job) -> &[JobCondition] {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or(&[])
}

/// The true condition of `type_`, if present.
pub fn true_condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    find(conditions(job), type_).filter(|c| c.status == "True")
}

/// `Complete` or `Failed` (whichever is true), if the Job finished.
pub fn finished_type(job: &Job) -> Option<&'static str> {
    conditions(job).iter().find_map(|c| {
        if c.status != "True" {
            return None;
        }
        match c.type_.as_str() {
            COMPLETE => Some(COMPLETE),
            FAILED => Some(FAILED),
            _ => None,
        }
    })
}

pub fn is_finished(job: &Job) -> bool {
    finished_type(job).is_some()
}

/// When the Job finished: the transition time of its finished condition.
pub fn finish_time(job: &Job) -> Option<Timestamp> {
    let ty = finished_type(job)?;
    find(conditions(job), ty)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// Set (or add) the condition; adding a False condition that does not exist is a no-op.
/// Returns whether anything changed.
pub fn ensure(
    conds: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let want = new_condition(type_, status, reason, message, now);
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status != want.status || c.reason != want.reason || c.message != want.message {
            *c = want;
            return true;
        }
        return false;
    }
    if status != "False" {
        conds.push(want);
        return true;
    }
    false
}

pub fn is_suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

/// The controller named in `spec.managedBy` when it is not this one.
pub fn managed_externally(job: &Job) -> Option<&str> {
    job.spec
        .as_ref()
        .and_then(|s| s.managed_by.as_deref())
        .filter(|m| *m != JOB_CONTROLLER_NAME)
}

/// `namespace/name`.
pub fn key_of(job: &Job) -> String {
    format!(
        "{}/{}",
        job.metadata.namespace.as_deref().unwrap_or(""),
        job.metadata.name.as_deref().unwrap_or("")
    )
}

/// Split `namespace/name`.
pub fn split_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_condition_rules() {
        let now = Timestamp::now();
        let mut c = Vec::new();
        assert!(!ensure(
            &mut c,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert!(c.is_empty());
        assert!(ensure(
            &mut c,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(!ensure(
            &mut c,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now
        ));
        assert!(ensure(
            &mut c,
            SUSPENDED,
            "False",
            "JobResumed",
            "Job resumed",
            now
        ));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, "False");
    }

    #[test]
    fn keys() {
        assert_eq!(split_key("ns/a"), Some(("ns", "a")));
        assert_eq!(split_key("a"), None);
        assert_eq!(split_key("/a"), None);
    }
}

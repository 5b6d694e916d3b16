//! Deployment conditions (upstream `deployment_util` condition helpers and reasons).

use super::util::progress_deadline;
use crate::replicaset::pods::now_time;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSetCondition,
};

/// Condition types.
pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Progressing reasons.
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";

/// Available reasons.
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// A condition stamped now.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> DeploymentCondition {
    let now = now_time();
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// The condition of `type_`, if present.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Set a condition (upstream `SetDeploymentCondition`): no-op if status and reason are
/// unchanged; keeps the transition time if only the reason changed; the condition moves
/// to the end of the list.
pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    if let Some(cur) = get_condition(status, &cond.type_) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    let conds = status.conditions.get_or_insert_with(Vec::new);
    conds.retain(|c| c.type_ != cond.type_);
    conds.push(cond);
}

/// Remove the condition of `type_`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_ != type_);
    }
}

/// A ReplicaSet condition as a Deployment condition.
pub fn from_rs_condition(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_update_time: c.last_transition_time.clone(),
        last_transition_time: c.last_transition_time.clone(),
    }
}

/// The rollout is done: every replica updated and available, generation observed.
pub fn deployment_complete(d: &Deployment, st: &DeploymentStatus) -> bool {
    let want = super::util::d_replicas(d);
    st.updated_replicas.unwrap_or(0) == want
        && st.replicas.unwrap_or(0) == want
        && st.available_replicas.unwrap_or(0) == want
        && st.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Something moved since the last status: more updated/ready/available replicas or fewer
/// old ones.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

/// No progress for longer than the deadline since the Progressing condition last changed.
pub fn deployment_timed_out(d: &Deployment, st: &DeploymentStatus) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(cond) = get_condition(st, PROGRESSING) else {
        return false;
    };
    match cond.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => cond.last_update_time.as_ref().is_some_and(|t| {
            t.0 + k8s_openapi::jiff::SignedDuration::from_secs(i64::from(deadline))
                < k8s_openapi::jiff::Timestamp::now()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Option<Time> {
        Timestamp::from_second(secs).ok().map(Time)
    }

    #[test]
    fn set_condition_keeps_transition_time_and_moves_last() {
        let mut st = DeploymentStatus::default();
        let mut p = new_condition(PROGRESSING, "True", NEW_RS_CREATED, "created");
        p.last_transition_time = at(100);
        set_condition(&mut st, p);
        set_condition(
            &mut st,
            new_condition(AVAILABLE, "False", MIN_UNAVAILABLE, "no"),
        );
        // Same status and reason: untouched.
        set_condition(
            &mut st,
            new_condition(PROGRESSING, "True", NEW_RS_CREATED, "again"),
        );
        assert_eq!(
            get_condition(&st, PROGRESSING).and_then(|c| c.message.clone()),
            Some("created".into())
        );
        // New reason, same status: transition time kept, moved to the end.
        set_condition(
            &mut st,
            new_condition(PROGRESSING, "True", RS_UPDATED, "moving"),
        );
        let conds = st.conditions.clone().unwrap_or_default();
        assert_eq!(
            conds.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            vec![AVAILABLE, PROGRESSING]
        );
        assert_eq!(conds[1].last_transition_time, at(100));
        // New status: new transition time.
        set_condition(
            &mut st,
            new_condition(PROGRESSING, "False", TIMED_OUT, "late"),
        );
        assert_ne!(
            get_condition(&st, PROGRESSING).and_then(|c| c.last_transition_time.clone()),
            at(100)
        );
        remove_condition(&mut st, PROGRESSING);
        assert!(get_condition(&st, PROGRESSING).is_none());
    }

    #[test]
    fn timed_out_after_deadline_without_progress() {
        let mut d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": 1, "progressDeadlineSeconds": 10, "selector": {},
                     "template": {}},
        }))
        .expect("deployment");
        let mut st = DeploymentStatus::default();
        let mut c = new_condition(PROGRESSING, "True", RS_UPDATED, "moving");
        c.last_update_time = at(Timestamp::now().as_second() - 60);
        set_condition(&mut st, c);
        assert!(deployment_timed_out(&d, &st));
        let mut fresh = DeploymentStatus::default();
        set_condition(
            &mut fresh,
            new_condition(PROGRESSING, "True", RS_UPDATED, "moving"),
        );
        assert!(!deployment_timed_out(&d, &fresh));
        if let Some(s) = d.spec.as_mut() {
            s.progress_deadline_seconds = Some(i32::MAX);
        }
        assert!(!deployment_timed_out(&d, &st), "MaxInt32 means no deadline");
    }
}

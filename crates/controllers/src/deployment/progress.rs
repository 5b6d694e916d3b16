//! Rollout status and the progress deadline (upstream `progress.go`).

use super::conditions::{
    NEW_RS_AVAILABLE, PROGRESSING, REPLICA_FAILURE, RS_UPDATED, TIMED_OUT, deployment_complete,
    deployment_progressing, deployment_timed_out, from_rs_condition, get_condition, new_condition,
    remove_condition, set_condition,
};
use super::plan::{calculate_status, normalized};
use super::util::progress_deadline;
use super::{Controller, SyncError};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::time::Duration;

/// The first ReplicaFailure condition, from the new ReplicaSet before the old ones.
fn replica_failure(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Option<DeploymentCondition> {
    let failure = |rs: &ReplicaSet| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .map(from_rs_condition)
    };
    new_rs
        .and_then(failure)
        .or_else(|| all.iter().find_map(|rs| failure(rs)))
}

/// When to look at a stalled rollout again to see whether its deadline passed (upstream
/// `requeueStuckDeployment`): `None` when no check is needed.
fn requeue_stuck(d: &Deployment, new: &DeploymentStatus) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let cond = get_condition(d.status.as_ref()?, PROGRESSING)?;
    if deployment_complete(d, new) || cond.reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let last = cond.last_update_time.as_ref()?.0;
    let due = last + SignedDuration::from_secs(i64::from(deadline));
    let after = due.duration_since(Timestamp::now());
    if after < SignedDuration::from_secs(1) {
        // Nearly (or already) due: look again soon.
        return Some(Duration::from_millis(100));
    }
    // One extra second absorbs the sub-second truncation of the stored timestamps.
    Some(Duration::try_from(after).unwrap_or_default() + Duration::from_secs(1))
}

impl Controller {
    /// Update the status during a rollout, including the Progressing condition; returns
    /// when to check the progress deadline again, if needed.
    pub(super) async fn sync_rollout_status(
        &self,
        all: &[&ReplicaSet],
        new_rs: Option<&ReplicaSet>,
        d: &mut Deployment,
    ) -> Result<Option<Duration>, SyncError> {
        let mut st = calculate_status(all, new_rs, d);
        let has_deadline = progress_deadline(d).is_some();
        if !has_deadline {
            remove_condition(&mut st, PROGRESSING);
        }
        let current = d
            .status
            .as_ref()
            .and_then(|s| get_condition(s, PROGRESSING))
            .cloned();
        let complete = st.replicas == st.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
        let name = d.metadata.name.clone().unwrap_or_default();
        let rs_name = new_rs.and_then(|rs| rs.metadata.name.clone());
        if has_deadline && !complete {
            if deployment_complete(d, &st) {
                let msg = match &rs_name {
                    Some(n) => format!("ReplicaSet {n:?} has successfully progressed."),
                    None => format!("Deployment {name:?} has successfully progressed."),
                };
                set_condition(
                    &mut st,
                    new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, &msg),
                );
            } else if deployment_progressing(d, &st) {
                let msg = match &rs_name {
                    Some(n) => format!("ReplicaSet {n:?} is progressing."),
                    None => format!("Deployment {name:?} is progressing."),
                };
                let mut cond = new_condition(PROGRESSING, "True", RS_UPDATED, &msg);
                // Progress refreshes lastUpdateTime even with the same reason; the
                // transition time stays while the status stays True.
                if let Some(cur) = &current {
                    if cur.status == "True" {
                        cond.last_transition_time = cur.last_transition_time.clone();
                    }
                    remove_condition(&mut st, PROGRESSING);
                }
                set_condition(&mut st, cond);
            } else if deployment_timed_out(d, &st) {
                let msg = match &rs_name {
                    Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
                    None => format!("Deployment {name:?} has timed out progressing."),
                };
                set_condition(
                    &mut st,
                    new_condition(PROGRESSING, "False", TIMED_OUT, &msg),
                );
            }
        }
        match replica_failure(all, new_rs) {
            Some(c) => set_condition(&mut st, c),
            None => remove_condition(&mut st, REPLICA_FAILURE),
        }
        if st.conditions.as_ref().is_some_and(|c| c.is_empty()) {
            st.conditions = None;
        }
        if normalized(d.status.as_ref()) == st {
            return Ok(requeue_stuck(d, &st));
        }
        d.status = Some(st);
        self.write_status(d, false).await?;
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::conditions::RS_UPDATED;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn deployment(reason: &str, updated_secs_ago: i64) -> Deployment {
        let mut d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 60, "selector": {}, "template": {}},
        }))
        .expect("deployment");
        let mut c = new_condition(PROGRESSING, "True", reason, "m");
        c.last_update_time =
            Timestamp::from_second(Timestamp::now().as_second() - updated_secs_ago)
                .ok()
                .map(Time);
        let mut st = DeploymentStatus::default();
        set_condition(&mut st, c);
        d.status = Some(st);
        d
    }

    #[test]
    fn stalled_rollouts_are_checked_at_the_deadline() {
        let pending = DeploymentStatus::default();
        let d = deployment(RS_UPDATED, 20);
        let after = requeue_stuck(&d, &pending).expect("requeue");
        assert!(
            after > Duration::from_secs(35) && after <= Duration::from_secs(42),
            "{after:?}"
        );
        // Past the deadline: right away.
        let d = deployment(RS_UPDATED, 120);
        assert!(requeue_stuck(&d, &pending).is_some_and(|a| a < Duration::from_secs(1)));
        // Already timed out, or no deadline: nothing to check.
        assert!(requeue_stuck(&deployment(TIMED_OUT, 120), &pending).is_none());
        let mut d = deployment(RS_UPDATED, 20);
        if let Some(s) = d.spec.as_mut() {
            s.progress_deadline_seconds = None;
        }
        assert!(requeue_stuck(&d, &pending).is_none());
    }
}

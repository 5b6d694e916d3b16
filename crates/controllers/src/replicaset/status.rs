//! ReplicaSet status: counts over the owned active pods and the `ReplicaFailure` condition
//! (upstream `calculateStatus` / `updateReplicaSetStatus`).

use super::SyncError;
use super::pods::{is_available, is_ready, now_time};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use std::sync::Arc;

/// Condition type set while pods cannot be created or deleted.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// `Some(n)` unless zero: how Go's `omitempty` serializes these counters, so statuses
/// compare equal after a round trip through the API server.
pub fn nonzero(n: i32) -> Option<i32> {
    (n != 0).then_some(n)
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The status `rs` should have given its owned active pods and the outcome of managing
/// them.
pub fn calculate(rs: &ReplicaSet, owned: &[Arc<Pod>], manage_err: Option<&SyncError>) -> ReplicaSetStatus {
    let mut st = rs.status.clone().unwrap_or_default();
    let spec = rs.spec.clone().unwrap_or_default();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = Timestamp::now();
    let (mut fully_labeled, mut ready, mut available) = (0, 0, 0);
    for pod in owned {
        let labels = pod.metadata.labels.as_ref();
        if template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            fully_labeled += 1;
        }
        if is_ready(pod) {
            ready += 1;
            if is_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    st.replicas = count(owned.len());
    st.fully_labeled_replicas = nonzero(count(fully_labeled));
    st.ready_replicas = nonzero(count(ready));
    st.available_replicas = nonzero(count(available));
    let has_failure = st
        .conditions
        .as_ref()
        .is_some_and(|c| c.iter().any(|c| c.type_ == REPLICA_FAILURE));
    match manage_err {
        Some(err) if !has_failure => {
            let want = spec.replicas.unwrap_or(1);
            let reason = match count(owned.len()).cmp(&want) {
                std::cmp::Ordering::Less => "FailedCreate",
                std::cmp::Ordering::Greater => "FailedDelete",
                std::cmp::Ordering::Equal => "",
            };
            st.conditions.get_or_insert_with(Vec::new).push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: (!reason.is_empty()).then(|| reason.to_string()),
                message: Some(err.to_string()),
                last_transition_time: Some(now_time()),
            });
        }
        None if has_failure => {
            if let Some(c) = st.conditions.as_mut() {
                c.retain(|c| c.type_ != REPLICA_FAILURE);
            }
            if st.conditions.as_ref().is_some_and(|c| c.is_empty()) {
                st.conditions = None;
            }
        }
        _ => {}
    }
    st
}

/// Write `status` unless nothing changed; one retry on a fresh copy after a conflict.
pub async fn update(api: &Api<ReplicaSet>, rs: &ReplicaSet, mut status: ReplicaSetStatus) -> Result<ReplicaSet, SyncError> {
    let old = rs.status.clone().unwrap_or_default();
    let generation = rs.metadata.generation;
    if old.replicas == status.replicas
        && old.fully_labeled_replicas.unwrap_or(0) == status.fully_labeled_replicas.unwrap_or(0)
        && old.ready_replicas.unwrap_or(0) == status.ready_replicas.unwrap_or(0)
        && old.available_replicas.unwrap_or(0) == status.available_replicas.unwrap_or(0)
        && old.observed_generation == generation
        && old.conditions.clone().unwrap_or_default() == status.conditions.clone().unwrap_or_default()
    {
        return Ok(rs.clone());
    }
    status.observed_generation = generation;
    let name = rs.metadata.name.clone().unwrap_or_default();
    let mut target = rs.clone();
    let mut retried = false;
    loop {
        target.status = Some(status.clone());
        match api.replace_status(&name, &PostParams::default(), &target).await {
            Ok(updated) => return Ok(updated),
            Err(e) if retried => return Err(e.into()),
            Err(_) => {
                retried = true;
                target = api.get(&name).await?;
            }
        }
    }
}

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
pub fn calculate(
    rs: &ReplicaSet,
    owned: &[Arc<Pod>],
    manage_err: Option<&SyncError>,
) -> ReplicaSetStatus {
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
            st.conditions
                .get_or_insert_with(Vec::new)
                .push(ReplicaSetCondition {
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
pub async fn update(
    api: &Api<ReplicaSet>,
    rs: &ReplicaSet,
    mut status: ReplicaSetStatus,
) -> Result<ReplicaSet, SyncError> {
    let old = rs.status.clone().unwrap_or_default();
    let generation = rs.metadata.generation;
    if old.replicas == status.replicas
        && old.fully_labeled_replicas.unwrap_or(0) == status.fully_labeled_replicas.unwrap_or(0)
        && old.ready_replicas.unwrap_or(0) == status.ready_replicas.unwrap_or(0)
        && old.available_replicas.unwrap_or(0) == status.available_replicas.unwrap_or(0)
        && old.observed_generation == generation
        && old.conditions.clone().unwrap_or_default()
            == status.conditions.clone().unwrap_or_default()
    {
        return Ok(rs.clone());
    }
    status.observed_generation = generation;
    let name = rs.metadata.name.clone().unwrap_or_default();
    let mut target = rs.clone();
    let mut retried = false;
    loop {
        target.status = Some(status.clone());
        match api
            .replace_status(&name, &PostParams::default(), &target)
            .await
        {
            Ok(updated) => return Ok(updated),
            Err(e) if retried => return Err(e.into()),
            Err(_) => {
                retried = true;
                target = api.get(&name).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(conditions: serde_json::Value) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "rs", "generation": 3},
            "spec": {"replicas": 3, "minReadySeconds": 0, "selector": {"matchLabels": {"app": "a"}},
                     "template": {"metadata": {"labels": {"app": "a", "tier": "t"}}}},
            "status": {"replicas": 0, "conditions": conditions},
        }))
        .expect("rs")
    }

    fn pod(labels: serde_json::Value, ready: bool) -> Arc<Pod> {
        let status = if ready { "True" } else { "False" };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "p", "labels": labels},
                "status": {"conditions": [{"type": "Ready", "status": status,
                                           "lastTransitionTime": "2024-01-01T00:00:00Z"}]},
            }))
            .expect("pod"),
        )
    }

    #[test]
    fn counts_and_failure_condition() {
        let pods = vec![
            pod(json!({"app": "a", "tier": "t"}), true),
            pod(json!({"app": "a"}), true),
        ];
        let err = SyncError::Invalid("quota exceeded".into());
        let st = calculate(&rs(json!([])), &pods, Some(&err));
        assert_eq!(st.replicas, 2);
        assert_eq!(st.fully_labeled_replicas, Some(1));
        assert_eq!(st.ready_replicas, Some(2));
        assert_eq!(st.available_replicas, Some(2));
        let c = st.conditions.clone().unwrap_or_default();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].type_, REPLICA_FAILURE);
        assert_eq!(c[0].reason.as_deref(), Some("FailedCreate"));
        assert_eq!(c[0].message.as_deref(), Some("quota exceeded"));
        // Success clears it.
        let failing = rs(serde_json::to_value(&c).expect("json"));
        let st = calculate(&failing, &pods, None);
        assert!(st.conditions.is_none());
        // Nothing ready: counters omitted.
        let st = calculate(&rs(json!([])), &[pod(json!({"app": "a"}), false)], None);
        assert_eq!((st.ready_replicas, st.available_replicas), (None, None));
    }
}

//! HPA status: conditions as upstream's `setCondition` keeps them (lastTransitionTime moves
//! only when the status does), and the patch that writes a status.

use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// Whether the controller can read and write the target's scale.
pub const ABLE_TO_SCALE: &str = "AbleToScale";
/// Whether a replica count could be computed from the metrics.
pub const SCALING_ACTIVE: &str = "ScalingActive";
/// Whether the count was held back by min/max or the scaling rate.
pub const SCALING_LIMITED: &str = "ScalingLimited";

/// Set condition `type_` (added if absent).
pub fn set_condition(
    status: &mut HorizontalPodAutoscalerStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let i = match conditions.iter().position(|c| c.type_ == type_) {
        Some(i) => i,
        None => {
            conditions.push(HorizontalPodAutoscalerCondition {
                type_: type_.to_string(),
                ..Default::default()
            });
            conditions.len() - 1
        }
    };
    let c = &mut conditions[i];
    let value = if value { "True" } else { "False" };
    if c.status != value {
        c.last_transition_time = Some(Time(now));
    }
    c.status = value.to_string();
    c.reason = Some(reason.to_string());
    c.message = Some(message.to_string());
}

/// Condition `type_`, if set.
pub fn condition<'a>(
    status: &'a HorizontalPodAutoscalerStatus,
    type_: &str,
) -> Option<&'a HorizontalPodAutoscalerCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// A merge patch replacing the whole status: fields the status lacks are written as
/// `null`, so a cleared one (e.g. `currentMetrics` when scaling is disabled) is cleared
/// on the server too.
pub fn status_patch(status: &HorizontalPodAutoscalerStatus) -> Value {
    let mut body = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let Some(map) = body.as_object_mut() {
        for field in [
            "currentMetrics",
            "conditions",
            "lastScaleTime",
            "currentReplicas",
        ] {
            map.entry(field).or_insert(Value::Null);
        }
    }
    json!({ "status": body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::SignedDuration;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let t0: Timestamp = "2026-11-28T12:00:00Z".parse().unwrap();
        let t1 = t0 + SignedDuration::from_secs(60);
        let mut st = HorizontalPodAutoscalerStatus::default();
        set_condition(&mut st, ABLE_TO_SCALE, true, "SucceededGetScale", "m1", t0);
        set_condition(&mut st, ABLE_TO_SCALE, true, "ReadyForNewScale", "m2", t1);
        let c = condition(&st, ABLE_TO_SCALE).unwrap();
        assert_eq!(c.last_transition_time, Some(Time(t0)));
        assert_eq!(c.reason.as_deref(), Some("ReadyForNewScale"));
        assert_eq!(c.message.as_deref(), Some("m2"));
        set_condition(&mut st, ABLE_TO_SCALE, false, "FailedGetScale", "m3", t1);
        let c = condition(&st, ABLE_TO_SCALE).unwrap();
        assert_eq!(c.last_transition_time, Some(Time(t1)));
        assert_eq!(c.status, "False");
        set_condition(&mut st, SCALING_ACTIVE, true, "ValidMetricFound", "m", t1);
        assert_eq!(st.conditions.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn the_patch_clears_what_the_status_lacks() {
        let st = HorizontalPodAutoscalerStatus {
            desired_replicas: 3,
            current_replicas: Some(2),
            observed_generation: Some(1),
            ..Default::default()
        };
        let p = status_patch(&st);
        assert_eq!(p["status"]["desiredReplicas"], 3);
        assert_eq!(p["status"]["currentReplicas"], 2);
        assert_eq!(p["status"]["currentMetrics"], Value::Null);
        assert!(
            p["status"]
                .as_object()
                .unwrap()
                .contains_key("currentMetrics")
        );
    }
}

//! Conversion between served versions and the storage version of a resource. Two
//! resources need it:
//!
//! - HorizontalPodAutoscaler, served as autoscaling/v1 and v2 and stored as v2 ([`hpa`]).
//!   The v1 view has only the CPU utilization target as a field; the rest of v2 travels in
//!   upstream's `autoscaling.alpha.kubernetes.io/*` annotations, so a v1 read-modify-write
//!   keeps it.
//! - Event, served as core/v1 and events.k8s.io/v1 and stored as core/v1 ([`event`]).

mod event;
mod hpa;

use crate::catalog::ResourceInfo;
use serde_json::Value;

/// Convert an object written through `info`'s version into the storage version.
pub fn to_storage(info: &ResourceInfo, obj: &mut Value) {
    if is_hpa_v1(info) {
        hpa::to_v2(obj);
    } else if is_events_v1(info) {
        event::to_core(obj);
    }
}

/// Whether objects served through `info` differ from their stored form (so callers that
/// need both keep two copies only then).
pub fn is_converted(info: &ResourceInfo) -> bool {
    is_hpa_v1(info) || is_events_v1(info)
}

/// Convert a stored object into `info`'s (served) version.
pub fn from_storage(info: &ResourceInfo, obj: &mut Value) {
    if is_hpa_v1(info) {
        hpa::to_v1(obj);
    } else if is_events_v1(info) {
        event::from_core(obj);
    }
}

fn is_events_v1(info: &ResourceInfo) -> bool {
    info.group == "events.k8s.io" && info.kind == "Event"
}

fn is_hpa_v1(info: &ResourceInfo) -> bool {
    info.group == "autoscaling" && info.kind == "HorizontalPodAutoscaler" && info.version == "v1"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(version: &str) -> &'static ResourceInfo {
        crate::catalog::find("autoscaling", version, "horizontalpodautoscalers").expect("hpa")
    }

    #[test]
    fn v1_round_trips_through_v2_storage() {
        let mut v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                     "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50},
            "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 20}
        });
        let original = v1.clone();
        to_storage(info("v1"), &mut v1);
        assert_eq!(v1["apiVersion"], "autoscaling/v2");
        assert_eq!(
            v1["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        assert!(v1["spec"].get("targetCPUUtilizationPercentage").is_none());
        from_storage(info("v1"), &mut v1);
        // The CPU status also travels in full (raw value and all), as upstream's does.
        let key = "autoscaling.alpha.kubernetes.io/current-metrics";
        let current: Value =
            serde_json::from_str(v1["metadata"]["annotations"][key].as_str().expect(key))
                .expect("JSON");
        assert_eq!(
            current,
            json!([{"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 20}}])
        );
        let shown = v1.clone();
        let mut want = original;
        want["metadata"]["annotations"] = shown["metadata"]["annotations"].clone();
        assert_eq!(v1, want);
        to_storage(info("v1"), &mut v1);
        from_storage(info("v1"), &mut v1);
        assert_eq!(v1, shown);
    }

    #[test]
    fn events_convert_only_for_events_k8s_io() {
        let new = crate::catalog::find("events.k8s.io", "v1", "events").expect("events");
        let core = crate::catalog::find("", "v1", "events").expect("core events");
        let mut ev = json!({"apiVersion": "events.k8s.io/v1", "note": "n"});
        to_storage(new, &mut ev);
        assert_eq!(ev, json!({"apiVersion": "v1", "message": "n"}));
        let stored = ev.clone();
        to_storage(core, &mut ev);
        from_storage(core, &mut ev);
        assert_eq!(ev, stored);
        from_storage(new, &mut ev);
        assert_eq!(ev, json!({"apiVersion": "events.k8s.io/v1", "note": "n"}));
    }

    #[test]
    fn v2_objects_are_untouched_for_v2_clients() {
        let mut v2 = json!({"apiVersion": "autoscaling/v2", "spec": {"metrics": []}});
        let before = v2.clone();
        to_storage(info("v2"), &mut v2);
        from_storage(info("v2"), &mut v2);
        assert_eq!(v2, before);
    }
}

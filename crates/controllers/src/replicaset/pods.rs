//! Pod predicates and the scale-down ordering shared by the workload controllers
//! (upstream `pkg/controller/controller_utils.go` and `podutil`): active/ready/available,
//! building a pod from a template, and which pods to delete first.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::cmp::Ordering;

/// Annotation that biases which pods go first on scale-down (lower cost first).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Not finished and not being deleted (upstream `IsPodActive`).
pub fn is_active(pod: &Pod) -> bool {
    let phase = phase(pod);
    phase != "Succeeded" && phase != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

pub use crate::util::podutil::{is_terminating, phase};

/// The node the pod is bound to (`""` when unscheduled).
pub fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// When the Ready condition last became True, if the pod is ready.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let conds = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conds.iter().find(|c| c.type_ == "Ready")?;
    (c.status == "True").then(|| c.last_transition_time.as_ref().map(|t| t.0))
}

/// The Ready condition is True (upstream `IsPodReady`).
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` (upstream `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(t)) => t + SignedDuration::from_secs(i64::from(min_ready_seconds)) < now,
    }
}

/// The current time truncated to seconds, as API timestamps are stored.
pub fn now_time() -> Time {
    Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// A pod to create from `template` for the controller named `owner_name` (upstream
/// `GetPodFromTemplate`): template labels/annotations/finalizers, `generateName
/// <owner>-`, the controller reference.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    owner_name: &str,
    controller_ref: OwnerReference,
) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{owner_name}-")),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![controller_ref]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" => 1,
        "Unknown" => 2,
        "Running" => 3,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// floor(log2(now - t in ns)), -1 for t not in the past: pods of similar age compare equal,
/// so ties fall to UID order and scale-down is spread semi-randomly (LogarithmicScaleDown).
fn log_rank(t: Timestamp, now: Timestamp) -> i64 {
    let d = now.duration_since(t).as_nanos();
    if d > 0 { (d as f64).log2() as i64 } else { -1 }
}

/// Later (or unknown) time first, on the logarithmic scale. A key comparison (equal ranks
/// are equal), so the criteria chain in [`deletion_order`] stays a total order.
fn newer_first(a: Option<Timestamp>, b: Option<Timestamp>, now: Timestamp) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => log_rank(x, now).cmp(&log_rank(y, now)),
    }
}

fn uid(p: &Pod) -> &str {
    p.metadata.uid.as_deref().unwrap_or("")
}

/// Upstream `ActivePodsWithRanks.Less` as an ordering: pods to delete first sort first.
/// `rank` is the number of related active pods on the same node ("doubled up" first).
pub fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> Ordering {
    // 1. Unassigned before assigned.
    let (na, nb) = (node_name(a), node_name(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending < Unknown < Running.
    let o = phase_ordinal(a).cmp(&phase_ordinal(b));
    if o != Ordering::Equal {
        return o;
    }
    // 3. Not ready before ready.
    let (ra, rb) = (is_ready(a), is_ready(b));
    if ra != rb {
        return if ra {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    // 4. Lower pod-deletion-cost first.
    let o = deletion_cost(a).cmp(&deletion_cost(b));
    if o != Ordering::Equal {
        return o;
    }
    // 5. More colocated related pods first.
    let o = rank_b.cmp(&rank_a);
    if o != Ordering::Equal {
        return o;
    }
    // 6. Ready for less time first.
    if ra && rb {
        let o = newer_first(ready_since(a).flatten(), ready_since(b).flatten(), now);
        if o != Ordering::Equal {
            return o;
        }
    }
    // 7. More container restarts first.
    let o = max_restarts(b).cmp(&max_restarts(a));
    if o != Ordering::Equal {
        return o;
    }
    // 8. Newer (or unknown) creation first.
    let ca = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let cb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let o = newer_first(ca, cb, now);
    if o != Ordering::Equal {
        return o;
    }
    // 9. Stable tie-break, so equal pods never flip between syncs.
    uid(a).cmp(uid(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: &str, phase: &str, ready_at: Option<i64>, created: i64) -> Pod {
        let ts = |s: i64| {
            Timestamp::from_second(s)
                .map(|t| t.to_string())
                .unwrap_or_default()
        };
        let mut conds = Vec::new();
        if let Some(t) = ready_at {
            conds.push(json!({"type": "Ready", "status": "True", "lastTransitionTime": ts(t)}));
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name, "creationTimestamp": ts(created)},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase, "conditions": conds},
        }))
        .expect("pod")
    }

    const NOW: i64 = 1_700_000_000;

    fn first(a: &Pod, b: &Pod) -> bool {
        let now = Timestamp::from_second(NOW).unwrap_or(Timestamp::UNIX_EPOCH);
        deletion_order(a, 0, b, 0, now) == Ordering::Less
            && deletion_order(b, 0, a, 0, now) == Ordering::Greater
    }

    /// Many pods sharing creation/ready seconds (1 s resolution) must still sort: the
    /// order has to be total, or `sort_by` panics (seen at 100+ replicas).
    #[test]
    fn deletion_order_is_total_with_equal_timestamps() {
        let now = Timestamp::from_second(NOW).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut pods: Vec<Pod> = (0..400)
            .map(|i| {
                let ready = Some(NOW - 1 - (i % 3) as i64);
                pod(
                    &format!("p{:03}", (i * 7919) % 400),
                    "n1",
                    "Running",
                    ready,
                    NOW - 2 - (i % 2) as i64,
                )
            })
            .collect();
        pods.sort_by(|a, b| deletion_order(a, 0, b, 0, now));
        for w in pods.windows(2) {
            assert_ne!(deletion_order(&w[0], 0, &w[1], 0, now), Ordering::Greater);
        }
        let a = &pods[0];
        let b = &pods[1];
        assert_eq!(
            deletion_order(a, 0, b, 0, now),
            deletion_order(b, 0, a, 0, now).reverse()
        );
    }

    #[test]
    fn scale_down_preference() {
        let running = pod("r", "n1", "Running", Some(NOW - 1000), NOW - 2000);
        // Unscheduled before scheduled; pending before running; not ready before ready.
        assert!(first(
            &pod("u", "", "Running", Some(NOW - 1000), NOW - 2000),
            &running
        ));
        assert!(first(
            &pod("p", "n1", "Pending", None, NOW - 2000),
            &running
        ));
        assert!(first(
            &pod("nr", "n1", "Running", None, NOW - 2000),
            &running
        ));
        // Ready more recently (different log2 bucket) first.
        assert!(first(
            &pod("new", "n1", "Running", Some(NOW - 10), NOW - 2000),
            &running
        ));
        // Created more recently first.
        let young = pod("y", "n1", "Running", Some(NOW - 1000), NOW - 5);
        let old = pod("o", "n1", "Running", Some(NOW - 1000), NOW - 100_000);
        assert!(first(&young, &old));
        // Lower deletion cost first, before readiness age.
        let mut cheap = running.clone();
        cheap.metadata.annotations =
            Some([(POD_DELETION_COST.to_string(), "-5".to_string())].into());
        assert!(first(
            &cheap,
            &pod("new", "n1", "Running", Some(NOW - 10), NOW - 20)
        ));
        // More colocated siblings first.
        let now = Timestamp::from_second(NOW).unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(
            deletion_order(&running, 3, &running, 1, now),
            Ordering::Less
        );
    }

    #[test]
    fn availability_needs_min_ready_seconds() {
        let now = Timestamp::from_second(NOW).unwrap_or(Timestamp::UNIX_EPOCH);
        let p = pod("a", "n1", "Running", Some(NOW - 5), NOW - 10);
        assert!(is_ready(&p));
        assert!(is_available(&p, 0, now));
        assert!(is_available(&p, 4, now));
        assert!(!is_available(&p, 10, now));
        let unready = pod("b", "n1", "Running", None, NOW - 10);
        assert!(!is_available(&unready, 0, now));
        let mut gone = p.clone();
        gone.metadata.deletion_timestamp = gone.metadata.creation_timestamp.clone();
        assert!(!is_active(&gone) && is_terminating(&gone));
        assert!(!is_active(&pod("f", "n1", "Failed", None, NOW)));
    }

    #[test]
    fn template_becomes_pod() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "a"}, "annotations": {"x": "y"}, "finalizers": ["f/g"]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }))
        .expect("template");
        let r = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let p = pod_from_template(&t, "rs", r.clone());
        assert_eq!(p.metadata.generate_name.as_deref(), Some("rs-"));
        assert_eq!(p.metadata.owner_references, Some(vec![r]));
        assert_eq!(p.metadata.finalizers, Some(vec!["f/g".to_string()]));
        assert_eq!(
            p.metadata.labels,
            t.metadata.as_ref().and_then(|m| m.labels.clone())
        );
        assert_eq!(p.spec, t.spec);
    }
}

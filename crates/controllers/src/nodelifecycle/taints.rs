//! Taint keys the node lifecycle controller manages, toleration matching (upstream
//! `v1helper.TolerationsTolerateTaint`), and the taints a node's conditions call for.

use k8s_openapi::api::core::v1::{Node, NodeCondition, Taint, Toleration};

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

pub const NO_EXECUTE: &str = "NoExecute";
pub const NO_SCHEDULE: &str = "NoSchedule";

/// Every taint key this controller adds and removes; others are left alone.
const MANAGED: [&str; 7] = [
    NOT_READY,
    UNREACHABLE,
    UNSCHEDULABLE,
    MEMORY_PRESSURE,
    DISK_PRESSURE,
    PID_PRESSURE,
    NETWORK_UNAVAILABLE,
];

/// Whether `tol` tolerates `taint`.
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = tol.effect.as_deref()
        && !effect.is_empty()
        && effect != taint.effect
    {
        return false;
    }
    let key = tol.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        // An empty key only makes sense with Exists.
        "Equal" | "" => {
            !key.is_empty()
                && tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// The condition of `node` of type `type_`.
pub fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.to_string(),
        effect: effect.to_string(),
        ..Default::default()
    }
}

/// The managed taints `node`'s conditions and `spec.unschedulable` call for (without
/// `timeAdded`). Ready `False` means not-ready, `Unknown` means unreachable.
pub fn desired(node: &Node) -> Vec<Taint> {
    let mut out = Vec::new();
    match condition(node, "Ready").map(|c| c.status.as_str()) {
        // No Ready condition yet: the kubelet has not reported; the startup grace applies.
        Some("True") | None => {}
        Some("False") => {
            out.push(taint(NOT_READY, NO_EXECUTE));
            out.push(taint(NOT_READY, NO_SCHEDULE));
        }
        Some(_) => {
            out.push(taint(UNREACHABLE, NO_EXECUTE));
            out.push(taint(UNREACHABLE, NO_SCHEDULE));
        }
    }
    for (cond, key) in [
        ("MemoryPressure", MEMORY_PRESSURE),
        ("DiskPressure", DISK_PRESSURE),
        ("PIDPressure", PID_PRESSURE),
        ("NetworkUnavailable", NETWORK_UNAVAILABLE),
    ] {
        if condition(node, cond).is_some_and(|c| c.status == "True") {
            out.push(taint(key, NO_SCHEDULE));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        out.push(taint(UNSCHEDULABLE, NO_SCHEDULE));
    }
    out
}

/// The node's taints with the managed ones replaced by `want`: existing matching taints
/// are kept as they are (so `timeAdded` survives), missing ones are added (NoExecute ones
/// stamped `now`), stale ones dropped. `None` if nothing changes.
pub fn reconcile(current: &[Taint], want: &[Taint], now: jiff::Timestamp) -> Option<Vec<Taint>> {
    let same = |a: &Taint, b: &Taint| a.key == b.key && a.effect == b.effect;
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !MANAGED.contains(&t.key.as_str()) || want.iter().any(|w| same(w, t)))
        .cloned()
        .collect();
    for w in want {
        if !out.iter().any(|t| same(t, w)) {
            let mut t = w.clone();
            if t.effect == NO_EXECUTE {
                t.time_added = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
            }
            out.push(t);
        }
    }
    (out.len() != current.len() || out.iter().zip(current).any(|(a, b)| a != b)).then_some(out)
}

/// What to do with a pod on a node with `taints`.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No NoExecute taint applies.
    Keep,
    /// A NoExecute taint is not tolerated.
    EvictNow,
    /// Every NoExecute taint is tolerated, the shortest for this many seconds.
    EvictAfter(i64),
}

/// Upstream's taint manager decision: untolerated NoExecute taints evict at once,
/// otherwise the smallest `tolerationSeconds` among the tolerations used (none = forever).
pub fn verdict(taints: &[Taint], tolerations: &[Toleration]) -> Verdict {
    let mut min: Option<i64> = None;
    let mut any = false;
    for t in taints.iter().filter(|t| t.effect == NO_EXECUTE) {
        any = true;
        let used: Vec<&Toleration> = tolerations.iter().filter(|tol| tolerates(tol, t)).collect();
        if used.is_empty() {
            return Verdict::EvictNow;
        }
        for tol in used {
            if let Some(s) = tol.toleration_seconds {
                min = Some(min.map_or(s, |m| m.min(s)));
            }
        }
    }
    match (any, min) {
        (false, _) | (true, None) => Verdict::Keep,
        (true, Some(s)) => Verdict::EvictAfter(s.max(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tol(key: &str, op: &str, effect: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.to_string()),
            operator: Some(op.to_string()),
            effect: Some(effect.to_string()),
            toleration_seconds: secs,
            ..Default::default()
        }
    }

    #[test]
    fn matching() {
        let t = taint(UNREACHABLE, NO_EXECUTE);
        assert!(tolerates(&tol(UNREACHABLE, "Exists", NO_EXECUTE, None), &t));
        assert!(tolerates(&tol(UNREACHABLE, "Exists", "", None), &t));
        assert!(tolerates(&tol("", "Exists", "", None), &t));
        assert!(!tolerates(
            &tol(UNREACHABLE, "Exists", NO_SCHEDULE, None),
            &t
        ));
        assert!(!tolerates(&tol(NOT_READY, "Exists", NO_EXECUTE, None), &t));
        assert!(tolerates(&tol(UNREACHABLE, "Equal", NO_EXECUTE, None), &t));
        assert!(!tolerates(&tol("", "Equal", "", None), &t));
    }

    #[test]
    fn verdicts() {
        let taints = [
            taint(UNREACHABLE, NO_EXECUTE),
            taint(UNREACHABLE, NO_SCHEDULE),
        ];
        assert_eq!(verdict(&taints, &[]), Verdict::EvictNow);
        let tols = [
            tol(UNREACHABLE, "Exists", NO_EXECUTE, Some(300)),
            tol("", "Exists", "", Some(2)),
        ];
        assert_eq!(verdict(&taints, &tols), Verdict::EvictAfter(2));
        assert_eq!(
            verdict(&taints, &[tol("", "Exists", "", None)]),
            Verdict::Keep
        );
        assert_eq!(
            verdict(&[taint(UNREACHABLE, NO_SCHEDULE)], &[]),
            Verdict::Keep
        );
    }

    #[test]
    fn reconcile_keeps_foreign_and_time_added() {
        let now = jiff::Timestamp::now();
        let foreign = taint("example.com/x", NO_SCHEDULE);
        let want = vec![taint(UNREACHABLE, NO_EXECUTE)];
        let first = reconcile(std::slice::from_ref(&foreign), &want, now).expect("changed");
        assert_eq!(first.len(), 2);
        assert!(first[1].time_added.is_some());
        assert_eq!(reconcile(&first, &want, now), None);
        let cleared = reconcile(&first, &[], now).expect("changed");
        assert_eq!(cleared, vec![foreign]);
    }

    #[test]
    fn desired_from_conditions() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": true},
            "status": {"conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "DiskPressure", "status": "True"},
            ]},
        }))
        .expect("node");
        let keys: Vec<(String, String)> = desired(&node)
            .into_iter()
            .map(|t| (t.key, t.effect))
            .collect();
        assert!(keys.contains(&(NOT_READY.into(), NO_EXECUTE.into())));
        assert!(keys.contains(&(DISK_PRESSURE.into(), NO_SCHEDULE.into())));
        assert!(keys.contains(&(UNSCHEDULABLE.into(), NO_SCHEDULE.into())));
        assert_eq!(keys.len(), 4);
    }
}

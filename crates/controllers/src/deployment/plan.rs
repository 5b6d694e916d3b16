//! Pure rollout arithmetic (upstream `deployment_util` / `sync.go` helpers): which
//! ReplicaSet is new, how many replicas it may get, proportional scaling shares, and the
//! status a set of ReplicaSets adds up to.

use super::conditions::{AVAILABLE, MIN_AVAILABLE, MIN_UNAVAILABLE, new_condition, set_condition};
use super::util::*;
use crate::replicaset::status::nonzero;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};

/// ReplicaSets with `spec.replicas > 0`.
pub fn active<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> Vec<&'a ReplicaSet> {
    rss.into_iter().filter(|rs| rs_replicas(rs) > 0).collect()
}

/// The oldest ReplicaSet whose template equals the Deployment's (ignoring the hash label).
pub fn find_new_rs(d: &Deployment, rs_list: &[ReplicaSet]) -> Option<ReplicaSet> {
    let template = d_template(d);
    let mut sorted: Vec<&ReplicaSet> = rs_list.iter().collect();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted
        .into_iter()
        .find(|rs| equal_ignore_hash(&rs_template(rs), &template))
        .cloned()
}

/// Every ReplicaSet but the new one.
pub fn find_old_rss(d: &Deployment, rs_list: &[ReplicaSet]) -> Vec<ReplicaSet> {
    let new_uid = find_new_rs(d, rs_list).and_then(|rs| rs.metadata.uid);
    rs_list
        .iter()
        .filter(|rs| new_uid.is_none() || rs.metadata.uid != new_uid)
        .cloned()
        .collect()
}

/// How many replicas the new ReplicaSet may have now (upstream `NewRSNewReplicas`).
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let want = d_replicas(d);
    if is_recreate(d) {
        return want;
    }
    let current = replica_count(all);
    let max_total = want + max_surge(d);
    if current >= max_total {
        return rs_replicas(new_rs);
    }
    let up = (max_total - current).min(want - rs_replicas(new_rs));
    rs_replicas(new_rs) + up
}

/// The status the Deployment should report given its ReplicaSets.
pub fn calculate_status(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
) -> DeploymentStatus {
    let available = available_replica_count(all);
    let total = replica_count(all);
    let old = d.status.clone().unwrap_or_default();
    let mut st = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(actual_replica_count(all)),
        updated_replicas: nonzero(actual_replica_count(
            &new_rs.into_iter().collect::<Vec<_>>(),
        )),
        ready_replicas: nonzero(ready_replica_count(all)),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: None,
    };
    if available >= d_replicas(d) - max_unavailable(d) {
        let c = new_condition(
            AVAILABLE,
            "True",
            MIN_AVAILABLE,
            "Deployment has minimum availability.",
        );
        set_condition(&mut st, c);
    } else {
        let c = new_condition(
            AVAILABLE,
            "False",
            MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.",
        );
        set_condition(&mut st, c);
    }
    st
}

/// A status as it reads back from the API server (zero counters omitted), for comparison.
pub fn normalized(st: Option<&DeploymentStatus>) -> DeploymentStatus {
    let mut st = st.cloned().unwrap_or_default();
    for f in [
        &mut st.replicas,
        &mut st.updated_replicas,
        &mut st.ready_replicas,
        &mut st.available_replicas,
        &mut st.unavailable_replicas,
        &mut st.terminating_replicas,
    ] {
        *f = f.filter(|n| *n != 0);
    }
    st.observed_generation = st.observed_generation.filter(|n| *n != 0);
    if st.conditions.as_ref().is_some_and(|c| c.is_empty()) {
        st.conditions = None;
    }
    st
}

/// The only active ReplicaSet, or the newest if none is active (upstream
/// `FindActiveOrLatest`); `None` when several are active.
pub fn find_active_or_latest(
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
) -> Option<ReplicaSet> {
    if new_rs.is_none() && old.is_empty() {
        return None;
    }
    let mut old_sorted: Vec<&ReplicaSet> = old.iter().collect();
    old_sorted.sort_by(|a, b| by_creation(b, a));
    let act = active(old_sorted.iter().copied().chain(new_rs));
    match act.len() {
        0 => new_rs.or(old_sorted.first().copied()).cloned(),
        1 => Some(act[0].clone()),
        _ => None,
    }
}

/// The new ReplicaSet runs every desired replica, all available.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let want = d_replicas(d);
    desired_replicas_annotation(rs) == Some(want)
        && rs_replicas(rs) == want
        && rs_available(rs) == want
}

/// How much of `to_add` (positive or negative) `rs` gets, proportional to its share of
/// the size it was last scaled for (upstream `GetProportion`).
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = rs_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn rs_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let want = d_replicas(d);
    if want == 0 {
        return -rs_replicas(rs);
    }
    let target = want + max_surge(d);
    let annotated = max_replicas_annotation(rs)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(target) / f64::from(annotated);
    size.round() as i32 - rs_replicas(rs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, strategy: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "generation": 2},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": strategy,
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "c", "image": "v2"}]}},
            },
        }))
        .expect("deployment")
    }

    fn rs(name: &str, created: &str, replicas: i32, available: i32, image: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": name, "creationTimestamp": created,
                         "labels": {"app": "web", "pod-template-hash": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web", "pod-template-hash": name}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": name}},
                             "spec": {"containers": [{"name": "c", "image": image}]}},
            },
            "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available},
        }))
        .expect("rs")
    }

    fn annotate(mut rs: ReplicaSet, desired: i32, max: i32) -> ReplicaSet {
        set_replicas_annotations(&mut rs, desired, max);
        rs
    }

    #[test]
    fn new_rs_is_the_oldest_with_an_equal_template() {
        let d = deployment(3, json!({"type": "Recreate"}));
        let a = rs("a", "2024-01-01T00:00:02Z", 1, 1, "v2");
        let b = rs("b", "2024-01-01T00:00:01Z", 1, 1, "v2");
        let old = rs("c", "2024-01-01T00:00:00Z", 1, 1, "v1");
        let list = vec![a, b, old];
        assert_eq!(
            find_new_rs(&d, &list).and_then(|r| r.metadata.name),
            Some("b".into())
        );
        let olds: Vec<_> = find_old_rss(&d, &list)
            .into_iter()
            .filter_map(|r| r.metadata.name)
            .collect();
        assert_eq!(olds, vec!["a".to_string(), "c".to_string()]);
    }

    #[test]
    fn new_replicas_respect_max_surge() {
        // 25% of 10: surge 3, so at most 13 pods in total.
        let d = deployment(
            10,
            json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        );
        let old = rs("old", "2024-01-01T00:00:00Z", 10, 10, "v1");
        let new = rs("new", "2024-01-01T00:00:01Z", 0, 0, "v2");
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 3);
        let old = rs("old", "2024-01-01T00:00:00Z", 8, 8, "v1");
        let new = rs("new", "2024-01-01T00:00:01Z", 3, 3, "v2");
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 5);
        let new = rs("new", "2024-01-01T00:00:01Z", 5, 0, "v2");
        assert_eq!(
            new_rs_new_replicas(&d, &[&old, &new], &new),
            5,
            "already at 13"
        );
        let recreate = deployment(10, json!({"type": "Recreate"}));
        assert_eq!(new_rs_new_replicas(&recreate, &[&old, &new], &new), 10);
    }

    #[test]
    fn proportional_shares_follow_the_last_scale() {
        // Mid-rollout at 10 (+3 surge): old 8, new 5. Scaling to 20 (+5 surge) adds 12.
        let d = deployment(
            20,
            json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        );
        let old = annotate(rs("old", "2024-01-01T00:00:00Z", 8, 8, "v1"), 10, 13);
        let new = annotate(rs("new", "2024-01-01T00:00:01Z", 5, 0, "v2"), 10, 13);
        let p_old = proportion(&old, &d, 12, 0);
        let p_new = proportion(&new, &d, 12, p_old);
        assert_eq!((p_old, p_new), (7, 5));
        // Never more than what is left to distribute.
        assert_eq!(proportion(&new, &d, 12, 10), 2);
        // Scaling down to 0 removes everything.
        let zero = deployment(
            0,
            json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        );
        assert_eq!(proportion(&old, &zero, -13, 0), -8);
    }

    #[test]
    fn active_or_latest_and_saturation() {
        let d = deployment(
            3,
            json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
        );
        let old1 = rs("o1", "2024-01-01T00:00:00Z", 0, 0, "v0");
        let old2 = rs("o2", "2024-01-01T00:00:01Z", 0, 0, "v1");
        let new = rs("n", "2024-01-01T00:00:02Z", 0, 0, "v2");
        let name = |r: Option<ReplicaSet>| r.and_then(|r| r.metadata.name);
        // Nothing active: the new one, else the newest old one.
        assert_eq!(
            name(find_active_or_latest(
                Some(&new),
                &[old1.clone(), old2.clone()]
            )),
            Some("n".into())
        );
        assert_eq!(
            name(find_active_or_latest(None, &[old1.clone(), old2.clone()])),
            Some("o2".into())
        );
        // Exactly one active.
        let active_old = rs("o1", "2024-01-01T00:00:00Z", 2, 2, "v0");
        assert_eq!(
            name(find_active_or_latest(
                Some(&new),
                &[active_old.clone(), old2]
            )),
            Some("o1".into())
        );
        // Two active: none.
        let active_new = rs("n", "2024-01-01T00:00:02Z", 1, 0, "v2");
        assert_eq!(
            name(find_active_or_latest(Some(&active_new), &[active_old])),
            None
        );
        let full = annotate(rs("n", "2024-01-01T00:00:02Z", 3, 3, "v2"), 3, 4);
        assert!(is_saturated(&d, Some(&full)));
        let partial = annotate(rs("n", "2024-01-01T00:00:02Z", 3, 2, "v2"), 3, 4);
        assert!(!is_saturated(&d, Some(&partial)));
        assert!(!is_saturated(&d, None));
    }

    #[test]
    fn status_adds_up_replica_sets() {
        let d = deployment(
            4,
            json!({"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}),
        );
        let old = rs("old", "2024-01-01T00:00:00Z", 2, 2, "v1");
        let new = rs("new", "2024-01-01T00:00:01Z", 3, 1, "v2");
        let st = calculate_status(&[&old, &new], Some(&new), &d);
        assert_eq!(st.replicas, Some(5));
        assert_eq!(st.updated_replicas, Some(3));
        assert_eq!(st.available_replicas, Some(3));
        assert_eq!(st.unavailable_replicas, Some(2));
        assert_eq!(st.observed_generation, Some(2));
        let avail = st
            .conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == "Available"))
            .cloned();
        assert_eq!(
            avail.map(|c| (c.status, c.reason)),
            Some(("True".into(), Some("MinimumReplicasAvailable".into())))
        );
        // Below replicas - maxUnavailable (3): unavailable; zero counters are omitted.
        let none = rs("new", "2024-01-01T00:00:01Z", 0, 0, "v2");
        let st = calculate_status(&[&none], Some(&none), &d);
        assert_eq!(
            (st.replicas, st.available_replicas, st.unavailable_replicas),
            (None, None, None)
        );
        let avail = st
            .conditions
            .as_ref()
            .and_then(|c| c.iter().find(|c| c.type_ == "Available"))
            .cloned();
        assert_eq!(avail.map(|c| c.status), Some("False".into()));
        assert_eq!(normalized(Some(&st)), st);
    }
}

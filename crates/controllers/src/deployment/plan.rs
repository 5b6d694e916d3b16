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
pub fn calculate_status(all: &[&ReplicaSet], new_rs: Option<&ReplicaSet>, d: &Deployment) -> DeploymentStatus {
    let available = available_replica_count(all);
    let total = replica_count(all);
    let old = d.status.clone().unwrap_or_default();
    let mut st = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: nonzero(actual_replica_count(all)),
        updated_replicas: nonzero(actual_replica_count(&new_rs.into_iter().collect::<Vec<_>>())),
        ready_replicas: nonzero(ready_replica_count(all)),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: None,
    };
    if available >= d_replicas(d) - max_unavailable(d) {
        let c = new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.");
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
pub fn find_active_or_latest(new_rs: Option<&ReplicaSet>, old: &[ReplicaSet]) -> Option<ReplicaSet> {
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
    desired_replicas_annotation(rs) == Some(want) && rs_replicas(rs) == want && rs_available(rs) == want
}

/// How much of `to_add` (positive or negative) `rs` gets, proportional to its share of
/// the size it was last scaled for (upstream `GetProportion`).
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = rs_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 { fraction.min(allowed) } else { fraction.max(allowed) }
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

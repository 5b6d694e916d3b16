//! StatefulSet pure helpers (upstream `stateful_set_utils.go`): ordinals and identity, claim
//! names and pod volumes, versioned pod construction, revisions, and status bookkeeping.

use crate::history::{self, HistoryError};
use crate::util::podutil::{self, is_pod_available, is_pod_ready, is_terminating, phase};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use std::collections::BTreeMap;

/// Pod label: the pod's own name (used by per-pod Services).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// Pod label: the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// Pod label: the name of the ControllerRevision the pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Parent set name and ordinal from a pod name `<parent>-<ordinal>`; ordinal -1 if none.
pub fn parent_and_ordinal(pod_name: &str) -> (&str, i64) {
    let Some((parent, ord)) = pod_name.rsplit_once('-') else {
        return ("", -1);
    };
    if ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) {
        return ("", -1);
    }
    // Upstream parses into int32; out-of-range ordinals are "none" but keep the parent.
    match ord.parse::<i32>() {
        Ok(n) => (parent, i64::from(n)),
        Err(_) => (parent, -1),
    }
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

/// The pod's ordinal, -1 if its name has none.
pub fn ordinal(pod: &Pod) -> i64 {
    parent_and_ordinal(pod_name(pod)).1
}

fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or("")
}

fn set_namespace(set: &StatefulSet) -> &str {
    set.metadata.namespace.as_deref().unwrap_or("")
}

/// `spec.replicas` (defaulted to 1 by the API server).
pub fn replicas(set: &StatefulSet) -> i64 {
    i64::from(set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1))
}

/// First ordinal (inclusive): `spec.ordinals.start` or 0.
pub fn start_ordinal(set: &StatefulSet) -> i64 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .map_or(0, i64::from)
}

/// Last ordinal (inclusive).
pub fn end_ordinal(set: &StatefulSet) -> i64 {
    start_ordinal(set) + replicas(set) - 1
}

/// Ordinal within `[start, end]`.
pub fn in_ordinal_range(pod: &Pod, set: &StatefulSet) -> bool {
    let o = ordinal(pod);
    o >= start_ordinal(set) && o <= end_ordinal(set)
}

/// `<set>-<ordinal>`.
pub fn pod_name_for(set: &StatefulSet, ordinal: i64) -> String {
    format!("{}-{ordinal}", set_name(set))
}

/// `<template>-<set>-<ordinal>`.
pub fn claim_name(set: &StatefulSet, template: &PersistentVolumeClaim, ordinal: i64) -> String {
    let t = template.metadata.name.as_deref().unwrap_or("");
    format!("{t}-{}-{ordinal}", set_name(set))
}

/// Whether the pod's name says it belongs to `set`.
pub fn is_member_of(set: &StatefulSet, pod: &Pod) -> bool {
    parent_and_ordinal(pod_name(pod)).0 == set_name(set)
}

/// The set's claim templates.
pub fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or(&[])
}

/// Identity (name, namespace, pod-name label) matches the set.
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let (parent, ord) = parent_and_ordinal(pod_name(pod));
    ord >= 0
        && parent == set_name(set)
        && pod_name(pod) == pod_name_for(set, ord)
        && pod.metadata.namespace.as_deref().unwrap_or("") == set_namespace(set)
        && pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_NAME_LABEL))
            .map(String::as_str)
            == Some(pod_name(pod))
}

/// The pod mounts every claim the set's templates call for.
pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let ord = ordinal(pod);
    if ord < 0 {
        return false;
    }
    let volumes: BTreeMap<&str, &Volume> = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .map(|vs| vs.iter().map(|v| (v.name.as_str(), v)).collect())
        .unwrap_or_default();
    claim_templates(set).iter().all(|t| {
        let tname = t.metadata.name.as_deref().unwrap_or("");
        volumes
            .get(tname)
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .is_some_and(|c| c.claim_name == claim_name(set, t, ord))
    })
}

/// The claims for the pod, keyed by template name: template copy with per-pod name, the
/// set's namespace, and the set's selector labels merged over the template's.
pub fn claims_for(set: &StatefulSet, pod: &Pod) -> BTreeMap<String, PersistentVolumeClaim> {
    let ord = ordinal(pod);
    let selector_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|t| {
            let mut c = t.clone();
            c.metadata.name = Some(claim_name(set, t, ord));
            c.metadata.namespace = Some(set_namespace(set).to_string());
            let labels = c.metadata.labels.get_or_insert_default();
            labels.extend(selector_labels.clone());
            c.status = None;
            (t.metadata.name.clone().unwrap_or_default(), c)
        })
        .collect()
}

/// Make the pod's volumes mount the set's claims (replacing same-named volumes).
pub fn update_storage(set: &StatefulSet, pod: &mut Pod) {
    let claims = claims_for(set, pod);
    let spec = pod.spec.get_or_insert_default();
    let current = spec.volumes.take().unwrap_or_default();
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(name, claim)| Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.clone().unwrap_or_default(),
                read_only: Some(false),
            }),
            ..Default::default()
        })
        .collect();
    volumes.extend(
        current
            .into_iter()
            .filter(|v| !claims.contains_key(&v.name)),
    );
    spec.volumes = Some(volumes);
}

/// Set name, namespace, pod-name and pod-index labels.
pub fn update_identity(set: &StatefulSet, pod: &mut Pod) {
    let ord = ordinal(pod);
    let name = pod_name_for(set, ord);
    pod.metadata.name = Some(name.clone());
    pod.metadata.namespace = Some(set_namespace(set).to_string());
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(POD_NAME_LABEL.into(), name);
    labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
}

/// A new pod of `set` at `ordinal`: template, identity, hostname/subdomain (set only at
/// creation: they are immutable), storage.
pub fn new_pod(set: &StatefulSet, ordinal: i64) -> Pod {
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = podutil::pod_from_template(&template, podutil::controller_ref(set));
    pod.metadata.name = Some(pod_name_for(set, ordinal));
    update_identity(set, &mut pod);
    let spec = pod.spec.get_or_insert_default();
    spec.hostname = pod.metadata.name.clone();
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
    update_storage(set, &mut pod);
    pod
}

/// The revision label of a pod.
pub fn pod_revision(pod: &Pod) -> &str {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(REVISION_LABEL))
        .map_or("", String::as_str)
}

/// Label the pod with its revision.
pub fn set_pod_revision(pod: &mut Pod, revision: &str) {
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert(REVISION_LABEL.into(), revision.to_string());
}

fn update_strategy_type(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// Update strategy is OnDelete.
pub fn is_on_delete(set: &StatefulSet) -> bool {
    update_strategy_type(set) == "OnDelete"
}

/// Update strategy is RollingUpdate.
pub fn is_rolling_update(set: &StatefulSet) -> bool {
    update_strategy_type(set) == "RollingUpdate"
}

/// `rollingUpdate.partition` if a rollingUpdate block is present.
pub fn partition(set: &StatefulSet) -> Option<i64> {
    let ru = set
        .spec
        .as_ref()?
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()?;
    Some(i64::from(ru.partition.unwrap_or(0)))
}

/// `rollingUpdate.maxUnavailable`, if set.
pub fn max_unavailable(set: &StatefulSet) -> Option<&IntOrString> {
    set.spec
        .as_ref()?
        .update_strategy
        .as_ref()?
        .rolling_update
        .as_ref()?
        .max_unavailable
        .as_ref()
}

/// Scale an int-or-percent against `total`, rounding down for percentages, at least 1
/// (upstream `getStatefulSetMaxUnavailable`).
pub fn resolve_max_unavailable(v: Option<&IntOrString>, total: i64) -> i64 {
    let n = match v {
        None => 1,
        Some(IntOrString::Int(i)) => i64::from(*i),
        Some(IntOrString::String(s)) => s
            .strip_suffix('%')
            .and_then(|p| p.parse::<i64>().ok())
            .map_or(1, |p| p * total / 100),
    };
    n.max(1)
}

/// A pod for `ordinal` at the right revision: the current revision below the partition (or
/// below the current replica count when no partition applies), the update revision above.
pub fn new_versioned_pod(
    current_set: &StatefulSet,
    update_set: &StatefulSet,
    current_revision: &str,
    update_revision: &str,
    ordinal: i64,
) -> Pod {
    let start = start_ordinal(current_set);
    let current_replicas = current_set
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .map_or(0, i64::from);
    // Mirrors upstream's (operator-precedence-shaped) condition exactly.
    let use_current = match partition(current_set) {
        None => is_rolling_update(current_set) && ordinal < start + current_replicas,
        Some(p) => ordinal < start + p,
    };
    let (set, rev) = if use_current {
        (current_set, current_revision)
    } else {
        (update_set, update_revision)
    };
    let mut pod = new_pod(set, ordinal);
    set_pod_revision(&mut pod, rev);
    pod
}

/// A new revision recording the set's template (annotations copied from the set).
pub fn new_revision(
    set: &StatefulSet,
    revision: i64,
    collision_count: i32,
) -> Result<ControllerRevision, HistoryError> {
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let data = history::template_patch(&template)?;
    let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    let mut cr = history::new_controller_revision(
        &podutil::controller_ref(set),
        set_namespace(set),
        labels,
        data,
        revision,
        Some(collision_count),
    );
    if let Some(a) = &set.metadata.annotations {
        cr.metadata
            .annotations
            .get_or_insert_default()
            .extend(a.clone());
    }
    Ok(cr)
}

/// The set with its template restored from `revision`.
pub fn apply_revision(
    set: &StatefulSet,
    revision: &ControllerRevision,
) -> Result<StatefulSet, HistoryError> {
    let mut s = set.clone();
    let template = history::template_from_revision(revision)?;
    if let Some(spec) = s.spec.as_mut() {
        spec.template = template;
    }
    Ok(s)
}

/// Running with Ready condition True.
pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && is_pod_ready(pod)
}

/// Available (ready for minReadySeconds).
pub fn is_running_and_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    is_pod_available(pod, min_ready_seconds, now)
}

/// Created (the API server set a phase).
pub fn is_created(pod: &Pod) -> bool {
    !phase(pod).is_empty()
}

/// Running and ready and not terminating.
pub fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

/// Not healthy, or not available yet.
pub fn is_unavailable(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    !is_healthy(pod) || !is_running_and_available(pod, min_ready_seconds, now)
}

/// Parallel pod management.
pub fn allows_burst(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

/// `spec.minReadySeconds`.
pub fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// Once every replica is updated and ready, the update revision becomes current.
pub fn complete_rolling_update(set: &StatefulSet, status: &mut StatefulSetStatus) {
    let r = replicas(set);
    let n = |v: Option<i32>| v.map_or(0, i64::from);
    if is_rolling_update(set)
        && n(status.updated_replicas) == r
        && n(status.ready_replicas) == r
        && i64::from(status.replicas) == r
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
}

/// Whether `status` differs from what the set already records.
pub fn inconsistent_status(set: &StatefulSet, status: &StatefulSetStatus) -> bool {
    let cur = set.status.clone().unwrap_or_default();
    let z = |v: Option<i32>| v.unwrap_or(0);
    status.observed_generation.unwrap_or(0) > cur.observed_generation.unwrap_or(0)
        || status.replicas != cur.replicas
        || z(status.current_replicas) != z(cur.current_replicas)
        || z(status.ready_replicas) != z(cur.ready_replicas)
        || z(status.updated_replicas) != z(cur.updated_replicas)
        || status.current_revision != cur.current_revision
        || z(status.available_replicas) != z(cur.available_replicas)
        || status.update_revision != cur.update_revision
        || z(status.collision_count) != z(cur.collision_count)
}

#[cfg(test)]
#[path = "utils_tests.rs"]
mod tests;

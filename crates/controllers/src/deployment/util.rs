//! Deployment helpers (upstream `pkg/controller/deployment/util`): revision and replica
//! annotations, maxSurge/maxUnavailable arithmetic, ReplicaSet orderings and counters, the
//! pod-template hash and template equality.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// Revision of a ReplicaSet (and the Deployment's current one).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a re-used ReplicaSet had (comma-separated).
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// `spec.replicas` of the Deployment when the ReplicaSet was last scaled by it.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// `replicas + maxSurge` of the Deployment at that time.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Label distinguishing the ReplicaSets (and pods) of one Deployment's templates.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Annotation used by the removed rollback subresource; never copied to ReplicaSets.
pub const DEPRECATED_ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Upper bound on the revision-history annotation's length.
pub const MAX_REV_HISTORY_CHARS: usize = 2000;

/// Annotations of a Deployment that are not copied to its ReplicaSets.
pub fn skip_copy_annotation(k: &str) -> bool {
    matches!(
        k,
        LAST_APPLIED
            | REVISION
            | REVISION_HISTORY
            | DESIRED_REPLICAS
            | MAX_REPLICAS
            | DEPRECATED_ROLLBACK_TO
    )
}

/// `spec.replicas` (defaulted to 1 by the API server).
pub fn d_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet.
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Set `spec.replicas` of a ReplicaSet.
pub fn set_rs_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

/// `status.availableReplicas` of a ReplicaSet.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// The template of a Deployment.
pub fn d_template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// The template of a ReplicaSet.
pub fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

/// `spec.minReadySeconds`.
pub fn d_min_ready(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// Whether the strategy is `Recreate` (otherwise rolling, as defaulted).
pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// `spec.paused`.
pub fn is_paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// `spec.progressDeadlineSeconds`, unless unset or "infinite" (MaxInt32).
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    k: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(k).map(String::as_str)
}

/// The revision of a ReplicaSet: 0 when unannotated, an error when unparsable.
pub fn revision(rs: &ReplicaSet) -> Result<i64, std::num::ParseIntError> {
    match annotation(&rs.metadata, REVISION) {
        None => Ok(0),
        Some(v) => v.parse(),
    }
}

/// The highest parsable revision among `rss` (0 if none).
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter()
        .filter_map(|rs| revision(rs).ok())
        .max()
        .unwrap_or(0)
        .max(0)
}

/// Resolve an int-or-percent against `total` (percentages rounded up or down).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let Some(p) = s.strip_suffix('%') else {
                return Err(format!(
                    "invalid value for IntOrString: invalid type: string is not a percentage: {s:?}"
                ));
            };
            let p: i64 = p
                .parse()
                .map_err(|_| format!("invalid value {s:?}: must be an integer percentage"))?;
            let exact = p as f64 * f64::from(total) / 100.0;
            let v = if round_up {
                exact.ceil()
            } else {
                exact.floor()
            };
            Ok(v as i32)
        }
    }
}

/// (maxSurge, maxUnavailable) for `desired` replicas: surge rounds up, unavailable down; if
/// both come out 0, unavailable becomes 1 so a rollout can proceed.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let quarter = IntOrString::String("25%".into());
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let surge = ru.map_or(Some(&quarter), |r| r.max_surge.as_ref());
    let unavailable = ru.map_or(Some(&quarter), |r| r.max_unavailable.as_ref());
    // Validation rejects malformed values; fall back to the safest reading if one slips by.
    resolve_fenceposts(surge, unavailable, d_replicas(d)).unwrap_or((0, 1))
}

/// Resolved maxSurge (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) { 0 } else { fenceposts(d).0 }
}

/// Resolved maxUnavailable, at most `spec.replicas` (0 for Recreate or no replicas).
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = d_replicas(d);
    if is_recreate(d) || replicas == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas)
}

/// Sum of `spec.replicas`.
pub fn replica_count(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|rs| rs_replicas(rs)).sum()
}

/// Sum of `status.replicas`.
pub fn actual_replica_count(rss: &[&ReplicaSet]) -> i32 {
    rss.iter()
        .map(|rs| rs.status.as_ref().map_or(0, |s| s.replicas))
        .sum()
}

/// Sum of `status.readyReplicas`.
pub fn ready_replica_count(rss: &[&ReplicaSet]) -> i32 {
    rss.iter()
        .map(|rs| {
            rs.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
        })
        .sum()
}

/// Sum of `status.availableReplicas`.
pub fn available_replica_count(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|rs| rs_available(rs)).sum()
}

/// Older first, then by name (upstream `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if ta == tb {
        return a.metadata.name.cmp(&b.metadata.name);
    }
    ta.cmp(&tb)
}

/// Bigger first; equal sizes older first (upstream `ReplicaSetsBySizeOlder`).
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    match rs_replicas(b).cmp(&rs_replicas(a)) {
        Ordering::Equal => by_creation(a, b),
        o => o,
    }
}

/// Bigger first; equal sizes newer first (upstream `ReplicaSetsBySizeNewer`).
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    match rs_replicas(b).cmp(&rs_replicas(a)) {
        Ordering::Equal => by_creation(b, a),
        o => o,
    }
}

/// Lower revision first; unparsable or equal revisions by creation.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    match (revision(a), revision(b)) {
        (Ok(ra), Ok(rb)) if ra != rb => ra.cmp(&rb),
        _ => by_creation(a, b),
    }
}

/// Drop nulls and empty lists/maps, as Go's semantic equality treats nil and empty alike.
fn prune(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Array(a) => {
            let a: Vec<Value> = a
                .into_iter()
                .map(|x| prune(x).unwrap_or(Value::Null))
                .collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        other => Some(other),
    }
}

/// A template as a canonical JSON value: nulls and empty collections dropped; field order
/// is the typed struct's and map keys are sorted (BTreeMap), so the bytes are stable.
fn canonical(t: &PodTemplateSpec) -> Value {
    serde_json::to_value(t)
        .ok()
        .and_then(prune)
        .unwrap_or(Value::Null)
}

/// [`canonical`] without the `pod-template-hash` label.
fn canonical_without_hash(t: &PodTemplateSpec) -> Value {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    canonical(&t)
}

/// Whether two templates are equal ignoring the `pod-template-hash` label (upstream
/// `EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    canonical_without_hash(a) == canonical_without_hash(b)
}

/// Characters upstream's `SafeEncodeString` maps to (no vowels, no look-alike digits).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The `pod-template-hash` of a template: FNV-1a (32-bit) over a canonical serialization
/// of the template, then the collision count (little-endian) if set, printed in decimal and
/// mapped through the safe alphabet, as upstream encodes it. (Upstream hashes Go's
/// struct dump, so the values differ from a real cluster's; they are stable here.)
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let canonical = serde_json::to_vec(&canonical(template)).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |b: u8| {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    };
    canonical.iter().copied().for_each(&mut feed);
    if let Some(c) = collision_count {
        c.to_le_bytes().into_iter().for_each(&mut feed);
    }
    h.to_string()
        .bytes()
        .map(|b| char::from(SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()]))
        .collect()
}

/// Set the desired/max replica annotations; whether anything changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if ann.get(k) != Some(&v) {
            ann.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

/// Whether the desired/max replica annotations differ from these values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    annotation(&rs.metadata, DESIRED_REPLICAS) != Some(desired.to_string().as_str())
        || annotation(&rs.metadata, MAX_REPLICAS) != Some(max.to_string().as_str())
}

/// The desired-replicas annotation, if set and valid.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, DESIRED_REPLICAS)?.parse().ok()
}

/// The max-replicas annotation, if set and valid.
pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(&rs.metadata, MAX_REPLICAS)?.parse().ok()
}

/// Copy the Deployment's annotations (except the controller's own) to the ReplicaSet;
/// whether anything changed.
fn copy_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy_annotation(k) || ann.get(k) == Some(v) {
            continue;
        }
        ann.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Annotate the new ReplicaSet (upstream `SetNewReplicaSetAnnotations`): copy the
/// Deployment's annotations, raise its revision to `new_revision` (keeping the previous
/// revision in the history annotation when a ReplicaSet is re-used, i.e. on rollback), and
/// for a ReplicaSet about to be created, the replica annotations. Whether anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
) -> bool {
    let mut changed = copy_annotations(d, rs);
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old_revision = ann.get(REVISION).cloned();
    let old_int = match old_revision.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    let Ok(new_int) = new_revision.parse::<i64>() else {
        return false;
    };
    if old_int < new_int {
        ann.insert(REVISION.to_string(), new_revision.to_string());
        changed = true;
    }
    if let Some(old) = old_revision.filter(|_| old_int < new_int) {
        let history = ann.get(REVISION_HISTORY).cloned().unwrap_or_default();
        if history.is_empty() {
            ann.insert(REVISION_HISTORY.to_string(), old);
        } else {
            let mut parts: Vec<&str> = history.split(',').collect();
            let mut total = history.len() + old.len() + 1;
            let mut start = 0;
            while total > MAX_REV_HISTORY_CHARS && start < parts.len() {
                total -= parts[start].len() + 1;
                start += 1;
            }
            if total <= MAX_REV_HISTORY_CHARS {
                parts.drain(..start);
                parts.push(&old);
                ann.insert(REVISION_HISTORY.to_string(), parts.join(","));
            }
        }
    }
    if !exists {
        let replicas = d_replicas(d);
        if set_replicas_annotations(rs, replicas, replicas + max_surge(d)) {
            changed = true;
        }
    }
    changed
}

/// Set the Deployment's revision annotation; whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let ann = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if ann.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    ann.insert(REVISION.to_string(), revision.to_string());
    true
}

#[cfg(test)]
#[path = "util_tests.rs"]
mod tests;

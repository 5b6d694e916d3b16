//! A budget's arithmetic, without I/O: how many pods are expected and must stay healthy,
//! which pods count as healthy, which recorded disruptions still hold, and the status
//! (with its `DisruptionAllowed` condition) the controller writes — upstream's
//! `getExpectedPodCount`, `countHealthyPods`, `buildDisruptedPodMap`, `updatePdbStatus`
//! and `component-helpers/apps/poddisruptionbudget`.

use crate::util::podutil::is_pod_ready;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;

/// How long a pod recorded in `status.disruptedPods` (evicted, its deletion not yet seen)
/// is counted as unhealthy; past that, the entry is dropped (upstream `DeletionTimeout`).
pub const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

/// How long a pod may carry a `DisruptionTarget=True` condition without being marked for
/// deletion before the controller sets it False (upstream `stalePodDisruptionTimeout`):
/// an eviction that marked the pod but then failed to delete it.
pub const STALE_POD_DISRUPTION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

/// The condition type the controller keeps.
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
/// Reason: disruptions are allowed.
pub const SUFFICIENT_PODS: &str = "SufficientPods";
/// Reason: no disruption is allowed.
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
/// Reason: the controller could not compute the budget.
pub const SYNC_FAILED: &str = "SyncFailed";

/// Upstream `intstr.GetScaledValueFromIntOrPercent`: an integer as is, a percentage of
/// `total` (rounded up or down).
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let Some(number) = s.strip_suffix('%') else {
                return Err(
                    "invalid value for IntOrString: invalid type: string is not a percentage"
                        .into(),
                );
            };
            let pct: i64 = number
                .parse()
                .map_err(|e| format!("invalid value for IntOrString: invalid value {s:?}: {e}"))?;
            let exact = pct as f64 * f64::from(total) / 100.0;
            let scaled = if round_up {
                exact.ceil()
            } else {
                exact.floor()
            };
            Ok(scaled as i32)
        }
    }
}

/// Whether the expected pod count comes from the scale of the pods' controllers
/// (`maxUnavailable`, or `minAvailable` as a percentage) rather than from the number of
/// matching pods (integer `minAvailable`).
pub fn needs_scale(spec: &PodDisruptionBudgetSpec) -> bool {
    spec.max_unavailable.is_some() || matches!(spec.min_available, Some(IntOrString::String(_)))
}

/// `(expectedPods, desiredHealthy)` of a budget with `pods` matching pods whose
/// controllers ask for `scale` replicas in all (`scale` is read only when
/// [`needs_scale`]). Percentages round up.
pub fn expected_and_desired(
    spec: &PodDisruptionBudgetSpec,
    pods: i32,
    scale: i32,
) -> Result<(i32, i32), String> {
    if let Some(max) = &spec.max_unavailable {
        let unavailable = scaled_value(max, scale, true)?;
        return Ok((scale, (scale - unavailable).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((pods, *n)),
        Some(min @ IntOrString::String(_)) => Ok((scale, scaled_value(min, scale, true)?)),
        None => Ok((0, 0)),
    }
}

/// `disruptedPods` entries that still hold, and when the first of them expires.
#[derive(Debug, Default, PartialEq)]
pub struct Disrupted {
    /// Pods evicted recently and not yet marked for deletion, with the eviction time.
    pub pods: BTreeMap<String, Time>,
    /// When the earliest kept entry expires (the budget is looked at again then).
    pub recheck: Option<Timestamp>,
    /// Pods whose entry expired without their deletion being seen.
    pub expired: Vec<String>,
}

/// Keep the `recorded` disruptions of matching pods that are not being deleted yet and
/// whose entry has not expired; entries of pods gone or being deleted are dropped.
pub fn disrupted_pods(
    pods: &[Arc<Pod>],
    recorded: Option<&BTreeMap<String, Time>>,
    now: Timestamp,
) -> Disrupted {
    let mut out = Disrupted::default();
    let Some(recorded) = recorded else {
        return out;
    };
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let Some(at) = recorded.get(name) else {
            continue;
        };
        let expires = expiry(at);
        if expires < now {
            out.expired.push(name.to_string());
            continue;
        }
        out.recheck = Some(out.recheck.map_or(expires, |r| r.min(expires)));
        out.pods.insert(name.to_string(), at.clone());
    }
    out
}

fn expiry(at: &Time) -> Timestamp {
    at.0.checked_add(DELETION_TIMEOUT).unwrap_or(Timestamp::MAX)
}

/// Ready pods that are neither being deleted nor recently disrupted.
pub fn count_healthy(pods: &[Arc<Pod>], disrupted: &BTreeMap<String, Time>, now: Timestamp) -> i32 {
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let name = p.metadata.name.as_deref().unwrap_or_default();
            disrupted.get(name).is_none_or(|at| expiry(at) <= now)
        })
        .filter(|p| is_pod_ready(p))
        .count();
    i32::try_from(healthy).unwrap_or(i32::MAX)
}

/// Disruptions allowed: healthy pods beyond the desired count, none while no pod is
/// expected (so a budget whose pods appear before its status is computed is safe).
pub fn disruptions_allowed(current_healthy: i32, desired_healthy: i32, expected: i32) -> i32 {
    let allowed = current_healthy.saturating_sub(desired_healthy);
    if expected <= 0 || allowed <= 0 {
        0
    } else {
        allowed
    }
}

/// Upstream `meta.SetStatusCondition`: add the condition, or update the one of its type
/// (its transition time moves only when the status changes).
pub fn set_condition(conditions: &mut Vec<Condition>, new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        None => conditions.push(new),
        Some(c) => {
            if c.status != new.status {
                c.status = new.status;
                c.last_transition_time = new.last_transition_time;
            }
            c.reason = new.reason;
            c.message = new.message;
            c.observed_generation = new.observed_generation;
        }
    }
}

/// Set `DisruptionAllowed` from `disruptionsAllowed` (upstream
/// `UpdateDisruptionAllowedCondition`).
pub fn update_disruption_allowed(status: &mut PodDisruptionBudgetStatus, now: Timestamp) {
    let (value, reason) = if status.disruptions_allowed > 0 {
        ("True", SUFFICIENT_PODS)
    } else {
        ("False", INSUFFICIENT_PODS)
    };
    let cond = Condition {
        type_: DISRUPTION_ALLOWED.into(),
        status: value.into(),
        reason: reason.into(),
        message: String::new(),
        observed_generation: status.observed_generation,
        last_transition_time: Time(now),
    };
    set_condition(status.conditions.get_or_insert_with(Vec::new), cond);
}

/// Whether the `DisruptionAllowed` condition agrees with `disruptionsAllowed` for the
/// current generation (upstream `ConditionsAreUpToDate`).
pub fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(status) = &pdb.status else {
        return false;
    };
    let Some(cond) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    else {
        return false;
    };
    if status.observed_generation != pdb.metadata.generation {
        return false;
    }
    if status.disruptions_allowed > 0 {
        cond.status == "True" && cond.reason == SUFFICIENT_PODS
    } else {
        cond.status == "False" && cond.reason == INSUFFICIENT_PODS
    }
}

/// What the controller found for one budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected_pods: i32,
    pub disrupted_pods: BTreeMap<String, Time>,
}

/// The status to write for `observed`, or `None` when the stored one already says it
/// (an absent and an empty `disruptedPods` are the same).
pub fn next_status(
    pdb: &PodDisruptionBudget,
    observed: Observed,
    now: Timestamp,
) -> Option<PodDisruptionBudgetStatus> {
    let allowed = disruptions_allowed(
        observed.current_healthy,
        observed.desired_healthy,
        observed.expected_pods,
    );
    let current = pdb.status.clone().unwrap_or_default();
    let empty = BTreeMap::new();
    if current.current_healthy == observed.current_healthy
        && current.desired_healthy == observed.desired_healthy
        && current.expected_pods == observed.expected_pods
        && current.disruptions_allowed == allowed
        && current.disrupted_pods.as_ref().unwrap_or(&empty) == &observed.disrupted_pods
        && current.observed_generation == pdb.metadata.generation
        && conditions_up_to_date(pdb)
    {
        return None;
    }
    let mut status = PodDisruptionBudgetStatus {
        current_healthy: observed.current_healthy,
        desired_healthy: observed.desired_healthy,
        expected_pods: observed.expected_pods,
        disruptions_allowed: allowed,
        disrupted_pods: (!observed.disrupted_pods.is_empty()).then_some(observed.disrupted_pods),
        observed_generation: pdb.metadata.generation,
        conditions: current.conditions,
    };
    update_disruption_allowed(&mut status, now);
    Some(status)
}

/// The status after a failed sync: no disruption allowed, `DisruptionAllowed` False with
/// reason `SyncFailed` and the error (upstream `failSafe`).
pub fn failed_status(
    pdb: &PodDisruptionBudget,
    error: &str,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let cond = Condition {
        type_: DISRUPTION_ALLOWED.into(),
        status: "False".into(),
        reason: SYNC_FAILED.into(),
        message: error.into(),
        observed_generation: status.observed_generation,
        last_transition_time: Time(now),
    };
    set_condition(status.conditions.get_or_insert_with(Vec::new), cond);
    status
}

/// For a pod that carries a `DisruptionTarget=True` condition but is not being deleted
/// (and is not finished, and was not marked by its kubelet): how long until the condition
/// counts as stale (zero: already). `None` for every other pod (upstream
/// `nonTerminatingPodHasStaleDisruptionCondition`).
pub fn stale_disruption_wait(pod: &Pod, now: Timestamp) -> Option<std::time::Duration> {
    if pod.metadata.deletion_timestamp.is_some() || crate::util::podutil::is_terminal(pod) {
        return None;
    }
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "DisruptionTarget")?;
    if cond.status != "True" || cond.reason.as_deref() == Some("TerminationByKubelet") {
        return None;
    }
    let since = cond.last_transition_time.as_ref().map_or(now, |t| t.0);
    let left = STALE_POD_DISRUPTION_TIMEOUT - now.duration_since(since);
    Some(if left.is_negative() {
        std::time::Duration::ZERO
    } else {
        left.unsigned_abs()
    })
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;

//! `POST pods/<name>/eviction`: delete a pod unless that would violate its
//! PodDisruptionBudget, as upstream's `EvictionREST`.
//!
//! - Pods that are finished (Succeeded/Failed), Pending, or already terminating are
//!   deleted without looking at budgets (Pending ones guarded by their resourceVersion,
//!   so a pod that starts meanwhile is looked at again).
//! - A pod matched by several budgets is refused (500): the subresource does not support it.
//! - With one budget: a budget whose status is older than its spec answers 429 ("still
//!   being processed"); a pod that is not Ready may go without using the budget when the
//!   budget says `unhealthyPodEvictionPolicy: AlwaysAllow`, or by default when the
//!   budget is currently met (`currentHealthy >= desiredHealthy > 0`) — then guarded by
//!   the pod's resourceVersion, a pod turning Ready meanwhile makes it a 429. Otherwise
//!   the budget must allow a disruption (else 429 `DisruptionBudget`): its
//!   `disruptionsAllowed` is decremented and the pod recorded in `disruptedPods` (a
//!   compare-and-swap on the budget's status, retried on conflict; not with dryRun).
//! - The pod then gets the `DisruptionTarget` condition and is deleted with the request's
//!   `deleteOptions`.

use super::resource::Call;
use super::response;
use crate::error::{ApiError, ApiResult};
use crate::meta;
use crate::registry::{DeleteOptions, ListParams, Registry, WriteOptions};
use axum::http::StatusCode;
use axum::response::Response;
use r8s_api::catalog::ResourceInfo;
use r8s_api::selector::from_label_selector_json;
use serde_json::{Value, json};
use std::time::Duration;

/// Attempts at a conflicting write before giving up (upstream `EvictionsRetry` steps).
const RETRIES: usize = 20;
/// Evictions a budget may have recorded but its controller not yet confirmed (upstream
/// `MaxDisruptedPodSize`).
const MAX_DISRUPTED_POD_SIZE: usize = 2000;
/// The cause type of budget refusals.
const DISRUPTION_BUDGET_CAUSE: &str = "DisruptionBudget";

/// Handle the eviction of the pod the call names.
pub async fn evict(call: Call) -> ApiResult<Response> {
    let name = call.name()?.to_string();
    let eviction = call.body_object()?;
    if !eviction.is_object() {
        return Err(ApiError::bad_request("not a Eviction object"));
    }
    if meta::name(&eviction) != name {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    let opts = delete_options(
        call.query.dry_run()?,
        call.query.dry_run_values(),
        &eviction,
    )?;
    let pdbs = r8s_api::catalog::find("policy", "v1", "poddisruptionbudgets")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets are not served"))?;
    let evictor = Evictor {
        registry: &call.state.registry,
        pods: call.info,
        pdbs,
        namespace: call.namespace().unwrap_or("default"),
        name: &name,
    };
    evictor.evict(opts).await?;
    Ok(response::success_status(StatusCode::CREATED, None))
}

/// The request's delete options: the body's `deleteOptions`, with the query's dryRun
/// when the body sets none (upstream `propagateDryRun`: both set and different is a 400).
fn delete_options<'a>(
    query_dry_run: bool,
    query_values: impl Iterator<Item = &'a str>,
    eviction: &Value,
) -> ApiResult<DeleteOptions> {
    let mut opts = DeleteOptions::default();
    let body = eviction.get("deleteOptions").filter(|d| !d.is_null());
    if let Some(d) = body {
        opts.merge_body(d)?;
    }
    let body_values: Vec<&str> = body
        .and_then(|d| d.get("dryRun"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let query_values: Vec<&str> = query_values.collect();
    if !body_values.is_empty() && !query_values.is_empty() && body_values != query_values {
        return Err(ApiError::bad_request(format!(
            "Non-matching dry-run options in request and content: [{}] and [{}]",
            query_values.join(" "),
            body_values.join(" ")
        )));
    }
    opts.dry_run |= query_dry_run;
    Ok(opts)
}

/// One eviction.
struct Evictor<'a> {
    registry: &'a Registry,
    pods: &'static ResourceInfo,
    pdbs: &'static ResourceInfo,
    namespace: &'a str,
    name: &'a str,
}

impl Evictor<'_> {
    async fn evict(&self, opts: DeleteOptions) -> ApiResult<()> {
        let caller_rv = opts.precondition_resource_version.is_some();
        // Pods whose deletion disrupts nothing more go at once.
        let mut attempt = 0;
        let pod = loop {
            let pod = self
                .registry
                .get(self.pods, Some(self.namespace), self.name)
                .await?;
            if !can_ignore_budget(&pod) {
                break pod;
            }
            let mut o = opts.clone();
            if should_enforce_resource_version(&pod) && !caller_rv {
                // Not racing a pod that starts meanwhile.
                o.precondition_resource_version = Some(resource_version(&pod).to_string());
            }
            match self.add_condition_and_delete(o).await {
                Err(e) if is_conflict(&e) && !caller_rv && attempt + 1 < RETRIES => {
                    attempt += 1;
                    backoff(attempt).await;
                }
                r => return r,
            }
        };

        let mut budgets = self.budgets_for(&pod).await?;
        if budgets.len() > 1 {
            return Err(ApiError::failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        let mut guard_pod = false;
        let mut budget_name = String::new();
        if let Some(budget) = budgets.pop() {
            budget_name = meta::name(&budget).to_string();
            if !is_ready(&pod) && unhealthy_may_go(&budget) {
                // Not counted as healthy: the budget is not used, but the pod must still be
                // unready when it is deleted.
                guard_pod = true;
            } else {
                self.check_and_decrement(budget, opts.dry_run).await?;
            }
        }

        let mut o = opts.clone();
        if guard_pod && !caller_rv {
            o.precondition_resource_version = Some(resource_version(&pod).to_string());
        }
        match self.add_condition_and_delete(o).await {
            Err(e) if is_conflict(&e) && guard_pod && !caller_rv => {
                Err(still_processing(&budget_name))
            }
            r => r,
        }
    }

    /// The budgets of the pod's namespace whose selector matches it (a missing selector
    /// matches nothing, an empty one everything; an invalid one nothing).
    async fn budgets_for(&self, pod: &Value) -> ApiResult<Vec<Value>> {
        let labels = meta::labels(pod);
        let list = self
            .registry
            .list(self.pdbs, Some(self.namespace), &ListParams::default())
            .await?;
        Ok(list
            .items
            .into_iter()
            .filter(|b| {
                let sel = b.pointer("/spec/selector").unwrap_or(&Value::Null);
                from_label_selector_json(sel).is_ok_and(|s| s.matches(&labels))
            })
            .collect())
    }

    /// Take one disruption from the budget (upstream `checkAndDecrement`), re-reading it
    /// after a conflicting write.
    async fn check_and_decrement(&self, mut budget: Value, dry_run: bool) -> ApiResult<()> {
        let name = meta::name(&budget).to_string();
        let mut attempt = 0;
        loop {
            let status = decremented_status(&budget, self.name, dry_run, &meta::now_rfc3339())?;
            if dry_run {
                return Ok(());
            }
            let rv = resource_version(&budget).to_string();
            let written = self
                .registry
                .update_with(
                    self.pdbs,
                    Some(self.namespace),
                    &name,
                    Some("status"),
                    &WriteOptions::default(),
                    |current| {
                        let mut next = current.clone();
                        // The decision was made on `rv`: a newer budget is a conflict.
                        meta::metadata_mut(&mut next).insert("resourceVersion".into(), json!(rv));
                        next["status"] = status.clone();
                        Ok(next)
                    },
                )
                .await;
            match written {
                Ok(_) => return Ok(()),
                Err(e) if is_conflict(&e) && attempt + 1 < RETRIES => {
                    attempt += 1;
                    backoff(attempt).await;
                    budget = self
                        .registry
                        .get(self.pdbs, Some(self.namespace), &name)
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Mark the pod with the `DisruptionTarget` condition (not on dry runs), then delete
    /// it. The condition write checks the request's preconditions, and a resourceVersion
    /// precondition moves to the version it wrote.
    async fn add_condition_and_delete(&self, mut opts: DeleteOptions) -> ApiResult<()> {
        if !opts.dry_run {
            let (uid, rv) = (
                opts.precondition_uid.clone(),
                opts.precondition_resource_version.clone(),
            );
            let name = self.name;
            let updated = self
                .registry
                .update_with(
                    self.pods,
                    Some(self.namespace),
                    name,
                    Some("status"),
                    &WriteOptions::default(),
                    |current| {
                        check_preconditions(current, name, uid.as_deref(), rv.as_deref())?;
                        let mut next = current.clone();
                        set_disruption_target(&mut next, &meta::now_rfc3339());
                        Ok(next)
                    },
                )
                .await?;
            if opts.precondition_resource_version.is_some() {
                opts.precondition_resource_version = Some(resource_version(&updated).to_string());
            }
        }
        self.registry
            .delete(self.pods, Some(self.namespace), self.name, &opts)
            .await?;
        Ok(())
    }
}

/// Wait a little before retrying a conflicting write (longer with each attempt).
async fn backoff(attempt: usize) {
    let ms = 10 * attempt.min(10) as u64 + rand::random::<u64>() % 10;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

fn is_conflict(e: &ApiError) -> bool {
    e.code == StatusCode::CONFLICT
}

fn resource_version(obj: &Value) -> &str {
    meta::meta_str(obj, "resourceVersion")
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Finished, Pending or terminating pods need no budget check.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed" | "Pending") || meta::is_deleting(pod)
}

/// Deleting pods that are not finished or terminating is guarded by their
/// resourceVersion.
fn should_enforce_resource_version(pod: &Value) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && !meta::is_deleting(pod)
}

/// The pod's Ready condition is True.
fn is_ready(pod: &Value) -> bool {
    condition(pod, "Ready").is_some_and(|c| c.get("status").and_then(Value::as_str) == Some("True"))
}

fn condition<'a>(pod: &'a Value, type_: &str) -> Option<&'a Value> {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

fn status_int(budget: &Value, field: &str) -> i64 {
    budget
        .pointer(&format!("/status/{field}"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Whether an unready pod may be evicted without using the budget: always with
/// `AlwaysAllow`; by default (`IfHealthyBudget`) while the budget is met.
fn unhealthy_may_go(budget: &Value) -> bool {
    let policy = budget
        .pointer("/spec/unhealthyPodEvictionPolicy")
        .and_then(Value::as_str);
    if policy == Some("AlwaysAllow") {
        return true;
    }
    let desired = status_int(budget, "desiredHealthy");
    status_int(budget, "currentHealthy") >= desired && desired > 0
}

/// 429: the budget's status does not reflect its spec yet (client-go retries after 10 s).
fn still_processing(budget: &str) -> ApiError {
    ApiError::too_many_requests(
        "Cannot evict pod as it would violate the pod's disruption budget.",
        10,
    )
    .with_cause(
        DISRUPTION_BUDGET_CAUSE,
        format!("The disruption budget {budget} is still being processed by the server."),
    )
}

/// 403 on the budget.
fn budget_forbidden(budget: &str, why: &str) -> ApiError {
    ApiError::forbidden(format!(
        "poddisruptionbudgets.policy \"{budget}\" is forbidden: {why}"
    ))
}

/// The budget's status after allowing one more disruption of `pod` at `now`, or why it
/// cannot (upstream `checkAndDecrement`). A dry run does not record the pod.
fn decremented_status(budget: &Value, pod: &str, dry_run: bool, now: &str) -> ApiResult<Value> {
    let name = meta::name(budget);
    let generation = budget
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if status_int(budget, "observedGeneration") < generation {
        return Err(still_processing(name));
    }
    let allowed = status_int(budget, "disruptionsAllowed");
    if allowed < 0 {
        return Err(budget_forbidden(
            name,
            "pdb disruptions allowed is negative",
        ));
    }
    let recorded = budget
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len);
    if recorded > MAX_DISRUPTED_POD_SIZE {
        return Err(budget_forbidden(
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(ApiError::too_many_requests(
            "Cannot evict pod as it would violate the pod's disruption budget.",
            0,
        )
        .with_cause(
            DISRUPTION_BUDGET_CAUSE,
            format!(
                "The disruption budget {name} needs {} healthy pods and has {} currently",
                status_int(budget, "desiredHealthy"),
                status_int(budget, "currentHealthy")
            ),
        ));
    }
    let mut status = budget.get("status").cloned().unwrap_or_else(|| json!({}));
    status["disruptionsAllowed"] = json!(allowed - 1);
    if allowed - 1 == 0 {
        set_condition(
            &mut status,
            json!({
                "type": "DisruptionAllowed",
                "status": "False",
                "reason": "InsufficientPods",
                "message": "",
                "observedGeneration": status_int(budget, "observedGeneration"),
                "lastTransitionTime": now,
            }),
        );
    }
    if !dry_run {
        if !status.get("disruptedPods").is_some_and(Value::is_object) {
            status["disruptedPods"] = json!({});
        }
        status["disruptedPods"][pod] = json!(now);
    }
    Ok(status)
}

/// Upstream `meta.SetStatusCondition` on `status.conditions` (the transition time moves
/// only when the status changes).
fn set_condition(status: &mut Value, cond: Value) {
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(list) = status.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    let type_ = cond.get("type").cloned();
    match list.iter_mut().find(|c| c.get("type") == type_.as_ref()) {
        None => list.push(cond),
        Some(existing) => {
            let changed = existing.get("status") != cond.get("status");
            for field in ["status", "reason", "message", "observedGeneration"] {
                existing[field] = cond.get(field).cloned().unwrap_or(Value::Null);
            }
            if changed {
                existing["lastTransitionTime"] = cond
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or(Value::Null);
            }
        }
    }
}

/// The delete's UID and resourceVersion preconditions against the pod as it is now, with
/// upstream's conflict messages.
fn check_preconditions(
    pod: &Value,
    name: &str,
    uid: Option<&str>,
    rv: Option<&str>,
) -> ApiResult<()> {
    let conflict = |why: String| {
        ApiError::conflict_message(format!(
            "Operation cannot be fulfilled on Pod \"{name}\": {why}"
        ))
    };
    let current_uid = meta::meta_str(pod, "uid");
    if let Some(uid) = uid.filter(|u| !u.is_empty())
        && uid != current_uid
    {
        return Err(conflict(format!(
            "the UID in the precondition ({uid}) does not match the UID in record ({current_uid}). The object might have been deleted and then recreated"
        )));
    }
    let current_rv = resource_version(pod);
    if let Some(rv) = rv.filter(|r| !r.is_empty())
        && rv != current_rv
    {
        return Err(conflict(format!(
            "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({current_rv}). The object might have been modified"
        )));
    }
    Ok(())
}

/// Upstream `UpdatePodCondition` with `DisruptionTarget=True` (reason
/// `EvictionByEvictionAPI`): the transition time stays if the status does not change.
fn set_disruption_target(pod: &mut Value, now: &str) {
    let cond = json!({
        "type": "DisruptionTarget",
        "status": "True",
        "reason": "EvictionByEvictionAPI",
        "message": "Eviction API: evicting",
        "lastTransitionTime": now,
    });
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    let status = &mut pod["status"];
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(list) = status.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionTarget"))
    {
        None => list.push(cond),
        Some(existing) => {
            let mut cond = cond;
            if existing.get("status") == cond.get("status") {
                cond["lastTransitionTime"] = existing
                    .get("lastTransitionTime")
                    .cloned()
                    .unwrap_or(Value::Null);
            }
            *existing = cond;
        }
    }
}

#[cfg(test)]
#[path = "eviction_tests.rs"]
mod tests;

#![allow(clippy::unwrap_used)]

use super::*;

fn budget(status: Value) -> Value {
    json!({"metadata": {"name": "web", "namespace": "d", "generation": 2, "resourceVersion": "7"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
        "status": status})
}

fn pod(phase: &str, ready: bool) -> Value {
    json!({"metadata": {"name": "web-1", "uid": "u1", "resourceVersion": "5"},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
}

#[test]
fn which_pods_skip_the_budget() {
    assert!(can_ignore_budget(&pod("Succeeded", false)));
    assert!(can_ignore_budget(&pod("Failed", false)));
    assert!(can_ignore_budget(&pod("Pending", false)));
    assert!(!can_ignore_budget(&pod("Running", true)));
    let mut terminating = pod("Running", true);
    terminating["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    assert!(can_ignore_budget(&terminating));
    // Only pods that may still start are guarded by their resourceVersion.
    assert!(should_enforce_resource_version(&pod("Pending", false)));
    assert!(!should_enforce_resource_version(&pod("Failed", false)));
    assert!(!should_enforce_resource_version(&terminating));
}

#[test]
fn refusal_when_no_disruption_is_allowed() {
    let b = budget(json!({"observedGeneration": 2, "disruptionsAllowed": 0,
        "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 2}));
    let e = decremented_status(&b, "web-1", false, "now").unwrap_err();
    assert_eq!(e.code, StatusCode::TOO_MANY_REQUESTS);
    let body = e.status_body();
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(
        body["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(
        body["details"],
        json!({"causes": [{"reason": "DisruptionBudget",
            "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]})
    );
    // No Retry-After: the client decides when to try again.
    assert_eq!(e.retry_after_seconds(), None);
}

#[test]
fn refusal_while_the_budget_is_being_processed() {
    let b = budget(json!({"observedGeneration": 1, "disruptionsAllowed": 3}));
    let e = decremented_status(&b, "web-1", false, "now").unwrap_err();
    assert_eq!(e.code, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(e.retry_after_seconds(), Some(10));
    let body = e.status_body();
    assert_eq!(body["details"]["retryAfterSeconds"], 10);
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "The disruption budget web is still being processed by the server."
    );
    // A budget never synced at all.
    let e = decremented_status(&budget(Value::Null), "web-1", false, "now").unwrap_err();
    assert_eq!(e.retry_after_seconds(), Some(10));
    // A response carries the header.
    let resp = axum::response::IntoResponse::into_response(e);
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "10");
}

#[test]
fn forbidden_budgets() {
    let b = budget(json!({"observedGeneration": 2, "disruptionsAllowed": -1}));
    let e = decremented_status(&b, "web-1", false, "now").unwrap_err();
    assert_eq!(e.code, StatusCode::FORBIDDEN);
    assert_eq!(
        e.message,
        "poddisruptionbudgets.policy \"web\" is forbidden: pdb disruptions allowed is negative"
    );
    let many: serde_json::Map<String, Value> =
        (0..2001).map(|i| (format!("p{i}"), json!("now"))).collect();
    let b =
        budget(json!({"observedGeneration": 2, "disruptionsAllowed": 1, "disruptedPods": many}));
    let e = decremented_status(&b, "web-1", false, "now").unwrap_err();
    assert_eq!(e.code, StatusCode::FORBIDDEN);
}

#[test]
fn decrement_records_the_pod() {
    let b = budget(json!({"observedGeneration": 2, "disruptionsAllowed": 2,
        "currentHealthy": 4, "desiredHealthy": 2, "expectedPods": 4,
        "conditions": [{"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods",
            "message": "", "observedGeneration": 2, "lastTransitionTime": "then"}]}));
    let s = decremented_status(&b, "web-1", false, "now").unwrap();
    assert_eq!(s["disruptionsAllowed"], 1);
    assert_eq!(s["disruptedPods"], json!({"web-1": "now"}));
    assert_eq!(s["conditions"][0]["status"], "True");
    assert_eq!(s["conditions"][0]["lastTransitionTime"], "then");

    // The last allowed disruption flips the condition.
    let mut b1 = b.clone();
    b1["status"]["disruptionsAllowed"] = json!(1);
    let s = decremented_status(&b1, "web-2", false, "now").unwrap();
    assert_eq!(s["disruptionsAllowed"], 0);
    assert_eq!(s["disruptedPods"], json!({"web-2": "now"}));
    let c = &s["conditions"][0];
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some("InsufficientPods"))
    );
    assert_eq!(c["lastTransitionTime"], "now");
    assert_eq!(s["conditions"].as_array().unwrap().len(), 1);

    // A dry run records nothing.
    let s = decremented_status(&b, "web-1", true, "now").unwrap();
    assert_eq!(s.get("disruptedPods"), None);
}

#[test]
fn unready_pods_and_the_unhealthy_policy() {
    let met = json!({"observedGeneration": 2, "currentHealthy": 2, "desiredHealthy": 2});
    let unmet = json!({"observedGeneration": 2, "currentHealthy": 1, "desiredHealthy": 2});
    assert!(unhealthy_may_go(&budget(met.clone())));
    assert!(!unhealthy_may_go(&budget(unmet.clone())));
    // A budget that wants no healthy pod is not "met" by default.
    assert!(!unhealthy_may_go(&budget(
        json!({"currentHealthy": 0, "desiredHealthy": 0})
    )));
    let mut always = budget(unmet);
    always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
    assert!(unhealthy_may_go(&always));
    let mut if_healthy = budget(met);
    if_healthy["spec"]["unhealthyPodEvictionPolicy"] = json!("IfHealthyBudget");
    assert!(unhealthy_may_go(&if_healthy));
    assert!(!is_ready(&pod("Running", false)));
    assert!(is_ready(&pod("Running", true)));
}

#[test]
fn dry_run_options_from_query_and_body() {
    let ev = json!({"deleteOptions": {"dryRun": ["All"], "gracePeriodSeconds": 3}});
    let o = delete_options(false, std::iter::empty(), &ev).unwrap();
    assert!(o.dry_run);
    assert_eq!(o.grace_period_seconds, Some(3));
    let o = delete_options(true, ["All"].into_iter(), &json!({})).unwrap();
    assert!(o.dry_run);
    let ev = json!({"deleteOptions": {"dryRun": ["Some"]}});
    let e = delete_options(true, ["All"].into_iter(), &ev).unwrap_err();
    assert_eq!(
        e.message,
        "Non-matching dry-run options in request and content: [All] and [Some]"
    );
}

#[test]
fn disruption_target_condition_and_preconditions() {
    let mut p = pod("Running", true);
    set_disruption_target(&mut p, "t1");
    let c = condition(&p, "DisruptionTarget").unwrap().clone();
    assert_eq!(c["reason"], "EvictionByEvictionAPI");
    assert_eq!(c["message"], "Eviction API: evicting");
    assert_eq!(c["lastTransitionTime"], "t1");
    set_disruption_target(&mut p, "t2");
    assert_eq!(
        condition(&p, "DisruptionTarget").unwrap()["lastTransitionTime"],
        "t1"
    );
    assert_eq!(p["status"]["conditions"].as_array().unwrap().len(), 2);

    assert!(check_preconditions(&p, "web-1", Some("u1"), Some("5")).is_ok());
    let e = check_preconditions(&p, "web-1", None, Some("4")).unwrap_err();
    assert_eq!(e.code, StatusCode::CONFLICT);
    assert!(e.message.starts_with("Operation cannot be fulfilled on Pod \"web-1\": the ResourceVersion in the precondition (4)"));
    let e = check_preconditions(&p, "web-1", Some("other"), None).unwrap_err();
    assert!(
        e.message
            .contains("the UID in the precondition (other) does not match the UID in record (u1)")
    );
}

#[test]
fn several_budgets_answer_without_a_reason() {
    let e = ApiError::failure(StatusCode::INTERNAL_SERVER_ERROR, "x");
    let body = e.status_body();
    assert_eq!(body["code"], 500);
    assert_eq!(body.get("reason"), None);
}

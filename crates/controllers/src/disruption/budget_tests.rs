#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::json;

fn spec(v: serde_json::Value) -> PodDisruptionBudgetSpec {
    serde_json::from_value(v).unwrap()
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn pod(name: &str, ready: bool, deleting: bool) -> Arc<Pod> {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "d"},
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    });
    if deleting {
        p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
    }
    Arc::new(serde_json::from_value(p).unwrap())
}

#[test]
fn integer_min_available_counts_the_matching_pods() {
    let s = spec(json!({"minAvailable": 2}));
    assert!(!needs_scale(&s));
    // The scale is not consulted.
    assert_eq!(expected_and_desired(&s, 3, 99), Ok((3, 2)));
    assert_eq!(expected_and_desired(&s, 0, 99), Ok((0, 2)));
}

#[test]
fn percentage_min_available_rounds_up_of_the_scale() {
    let s = spec(json!({"minAvailable": "50%"}));
    assert!(needs_scale(&s));
    assert_eq!(expected_and_desired(&s, 2, 3), Ok((3, 2)));
    assert_eq!(expected_and_desired(&s, 2, 4), Ok((4, 2)));
    let s = spec(json!({"minAvailable": "34%"}));
    assert_eq!(expected_and_desired(&s, 0, 3), Ok((3, 2)));
    let s = spec(json!({"minAvailable": "100%"}));
    assert_eq!(expected_and_desired(&s, 0, 5), Ok((5, 5)));
}

#[test]
fn max_unavailable_from_the_scale() {
    let s = spec(json!({"maxUnavailable": 1}));
    assert!(needs_scale(&s));
    assert_eq!(expected_and_desired(&s, 7, 3), Ok((3, 2)));
    // Never below zero.
    let s = spec(json!({"maxUnavailable": 5}));
    assert_eq!(expected_and_desired(&s, 0, 3), Ok((3, 0)));
    // Percentages of maxUnavailable round up too (more may be unavailable).
    let s = spec(json!({"maxUnavailable": "25%"}));
    assert_eq!(expected_and_desired(&s, 0, 5), Ok((5, 3)));
    let s = spec(json!({"maxUnavailable": "0%"}));
    assert_eq!(expected_and_desired(&s, 0, 5), Ok((5, 5)));
}

#[test]
fn neither_set_expects_nothing() {
    assert_eq!(expected_and_desired(&spec(json!({})), 4, 4), Ok((0, 0)));
}

#[test]
fn bad_percentages_are_errors() {
    let s = spec(json!({"minAvailable": "half"}));
    assert_eq!(
        expected_and_desired(&s, 0, 4),
        Err("invalid value for IntOrString: invalid type: string is not a percentage".into())
    );
    let s = spec(json!({"maxUnavailable": "x%"}));
    assert!(
        expected_and_desired(&s, 0, 4)
            .unwrap_err()
            .starts_with("invalid value for IntOrString: invalid value \"x%\"")
    );
    assert_eq!(
        scaled_value(&IntOrString::String("50%".into()), 3, false),
        Ok(1)
    );
}

#[test]
fn allowed_disruptions() {
    assert_eq!(disruptions_allowed(3, 2, 3), 1);
    assert_eq!(disruptions_allowed(2, 2, 3), 0);
    assert_eq!(disruptions_allowed(1, 2, 3), 0);
    // No expected pods: nothing allowed whatever is healthy.
    assert_eq!(disruptions_allowed(3, 0, 0), 0);
}

#[test]
fn healthy_pods_are_ready_not_deleting_not_disrupted() {
    let pods = vec![
        pod("a", true, false),
        pod("b", true, true),
        pod("c", false, false),
        pod("d", true, false),
        pod("e", true, false),
    ];
    let now = t(0);
    let disrupted: BTreeMap<String, Time> = [
        ("d".to_string(), Time(t(-30))),
        // Expired: counts as healthy again.
        ("e".to_string(), Time(t(-121))),
    ]
    .into();
    assert_eq!(count_healthy(&pods, &disrupted, now), 2);
    assert_eq!(count_healthy(&pods, &BTreeMap::new(), now), 3);
}

#[test]
fn disrupted_entries_expire_after_two_minutes() {
    let pods = vec![
        pod("fresh", true, false),
        pod("older", true, false),
        pod("stale", true, false),
        pod("deleting", true, true),
    ];
    let recorded: BTreeMap<String, Time> = [
        ("fresh".to_string(), Time(t(-10))),
        ("older".to_string(), Time(t(-60))),
        ("stale".to_string(), Time(t(-121))),
        ("deleting".to_string(), Time(t(-10))),
        ("gone".to_string(), Time(t(-10))),
    ]
    .into();
    let d = disrupted_pods(&pods, Some(&recorded), t(0));
    assert_eq!(
        d.pods.keys().cloned().collect::<Vec<_>>(),
        ["fresh", "older"]
    );
    assert_eq!(d.expired, ["stale"]);
    // The older entry expires first.
    assert_eq!(d.recheck, Some(t(60)));
    assert_eq!(disrupted_pods(&pods, None, t(0)), Disrupted::default());
}

fn pdb(v: serde_json::Value) -> PodDisruptionBudget {
    serde_json::from_value(v).unwrap()
}

#[test]
fn status_and_condition() {
    let b = pdb(
        json!({"metadata": {"name": "web", "namespace": "d", "generation": 2},
        "spec": {"minAvailable": 1}}),
    );
    let observed = Observed {
        current_healthy: 3,
        desired_healthy: 1,
        expected_pods: 3,
        disrupted_pods: BTreeMap::new(),
    };
    let status = next_status(&b, observed.clone(), t(0)).unwrap();
    assert_eq!(status.disruptions_allowed, 2);
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.disrupted_pods, None);
    let cond = &status.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (
            cond.type_.as_str(),
            cond.status.as_str(),
            cond.reason.as_str()
        ),
        ("DisruptionAllowed", "True", "SufficientPods")
    );
    assert_eq!(cond.observed_generation, Some(2));
    assert_eq!(cond.last_transition_time, Time(t(0)));

    // Written: nothing more to do.
    let mut b = b;
    b.status = Some(status);
    assert_eq!(next_status(&b, observed.clone(), t(5)), None);

    // Fewer healthy: InsufficientPods, transition time moves.
    let fewer = Observed {
        current_healthy: 1,
        ..observed.clone()
    };
    let status = next_status(&b, fewer, t(10)).unwrap();
    assert_eq!(status.disruptions_allowed, 0);
    let cond = &status.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "InsufficientPods")
    );
    assert_eq!(cond.last_transition_time, Time(t(10)));

    // A new generation is always written.
    b.metadata.generation = Some(3);
    assert_eq!(
        next_status(&b, observed, t(20))
            .unwrap()
            .observed_generation,
        Some(3)
    );
}

#[test]
fn fail_safe_status() {
    let b = pdb(
        json!({"metadata": {"name": "web", "namespace": "d", "generation": 1},
        "spec": {"maxUnavailable": 1},
        "status": {"disruptionsAllowed": 2, "currentHealthy": 3, "desiredHealthy": 1,
            "expectedPods": 3, "observedGeneration": 1}}),
    );
    let s = failed_status(&b, "found no controllers for pod \"x\"", t(0));
    assert_eq!(s.disruptions_allowed, 0);
    assert_eq!(s.current_healthy, 3);
    let cond = &s.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (
            cond.status.as_str(),
            cond.reason.as_str(),
            cond.message.as_str()
        ),
        ("False", "SyncFailed", "found no controllers for pod \"x\"")
    );
    assert_eq!(cond.observed_generation, Some(1));
    // A failed status is not up to date: the next good sync rewrites it.
    let mut b = b;
    b.status = Some(s);
    assert!(!conditions_up_to_date(&b));
}

#[test]
fn stale_disruption_target_conditions() {
    let with = |status: &str, reason: &str, at: i64, deleting: bool, phase: &str| -> Pod {
        let mut p = json!({
            "metadata": {"name": "p", "namespace": "d"},
            "status": {"phase": phase, "conditions": [{"type": "DisruptionTarget",
                "status": status, "reason": reason,
                "lastTransitionTime": Time(t(at))}]},
        });
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        }
        serde_json::from_value(p).unwrap()
    };
    let now = t(0);
    let secs = |s: u64| Some(std::time::Duration::from_secs(s));
    assert_eq!(
        stale_disruption_wait(
            &with("True", "EvictionByEvictionAPI", -20, false, "Running"),
            now
        ),
        secs(100)
    );
    assert_eq!(
        stale_disruption_wait(
            &with("True", "EvictionByEvictionAPI", -300, false, "Running"),
            now
        ),
        secs(0)
    );
    // Being deleted, finished, False, or set by the kubelet: not stale.
    for p in [
        with("True", "EvictionByEvictionAPI", -300, true, "Running"),
        with("True", "EvictionByEvictionAPI", -300, false, "Failed"),
        with("False", "EvictionByEvictionAPI", -300, false, "Running"),
        with("True", "TerminationByKubelet", -300, false, "Running"),
    ] {
        assert_eq!(stale_disruption_wait(&p, now), None);
    }
    assert_eq!(stale_disruption_wait(&pod("a", true, false), now), None);
}

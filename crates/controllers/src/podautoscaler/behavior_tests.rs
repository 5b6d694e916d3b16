use super::*;
use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

fn at(t0: Instant, secs: u64) -> Instant {
    t0 + Duration::from_secs(secs)
}

fn up() -> Rules {
    Rules::scale_up(None)
}

fn down(window: u64) -> Rules {
    Rules::scale_down(None, Duration::from_secs(window))
}

#[test]
fn default_rules_are_upstreams() {
    assert_eq!(
        up(),
        Rules {
            stabilization_window_seconds: 0,
            select: Select::Max,
            policies: vec![
                policy(PolicyKind::Pods, 4),
                policy(PolicyKind::Percent, 100)
            ],
        }
    );
    assert_eq!(
        down(300),
        Rules {
            stabilization_window_seconds: 300,
            select: Select::Max,
            policies: vec![policy(PolicyKind::Percent, 100)],
        }
    );
    let spec = HPAScalingRules {
        select_policy: Some("Disabled".into()),
        stabilization_window_seconds: Some(0),
        policies: Some(vec![HPAScalingPolicy {
            type_: "Pods".into(),
            value: 1,
            period_seconds: 60,
        }]),
        ..Default::default()
    };
    let r = Rules::scale_down(Some(&spec), Duration::from_secs(300));
    assert_eq!(r.select, Select::Disabled);
    assert_eq!(r.stabilization_window_seconds, 0);
    assert_eq!(r.policies[0].period_seconds, 60);
}

#[test]
fn the_stabilization_window_holds_a_scale_down() {
    let t0 = Instant::now();
    let mut h = History::default();
    h.record_initial(5, t0);
    let n = h.normalize_with_behaviors(&up(), &down(300), 5, 2, (1, 10), at(t0, 60));
    assert_eq!(n.replicas, 5);
    assert_eq!(n.able.0, "ScaleDownStabilized");
    assert_eq!(n.limited, (false, "DesiredWithinRange", WITHIN.2));
    // Once the higher recommendation is older than the window, the scale-down happens.
    let n = h.normalize_with_behaviors(&up(), &down(300), 5, 2, (1, 10), at(t0, 301));
    assert_eq!(n.replicas, 2);
    assert_eq!(n.able.0, "ReadyForNewScale");
    // With no window it happens at once.
    let mut h = History::default();
    h.record_initial(5, t0);
    let n = h.normalize_with_behaviors(&up(), &down(0), 5, 2, (1, 10), at(t0, 1));
    assert_eq!(n.replicas, 2);
}

#[test]
fn a_scale_up_window_takes_the_lowest_recent_recommendation() {
    let t0 = Instant::now();
    let mut h = History::default();
    h.record_initial(2, t0);
    let mut slow_up = up();
    slow_up.stabilization_window_seconds = 60;
    let n = h.normalize_with_behaviors(&slow_up, &down(0), 2, 6, (1, 10), at(t0, 10));
    assert_eq!(n.replicas, 2);
    assert_eq!(n.able.0, "ScaleUpStabilized");
    let n = h.normalize_with_behaviors(&slow_up, &down(0), 2, 6, (1, 10), at(t0, 61));
    assert_eq!(n.replicas, 6);
}

#[test]
fn scale_up_policies_limit_the_rate() {
    let t0 = Instant::now();
    let (u, d) = (up(), down(0));
    let mut h = History::default();
    h.record_initial(1, t0);
    // From 1: max(1 + 4 pods, 1 + 100 %) = 5.
    let n = h.normalize_with_behaviors(&u, &d, 1, 10, (1, 10), t0);
    assert_eq!(n.replicas, 5);
    assert_eq!(n.limited, (true, "ScaleUpLimit", UP_LIMIT.1));
    h.record_scale(&u, &d, 1, 5, t0);
    // Within the same 15 s period nothing more may be added.
    let n = h.normalize_with_behaviors(&u, &d, 5, 10, (1, 10), at(t0, 5));
    assert_eq!(n.replicas, 5);
    // A period later: max(5 + 4, 5 + 100 %) = 10, and maxReplicas caps it at 8.
    let n = h.normalize_with_behaviors(&u, &d, 5, 12, (1, 8), at(t0, 16));
    assert_eq!(n.replicas, 8);
    assert_eq!(n.limited, (true, "TooManyReplicas", TOO_MANY.1));
    // selectPolicy Min takes the smaller allowance: min(10 + 4, 10 + 100 %) = 14.
    let mut min_up = up();
    min_up.select = Select::Min;
    let n = History::default().normalize_with_behaviors(&min_up, &d, 10, 30, (1, 50), t0);
    assert_eq!(n.replicas, 14);
}

#[test]
fn disabled_selection_stops_that_direction() {
    let t0 = Instant::now();
    let mut no_down = down(0);
    no_down.select = Select::Disabled;
    let mut h = History::default();
    h.record_initial(5, t0);
    let n = h.normalize_with_behaviors(&up(), &no_down, 5, 1, (1, 10), at(t0, 1));
    assert_eq!(n.replicas, 5);
    assert_eq!(n.limited, (true, "ScaleDownLimit", DOWN_LIMIT.1));
    let mut no_up = up();
    no_up.select = Select::Disabled;
    let n = h.normalize_with_behaviors(&no_up, &down(0), 5, 9, (1, 10), at(t0, 2));
    assert_eq!(n.replicas, 5);
}

#[test]
fn scale_down_policies_count_recent_removals() {
    let t0 = Instant::now();
    let u = up();
    let mut d = down(0);
    d.policies = vec![Policy {
        kind: PolicyKind::Pods,
        value: 2,
        period_seconds: 60,
    }];
    let mut h = History::default();
    h.record_initial(10, t0);
    let n = h.normalize_with_behaviors(&u, &d, 10, 1, (1, 10), t0);
    assert_eq!(n.replicas, 8);
    h.record_scale(&u, &d, 10, 8, t0);
    let n = h.normalize_with_behaviors(&u, &d, 8, 1, (1, 10), at(t0, 30));
    assert_eq!(n.replicas, 8);
    let n = h.normalize_with_behaviors(&u, &d, 8, 1, (1, 10), at(t0, 61));
    assert_eq!(n.replicas, 6);
    // The 100 %-per-period default goes straight to minReplicas.
    let n = History::default().normalize_with_behaviors(&u, &down(0), 8, 1, (3, 10), t0);
    assert_eq!(n.replicas, 3);
    assert_eq!(n.limited, (true, "TooFewReplicas", TOO_FEW.1));
}

#[test]
fn without_behavior_the_legacy_rules_apply() {
    let t0 = Instant::now();
    let window = Duration::from_secs(300);
    let mut h = History::default();
    h.record_initial(4, t0);
    // The recent higher recommendation holds the scale-down.
    let n = h.normalize(window, 4, 1, (1, 10), at(t0, 10));
    assert_eq!(n.replicas, 4);
    assert_eq!(n.able.0, "ScaleDownStabilized");
    let n = h.normalize(window, 4, 1, (2, 10), at(t0, 400));
    assert_eq!(n.replicas, 2);
    assert_eq!(n.limited.1, "TooFewReplicas");
    // Up at most max(2 × current, 4) at a time, and never past maxReplicas.
    let n = History::default().normalize(window, 3, 20, (1, 10), t0);
    assert_eq!((n.replicas, n.limited.1), (6, "ScaleUpLimit"));
    let n = History::default().normalize(window, 8, 20, (1, 10), t0);
    assert_eq!((n.replicas, n.limited.1), (10, "TooManyReplicas"));
    let n = History::default().normalize(window, 3, 5, (1, 10), t0);
    assert_eq!(n.replicas, 5);
    assert_eq!(n.limited, WITHIN);
}

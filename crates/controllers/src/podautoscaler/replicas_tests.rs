use super::*;
use serde_json::{Value, json};

fn now() -> Timestamp {
    "2026-11-28T12:00:00Z".parse().unwrap()
}

fn ago(secs: i64) -> String {
    now()
        .checked_sub(SignedDuration::from_secs(secs))
        .unwrap()
        .to_string()
}

/// A Running pod started 10 minutes ago, Ready for 9, requesting `request` of cpu and
/// memory in container `c`.
fn pod(name: &str, request: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"cpu": request, "memory": request}}}]},
        "status": {"phase": "Running", "startTime": ago(600),
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ago(540)}]},
    })
}

fn arc(v: Value) -> Arc<Pod> {
    Arc::new(serde_json::from_value(v).unwrap())
}

fn pods(n: usize, request: &str) -> Vec<Arc<Pod>> {
    (0..n)
        .map(|i| arc(pod(&format!("p{i}"), request)))
        .collect()
}

fn sample(value: i64) -> PodMetric {
    PodMetric {
        timestamp: now(),
        window: Duration::from_secs(30),
        value,
    }
}

fn usage(values: &[(usize, i64)]) -> PodMetricsInfo {
    values
        .iter()
        .map(|(i, v)| (format!("p{i}"), sample(*v)))
        .collect()
}

fn calc() -> Calculator {
    Calculator {
        cpu_initialization_period: Duration::from_secs(300),
        initial_readiness_delay: Duration::from_secs(30),
    }
}

const TOL: Tolerances = Tolerances { down: 0.1, up: 0.1 };

fn cpu(current: i32, target: i32, pods: &[Arc<Pod>], m: PodMetricsInfo) -> UtilizationProposal {
    calc()
        .utilization_replicas(current, target, "cpu", None, TOL, pods, m, now())
        .unwrap()
}

#[test]
fn within_tolerance_keeps_the_count() {
    let p = pods(3, "1");
    let got = cpu(3, 50, &p, usage(&[(0, 520), (1, 500), (2, 530)]));
    assert_eq!(got.replicas, 3);
    assert_eq!(got.utilization, 51);
    assert_eq!(got.raw_average, 516);
}

#[test]
fn scales_up_and_down_by_the_ratio() {
    let p = pods(3, "1");
    let up = cpu(3, 50, &p, usage(&[(0, 900), (1, 900), (2, 900)]));
    assert_eq!((up.replicas, up.utilization), (6, 90));
    let p = pods(4, "1");
    let down = cpu(4, 50, &p, usage(&[(0, 100), (1, 100), (2, 100), (3, 100)]));
    assert_eq!((down.replicas, down.utilization), (1, 10));
}

#[test]
fn missing_pods_count_against_the_change() {
    let p = pods(4, "1");
    // Scaling down: the pod without a sample counts as using all it requested.
    let down = cpu(4, 50, &p, usage(&[(0, 100), (1, 100), (2, 100)]));
    assert_eq!(down.replicas, 3);
    assert_eq!(down.utilization, 10);
    // Scaling up: as using nothing.
    let up = cpu(4, 50, &p, usage(&[(0, 1000), (1, 1000), (2, 1000)]));
    assert_eq!(up.replicas, 6);
    // Ratio 1.1 turns into 0.82 with the missing pod: the direction flips, no change.
    let flip = cpu(4, 50, &p, usage(&[(0, 550), (1, 550), (2, 550)]));
    assert_eq!(flip.replicas, 4);
}

#[test]
fn unready_pods_count_as_idle_only_when_scaling_up() {
    let mut p = pods(3, "1");
    let mut pending = pod("p3", "1");
    pending["status"] = json!({"phase": "Pending"});
    p.push(arc(pending));
    let up = cpu(
        4,
        50,
        &p,
        usage(&[(0, 1000), (1, 1000), (2, 1000), (3, 1000)]),
    );
    assert_eq!(up.replicas, 6);
    assert_eq!(up.utilization, 100);
    let down = cpu(4, 50, &p, usage(&[(0, 100), (1, 100), (2, 100)]));
    assert_eq!(down.replicas, 1);
}

#[test]
fn cpu_samples_of_freshly_ready_pods_are_ignored() {
    let mut p = pods(2, "1");
    // Started a minute ago, ready 10 s ago: a 30 s sample taken now predates readiness.
    let mut fresh = pod("p2", "1");
    fresh["status"]["startTime"] = json!(ago(60));
    fresh["status"]["conditions"][0]["lastTransitionTime"] = json!(ago(10));
    p.push(arc(fresh));
    let m = usage(&[(0, 500), (1, 500), (2, 1000)]);
    let got = cpu(3, 50, &p, m.clone());
    // Its busy start-up sample would otherwise push the ratio to 1.32 → 4.
    assert_eq!((got.replicas, got.utilization), (3, 50));
    // Memory has no such rule.
    let mem = calc()
        .utilization_replicas(3, 50, "memory", None, TOL, &p, m, now())
        .unwrap();
    assert_eq!(mem.replicas, 4);

    // Not ready long after start, and never ready within the delay: unready.
    let mut slow = pod("p0", "1");
    slow["status"]["conditions"][0]["status"] = json!("False");
    slow["status"]["conditions"][0]["lastTransitionTime"] = json!(ago(595));
    let g = calc().group(&[arc(slow.clone())], &usage(&[(0, 1)]), "cpu", now());
    assert!(g.unready.contains("p0"));
    // Not ready now but was ready once (transition long after start): still counted.
    slow["status"]["conditions"][0]["lastTransitionTime"] = json!(ago(100));
    let g = calc().group(&[arc(slow)], &usage(&[(0, 1)]), "cpu", now());
    assert_eq!(g.ready, 1);
}

#[test]
fn deleted_and_finished_pods_are_ignored() {
    let mut p = pods(2, "1");
    let mut failed = pod("p2", "1");
    failed["status"]["phase"] = json!("Failed");
    let mut done = pod("p3", "1");
    done["status"]["phase"] = json!("Succeeded");
    let mut deleting = pod("p4", "1");
    deleting["metadata"]["deletionTimestamp"] = json!(ago(1));
    p.extend([arc(failed), arc(done), arc(deleting)]);
    let m = usage(&[(0, 1000), (1, 1000), (2, 0), (3, 0), (4, 0)]);
    let got = cpu(5, 50, &p, m);
    assert_eq!((got.replicas, got.utilization), (4, 100));
}

#[test]
fn a_container_without_a_request_is_an_error() {
    let mut p = pods(1, "1");
    let mut bare = pod("web-1", "1");
    bare["spec"]["containers"][0]["resources"] = json!({});
    p.push(arc(bare));
    let err = calc()
        .utilization_replicas(2, 50, "cpu", None, TOL, &p, usage(&[(0, 1)]), now())
        .unwrap_err();
    assert_eq!(err, "missing request for cpu in container c of Pod web-1");
}

#[test]
fn container_utilization_uses_that_containers_request() {
    let mut with_sidecar = pod("p0", "1");
    with_sidecar["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "side", "image": "x", "resources": {"requests": {"cpu": "100m"}}}));
    let p = vec![arc(with_sidecar)];
    let got = calc()
        .utilization_replicas(
            1,
            50,
            "cpu",
            Some("side"),
            TOL,
            &p,
            usage(&[(0, 100)]),
            now(),
        )
        .unwrap();
    assert_eq!((got.replicas, got.utilization), (2, 100));
    let err = calc()
        .utilization_replicas(1, 50, "cpu", Some("nope"), TOL, &p, usage(&[(0, 1)]), now())
        .unwrap_err();
    assert_eq!(err, "container nope not found in Pod p0");
}

#[test]
fn average_value_targets() {
    let p = pods(2, "1Gi");
    let mi = 1024 * 1024 * 1000i64;
    let m = usage(&[(0, 200 * mi), (1, 200 * mi)]);
    let (replicas, avg) = calc()
        .average_value_replicas(2, 100 * mi, "memory", TOL, &p, m, now())
        .unwrap();
    assert_eq!((replicas, avg), (4, 200 * mi));
    let m = usage(&[(0, 105 * mi), (1, 100 * mi)]);
    let (replicas, _) = calc()
        .average_value_replicas(2, 100 * mi, "memory", TOL, &p, m, now())
        .unwrap();
    assert_eq!(replicas, 2);
    // A missing pod counts as using exactly the target when scaling down.
    let p = pods(3, "1Gi");
    let m = usage(&[(0, 10 * mi), (1, 10 * mi)]);
    let (replicas, _) = calc()
        .average_value_replicas(3, 100 * mi, "memory", TOL, &p, m, now())
        .unwrap();
    assert_eq!(replicas, 2);
}

#[test]
fn no_pods_or_no_samples_are_errors() {
    let err = calc()
        .utilization_replicas(1, 50, "cpu", None, TOL, &[], usage(&[]), now())
        .unwrap_err();
    assert_eq!(
        err,
        "no pods returned by selector while calculating replica count"
    );
    let mut pending = pod("p0", "1");
    pending["status"] = json!({"phase": "Pending"});
    let err = calc()
        .utilization_replicas(
            1,
            50,
            "cpu",
            None,
            TOL,
            &[arc(pending)],
            usage(&[(0, 1)]),
            now(),
        )
        .unwrap_err();
    assert_eq!(
        err,
        "did not receive metrics for targeted pods (pods might be unready)"
    );
}

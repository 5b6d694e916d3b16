//! PodTopologySpread tests.

use super::*;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};
use std::sync::Arc;

fn pod(name: &str, labels: Value, spread: Value) -> PodInfo {
    let p: Pod = serde_json::from_value(
        json!({"metadata": {"name": name, "uid": name, "namespace": "d", "labels": labels},
        "spec": {"containers": [{"name": "c"}], "topologySpreadConstraints": spread}}),
    )
    .expect("pod");
    PodInfo::from_pod(&p)
}

/// Nodes: n0,n1 in zone a; n2 in zone b; n3 in zone c; n4 without a zone label.
fn cluster(placed: &[(usize, &str)], extra_label: Option<(usize, &str, &str)>) -> Cache {
    let mut c = Cache::default();
    for (i, zone) in [
        (0, Some("a")),
        (1, Some("a")),
        (2, Some("b")),
        (3, Some("c")),
        (4, None),
    ] {
        let mut labels = json!({"kubernetes.io/hostname": format!("n{i}")});
        if let Some(z) = zone {
            labels["zone"] = json!(z);
        }
        if let Some((n, k, v)) = extra_label
            && n == i
        {
            labels[k] = json!(v);
        }
        let n: Node = serde_json::from_value(
            json!({"metadata": {"name": format!("n{i}"), "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        )
        .expect("node");
        c.upsert_node(NodeSpec::from_node(&n));
    }
    for (k, (node, app)) in placed.iter().enumerate() {
        let mut p = pod(&format!("e{k}"), json!({"app": app}), json!([]));
        p.node_name = format!("n{node}");
        c.upsert_bound_pod(Arc::new(p));
    }
    c
}

fn constraint(key: &str, skew: i32, extra: Value) -> Value {
    let mut c = json!({"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}});
    for (k, v) in extra.as_object().into_iter().flatten() {
        c[k] = v.clone();
    }
    c
}

fn verdicts_once(c: &Cache, p: &PodInfo) -> Vec<&'static str> {
    let s = prefilter(p, c).expect("prefilter").expect("state");
    (0..5)
        .map(
            |i| match filter(&s, p, &c.nodes[c.node_id(&format!("n{i}")).expect("n")]) {
                Ok(()) => "ok",
                Err(e) if e.reasons[0] == ERR_MISSING_LABEL => "missing",
                Err(_) => "skew",
            },
        )
        .collect()
}

/// Verdicts by scanning nodes, checked equal to those from the cache's memos.
fn verdicts(c: &mut Cache, p: &PodInfo) -> Vec<&'static str> {
    let scanned = verdicts_once(c, p);
    prepare(c, p);
    assert_eq!(verdicts_once(c, p), scanned, "memo and scan disagree");
    scanned
}

#[test]
fn filter_table() {
    let web = |spread: Value| pod("p", json!({"app": "web"}), spread);
    #[allow(clippy::type_complexity)] // a table of test cases
    let cases: Vec<(&str, Vec<(usize, &str)>, PodInfo, [&str; 5])> = vec![
        (
            "empty cluster",
            vec![],
            web(json!([constraint("zone", 1, json!({}))])),
            ["ok", "ok", "ok", "ok", "missing"],
        ),
        (
            "zone a has one, others none",
            vec![(0, "web")],
            web(json!([constraint("zone", 1, json!({}))])),
            ["skew", "skew", "ok", "ok", "missing"],
        ),
        (
            "other apps do not count",
            vec![(0, "db"), (0, "db")],
            web(json!([constraint("zone", 1, json!({}))])),
            ["ok", "ok", "ok", "ok", "missing"],
        ),
        (
            "maxSkew 2 allows one more",
            vec![(0, "web")],
            web(json!([constraint("zone", 2, json!({}))])),
            ["ok", "ok", "ok", "ok", "missing"],
        ),
        (
            "hostname spreading",
            vec![(0, "web"), (1, "web"), (2, "web")],
            web(json!([constraint("kubernetes.io/hostname", 1, json!({}))])),
            ["skew", "skew", "skew", "ok", "ok"],
        ),
        (
            "minDomains above the domain count makes the minimum 0",
            vec![(0, "web"), (2, "web"), (3, "web")],
            web(json!([constraint("zone", 1, json!({"minDomains": 5}))])),
            ["skew", "skew", "skew", "skew", "missing"],
        ),
        (
            "a pod not matching its own selector",
            vec![(0, "web")],
            pod(
                "p",
                json!({"app": "other"}),
                json!([constraint("zone", 1, json!({}))]),
            ),
            ["ok", "ok", "ok", "ok", "missing"],
        ),
    ];
    for (name, placed, p, want) in cases {
        let mut c = cluster(&placed, None);
        assert_eq!(verdicts(&mut c, &p), want, "{name}");
    }
}

#[test]
fn node_affinity_policy_limits_domains() {
    // Only zone a/b nodes match the pod's nodeSelector; zone c is not a domain, so the
    // minimum is over a (1) and b (0).
    let c = cluster(&[(0, "web")], Some((3, "pool", "x")));
    let mut p = pod(
        "p",
        json!({"app": "web"}),
        json!([constraint("zone", 1, json!({}))]),
    );
    p.node_selector
        .insert("kubernetes.io/hostname".into(), "n2".into());
    let s = prefilter(&p, &c).expect("ok").expect("state");
    assert_eq!(s.eligible[0], 1, "only n2's zone is eligible");
    let mut p2 = p.clone();
    p2.spread[0].honor_affinity = false;
    let s2 = prefilter(&p2, &c).expect("ok").expect("state");
    assert_eq!(s2.eligible[0], 3);
}

#[test]
fn update_with_pod() {
    let c = cluster(&[(0, "web")], None);
    let p = pod(
        "p",
        json!({"app": "web"}),
        json!([constraint("zone", 1, json!({}))]),
    );
    let mut s = prefilter(&p, &c).expect("ok").expect("state");
    let n0 = &c.nodes[c.node_id("n0").expect("n0")];
    assert!(filter(&s, &p, n0).is_err());
    s.update_with_pod(&p, &n0.pods[0], n0, -1);
    assert!(filter(&s, &p, n0).is_ok());
}

#[test]
fn score_table() {
    let c = cluster(&[(0, "web"), (0, "web"), (2, "web")], None);
    let p = pod(
        "p",
        json!({"app": "web"}),
        json!([{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app": "web"}}}]),
    );
    let feasible: Vec<usize> = (0..5)
        .map(|i| c.node_id(&format!("n{i}")).expect("n"))
        .collect();
    let s = prescore(&p, &c, &feasible).expect("state");
    let raw: Vec<Option<i64>> = feasible.iter().map(|&i| score(&s, &c.nodes[i])).collect();
    // 3 zones among feasible nodes → weight ln(5); a: 2 pods, b: 1, c: 0; n4 ignored.
    let w = 5f64.ln();
    assert_eq!(
        raw,
        vec![
            Some((2.0 * w).round() as i64),
            Some((2.0 * w).round() as i64),
            Some(w.round() as i64),
            Some(0),
            None
        ]
    );
    assert_eq!(normalize(&raw), vec![0, 0, 33, 100, 0]);
    // No soft constraints and no owner: nothing to score.
    assert!(prescore(&pod("q", json!({}), json!([])), &c, &feasible).is_none());
}

#[test]
fn system_default_spreads_siblings() {
    let mut c = cluster(&[], None);
    let owned = |name: &str, node: &str| {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": name, "uid": name, "namespace": "d",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs1", "controller": true}]},
            "spec": {"nodeName": node, "containers": [{"name": "c"}]}}))
        .expect("pod");
        PodInfo::from_pod(&p)
    };
    c.upsert_bound_pod(Arc::new(owned("s1", "n0")));
    let p = owned("p", "");
    let feasible: Vec<usize> = (0..5)
        .map(|i| c.node_id(&format!("n{i}")).expect("n"))
        .collect();
    let s = prescore(&p, &c, &feasible).expect("defaults apply");
    let raw: Vec<Option<i64>> = feasible.iter().map(|&i| score(&s, &c.nodes[i])).collect();
    let norm = normalize(&raw);
    // The test nodes carry no standard zone label, so only hostname spreading counts.
    assert!(norm[0] < norm[1] && norm[1] == norm[2], "{norm:?}");
    assert!(
        raw[4].is_some(),
        "nodes without a zone still score under system defaults"
    );
}

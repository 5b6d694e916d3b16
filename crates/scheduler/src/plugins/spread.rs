//! PodTopologySpread: `DoNotSchedule` constraints as a filter (skew against the global
//! minimum over eligible domains, honouring `minDomains` and the node inclusion policies)
//! and `ScheduleAnyway` constraints — or the system defaults for controller-owned pods —
//! as a score.

use super::basic::node_affinity_matches;
use crate::cache::{Cache, NodeInfo};
use crate::framework::{MAX_NODE_SCORE, Plugin, Status};
use crate::model::{Effect, NodeSpec, PodInfo, SpreadConstraint, tolerated};
use crate::selector::{LabelSelector, Labels};
use std::collections::HashMap;

pub const ERR_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_MISSING_LABEL: &str = "node(s) didn't match pod topology spread constraints (missing required label)";

const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

/// Whether `node` counts as a domain member for `c` (nodeAffinityPolicy / nodeTaintsPolicy).
fn included(c: &SpreadConstraint, pod: &PodInfo, node: &NodeSpec) -> bool {
    if c.honor_affinity && !node_affinity_matches(pod, node) {
        return false;
    }
    if c.honor_taints
        && node
            .taints
            .iter()
            .any(|t| matches!(t.effect, Effect::NoSchedule | Effect::NoExecute) && !tolerated(&pod.tolerations, t))
    {
        return false;
    }
    true
}

fn has_keys<'c>(labels: &Labels, mut cs: impl Iterator<Item = &'c SpreadConstraint>) -> bool {
    cs.all(|c| labels.contains_key(&c.topology_key))
}

/// Upstream `countPodsMatchSelector`: same namespace, not terminating, selected (an empty
/// or nil selector counts nothing); system-default constraints count siblings by owner.
fn count_matching(node: &NodeInfo, c: &SpreadConstraint, pod: &PodInfo) -> i32 {
    if c.by_owner {
        let Some(owner) = &pod.owner_uid else { return 0 };
        return node.pods.iter().filter(|p| !p.deleting && p.owner_uid.as_ref() == Some(owner)).count() as i32;
    }
    if c.selector.nothing || c.selector.is_everything() {
        return 0;
    }
    node.pods
        .iter()
        .filter(|p| !p.deleting && p.namespace == pod.namespace && c.selector.matches(&p.labels))
        .count() as i32
}

/// PreFilter state: matching pods per domain for each hard constraint.
#[derive(Debug, Clone)]
pub struct FilterState<'a> {
    pub constraints: Vec<&'a SpreadConstraint>,
    pub counts: Vec<HashMap<&'a str, i32>>,
    /// Minimum over `counts[i]` (i32::MAX when there are no domains).
    min: Vec<i32>,
}

impl<'a> FilterState<'a> {
    fn recompute_min(&mut self, i: usize) {
        self.min[i] = self.counts[i].values().copied().min().unwrap_or(i32::MAX);
    }

    /// Account `existing` on `node` (`delta` ±1; used by preemption).
    pub fn update_with_pod(&mut self, pod: &PodInfo, existing: &PodInfo, node: &'a NodeInfo, delta: i32) {
        let Some(spec) = &node.spec else { return };
        if existing.namespace != pod.namespace || !has_keys(&spec.labels, self.constraints.iter().copied()) {
            return;
        }
        for i in 0..self.constraints.len() {
            let c = self.constraints[i];
            if !c.selector.matches(&existing.labels) || !included(c, pod, spec) {
                continue;
            }
            if let Some(v) = spec.labels.get(&c.topology_key) {
                *self.counts[i].entry(v.as_str()).or_insert(0) += delta;
                self.recompute_min(i);
            }
        }
    }
}

/// PreFilter: `Ok(None)` when the pod has no hard constraints.
pub fn prefilter<'a>(pod: &'a PodInfo, cache: &'a Cache) -> Result<Option<FilterState<'a>>, String> {
    if let Some(e) = &pod.spread_error {
        return Err(format!("get constraints from pod: {e}"));
    }
    let constraints: Vec<&SpreadConstraint> = pod.spread.iter().filter(|c| c.hard).collect();
    if constraints.is_empty() {
        return Ok(None);
    }
    let mut counts: Vec<HashMap<&str, i32>> = constraints.iter().map(|_| HashMap::new()).collect();
    for node in &cache.nodes {
        let Some(spec) = &node.spec else { continue };
        if !has_keys(&spec.labels, constraints.iter().copied()) {
            continue;
        }
        for (i, c) in constraints.iter().enumerate() {
            if !included(c, pod, spec) {
                continue;
            }
            let Some(v) = spec.labels.get(&c.topology_key) else { continue };
            *counts[i].entry(v.as_str()).or_insert(0) += count_matching(node, c, pod);
        }
    }
    let mut s = FilterState { min: vec![i32::MAX; constraints.len()], constraints, counts };
    for i in 0..s.constraints.len() {
        s.recompute_min(i);
    }
    Ok(Some(s))
}

/// Filter: for each hard constraint, `matching in the node's domain + self − global minimum`
/// must not exceed `maxSkew`.
pub fn filter(state: &FilterState, pod: &PodInfo, labels: &Labels) -> Result<(), Status> {
    for (i, c) in state.constraints.iter().enumerate() {
        let Some(v) = labels.get(&c.topology_key) else {
            return Err(Status::unresolvable(Plugin::PodTopologySpread, ERR_MISSING_LABEL));
        };
        let min = if (state.counts[i].len() as i32) < c.min_domains { 0 } else { state.min[i] };
        let self_match = i32::from(c.selector.matches(&pod.labels));
        let matching = state.counts[i].get(v.as_str()).copied().unwrap_or(0);
        if matching as i64 + self_match as i64 - min as i64 > c.max_skew as i64 {
            return Err(Status::unschedulable(Plugin::PodTopologySpread, ERR_CONSTRAINTS));
        }
    }
    Ok(())
}

/// The soft constraints to score with: the pod's `ScheduleAnyway` ones, or upstream's
/// system defaults (hostname skew 3, zone skew 5) for controller-owned pods without any.
fn soft_constraints(pod: &PodInfo) -> (Vec<SpreadConstraint>, bool) {
    if !pod.spread.is_empty() {
        return (pod.spread.iter().filter(|c| !c.hard).cloned().collect(), false);
    }
    if pod.owner_uid.is_none() {
        return (Vec::new(), false);
    }
    let default = |key: &str, skew: i32| SpreadConstraint {
        max_skew: skew,
        topology_key: key.into(),
        hard: false,
        selector: LabelSelector::everything(),
        min_domains: 1,
        honor_affinity: true,
        honor_taints: false,
        by_owner: true,
    };
    (vec![default(HOSTNAME, 3), default(ZONE, 5)], true)
}

/// PreScore state.
#[derive(Debug)]
pub struct ScoreState {
    constraints: Vec<SpreadConstraint>,
    require_all: bool,
    /// Matching pods per domain value (non-hostname constraints).
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
}

/// PreScore over the feasible nodes; `None` when there is nothing to score.
pub fn prescore(pod: &PodInfo, cache: &Cache, feasible: &[usize]) -> Option<ScoreState> {
    let (constraints, system) = soft_constraints(pod);
    if constraints.is_empty() {
        return None;
    }
    let require_all = !system;
    let mut counts: Vec<HashMap<String, i64>> = constraints.iter().map(|_| HashMap::new()).collect();
    let mut ignored = 0usize;
    for &id in feasible {
        let Some(spec) = &cache.nodes[id].spec else { continue };
        if require_all && !has_keys(&spec.labels, constraints.iter()) {
            ignored += 1;
            continue;
        }
        for (i, c) in constraints.iter().enumerate() {
            if c.topology_key == HOSTNAME {
                continue;
            }
            if let Some(v) = spec.labels.get(&c.topology_key) {
                counts[i].entry(v.clone()).or_insert(0);
            }
        }
    }
    let weights = constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let size = if c.topology_key == HOSTNAME { feasible.len() - ignored } else { counts[i].len() };
            ((size + 2) as f64).ln()
        })
        .collect();
    if constraints.iter().any(|c| c.topology_key != HOSTNAME) {
        for node in &cache.nodes {
            let Some(spec) = &node.spec else { continue };
            if require_all && !has_keys(&spec.labels, constraints.iter()) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == HOSTNAME || !included(c, pod, spec) {
                    continue;
                }
                let Some(v) = spec.labels.get(&c.topology_key) else { continue };
                if let Some(n) = counts[i].get_mut(v.as_str()) {
                    *n += count_matching(node, c, pod) as i64;
                }
            }
        }
    }
    Some(ScoreState { constraints, require_all, counts, weights })
}

/// Raw score of one feasible node (more matching pods → higher); `None` for nodes missing
/// a topology key (they end with score 0).
pub fn score(state: &ScoreState, pod: &PodInfo, node: &NodeInfo) -> Option<i64> {
    let spec = node.spec.as_ref()?;
    if state.require_all && !has_keys(&spec.labels, state.constraints.iter()) {
        return None;
    }
    let mut total = 0f64;
    for (i, c) in state.constraints.iter().enumerate() {
        let Some(v) = spec.labels.get(&c.topology_key) else { continue };
        let cnt = if c.topology_key == HOSTNAME {
            count_matching(node, c, pod) as i64
        } else {
            state.counts[i].get(v.as_str()).copied().unwrap_or(0)
        };
        total += cnt as f64 * state.weights[i] + (c.max_skew - 1) as f64;
    }
    Some(total.round() as i64)
}

/// Normalise: fewer matching pods → closer to 100; ignored nodes get 0.
pub fn normalize(raw: &[Option<i64>]) -> Vec<i64> {
    let valid = raw.iter().flatten();
    let min = valid.clone().copied().min().unwrap_or(0);
    let max = valid.copied().max().unwrap_or(0);
    raw.iter()
        .map(|s| match s {
            None => 0,
            Some(_) if max == 0 => MAX_NODE_SCORE,
            Some(s) => MAX_NODE_SCORE * (max + min - s) / max,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn pod(name: &str, labels: Value, spread: Value) -> PodInfo {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": name, "uid": name, "namespace": "d", "labels": labels},
            "spec": {"containers": [{"name": "c"}], "topologySpreadConstraints": spread}}))
        .expect("pod");
        PodInfo::from_pod(&p)
    }

    /// Nodes: n0,n1 in zone a; n2 in zone b; n3 in zone c; n4 without a zone label.
    fn cluster(placed: &[(usize, &str)], extra_label: Option<(usize, &str, &str)>) -> Cache {
        let mut c = Cache::default();
        for (i, zone) in [(0, Some("a")), (1, Some("a")), (2, Some("b")), (3, Some("c")), (4, None)] {
            let mut labels = json!({"kubernetes.io/hostname": format!("n{i}")});
            if let Some(z) = zone {
                labels["zone"] = json!(z);
            }
            if let Some((n, k, v)) = extra_label
                && n == i
            {
                labels[k] = json!(v);
            }
            let n: Node = serde_json::from_value(json!({"metadata": {"name": format!("n{i}"), "labels": labels},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
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

    fn verdicts(c: &Cache, p: &PodInfo) -> Vec<&'static str> {
        let s = prefilter(p, c).expect("prefilter").expect("state");
        (0..5)
            .map(|i| match filter(&s, p, c.nodes[c.node_id(&format!("n{i}")).expect("n")].labels()) {
                Ok(()) => "ok",
                Err(e) if e.reasons[0] == ERR_MISSING_LABEL => "missing",
                Err(_) => "skew",
            })
            .collect()
    }

    #[test]
    fn filter_table() {
        let web = |spread: Value| pod("p", json!({"app": "web"}), spread);
        let cases: Vec<(&str, Vec<(usize, &str)>, PodInfo, [&str; 5])> = vec![
            ("empty cluster", vec![], web(json!([constraint("zone", 1, json!({}))])), ["ok", "ok", "ok", "ok", "missing"]),
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
                pod("p", json!({"app": "other"}), json!([constraint("zone", 1, json!({}))])),
                ["ok", "ok", "ok", "ok", "missing"],
            ),
        ];
        for (name, placed, p, want) in cases {
            let c = cluster(&placed, None);
            assert_eq!(verdicts(&c, &p), want, "{name}");
        }
    }

    #[test]
    fn node_affinity_policy_limits_domains() {
        // Only zone a/b nodes match the pod's nodeSelector; zone c is not a domain, so the
        // minimum is over a (1) and b (0).
        let c = cluster(&[(0, "web")], Some((3, "pool", "x")));
        let mut p = pod("p", json!({"app": "web"}), json!([constraint("zone", 1, json!({}))]));
        p.node_selector.insert("kubernetes.io/hostname".into(), "n2".into());
        let s = prefilter(&p, &c).expect("ok").expect("state");
        assert_eq!(s.counts[0].len(), 1, "only n2's zone is eligible");
        let mut p2 = p.clone();
        p2.spread[0].honor_affinity = false;
        let s2 = prefilter(&p2, &c).expect("ok").expect("state");
        assert_eq!(s2.counts[0].len(), 3);
    }

    #[test]
    fn update_with_pod() {
        let c = cluster(&[(0, "web")], None);
        let p = pod("p", json!({"app": "web"}), json!([constraint("zone", 1, json!({}))]));
        let mut s = prefilter(&p, &c).expect("ok").expect("state");
        let n0 = &c.nodes[c.node_id("n0").expect("n0")];
        assert!(filter(&s, &p, n0.labels()).is_err());
        s.update_with_pod(&p, &n0.pods[0], n0, -1);
        assert!(filter(&s, &p, n0.labels()).is_ok());
    }

    #[test]
    fn score_table() {
        let c = cluster(&[(0, "web"), (0, "web"), (2, "web")], None);
        let p = pod("p", json!({"app": "web"}), json!([{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": "web"}}}]));
        let feasible: Vec<usize> = (0..5).map(|i| c.node_id(&format!("n{i}")).expect("n")).collect();
        let s = prescore(&p, &c, &feasible).expect("state");
        let raw: Vec<Option<i64>> = feasible.iter().map(|&i| score(&s, &p, &c.nodes[i])).collect();
        // 3 zones among feasible nodes → weight ln(5); a: 2 pods, b: 1, c: 0; n4 ignored.
        let w = 5f64.ln();
        assert_eq!(raw, vec![Some((2.0 * w).round() as i64), Some((2.0 * w).round() as i64), Some(w.round() as i64), Some(0), None]);
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
        let feasible: Vec<usize> = (0..5).map(|i| c.node_id(&format!("n{i}")).expect("n")).collect();
        let s = prescore(&p, &c, &feasible).expect("defaults apply");
        let raw: Vec<Option<i64>> = feasible.iter().map(|&i| score(&s, &p, &c.nodes[i])).collect();
        let norm = normalize(&raw);
        // The test nodes carry no standard zone label, so only hostname spreading counts.
        assert!(norm[0] < norm[1] && norm[1] == norm[2], "{norm:?}");
        assert!(raw[4].is_some(), "nodes without a zone still score under system defaults");
    }
}

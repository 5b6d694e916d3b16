//! InterPodAffinity: required affinity / anti-affinity (the incoming pod's and, by
//! symmetry, existing pods' anti-affinity) as a filter over topology-pair counts computed
//! once per cycle, and preferred terms as a score.

use crate::cache::{Cache, NodeInfo};
use crate::framework::{MAX_NODE_SCORE, Plugin, Status};
use crate::model::{AffinityTerm, PodInfo, WeightedTerm};
use crate::selector::Labels;
use std::collections::HashMap;

pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const ERR_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

/// Weight of an existing pod's required affinity term matched by the incoming pod (upstream
/// `hardPodAffinityWeight` default).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

type Pair<'a> = (&'a str, &'a str);
type Counts<'a> = HashMap<Pair<'a>, i64>;

fn bump<'a>(m: &mut Counts<'a>, key: &'a str, labels: &'a Labels, delta: i64) {
    if let Some(v) = labels.get(key) {
        let e = m.entry((key, v.as_str())).or_insert(0);
        *e += delta;
        if *e == 0 {
            m.remove(&(key, v.as_str()));
        }
    }
}

/// PreFilter state: counts per topology pair.
#[derive(Debug, Clone, Default)]
pub struct FilterState<'a> {
    /// Existing pods whose required anti-affinity selects the incoming pod.
    pub existing_anti: Counts<'a>,
    /// Existing pods matching all of the incoming pod's required affinity terms.
    pub affinity: Counts<'a>,
    /// Existing pods matching one of the incoming pod's required anti-affinity terms.
    pub anti: Counts<'a>,
}

impl<'a> FilterState<'a> {
    /// Account `existing` on a node with `labels` (`delta` +1 add, −1 remove; preemption).
    pub fn update_with_pod(
        &mut self,
        cache: &'a Cache,
        pod: &'a PodInfo,
        existing: &'a PodInfo,
        labels: &'a Labels,
        delta: i64,
    ) {
        let pod_ns = cache.ns_labels(&pod.namespace);
        for t in &existing.affinity.required_anti {
            if t.matches(pod, pod_ns) {
                bump(&mut self.existing_anti, &t.topology_key, labels, delta);
            }
        }
        let ex_ns = cache.ns_labels(&existing.namespace);
        if pod.affinity.all_required_match(existing, ex_ns) {
            for t in &pod.affinity.required {
                bump(&mut self.affinity, &t.topology_key, labels, delta);
            }
        }
        for t in &pod.affinity.required_anti {
            if t.matches(existing, ex_ns) {
                bump(&mut self.anti, &t.topology_key, labels, delta);
            }
        }
    }
}

/// PreFilter: `Ok(None)` when nothing constrains the pod (skip the filter).
pub fn prefilter<'a>(
    pod: &'a PodInfo,
    cache: &'a Cache,
) -> Result<Option<FilterState<'a>>, Status> {
    if let Some(e) = &pod.affinity_error {
        return Err(Status::unresolvable(
            Plugin::InterPodAffinity,
            format!("parsing pod: {e}"),
        ));
    }
    let mut s = FilterState::default();
    let incoming = !pod.affinity.required.is_empty() || !pod.affinity.required_anti.is_empty();
    if !incoming && cache.pods_with_required_anti == 0 {
        return Ok(None);
    }
    let pod_ns = cache.ns_labels(&pod.namespace);
    for node in cache.nodes.iter().filter(|n| n.spec.is_some()) {
        let labels = node.labels();
        if node.pods_with_required_anti > 0 {
            for ex in &node.pods {
                for t in &ex.affinity.required_anti {
                    if t.matches(pod, pod_ns) {
                        bump(&mut s.existing_anti, &t.topology_key, labels, 1);
                    }
                }
            }
        }
        if incoming {
            for ex in &node.pods {
                let ex_ns = cache.ns_labels(&ex.namespace);
                if pod.affinity.all_required_match(ex, ex_ns) {
                    for t in &pod.affinity.required {
                        bump(&mut s.affinity, &t.topology_key, labels, 1);
                    }
                }
                for t in &pod.affinity.required_anti {
                    if t.matches(ex, ex_ns) {
                        bump(&mut s.anti, &t.topology_key, labels, 1);
                    }
                }
            }
        }
    }
    if s.existing_anti.is_empty() && !incoming {
        return Ok(None);
    }
    Ok(Some(s))
}

/// Filter: affinity (all topology keys present, a matching pod in the node's domain — or
/// none anywhere and the pod matches itself), anti-affinity, existing pods' anti-affinity.
pub fn filter(
    state: &FilterState,
    pod: &PodInfo,
    pod_ns: Option<&Labels>,
    labels: &Labels,
) -> Result<(), Status> {
    let mut pods_exist = true;
    for t in &pod.affinity.required {
        match labels.get(&t.topology_key) {
            None => return Err(Status::unresolvable(Plugin::InterPodAffinity, ERR_AFFINITY)),
            Some(v) => {
                if state
                    .affinity
                    .get(&(t.topology_key.as_str(), v.as_str()))
                    .copied()
                    .unwrap_or(0)
                    <= 0
                {
                    pods_exist = false;
                }
            }
        }
    }
    // Nothing matches anywhere and the pod matches itself: the first of a self-affine group.
    let first_of_group = state.affinity.is_empty() && pod.affinity.all_required_match(pod, pod_ns);
    if !pods_exist && !first_of_group {
        return Err(Status::unresolvable(Plugin::InterPodAffinity, ERR_AFFINITY));
    }
    for t in &pod.affinity.required_anti {
        if let Some(v) = labels.get(&t.topology_key)
            && state
                .anti
                .get(&(t.topology_key.as_str(), v.as_str()))
                .copied()
                .unwrap_or(0)
                > 0
        {
            return Err(Status::unschedulable(
                Plugin::InterPodAffinity,
                ERR_ANTI_AFFINITY,
            ));
        }
    }
    if !state.existing_anti.is_empty() {
        for (k, v) in labels {
            if state
                .existing_anti
                .get(&(k.as_str(), v.as_str()))
                .copied()
                .unwrap_or(0)
                > 0
            {
                return Err(Status::unschedulable(
                    Plugin::InterPodAffinity,
                    ERR_EXISTING_ANTI_AFFINITY,
                ));
            }
        }
    }
    Ok(())
}

/// PreScore state: score per topology key and value.
#[derive(Debug, Default)]
pub struct ScoreState<'a> {
    scores: HashMap<&'a str, HashMap<&'a str, i64>>,
}

impl<'a> ScoreState<'a> {
    fn add(&mut self, term: &'a AffinityTerm, weight: i64, labels: &'a Labels) {
        if let Some(v) = labels.get(&term.topology_key) {
            *self
                .scores
                .entry(&term.topology_key)
                .or_default()
                .entry(v)
                .or_insert(0) += weight;
        }
    }

    fn terms(
        &mut self,
        terms: &'a [WeightedTerm],
        target: &PodInfo,
        ns: Option<&Labels>,
        labels: &'a Labels,
        sign: i64,
    ) {
        for w in terms {
            if w.term.matches(target, ns) {
                self.add(&w.term, sign * w.weight as i64, labels);
            }
        }
    }
}

/// PreScore: `None` when no node can score differently (skip).
pub fn prescore<'a>(pod: &'a PodInfo, cache: &'a Cache) -> Option<ScoreState<'a>> {
    let has_constraints =
        !pod.affinity.preferred.is_empty() || !pod.affinity.preferred_anti.is_empty();
    if !has_constraints && cache.pods_with_affinity == 0 {
        return None;
    }
    let pod_ns = cache.ns_labels(&pod.namespace);
    let mut s = ScoreState::default();
    let nodes = cache
        .nodes
        .iter()
        .filter(|n: &&NodeInfo| n.spec.is_some() && (has_constraints || n.pods_with_affinity > 0));
    for node in nodes {
        let labels = node.labels();
        if labels.is_empty() {
            continue;
        }
        for ex in node
            .pods
            .iter()
            .filter(|p| has_constraints || p.has_affinity())
        {
            let ex_ns = cache.ns_labels(&ex.namespace);
            // The incoming pod's preferences about existing pods.
            s.terms(&pod.affinity.preferred, ex, ex_ns, labels, 1);
            s.terms(&pod.affinity.preferred_anti, ex, ex_ns, labels, -1);
            // Existing pods' rules about the incoming pod (symmetry).
            for t in &ex.affinity.required {
                if t.matches(pod, pod_ns) {
                    s.add(t, HARD_POD_AFFINITY_WEIGHT, labels);
                }
            }
            s.terms(&ex.affinity.preferred, pod, pod_ns, labels, 1);
            s.terms(&ex.affinity.preferred_anti, pod, pod_ns, labels, -1);
        }
    }
    if s.scores.is_empty() { None } else { Some(s) }
}

/// Score of one node: the sum over its topology labels.
pub fn score(state: &ScoreState, labels: &Labels) -> i64 {
    state
        .scores
        .iter()
        .filter_map(|(k, vals)| labels.get(*k).and_then(|v| vals.get(v.as_str())))
        .sum()
}

/// Min-max normalisation to 0..=100.
pub fn normalize(scores: &mut [i64]) {
    let (Some(&min), Some(&max)) = (scores.iter().min(), scores.iter().max()) else {
        return;
    };
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 {
            (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NodeSpec;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn pod(name: &str, labels: Value, affinity: Value) -> PodInfo {
        let p: Pod = serde_json::from_value(
            json!({"metadata": {"name": name, "uid": name, "namespace": "d", "labels": labels},
            "spec": {"containers": [{"name": "c"}], "affinity": affinity}}),
        )
        .expect("pod");
        PodInfo::from_pod(&p)
    }

    /// Nodes n0..n3: zone a (n0, n1) and zone b (n2, n3); `placed` = (node, pod).
    fn cluster(placed: Vec<(usize, PodInfo)>) -> Cache {
        let mut c = Cache::default();
        for i in 0..4 {
            let zone = if i < 2 { "a" } else { "b" };
            let n: Node = serde_json::from_value(json!({"metadata": {"name": format!("n{i}"),
                "labels": {"zone": zone, "kubernetes.io/hostname": format!("n{i}")}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
            .expect("node");
            c.upsert_node(NodeSpec::from_node(&n));
        }
        for (i, mut p) in placed {
            p.node_name = format!("n{i}");
            c.upsert_bound_pod(Arc::new(p));
        }
        c
    }

    fn term(key: &str, app: &str) -> Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key})
    }

    /// Filter verdict per node n0..n3 ("ok" or the reason).
    fn verdicts(c: &Cache, p: &PodInfo) -> Vec<String> {
        let state = prefilter(p, c).expect("prefilter").unwrap_or_default();
        (0..4)
            .map(|i| {
                let n = &c.nodes[c.node_id(&format!("n{i}")).expect("node")];
                match filter(&state, p, None, n.labels()) {
                    Ok(()) => "ok".to_string(),
                    Err(s) => s.message(),
                }
            })
            .collect()
    }

    #[test]
    fn filter_table() {
        let db = || pod("db", json!({"app": "db"}), json!({}));
        let web = || pod("web", json!({"app": "web"}), json!({}));
        #[allow(clippy::type_complexity)] // a table of test cases
        let cases: Vec<(&str, Vec<(usize, PodInfo)>, PodInfo, [&str; 4])> = vec![
            (
                "affinity to db's zone",
                vec![(0, db())],
                pod(
                    "p",
                    json!({}),
                    json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("zone", "db")]}}),
                ),
                ["ok", "ok", ERR_AFFINITY, ERR_AFFINITY],
            ),
            (
                "first pod of a self-affine group goes anywhere",
                vec![],
                pod(
                    "p",
                    json!({"app": "x"}),
                    json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("zone", "x")]}}),
                ),
                ["ok", "ok", "ok", "ok"],
            ),
            (
                "affinity with no match anywhere and no self match",
                vec![],
                pod(
                    "p",
                    json!({}),
                    json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("zone", "db")]}}),
                ),
                [ERR_AFFINITY, ERR_AFFINITY, ERR_AFFINITY, ERR_AFFINITY],
            ),
            (
                "missing topology key",
                vec![(0, db())],
                pod(
                    "p",
                    json!({}),
                    json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("rack", "db")]}}),
                ),
                [ERR_AFFINITY, ERR_AFFINITY, ERR_AFFINITY, ERR_AFFINITY],
            ),
            (
                "anti-affinity per host",
                vec![(1, web())],
                pod(
                    "p",
                    json!({"app": "web"}),
                    json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("kubernetes.io/hostname", "web")]}}),
                ),
                ["ok", ERR_ANTI_AFFINITY, "ok", "ok"],
            ),
            (
                "anti-affinity per zone",
                vec![(1, web())],
                pod(
                    "p",
                    json!({}),
                    json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("zone", "web")]}}),
                ),
                [ERR_ANTI_AFFINITY, ERR_ANTI_AFFINITY, "ok", "ok"],
            ),
            (
                "existing pod's anti-affinity (symmetry)",
                vec![(
                    2,
                    pod(
                        "guard",
                        json!({}),
                        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("zone", "web")]}}),
                    ),
                )],
                web(),
                [
                    "ok",
                    "ok",
                    ERR_EXISTING_ANTI_AFFINITY,
                    ERR_EXISTING_ANTI_AFFINITY,
                ],
            ),
        ];
        for (name, placed, p, want) in cases {
            let c = cluster(placed);
            assert_eq!(verdicts(&c, &p), want, "{name}");
        }
    }

    #[test]
    fn parse_error_rejects_in_prefilter() {
        let p = pod(
            "p",
            json!({}),
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, "topologyKey": "zone"}]}}),
        );
        let c = cluster(vec![]);
        let err = prefilter(&p, &c)
            .err()
            .map(|s| s.message())
            .unwrap_or_default();
        assert!(err.starts_with("parsing pod: "), "{err}");
    }

    #[test]
    fn update_with_pod_tracks_removals() {
        let web = pod("web", json!({"app": "web"}), json!({}));
        let c = cluster(vec![(1, web)]);
        let p = pod(
            "p",
            json!({}),
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("zone", "web")]}}),
        );
        let mut s = prefilter(&p, &c).expect("ok").expect("state");
        let n1 = &c.nodes[c.node_id("n1").expect("n1")];
        assert!(filter(&s, &p, None, n1.labels()).is_err());
        s.update_with_pod(&c, &p, &n1.pods[0], n1.labels(), -1);
        assert!(filter(&s, &p, None, n1.labels()).is_ok());
    }

    #[test]
    fn score_table() {
        let db = pod("db", json!({"app": "db"}), json!({}));
        let c = cluster(vec![(2, db)]);
        let p = pod(
            "p",
            json!({}),
            json!({
                "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "podAffinityTerm": term("zone", "db")}]},
            }),
        );
        let s = prescore(&p, &c).expect("state");
        let mut scores: Vec<i64> = (0..4)
            .map(|i| {
                score(
                    &s,
                    c.nodes[c.node_id(&format!("n{i}")).expect("n")].labels(),
                )
            })
            .collect();
        assert_eq!(scores, vec![0, 0, 10, 10]);
        normalize(&mut scores);
        assert_eq!(scores, vec![0, 0, 100, 100]);
        // Anti-affinity preference pushes away.
        let p = pod(
            "p",
            json!({}),
            json!({
                "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5, "podAffinityTerm": term("kubernetes.io/hostname", "db")}]},
            }),
        );
        let s = prescore(&p, &c).expect("state");
        let mut scores: Vec<i64> = (0..4)
            .map(|i| {
                score(
                    &s,
                    c.nodes[c.node_id(&format!("n{i}")).expect("n")].labels(),
                )
            })
            .collect();
        normalize(&mut scores);
        assert_eq!(scores, vec![100, 100, 0, 100]);
        // Nothing to say: skipped.
        assert!(prescore(&pod("q", json!({}), json!({})), &c).is_none());
        // Existing pod's required affinity to the incoming pod attracts it (symmetry).
        let c = cluster(vec![(
            0,
            pod(
                "fan",
                json!({}),
                json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("zone", "star")]}}),
            ),
        )]);
        let star = pod("star", json!({"app": "star"}), json!({}));
        let s = prescore(&star, &c).expect("state");
        assert_eq!(score(&s, c.nodes[c.node_id("n1").expect("n1")].labels()), 1);
    }
}

//! PodTopologySpread: `DoNotSchedule` constraints as a filter (skew against the global
//! minimum over eligible domains, honouring `minDomains` and the node inclusion policies)
//! and `ScheduleAnyway` constraints — or the system defaults for controller-owned pods —
//! as a score.
//!
//! Counts come from the cache's incremental topology memos when every node with the keys
//! is a domain (no node-inclusion restriction); otherwise they are computed by scanning
//! the nodes as upstream does.

use super::basic::node_affinity_matches;
use crate::cache::{Cache, NodeInfo};
use crate::framework::{MAX_NODE_SCORE, Plugin, Status};
use crate::model::{Effect, NodeSpec, PodInfo, SpreadConstraint, tolerated};
use crate::selector::LabelSelector;
use crate::topology::{Domains, MISSING, Matcher};
use std::borrow::Cow;

pub const ERR_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
pub const ERR_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

/// Whether `node` counts as a domain member for `c` (nodeAffinityPolicy / nodeTaintsPolicy).
fn included(c: &SpreadConstraint, pod: &PodInfo, node: &NodeSpec) -> bool {
    if c.honor_affinity && !node_affinity_matches(pod, node) {
        return false;
    }
    if c.honor_taints
        && node.taints.iter().any(|t| {
            matches!(t.effect, Effect::NoSchedule | Effect::NoExecute)
                && !tolerated(&pod.tolerations, t)
        })
    {
        return false;
    }
    true
}

/// Whether the inclusion policies can exclude some nodes for this pod.
fn restricted(c: &SpreadConstraint, pod: &PodInfo) -> bool {
    c.honor_taints
        || (c.honor_affinity
            && (!pod.node_selector.is_empty() || pod.required_node_affinity.is_some()))
}

/// Which pods `c` counts.
fn matcher(c: &SpreadConstraint, pod: &PodInfo) -> Option<Matcher> {
    if c.by_owner {
        return pod.owner_uid.clone().map(Matcher::Owner);
    }
    Some(Matcher::Selector {
        namespace: pod.namespace.clone(),
        selector: c.selector.clone(),
    })
}

/// Matching pods on one node (the scan path).
fn count_matching(node: &NodeInfo, m: &Option<Matcher>) -> i32 {
    match m {
        Some(m) => node.pods.iter().filter(|p| m.matches(p)).count() as i32,
        None => 0,
    }
}

fn domains_for<'a>(cache: &'a Cache, key: &str) -> Cow<'a, Domains> {
    match cache.domains(key) {
        Some(d) => Cow::Borrowed(d),
        None => Cow::Owned(Domains::build(cache, key)),
    }
}

/// Every node has either all keys or none (so per-key memos agree with "has all keys").
fn keys_consistent(domains: &[Cow<Domains>]) -> bool {
    if domains.len() < 2 {
        return true;
    }
    let n = domains.iter().map(|d| d.of_node.len()).max().unwrap_or(0);
    (0..n).all(|id| {
        let first = domains[0].of(id) == MISSING;
        domains[1..].iter().all(|d| (d.of(id) == MISSING) == first)
    })
}

fn has_all(domains: &[Cow<Domains>], node: usize) -> bool {
    domains.iter().all(|d| d.of(node) != MISSING)
}

/// Build the cache indexes this pod's constraints will use (before a cycle borrows the
/// cache immutably).
pub fn prepare(cache: &mut Cache, pod: &PodInfo) {
    let (soft, _) = soft_constraints(pod);
    for c in pod.spread.iter().filter(|c| c.hard).chain(soft.iter()) {
        cache.prepare_domains(&c.topology_key);
        if !restricted(c, pod)
            && let Some(m) = matcher(c, pod)
        {
            cache.prepare_memo(&m, &c.topology_key);
        }
    }
}

/// Memo counts for every constraint, when usable.
fn memo_counts(
    cache: &Cache,
    pod: &PodInfo,
    cs: &[&SpreadConstraint],
    domains: &[Cow<Domains>],
) -> Option<Vec<Vec<i32>>> {
    if cs.iter().any(|c| restricted(c, pod)) || !keys_consistent(domains) {
        return None;
    }
    cs.iter()
        .map(|c| {
            matcher(c, pod)
                .and_then(|m| cache.memo(&m, &c.topology_key))
                .map(|m| m.counts.clone())
        })
        .collect()
}

/// PreFilter state: matching pods per domain id for each hard constraint.
#[derive(Debug, Clone)]
pub struct FilterState<'a> {
    pub constraints: Vec<&'a SpreadConstraint>,
    domains: Vec<Cow<'a, Domains>>,
    /// −1 marks a value that is not an eligible domain.
    counts: Vec<Vec<i32>>,
    /// Minimum over eligible domains (i32::MAX when none).
    min: Vec<i32>,
    eligible: Vec<i32>,
}

impl FilterState<'_> {
    fn recompute(&mut self, i: usize) {
        let valid = self.counts[i].iter().copied().filter(|c| *c >= 0);
        self.min[i] = valid.clone().min().unwrap_or(i32::MAX);
        self.eligible[i] = valid.count() as i32;
    }

    /// Account `existing` on `node` (`delta` ±1; used by preemption).
    pub fn update_with_pod(
        &mut self,
        pod: &PodInfo,
        existing: &PodInfo,
        node: &NodeInfo,
        delta: i32,
    ) {
        let Some(spec) = &node.spec else { return };
        if existing.deleting
            || existing.namespace != pod.namespace
            || !has_all(&self.domains, node.id)
        {
            return;
        }
        for i in 0..self.constraints.len() {
            let c = self.constraints[i];
            if !c.selector.matches(&existing.labels) || !included(c, pod, spec) {
                continue;
            }
            let d = self.domains[i].of(node.id) as usize;
            let slot = &mut self.counts[i][d];
            *slot = (*slot).max(0) + delta;
            self.recompute(i);
        }
    }
}

/// PreFilter: `Ok(None)` when the pod has no hard constraints.
pub fn prefilter<'a>(
    pod: &'a PodInfo,
    cache: &'a Cache,
) -> Result<Option<FilterState<'a>>, String> {
    if let Some(e) = &pod.spread_error {
        return Err(format!("get constraints from pod: {e}"));
    }
    let constraints: Vec<&SpreadConstraint> = pod.spread.iter().filter(|c| c.hard).collect();
    if constraints.is_empty() {
        return Ok(None);
    }
    let domains: Vec<Cow<Domains>> = constraints
        .iter()
        .map(|c| domains_for(cache, &c.topology_key))
        .collect();
    let counts = match memo_counts(cache, pod, &constraints, &domains) {
        Some(c) => c,
        None => {
            let matchers: Vec<Option<Matcher>> =
                constraints.iter().map(|c| matcher(c, pod)).collect();
            let mut counts: Vec<Vec<i32>> =
                domains.iter().map(|d| vec![-1; d.values.len()]).collect();
            for node in &cache.nodes {
                let Some(spec) = &node.spec else { continue };
                if !has_all(&domains, node.id) {
                    continue;
                }
                for (i, c) in constraints.iter().enumerate() {
                    if !included(c, pod, spec) {
                        continue;
                    }
                    let slot = &mut counts[i][domains[i].of(node.id) as usize];
                    *slot = (*slot).max(0) + count_matching(node, &matchers[i]);
                }
            }
            counts
        }
    };
    let n = constraints.len();
    let mut s = FilterState {
        constraints,
        domains,
        counts,
        min: vec![i32::MAX; n],
        eligible: vec![0; n],
    };
    for i in 0..n {
        s.recompute(i);
    }
    Ok(Some(s))
}

/// Filter: for each hard constraint, `matching in the node's domain + self − global minimum`
/// must not exceed `maxSkew`.
pub fn filter(state: &FilterState, pod: &PodInfo, node: &NodeInfo) -> Result<(), Status> {
    for (i, c) in state.constraints.iter().enumerate() {
        let d = state.domains[i].of(node.id);
        if d == MISSING {
            return Err(Status::unresolvable(
                Plugin::PodTopologySpread,
                ERR_MISSING_LABEL,
            ));
        }
        let min = if state.eligible[i] < c.min_domains {
            0
        } else {
            state.min[i]
        };
        let self_match = i32::from(c.selector.matches(&pod.labels));
        let matching = state.counts[i][d as usize].max(0);
        if matching as i64 + self_match as i64 - min as i64 > c.max_skew as i64 {
            return Err(Status::unschedulable(
                Plugin::PodTopologySpread,
                ERR_CONSTRAINTS,
            ));
        }
    }
    Ok(())
}

/// The soft constraints to score with: the pod's `ScheduleAnyway` ones, or upstream's
/// system defaults (hostname skew 3, zone skew 5) for controller-owned pods without any.
fn soft_constraints(pod: &PodInfo) -> (Vec<SpreadConstraint>, bool) {
    if !pod.spread.is_empty() {
        return (
            pod.spread.iter().filter(|c| !c.hard).cloned().collect(),
            false,
        );
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
pub struct ScoreState<'a> {
    constraints: Vec<SpreadConstraint>,
    require_all: bool,
    domains: Vec<Cow<'a, Domains>>,
    /// Matching pods per domain id (meaningful for domains of feasible nodes).
    counts: Vec<Vec<i64>>,
    weights: Vec<f64>,
}

/// PreScore over the feasible nodes; `None` when there is nothing to score.
pub fn prescore<'a>(pod: &PodInfo, cache: &'a Cache, feasible: &[usize]) -> Option<ScoreState<'a>> {
    let (constraints, system) = soft_constraints(pod);
    if constraints.is_empty() {
        return None;
    }
    let require_all = !system;
    let domains: Vec<Cow<Domains>> = constraints
        .iter()
        .map(|c| domains_for(cache, &c.topology_key))
        .collect();
    let mut present: Vec<Vec<bool>> = domains
        .iter()
        .map(|d| vec![false; d.values.len()])
        .collect();
    let mut ignored = 0usize;
    for &id in feasible {
        if require_all && !has_all(&domains, id) {
            ignored += 1;
            continue;
        }
        for (i, d) in domains.iter().enumerate() {
            let v = d.of(id);
            if v != MISSING {
                present[i][v as usize] = true;
            }
        }
    }
    let weights = constraints
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let size = if c.topology_key == HOSTNAME {
                feasible.len() - ignored
            } else {
                present[i].iter().filter(|p| **p).count()
            };
            ((size + 2) as f64).ln()
        })
        .collect();
    let refs: Vec<&SpreadConstraint> = constraints.iter().collect();
    let memo = if require_all {
        memo_counts(cache, pod, &refs, &domains)
    } else {
        memo_counts_each(cache, pod, &refs)
    };
    let counts: Vec<Vec<i64>> = match memo {
        Some(c) => c
            .into_iter()
            .map(|v| v.into_iter().map(i64::from).collect())
            .collect(),
        None => {
            let matchers: Vec<Option<Matcher>> =
                constraints.iter().map(|c| matcher(c, pod)).collect();
            let mut counts: Vec<Vec<i64>> =
                domains.iter().map(|d| vec![0; d.values.len()]).collect();
            for node in &cache.nodes {
                let Some(spec) = &node.spec else { continue };
                if require_all && !has_all(&domains, node.id) {
                    continue;
                }
                for (i, c) in constraints.iter().enumerate() {
                    let d = domains[i].of(node.id);
                    if d == MISSING || !present[i][d as usize] || !included(c, pod, spec) {
                        continue;
                    }
                    counts[i][d as usize] += count_matching(node, &matchers[i]) as i64;
                }
            }
            counts
        }
    };
    Some(ScoreState {
        constraints,
        require_all,
        domains,
        counts,
        weights,
    })
}

/// Memo counts per constraint without the all-keys requirement (system defaults).
fn memo_counts_each(
    cache: &Cache,
    pod: &PodInfo,
    cs: &[&SpreadConstraint],
) -> Option<Vec<Vec<i32>>> {
    if cs.iter().any(|c| restricted(c, pod)) {
        return None;
    }
    cs.iter()
        .map(|c| {
            matcher(c, pod)
                .and_then(|m| cache.memo(&m, &c.topology_key))
                .map(|m| m.counts.clone())
        })
        .collect()
}

/// Raw score of one feasible node (more matching pods → higher); `None` for nodes missing
/// a topology key (they end with score 0).
pub fn score(state: &ScoreState, node: &NodeInfo) -> Option<i64> {
    node.spec.as_ref()?;
    if state.require_all && !has_all(&state.domains, node.id) {
        return None;
    }
    let mut total = 0f64;
    for (i, c) in state.constraints.iter().enumerate() {
        let d = state.domains[i].of(node.id);
        if d == MISSING {
            continue;
        }
        total += state.counts[i][d as usize] as f64 * state.weights[i] + (c.max_skew - 1) as f64;
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
#[path = "spread_tests.rs"]
mod tests;

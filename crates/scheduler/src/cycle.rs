//! One scheduling cycle for one pod: PreFilter, Filter over a rotating sample of nodes
//! (upstream's adaptive `percentageOfNodesToScore`), Score with upstream's default plugin
//! weights, and host selection with random tie-breaking.

use crate::cache::{Cache, NodeInfo};
use crate::framework::{Diagnosis, Plugin, Status, default_normalize, num_feasible_nodes_to_find};
use crate::model::{Effect, HostPort, PodInfo};
use crate::plugins::resources::Reserved;
use crate::plugins::{basic, interpod, resources, spread, volume};
use crate::selector::Labels;
use rand::Rng;
use std::collections::HashSet;

/// Upstream default score weights.
const W_TAINT: i64 = 3;
const W_NODE_AFFINITY: i64 = 2;
const W_FIT: i64 = 1;
const W_SPREAD: i64 = 2;
const W_INTERPOD: i64 = 2;
const W_BALANCED: i64 = 1;

/// Requeue hint for pods that only node additions/updates (or their own update) can help:
/// a bit no plugin uses, so only the "any plugin" node events match it.
pub const ONLY_NODE_EVENTS: crate::framework::PluginSet = 1 << 15;

/// Message when the cluster has no nodes.
pub const NO_NODES: &str = "no nodes available to schedule pods";

/// Why a cycle found no node.
#[derive(Debug)]
pub enum Failure {
    /// Filters (or PreFilter) rejected every node.
    Fit(Diagnosis),
    /// The cluster has no nodes at all.
    NoNodes,
    /// Something other than a fit problem (reported with reason SchedulerError).
    Error(String),
}

/// PreFilter results for one pod, borrowed from the cache for the cycle.
pub struct Cycle<'a> {
    pub cache: &'a Cache,
    pub pod: &'a PodInfo,
    pub priority: i32,
    pub pod_ns: Option<&'a Labels>,
    pub ipa: Option<interpod::FilterState<'a>>,
    pub spread: Option<spread::FilterState<'a>>,
    /// Volumes of the pod's bound claims (`None`: the pod uses no claims).
    pub volumes: Option<volume::FilterState<'a>>,
    /// Candidate node names when node affinity pins the pod (`metadata.name In`).
    pub pinned: Option<HashSet<String>>,
}

impl<'a> Cycle<'a> {
    /// Run the PreFilter plugins.
    pub fn prefilter(cache: &'a Cache, pod: &'a PodInfo) -> Result<Cycle<'a>, Failure> {
        let num_all_nodes = cache.order().len();
        // A PreFilter rejection comes from the pod's own spec (contradicting or unparsable
        // terms): other pods coming and going cannot fix it, only a new node or an update
        // of the pod itself can.
        let rejected = |s: Status| {
            Failure::Fit(Diagnosis {
                num_all_nodes,
                prefilter_msg: Some(s.message()),
                plugins: ONLY_NODE_EVENTS,
                absent: Some(s),
                ..Default::default()
            })
        };
        let pinned = basic::pinned_nodes(pod).map_err(rejected)?;
        // Volume PreFilter rejections wait for claim/volume/class events (or a node event).
        let volumes = volume::prefilter(pod, &cache.volumes).map_err(|s| {
            Failure::Fit(Diagnosis {
                num_all_nodes,
                prefilter_msg: Some(s.message()),
                plugins: Plugin::VolumeBinding.bit() | Plugin::VolumeZone.bit(),
                absent: Some(s),
                ..Default::default()
            })
        })?;
        let ipa = interpod::prefilter(pod, cache).map_err(rejected)?;
        let spread = spread::prefilter(pod, cache).map_err(|e| {
            Failure::Error(format!(
                "running PreFilter plugin \"PodTopologySpread\": {e}"
            ))
        })?;
        Ok(Cycle {
            cache,
            pod,
            priority: cache.priority(pod),
            pod_ns: cache.ns_labels(&pod.namespace),
            ipa,
            spread,
            volumes,
            pinned,
        })
    }

    /// Requests and ports of pods nominated to `node` with at least this pod's priority.
    fn reserved(&self, node: &NodeInfo) -> (Reserved, Vec<HostPort>) {
        let mut r = Reserved::default();
        let mut ports = Vec::new();
        if self.cache.nominated.is_empty() {
            return (r, ports);
        }
        for p in self
            .cache
            .nominated_on(&node.name, self.priority, &self.pod.uid)
        {
            r.requests.add(&p.requests, 1);
            r.pods += 1;
            ports.extend(p.host_ports.iter().cloned());
        }
        (r, ports)
    }

    /// All filters, in upstream order, against `node` with this cycle's PreFilter state.
    pub fn filter(&self, node: &NodeInfo) -> Result<(), Status> {
        self.filter_with(node, self.ipa.as_ref(), self.spread.as_ref())
    }

    /// All filters with explicit PreFilter states (preemption simulates removals).
    pub fn filter_with(
        &self,
        node: &NodeInfo,
        ipa: Option<&interpod::FilterState>,
        spread: Option<&spread::FilterState>,
    ) -> Result<(), Status> {
        let Some(spec) = &node.spec else {
            return Err(Status::unresolvable(Plugin::NodeName, "node(s) not found"));
        };
        let pod = self.pod;
        basic::node_unschedulable(pod, spec)?;
        basic::node_name(pod, spec)?;
        basic::taint_toleration(pod, spec)?;
        basic::node_affinity(pod, spec)?;
        let (reserved, reserved_ports) = self.reserved(node);
        if !pod.host_ports.is_empty() {
            basic::node_ports(pod, &node.used_ports, &reserved_ports)?;
        }
        resources::fit(pod, node, spec, &reserved)?;
        if let Some(v) = &self.volumes {
            volume::binding_filter(v, spec)?;
            volume::zone_filter(v, spec)?;
        }
        if let Some(s) = spread {
            spread::filter(s, pod, node)?;
        }
        if let Some(s) = ipa {
            interpod::filter(s, pod, self.pod_ns, &spec.labels)?;
        }
        Ok(())
    }

    /// Weighted sum of every score plugin for each feasible node.
    pub fn score(&self, feasible: &[usize]) -> Vec<i64> {
        let cache = self.cache;
        let pod = self.pod;
        let nodes: Vec<(&NodeInfo, &crate::model::NodeSpec)> = feasible
            .iter()
            .filter_map(|&i| cache.nodes[i].spec.as_ref().map(|s| (&cache.nodes[i], s)))
            .collect();
        let mut total = vec![0i64; nodes.len()];
        let mut add = |scores: Vec<i64>, weight: i64| {
            for (t, s) in total.iter_mut().zip(scores) {
                *t += s * weight;
            }
        };
        // TaintToleration: constant (skippable) unless some node has PreferNoSchedule taints.
        if nodes.iter().any(|(_, s)| {
            s.taints
                .iter()
                .any(|t| t.effect == Effect::PreferNoSchedule)
        }) {
            let mut s: Vec<i64> = nodes
                .iter()
                .map(|(_, spec)| basic::taint_score(pod, spec))
                .collect();
            default_normalize(&mut s, true);
            add(s, W_TAINT);
        }
        if !pod.preferred_node_affinity.is_empty() {
            let mut s: Vec<i64> = nodes
                .iter()
                .map(|(_, spec)| basic::node_affinity_score(pod, spec))
                .collect();
            default_normalize(&mut s, false);
            add(s, W_NODE_AFFINITY);
        }
        add(
            nodes
                .iter()
                .map(|(n, spec)| resources::least_allocated(pod, n, spec))
                .collect(),
            W_FIT,
        );
        if resources::balanced_applies(pod) {
            add(
                nodes
                    .iter()
                    .map(|(n, spec)| resources::balanced_allocation(pod, n, spec))
                    .collect(),
                W_BALANCED,
            );
        }
        if let Some(state) = spread::prescore(pod, cache, feasible) {
            let raw: Vec<Option<i64>> = nodes
                .iter()
                .map(|(n, _)| spread::score(&state, n))
                .collect();
            add(spread::normalize(&raw), W_SPREAD);
        }
        if let Some(state) = interpod::prescore(pod, cache) {
            let mut s: Vec<i64> = nodes
                .iter()
                .map(|(_, spec)| interpod::score(&state, &spec.labels))
                .collect();
            interpod::normalize(&mut s);
            add(s, W_INTERPOD);
        }
        total
    }
}

/// Scheduler-wide knobs a cycle needs.
pub struct Sampling {
    /// `percentageOfNodesToScore` (0 = adaptive).
    pub percentage: u32,
    /// Where the next cycle starts in the node order (rotates like upstream).
    pub next_start: usize,
}

/// Find the node for `pod`: `Ok(node id)` or why none fits.
pub fn schedule(
    cache: &mut Cache,
    pod: &PodInfo,
    sampling: &mut Sampling,
    rng: &mut impl Rng,
) -> Result<usize, Failure> {
    cache.node_order();
    spread::prepare(cache, pod);
    let cache: &Cache = cache;
    let order = cache.order();
    if order.is_empty() {
        return Err(Failure::NoNodes);
    }
    let cycle = Cycle::prefilter(cache, pod)?;
    let num_all = order.len();
    // A nominated node (after preemption) is tried first, alone.
    if !pod.nominated_node.is_empty()
        && let Some(id) = cache.node_id(&pod.nominated_node)
        && cache.nodes[id].spec.is_some()
        && cycle.filter(&cache.nodes[id]).is_ok()
    {
        return Ok(id);
    }
    let candidates: Vec<usize> = match &cycle.pinned {
        Some(names) => order
            .iter()
            .copied()
            .filter(|&i| names.contains(&cache.nodes[i].name))
            .collect(),
        None => Vec::new(),
    };
    let (list, rotate): (&[usize], bool) = match &cycle.pinned {
        Some(_) => (&candidates, false),
        None => (order, true),
    };
    let want = num_feasible_nodes_to_find(list.len(), sampling.percentage);
    let mut feasible = Vec::with_capacity(want.min(list.len()));
    let mut diagnosis = Diagnosis {
        num_all_nodes: num_all,
        ..Default::default()
    };
    if cycle.pinned.is_some() {
        diagnosis.absent = Some(Status::unresolvable(
            Plugin::NodeAffinity,
            "node(s) didn't satisfy plugin(s) [NodeAffinity]",
        ));
        diagnosis.plugins |= Plugin::NodeAffinity.bit();
    }
    let start = if rotate && !list.is_empty() {
        sampling.next_start % list.len()
    } else {
        0
    };
    let mut processed = 0;
    for k in 0..list.len() {
        if feasible.len() >= want {
            break;
        }
        let id = list[(start + k) % list.len()];
        processed += 1;
        match cycle.filter(&cache.nodes[id]) {
            Ok(()) => feasible.push(id),
            Err(s) => {
                diagnosis.plugins |= s.plugin.bit();
                diagnosis.node_status.push((id, s));
            }
        }
    }
    if rotate {
        sampling.next_start = (start + processed) % list.len().max(1);
    }
    match feasible.len() {
        0 => Err(Failure::Fit(diagnosis)),
        1 => Ok(feasible[0]),
        _ => {
            let scores = cycle.score(&feasible);
            Ok(select_host(&feasible, &scores, rng))
        }
    }
}

/// Highest total score; ties broken uniformly at random (reservoir sampling).
pub fn select_host(feasible: &[usize], scores: &[i64], rng: &mut impl Rng) -> usize {
    let mut best = feasible[0];
    let mut best_score = i64::MIN;
    let mut ties = 0u32;
    for (&id, &s) in feasible.iter().zip(scores) {
        if s > best_score {
            best = id;
            best_score = s;
            ties = 1;
        } else if s == best_score {
            ties += 1;
            if rng.random_range(0..ties) == 0 {
                best = id;
            }
        }
    }
    best
}

#[cfg(test)]
#[path = "cycle_tests.rs"]
pub(crate) mod tests;

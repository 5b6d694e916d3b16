//! DefaultPreemption (PostFilter): when no node fits, find nodes where evicting
//! lower-priority pods would make room, pick the least disruptive one (fewest PDB
//! violations, lowest highest-victim priority, lowest priority sum, fewest victims, most
//! recently started), and report victims and the node to nominate. The scheduler performs
//! the API calls.

use crate::cache::{Cache, NodeInfo};
use crate::cycle::Cycle;
use crate::framework::{Code, Diagnosis, Plugin, Status};
use crate::model::PodInfo;
use rand::Rng;
use std::sync::Arc;

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Upstream's candidate sampling: at least 10% of the potential nodes and at least 100.
const MIN_CANDIDATE_PERCENT: usize = 10;
const MIN_CANDIDATES: usize = 100;

/// What preemption decided.
#[derive(Debug)]
pub enum Outcome {
    /// The pod may not preempt; message for the status (already prefixed).
    NotEligible(String),
    /// No node would fit even after evictions; the "preemption: …" message.
    NoCandidate(String),
    /// Evict `victims` on `node` and nominate it; `demote` lost their nomination there.
    Nominate {
        node: usize,
        victims: Vec<Arc<PodInfo>>,
        demote: Vec<Arc<PodInfo>>,
    },
}

#[derive(Debug)]
struct Candidate {
    node: usize,
    victims: Vec<Arc<PodInfo>>,
    violations: usize,
}

/// Split victims by whether evicting them (in order) would break a PodDisruptionBudget.
fn split_by_pdb(cache: &Cache, pods: Vec<Arc<PodInfo>>) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<(&crate::cache::Pdb, i32)> = cache
        .pdbs
        .values()
        .map(|p| (p, p.disruptions_allowed))
        .collect();
    let (mut violating, mut ok) = (Vec::new(), Vec::new());
    for p in pods {
        let mut violated = false;
        if !p.labels.is_empty() {
            for (pdb, left) in allowed.iter_mut() {
                if pdb.namespace != p.namespace
                    || pdb.selector.nothing
                    || pdb.selector.is_everything()
                    || !pdb.selector.matches(&p.labels)
                    || pdb.disrupted_pods.contains(&p.name)
                {
                    continue;
                }
                *left -= 1;
                if *left < 0 {
                    violated = true;
                }
            }
        }
        if violated {
            violating.push(p)
        } else {
            ok.push(p)
        }
    }
    (violating, ok)
}

/// Upstream `SelectVictimsOnNode`: remove every lower-priority pod, check the pod fits, then
/// give back as many pods as possible (most important first, PDB-protected ones first).
fn select_victims(cycle: &Cycle, node: &NodeInfo) -> Result<(Vec<Arc<PodInfo>>, usize), Status> {
    let cache = cycle.cache;
    let pod = cycle.pod;
    let mut potential: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| cache.priority(p) < cycle.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(Plugin::DefaultPreemption, NO_VICTIMS));
    }
    let mut copy = node.clone();
    let mut ipa = cycle.ipa.clone();
    let mut spread = cycle.spread.clone();
    // Victims are borrowed from the cache's node (same Arcs), so states can keep references.
    let originals: Vec<&PodInfo> = potential
        .iter()
        .filter_map(|v| {
            node.pods
                .iter()
                .find(|p| p.uid == v.uid)
                .map(|p| p.as_ref())
        })
        .collect();
    for v in &originals {
        copy.remove_pod(&v.uid);
        if let Some(s) = ipa.as_mut() {
            s.update_with_pod(cache, pod, v, node.labels(), -1);
        }
        if let Some(s) = spread.as_mut() {
            s.update_with_pod(pod, v, node, -1);
        }
    }
    cycle.filter_with(&copy, ipa.as_ref(), spread.as_ref())?;
    // Most important first: higher priority, then earlier start.
    potential.sort_by(|a, b| {
        cache.priority(b).cmp(&cache.priority(a)).then(
            a.start_time
                .unwrap_or(i64::MAX)
                .cmp(&b.start_time.unwrap_or(i64::MAX)),
        )
    });
    let (violating, ok) = split_by_pdb(cache, potential);
    let mut victims = Vec::new();
    let mut violations = 0;
    for (group, counts) in [(violating, true), (ok, false)] {
        for v in group {
            let Some(orig) = node.pods.iter().find(|p| p.uid == v.uid) else {
                continue;
            };
            copy.add_pod(v.clone());
            if let Some(s) = ipa.as_mut() {
                s.update_with_pod(cache, pod, orig, node.labels(), 1);
            }
            if let Some(s) = spread.as_mut() {
                s.update_with_pod(pod, orig, node, 1);
            }
            if cycle
                .filter_with(&copy, ipa.as_ref(), spread.as_ref())
                .is_err()
            {
                copy.remove_pod(&v.uid);
                if let Some(s) = ipa.as_mut() {
                    s.update_with_pod(cache, pod, orig, node.labels(), -1);
                }
                if let Some(s) = spread.as_mut() {
                    s.update_with_pod(pod, orig, node, -1);
                }
                if counts {
                    violations += 1;
                }
                victims.push(v);
            }
        }
    }
    Ok((victims, violations))
}

/// Ordering key: smaller is better (upstream `pickOneNodeForPreemption`).
fn candidate_key(cache: &Cache, c: &Candidate) -> (usize, i32, i64, usize, i64) {
    let prios: Vec<i32> = c.victims.iter().map(|v| cache.priority(v)).collect();
    let highest = prios.iter().copied().max().unwrap_or(i32::MIN);
    let sum: i64 = prios.iter().map(|p| *p as i64 + i32::MAX as i64 + 1).sum();
    // Latest "earliest start among the highest-priority victims" wins, so negate it.
    let earliest = c
        .victims
        .iter()
        .filter(|v| cache.priority(v) == highest)
        .map(|v| v.start_time.unwrap_or(0))
        .min()
        .unwrap_or(0);
    (c.violations, highest, sum, c.victims.len(), -earliest)
}

fn not_eligible(cache: &Cache, pod: &PodInfo) -> Option<Outcome> {
    cache
        .preempt_never(pod)
        .then(|| Outcome::NotEligible("not eligible due to preemptionPolicy=Never.".into()))
}

/// Preemption for a pod rejected by PreFilter everywhere (nothing to simulate).
pub fn without_cycle(cache: &Cache, pod: &PodInfo, num_all_nodes: usize) -> Outcome {
    not_eligible(cache, pod).unwrap_or_else(|| {
        let d = Diagnosis {
            num_all_nodes,
            absent: Some(Status::unresolvable(Plugin::DefaultPreemption, NOT_HELPFUL)),
            ..Default::default()
        };
        Outcome::NoCandidate(format!("preemption: {}", d.message(None)))
    })
}

/// Run preemption for a pod that fit nowhere.
pub fn preempt(cycle: &Cycle, diagnosis: &Diagnosis, rng: &mut impl Rng) -> Outcome {
    let cache = cycle.cache;
    let pod = cycle.pod;
    if let Some(o) = not_eligible(cache, pod) {
        return o;
    }
    if !pod.nominated_node.is_empty()
        && let Some(id) = cache.node_id(&pod.nominated_node)
        && diagnosis.code_of(id) != Some(Code::UnschedulableAndUnresolvable)
        && cache.nodes[id]
            .pods
            .iter()
            .any(|p| p.deleting && cache.priority(p) < cycle.priority)
    {
        return Outcome::NotEligible(
            "not eligible due to a terminating pod on the nominated node.".into(),
        );
    }
    let order = cache.order();
    let potential: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&id| diagnosis.code_of(id) == Some(Code::Unschedulable))
        .collect();
    let mut result = Diagnosis {
        num_all_nodes: order.len(),
        absent: Some(Status::unresolvable(Plugin::DefaultPreemption, NOT_HELPFUL)),
        ..Default::default()
    };
    let mut candidates = Vec::new();
    if !potential.is_empty() {
        let want = (potential.len() * MIN_CANDIDATE_PERCENT / 100)
            .max(MIN_CANDIDATES)
            .min(potential.len());
        let offset = rng.random_range(0..potential.len());
        for k in 0..potential.len() {
            let id = potential[(offset + k) % potential.len()];
            match select_victims(cycle, &cache.nodes[id]) {
                Ok((victims, violations)) if !victims.is_empty() => {
                    candidates.push(Candidate {
                        node: id,
                        victims,
                        violations,
                    });
                    let clean = candidates.iter().filter(|c| c.violations == 0).count();
                    if clean > 0 && candidates.len() >= want {
                        break;
                    }
                }
                Ok(_) => {}
                Err(s) => result.node_status.push((id, s)),
            }
        }
    }
    if candidates.is_empty() {
        return Outcome::NoCandidate(format!("preemption: {}", result.message(None)));
    }
    let mut best = 0;
    let mut best_key = candidate_key(cache, &candidates[0]);
    for (i, c) in candidates.iter().enumerate().skip(1) {
        let k = candidate_key(cache, c);
        if k < best_key {
            best = i;
            best_key = k;
        }
    }
    let chosen = candidates.swap_remove(best);
    let node_name = &cache.nodes[chosen.node].name;
    let demote = cache
        .nominated
        .get(node_name)
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|p| p.uid != pod.uid && cache.priority(p) < cycle.priority)
        .cloned()
        .collect();
    Outcome::Nominate {
        node: chosen.node,
        victims: chosen.victims,
        demote,
    }
}

#[cfg(test)]
#[path = "preemption_tests.rs"]
mod tests;

//! Framework vocabulary shared by plugins and the scheduling cycle: plugin names, filter
//! statuses, the failure diagnosis and upstream's "0/N nodes are available" message.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// Highest score a plugin gives a node (upstream `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// The default plugins, in upstream's filter order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Plugin {
    NodeUnschedulable,
    NodeName,
    TaintToleration,
    NodeAffinity,
    NodePorts,
    NodeResourcesFit,
    VolumeBinding,
    VolumeZone,
    PodTopologySpread,
    InterPodAffinity,
    DefaultPreemption,
}

/// A set of plugins (which rejected a pod), as bits.
pub type PluginSet = u16;

impl Plugin {
    pub fn bit(self) -> PluginSet {
        1 << (self as u16)
    }

    pub fn name(self) -> &'static str {
        match self {
            Plugin::NodeUnschedulable => "NodeUnschedulable",
            Plugin::NodeName => "NodeName",
            Plugin::TaintToleration => "TaintToleration",
            Plugin::NodeAffinity => "NodeAffinity",
            Plugin::NodePorts => "NodePorts",
            Plugin::NodeResourcesFit => "NodeResourcesFit",
            Plugin::VolumeBinding => "VolumeBinding",
            Plugin::VolumeZone => "VolumeZone",
            Plugin::PodTopologySpread => "PodTopologySpread",
            Plugin::InterPodAffinity => "InterPodAffinity",
            Plugin::DefaultPreemption => "DefaultPreemption",
        }
    }
}

/// How bad a rejection is: `Unschedulable` may be fixed by preempting pods on the node,
/// `UnschedulableAndUnresolvable` may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Unschedulable,
    UnschedulableAndUnresolvable,
}

/// A plugin's verdict on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub plugin: Plugin,
    pub reasons: Vec<Cow<'static, str>>,
}

impl Status {
    pub fn new(code: Code, plugin: Plugin, reason: impl Into<Cow<'static, str>>) -> Self {
        Status {
            code,
            plugin,
            reasons: vec![reason.into()],
        }
    }

    pub fn unschedulable(plugin: Plugin, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::Unschedulable, plugin, reason)
    }

    pub fn unresolvable(plugin: Plugin, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::UnschedulableAndUnresolvable, plugin, reason)
    }

    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// Why no node fit: per-node statuses for nodes that were tried, one status for the rest
/// (a PreFilter rejection, or nodes excluded up front), and PreFilter's own message.
#[derive(Debug, Clone, Default)]
pub struct Diagnosis {
    pub num_all_nodes: usize,
    /// Node id → status.
    pub node_status: Vec<(usize, Status)>,
    /// Status of every node not in `node_status`.
    pub absent: Option<Status>,
    pub prefilter_msg: Option<String>,
    /// Plugins that rejected the pod somewhere (for requeueing on cluster events).
    pub plugins: PluginSet,
}

impl Diagnosis {
    /// Code for node `id` (explicit, else the absent status).
    pub fn code_of(&self, id: usize) -> Option<Code> {
        self.node_status
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, s)| s.code)
            .or(self.absent.as_ref().map(|s| s.code))
    }

    /// Upstream `FitError.Error()`: "0/N nodes are available: <sorted histogram>." plus the
    /// PostFilter (preemption) message.
    pub fn message(&self, post_filter: Option<&str>) -> String {
        let mut msg = format!("0/{} nodes are available:", self.num_all_nodes);
        if let Some(pre) = &self.prefilter_msg {
            msg.push_str(&format!(" {pre}."));
        } else {
            let mut hist: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, s) in &self.node_status {
                for r in &s.reasons {
                    *hist.entry(r.as_ref()).or_default() += 1;
                }
            }
            let explicit = self.node_status.len();
            if explicit < self.num_all_nodes
                && let Some(a) = &self.absent
            {
                for r in &a.reasons {
                    *hist.entry(r.as_ref()).or_default() += self.num_all_nodes - explicit;
                }
            }
            let mut parts: Vec<String> =
                hist.into_iter().map(|(r, n)| format!("{n} {r}")).collect();
            parts.sort();
            if !parts.is_empty() {
                msg.push_str(&format!(" {}.", parts.join(", ")));
            }
        }
        if let Some(p) = post_filter.filter(|p| !p.is_empty()) {
            msg.push(' ');
            msg.push_str(p);
        }
        msg
    }
}

/// Upstream `DefaultNormalizeScore`: scale to 0..=100 by the maximum; `reverse` flips.
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0).max(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        let v = MAX_NODE_SCORE * *s / max;
        *s = if reverse { MAX_NODE_SCORE - v } else { v };
    }
}

/// Upstream's adaptive `percentageOfNodesToScore`: how many feasible nodes to find before
/// scoring (all below 100 nodes; 50% minus 1% per 125 nodes, at least 5%; at least 100).
pub fn num_feasible_nodes_to_find(num_all: usize, percentage: u32) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if num_all < MIN_FEASIBLE {
        return num_all;
    }
    let pct = if percentage == 0 || percentage >= 100 {
        if percentage >= 100 {
            return num_all;
        }
        (50i64 - (num_all as i64) / 125).max(5) as usize
    } else {
        percentage as usize
    };
    (num_all * pct / 100).max(MIN_FEASIBLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_error_message_like_upstream() {
        let d = Diagnosis {
            num_all_nodes: 5,
            node_status: vec![
                (
                    0,
                    Status::unschedulable(Plugin::NodeResourcesFit, "Insufficient cpu"),
                ),
                (
                    1,
                    Status::unschedulable(Plugin::NodeResourcesFit, "Insufficient cpu"),
                ),
                (
                    2,
                    Status::unschedulable(Plugin::NodeResourcesFit, "Insufficient cpu"),
                ),
                (
                    3,
                    Status::unresolvable(
                        Plugin::TaintToleration,
                        "node(s) had untolerated taint {key: value}",
                    ),
                ),
                (
                    4,
                    Status::unresolvable(
                        Plugin::TaintToleration,
                        "node(s) had untolerated taint {key: value}",
                    ),
                ),
            ],
            ..Default::default()
        };
        assert_eq!(
            d.message(Some(
                "preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling."
            )),
            "0/5 nodes are available: 2 node(s) had untolerated taint {key: value}, 3 Insufficient cpu. \
             preemption: 0/5 nodes are available: 5 Preemption is not helpful for scheduling."
        );
        // Absent nodes share one status; PreFilter messages replace the histogram.
        let d = Diagnosis {
            num_all_nodes: 3,
            absent: Some(Status::unresolvable(
                Plugin::NodeAffinity,
                "node(s) didn't satisfy plugin(s) [NodeAffinity]",
            )),
            ..Default::default()
        };
        assert_eq!(
            d.message(None),
            "0/3 nodes are available: 3 node(s) didn't satisfy plugin(s) [NodeAffinity]."
        );
        let d = Diagnosis {
            num_all_nodes: 2,
            prefilter_msg: Some("parsing pod: x".into()),
            ..Default::default()
        };
        assert_eq!(d.message(None), "0/2 nodes are available: parsing pod: x.");
    }

    #[test]
    fn normalize_and_sampling() {
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, false);
        assert_eq!(s, vec![0, 50, 100]);
        let mut s = vec![0, 5, 10];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 50, 0]);
        let mut s = vec![0, 0];
        default_normalize(&mut s, true);
        assert_eq!(s, vec![100, 100]);
        assert_eq!(num_feasible_nodes_to_find(50, 0), 50);
        assert_eq!(num_feasible_nodes_to_find(1000, 0), 420);
        assert_eq!(num_feasible_nodes_to_find(5000, 0), 500);
        assert_eq!(num_feasible_nodes_to_find(10000, 0), 500);
        assert_eq!(num_feasible_nodes_to_find(5000, 100), 5000);
        assert_eq!(num_feasible_nodes_to_find(500, 10), 100);
    }
}

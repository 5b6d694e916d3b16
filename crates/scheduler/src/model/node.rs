//! `NodeSpec`: the node-side inputs of scheduling (labels, taints, allocatable,
//! schedulability), built from the typed Node.
//!
//! A node whose Ready condition is not True is given the taint the node lifecycle
//! controller would add (`node.kubernetes.io/not-ready` or `…/unreachable`, NoSchedule), so
//! NotReady nodes are filtered out by TaintToleration exactly as upstream, and pods
//! tolerating those taints (DaemonSets) can still land there.

use super::{Effect, Resources, Taint};
use crate::selector::Labels;
use k8s_openapi::api::core::v1::Node;

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub name: String,
    pub labels: Labels,
    /// Spec taints plus the synthetic readiness taint.
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resources,
    pub allowed_pods: i64,
}

impl NodeSpec {
    pub fn from_node(node: &Node) -> NodeSpec {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let mut taints: Vec<Taint> = spec
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some(Taint {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: Effect::parse(&t.effect)?,
                })
            })
            .collect();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        let synthetic = match ready {
            Some("True") => None,
            Some("Unknown") => Some(TAINT_UNREACHABLE),
            _ => Some(TAINT_NOT_READY),
        };
        if let Some(key) = synthetic
            && !taints
                .iter()
                .any(|t| t.key == key && t.effect == Effect::NoSchedule)
        {
            taints.push(Taint {
                key: key.into(),
                value: String::new(),
                effect: Effect::NoSchedule,
            });
        }
        let alloc = status.and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()));
        let (allocatable, allowed_pods) = Resources::from_list(alloc);
        NodeSpec {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints,
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            allocatable,
            allowed_pods,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(v: serde_json::Value) -> NodeSpec {
        NodeSpec::from_node(&serde_json::from_value(v).expect("node"))
    }

    #[test]
    fn readiness_becomes_a_taint() {
        let ready = node(json!({"metadata": {"name": "n"}, "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "nvidia.com/gpu": "2"},
            "conditions": [{"type": "Ready", "status": "True"}]}}));
        assert!(ready.taints.is_empty());
        assert_eq!(
            (
                ready.allocatable.milli_cpu,
                ready.allowed_pods,
                ready.allocatable.scalar("nvidia.com/gpu")
            ),
            (4000, 110, 2)
        );
        let not_ready = node(
            json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        assert_eq!(not_ready.taints[0].key, TAINT_NOT_READY);
        let unknown = node(
            json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        );
        assert_eq!(unknown.taints[0].key, TAINT_UNREACHABLE);
        // No duplicate when the controller already added it.
        let tainted = node(json!({"metadata": {"name": "n"},
            "spec": {"taints": [{"key": TAINT_NOT_READY, "effect": "NoSchedule"}], "unschedulable": true}}));
        assert_eq!(tainted.taints.len(), 1);
        assert!(tainted.unschedulable);
    }
}

//! Node health bookkeeping (upstream `nodeHealthMap`): when this controller last saw a
//! sign of life from each node — a new Ready heartbeat or Lease renewal — measured on its
//! own clock so that skew between kubelet and controller does not matter.

use super::taints::condition;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Conditions the kubelet owns and that go `Unknown` when it stops reporting.
pub const KUBELET_CONDITIONS: [&str; 4] =
    ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

struct Health {
    probe: Instant,
    heartbeat: Option<jiff::Timestamp>,
    lease_renew: Option<jiff::Timestamp>,
}

/// Last-seen-alive times per node.
#[derive(Default)]
pub struct Tracker {
    nodes: Mutex<HashMap<String, Health>>,
}

impl Tracker {
    /// Record what `node` and its `lease` show now; returns how long ago the node was last
    /// seen alive.
    pub fn observe(&self, node: &Node, lease: Option<&Lease>, now: Instant) -> Duration {
        let name = node.metadata.name.clone().unwrap_or_default();
        let heartbeat = condition(node, "Ready")
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0);
        let lease_renew = lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0);
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        let h = nodes.entry(name).or_insert(Health {
            probe: now,
            heartbeat,
            lease_renew,
        });
        if h.heartbeat != heartbeat {
            h.heartbeat = heartbeat;
            h.probe = now;
        }
        if lease_renew.is_some() && h.lease_renew != lease_renew {
            h.lease_renew = lease_renew;
            h.probe = now;
        }
        now.saturating_duration_since(h.probe)
    }

    /// Forget a deleted node.
    pub fn forget(&self, name: &str) {
        self.nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }
}

/// The node's conditions with every kubelet-owned one set to `Unknown` (upstream
/// `tryUpdateNodeHealth` once the grace period passed); `None` if they already are.
pub fn unknown_conditions(node: &Node, now: jiff::Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conds: Vec<NodeCondition> = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in KUBELET_CONDITIONS {
        match conds.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".to_string();
                c.reason = Some("NodeStatusUnknown".to_string());
                c.message = Some("Kubelet stopped posting node status.".to_string());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conds.push(NodeCondition {
                    type_: type_.to_string(),
                    status: "Unknown".to_string(),
                    reason: Some("NodeStatusNeverUpdated".to_string()),
                    message: Some("Kubelet never posted node status.".to_string()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(hb: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "lastHeartbeatTime": hb},
                {"type": "NetworkUnavailable", "status": "False"},
            ]},
        }))
        .expect("node")
    }

    #[test]
    fn probe_moves_only_on_new_heartbeat() {
        let t = Tracker::default();
        let t0 = Instant::now();
        let n = node("2025-01-01T00:00:00Z");
        assert_eq!(t.observe(&n, None, t0), Duration::ZERO);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(t.observe(&n, None, later), Duration::from_secs(10));
        let n2 = node("2025-01-01T00:00:10Z");
        assert_eq!(t.observe(&n2, None, later), Duration::ZERO);
    }

    #[test]
    fn conditions_go_unknown_once() {
        let n = node("2025-01-01T00:00:00Z");
        let conds = unknown_conditions(&n, jiff::Timestamp::now()).expect("changed");
        assert_eq!(conds.len(), 5);
        let ready = conds.iter().find(|c| c.type_ == "Ready").expect("ready");
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert!(ready.last_heartbeat_time.is_some());
        let net = conds
            .iter()
            .find(|c| c.type_ == "NetworkUnavailable")
            .expect("net");
        assert_eq!(net.status, "False");
        let mut n2 = n.clone();
        if let Some(s) = n2.status.as_mut() {
            s.conditions = Some(conds);
        }
        assert!(unknown_conditions(&n2, jiff::Timestamp::now()).is_none());
    }
}

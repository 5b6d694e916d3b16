//! The per-node plugins without cross-node state: NodeUnschedulable, NodeName,
//! TaintToleration, NodeAffinity (filter, score, and the PreFilter that pins pods to named
//! nodes) and NodePorts.

use crate::framework::{Plugin, Status};
use crate::model::node::TAINT_UNSCHEDULABLE;
use crate::model::{Effect, HostPort, NodeSpec, PodInfo, Taint, tolerated};
use std::collections::HashSet;

pub const ERR_UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const ERR_NODE_NAME: &str = "node(s) didn't match the requested node name";
pub const ERR_NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
pub const ERR_NODE_PORTS: &str = "node(s) didn't have free ports for the requested pod ports";
pub const ERR_AFFINITY_CONFLICT: &str = "pod affinity terms conflict";

/// NodeUnschedulable: `spec.unschedulable` nodes take only pods tolerating the
/// `node.kubernetes.io/unschedulable:NoSchedule` taint.
pub fn node_unschedulable(pod: &PodInfo, node: &NodeSpec) -> Result<(), Status> {
    if !node.unschedulable {
        return Ok(());
    }
    let taint = Taint {
        key: TAINT_UNSCHEDULABLE.into(),
        value: String::new(),
        effect: Effect::NoSchedule,
    };
    if tolerated(&pod.tolerations, &taint) {
        return Ok(());
    }
    Err(Status::unresolvable(
        Plugin::NodeUnschedulable,
        ERR_UNSCHEDULABLE,
    ))
}

/// NodeName: a pod naming a node fits only that node.
pub fn node_name(pod: &PodInfo, node: &NodeSpec) -> Result<(), Status> {
    if pod.node_name.is_empty() || pod.node_name == node.name {
        return Ok(());
    }
    Err(Status::unresolvable(Plugin::NodeName, ERR_NODE_NAME))
}

/// TaintToleration filter: the first untolerated NoSchedule/NoExecute taint rejects.
pub fn taint_toleration(pod: &PodInfo, node: &NodeSpec) -> Result<(), Status> {
    let bad = node
        .taints
        .iter()
        .filter(|t| matches!(t.effect, Effect::NoSchedule | Effect::NoExecute))
        .find(|t| !tolerated(&pod.tolerations, t));
    match bad {
        None => Ok(()),
        Some(t) => Err(Status::unresolvable(
            Plugin::TaintToleration,
            format!("node(s) had untolerated taint {{{}: {}}}", t.key, t.value),
        )),
    }
}

/// TaintToleration score (before reverse normalisation): PreferNoSchedule taints the pod
/// does not tolerate with a PreferNoSchedule-or-any-effect toleration.
pub fn taint_score(pod: &PodInfo, node: &NodeSpec) -> i64 {
    node.taints
        .iter()
        .filter(|t| t.effect == Effect::PreferNoSchedule)
        .filter(|t| {
            !pod.tolerations
                .iter()
                .filter(|tol| tol.effect.is_none_or(|e| e == Effect::PreferNoSchedule))
                .any(|tol| tol.tolerates(t))
        })
        .count() as i64
}

/// Whether the pod's `nodeSelector` and required node affinity accept the node.
pub fn node_affinity_matches(pod: &PodInfo, node: &NodeSpec) -> bool {
    pod.node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
        && pod
            .required_node_affinity
            .as_ref()
            .is_none_or(|t| t.matches(&node.labels, &node.name))
}

/// NodeAffinity filter.
pub fn node_affinity(pod: &PodInfo, node: &NodeSpec) -> Result<(), Status> {
    if node_affinity_matches(pod, node) {
        return Ok(());
    }
    Err(Status::unresolvable(
        Plugin::NodeAffinity,
        ERR_NODE_AFFINITY,
    ))
}

/// NodeAffinity PreFilter: when every required term pins `metadata.name In (...)`, only
/// those nodes are candidates (`Ok(Some)`); `Err` when the terms contradict each other.
pub fn pinned_nodes(pod: &PodInfo) -> Result<Option<HashSet<String>>, Status> {
    let Some(terms) = &pod.required_node_affinity else {
        return Ok(None);
    };
    if terms.0.is_empty() {
        return Ok(None);
    }
    let mut names: HashSet<String> = HashSet::new();
    for t in &terms.0 {
        match t.pinned_names() {
            None => return Ok(None),
            Some(n) => names.extend(n),
        }
    }
    if names.is_empty() {
        return Err(Status::unresolvable(
            Plugin::NodeAffinity,
            ERR_AFFINITY_CONFLICT,
        ));
    }
    Ok(Some(names))
}

/// NodeAffinity score: the sum of the weights of matching preferred terms.
pub fn node_affinity_score(pod: &PodInfo, node: &NodeSpec) -> i64 {
    pod.preferred_node_affinity
        .iter()
        .filter(|(_, t)| t.matches(&node.labels, &node.name))
        .map(|(w, _)| *w as i64)
        .sum()
}

/// NodePorts: every requested host port must be free on the node (ports of pods nominated
/// there with at least this priority count as used).
pub fn node_ports(pod: &PodInfo, used: &[HostPort], nominated: &[HostPort]) -> Result<(), Status> {
    let clash = pod
        .host_ports
        .iter()
        .any(|p| used.iter().chain(nominated).any(|u| u.conflicts(p)));
    if clash {
        return Err(Status::unschedulable(Plugin::NodePorts, ERR_NODE_PORTS));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> PodInfo {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = json!([{"name": "c"}]);
        }
        let p: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p", "namespace": "d"}, "spec": spec}),
        )
        .expect("pod");
        PodInfo::from_pod(&p)
    }

    fn node(labels: serde_json::Value, spec: serde_json::Value) -> NodeSpec {
        let n: Node = serde_json::from_value(
            json!({"metadata": {"name": "n1", "labels": labels}, "spec": spec,
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        )
        .expect("node");
        NodeSpec::from_node(&n)
    }

    #[test]
    fn unschedulable_table() {
        let cordoned = node(json!({}), json!({"unschedulable": true}));
        let cases = [
            (pod(json!({})), &cordoned, false),
            (
                pod(
                    json!({"tolerations": [{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}]}),
                ),
                &cordoned,
                true,
            ),
            (pod(json!({})), &node(json!({}), json!({})), true),
        ];
        for (p, n, ok) in cases {
            let r = node_unschedulable(&p, n);
            assert_eq!(r.is_ok(), ok);
            if let Err(s) = r {
                assert_eq!(
                    (s.code, s.message()),
                    (
                        Code::UnschedulableAndUnresolvable,
                        ERR_UNSCHEDULABLE.to_string()
                    )
                );
            }
        }
    }

    #[test]
    fn node_name_table() {
        let n = node(json!({}), json!({}));
        assert!(node_name(&pod(json!({})), &n).is_ok());
        assert!(node_name(&pod(json!({"nodeName": "n1"})), &n).is_ok());
        assert_eq!(
            node_name(&pod(json!({"nodeName": "other"})), &n).map_err(|s| s.message()),
            Err(ERR_NODE_NAME.into())
        );
    }

    #[test]
    fn taint_table() {
        let n = node(
            json!({}),
            json!({"taints": [
                {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                {"key": "soft", "value": "x", "effect": "PreferNoSchedule"},
            ]}),
        );
        let cases = [
            (
                json!({}),
                Err("node(s) had untolerated taint {dedicated: gpu}".to_string()),
                1,
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}),
                Ok(()),
                1,
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
                Ok(()),
                1,
            ),
            (json!({"tolerations": [{"operator": "Exists"}]}), Ok(()), 0),
            (
                json!({"tolerations": [{"key": "dedicated", "operator": "Exists"}, {"key": "soft", "operator": "Exists", "effect": "PreferNoSchedule"}]}),
                Ok(()),
                0,
            ),
            (
                json!({"tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]}),
                Err("node(s) had untolerated taint {dedicated: gpu}".to_string()),
                1,
            ),
        ];
        for (spec, want, score) in cases {
            let p = pod(spec.clone());
            assert_eq!(
                taint_toleration(&p, &n).map_err(|s| s.message()),
                want,
                "{spec}"
            );
            assert_eq!(taint_score(&p, &n), score, "{spec}");
        }
        // NotReady nodes carry the synthetic not-ready taint.
        let nr: Node = serde_json::from_value(json!({"metadata": {"name": "x"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}})).expect("node");
        let nr = NodeSpec::from_node(&nr);
        assert_eq!(
            taint_toleration(&pod(json!({})), &nr).map_err(|s| s.message()),
            Err("node(s) had untolerated taint {node.kubernetes.io/not-ready: }".to_string())
        );
    }

    #[test]
    fn node_affinity_table() {
        let n = node(json!({"disk": "ssd", "zone": "a"}), json!({}));
        let req = |terms: serde_json::Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}});
        let cases = [
            (json!({}), true),
            (json!({"nodeSelector": {"disk": "ssd"}}), true),
            (json!({"nodeSelector": {"disk": "hdd"}}), false),
            (
                req(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]),
                ),
                true,
            ),
            (
                req(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]),
                ),
                false,
            ),
            (
                req(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "Bogus", "values": ["a"]}]}]),
                ),
                false,
            ),
            (
                req(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
                ),
                true,
            ),
        ];
        for (spec, ok) in cases {
            let r = node_affinity(&pod(spec.clone()), &n);
            assert_eq!(r.is_ok(), ok, "{spec}");
            if let Err(s) = r {
                assert_eq!(s.message(), ERR_NODE_AFFINITY);
            }
        }
        let pinned = pod(req(
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
                                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]),
        ));
        let names = pinned_nodes(&pinned).ok().flatten().unwrap_or_default();
        assert!(names.contains("n1") && names.contains("n2"));
        let mixed = pod(req(
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
                                   {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]),
        ));
        assert_eq!(pinned_nodes(&mixed), Ok(None));
    }

    #[test]
    fn node_affinity_score_table() {
        let n = node(json!({"disk": "ssd", "zone": "a"}), json!({}));
        let p = pod(
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
                {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}},
                {"weight": 3, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}},
            ]}}}),
        );
        assert_eq!(node_affinity_score(&p, &n), 13);
    }

    #[test]
    fn node_ports_table() {
        let p = pod(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
        );
        let used = |ip: &str, proto: &str, port: i32| HostPort {
            ip: ip.into(),
            protocol: proto.into(),
            port,
        };
        let cases = [
            (vec![], vec![], true),
            (vec![used("0.0.0.0", "TCP", 8080)], vec![], false),
            (vec![used("10.0.0.1", "TCP", 8080)], vec![], false),
            (vec![used("0.0.0.0", "UDP", 8080)], vec![], true),
            (vec![used("0.0.0.0", "TCP", 8081)], vec![], true),
            (vec![], vec![used("0.0.0.0", "TCP", 8080)], false),
        ];
        for (u, nom, ok) in cases {
            let r = node_ports(&p, &u, &nom);
            assert_eq!(r.is_ok(), ok, "{u:?} {nom:?}");
            if let Err(s) = r {
                assert_eq!(
                    (s.code, s.message()),
                    (Code::Unschedulable, ERR_NODE_PORTS.to_string())
                );
            }
        }
    }
}

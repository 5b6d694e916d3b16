//! Which nodes a DaemonSet's pods belong on (upstream `NodeShouldRunDaemonPod` and
//! `daemon/util`): node name, `nodeSelector` and required node affinity, taints against the
//! template's tolerations plus the tolerations every daemon pod gets, and the per-node
//! required affinity (`metadata.name In [node]`) that pins a daemon pod to its node.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Taint, Toleration,
};
use std::collections::BTreeMap;

/// The field key daemon pods' affinity pins on.
pub const OBJECT_NAME_FIELD: &str = "metadata.name";

/// `(should_run, should_continue_running)` for a DaemonSet on a node: whether a new daemon
/// pod belongs there, and whether an existing one may stay (only NoExecute taints evict).
pub fn node_should_run(node: &Node, ds: &DaemonSet) -> (bool, bool) {
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    let mut spec = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .unwrap_or_default();
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty())
        && n != node_name
    {
        return (false, false);
    }
    spec.node_name = Some(node_name.to_string());
    add_daemon_tolerations(&mut spec);
    if !fits_node_affinity(&spec, node) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    let schedule_blocked = untolerated(taints, tolerations, |e| {
        e == "NoExecute" || e == "NoSchedule"
    });
    if schedule_blocked {
        let evicted = untolerated(taints, tolerations, |e| e == "NoExecute");
        return (false, !evicted);
    }
    (true, true)
}

/// Whether any taint passing `effect_filter` is tolerated by none of `tolerations`.
pub fn untolerated(
    taints: &[Taint],
    tolerations: &[Toleration],
    effect_filter: impl Fn(&str) -> bool,
) -> bool {
    taints
        .iter()
        .filter(|t| effect_filter(&t.effect))
        .any(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// Upstream `Toleration.ToleratesTaint`.
pub fn tolerates(tol: &Toleration, taint: &Taint) -> bool {
    if let Some(e) = tol.effect.as_deref().filter(|e| !e.is_empty())
        && e != taint.effect
    {
        return false;
    }
    if let Some(k) = tol.key.as_deref().filter(|k| !k.is_empty())
        && k != taint.key
    {
        return false;
    }
    match tol.operator.as_deref().unwrap_or("") {
        "" | "Equal" => tol.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// `nodeSelector` and required node affinity both match the node.
pub fn fits_node_affinity(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if let Some(sel) = &spec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(ns) => node_selector_matches(ns, node),
    }
}

/// A NodeSelector matches if any of its non-empty terms matches (an empty term matches
/// nothing, as upstream).
pub fn node_selector_matches(sel: &NodeSelector, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or("");
    sel.node_selector_terms
        .iter()
        .any(|term| term_matches(term, labels, name))
}

fn term_matches(
    term: &NodeSelectorTerm,
    labels: &BTreeMap<String, String>,
    node_name: &str,
) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == OBJECT_NAME_FIELD
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_matches(r, Some(node_name))
        })
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let num = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (value.and_then(num), values.first().and_then(|b| num(b)))
            else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Add or replace a toleration (matched on key, operator, value and effect).
fn add_or_update_toleration(spec: &mut PodSpec, tol: Toleration) {
    let tols = spec.tolerations.get_or_insert_default();
    let same = |t: &Toleration| {
        t.key == tol.key
            && t.operator == tol.operator
            && t.value == tol.value
            && t.effect == tol.effect
    };
    match tols.iter_mut().find(|t| same(t)) {
        Some(t) => *t = tol,
        None => tols.push(tol),
    }
}

/// The tolerations every daemon pod gets, so node problems neither evict it nor keep it off
/// a node (upstream `AddOrUpdateDaemonPodTolerations`).
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let exists = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    add_or_update_toleration(spec, exists("node.kubernetes.io/not-ready", "NoExecute"));
    add_or_update_toleration(spec, exists("node.kubernetes.io/unreachable", "NoExecute"));
    add_or_update_toleration(
        spec,
        exists("node.kubernetes.io/disk-pressure", "NoSchedule"),
    );
    add_or_update_toleration(
        spec,
        exists("node.kubernetes.io/memory-pressure", "NoSchedule"),
    );
    add_or_update_toleration(
        spec,
        exists("node.kubernetes.io/pid-pressure", "NoSchedule"),
    );
    add_or_update_toleration(
        spec,
        exists("node.kubernetes.io/unschedulable", "NoSchedule"),
    );
    if spec.host_network == Some(true) {
        add_or_update_toleration(
            spec,
            exists("node.kubernetes.io/network-unavailable", "NoSchedule"),
        );
    }
}

/// Replace the required node affinity with `metadata.name In [node]`, so the scheduler can
/// only place the pod on its node (upstream `ReplaceDaemonSetPodNodeNameNodeAffinity`).
pub fn pin_to_node(spec: &mut PodSpec, node: &str) {
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: OBJECT_NAME_FIELD.into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
        match_expressions: None,
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    match na
        .required_during_scheduling_ignored_during_execution
        .as_mut()
    {
        Some(req) => req.node_selector_terms = vec![term],
        None => {
            na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
                node_selector_terms: vec![term],
            })
        }
    }
}

/// The node a daemon pod is for: `spec.nodeName`, or for an unscheduled pod the single
/// `metadata.name In [node]` of its required affinity.
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == OBJECT_NAME_FIELD && r.operator == "In")
        .and_then(|r| match r.values.as_deref() {
            Some([one]) => Some(one.clone()),
            _ => None,
        })
}

#[cfg(test)]
#[path = "predicates_tests.rs"]
mod tests;

//! The scheduler's cluster cache: nodes with their aggregated pods (requests, ports,
//! affinity counts), pods bound or assumed (bound by us, confirmation pending), nominated
//! pods, namespaces' labels, priority classes, PodDisruptionBudgets, and the claims,
//! volumes and storage classes the volume plugins read.
//!
//! Owned by the scheduling loop; watch events are applied between cycles, so a cycle sees
//! a consistent snapshot without copying.

use crate::model::{HostPort, NodeSpec, PodInfo, Resources};
use crate::selector::{LabelSelector, Labels};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One node with everything placed on it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// Index in `Cache::nodes` (stable for the cache's life).
    pub id: usize,
    pub name: String,
    /// `None` for a node we know only from pods bound to it (not schedulable).
    pub spec: Option<NodeSpec>,
    pub pods: Vec<Arc<PodInfo>>,
    pub requested: Resources,
    pub non_zero_cpu: i64,
    pub non_zero_mem: i64,
    pub used_ports: Vec<HostPort>,
    pub pods_with_affinity: usize,
    pub pods_with_required_anti: usize,
}

impl NodeInfo {
    pub fn new(id: usize, name: &str) -> Self {
        NodeInfo {
            id,
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn labels(&self) -> &Labels {
        static EMPTY: std::sync::OnceLock<Labels> = std::sync::OnceLock::new();
        self.spec
            .as_ref()
            .map(|s| &s.labels)
            .unwrap_or_else(|| EMPTY.get_or_init(Labels::new))
    }

    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        self.account(&p, 1);
        self.pods.push(p);
    }

    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let p = self.pods.swap_remove(i);
        self.account(&p, -1);
        Some(p)
    }

    fn account(&mut self, p: &PodInfo, sign: i64) {
        self.requested.add(&p.requests, sign);
        self.non_zero_cpu += sign * p.non_zero_cpu;
        self.non_zero_mem += sign * p.non_zero_mem;
        if sign > 0 {
            self.used_ports.extend(p.host_ports.iter().cloned());
        } else {
            for hp in &p.host_ports {
                if let Some(i) = self.used_ports.iter().position(|u| u == hp) {
                    self.used_ports.swap_remove(i);
                }
            }
        }
        if p.has_affinity() {
            self.pods_with_affinity = (self.pods_with_affinity as i64 + sign) as usize;
        }
        if !p.affinity.required_anti.is_empty() {
            self.pods_with_required_anti = (self.pods_with_required_anti as i64 + sign) as usize;
        }
    }
}

/// Where a cached pod is.
#[derive(Debug, Clone)]
pub struct CachedPod {
    pub info: Arc<PodInfo>,
    pub node: usize,
    /// Bound by us, not yet confirmed by the watch.
    pub assumed: bool,
}

/// A PriorityClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorityClass {
    pub value: i32,
    pub global_default: bool,
    pub preempt_never: bool,
}

/// A PodDisruptionBudget as preemption needs it.
#[derive(Debug, Clone)]
pub struct Pdb {
    pub namespace: String,
    pub selector: LabelSelector,
    pub disruptions_allowed: i32,
    pub disrupted_pods: HashSet<String>,
}

#[derive(Debug, Default)]
pub struct Cache {
    pub nodes: Vec<NodeInfo>,
    node_ids: HashMap<String, usize>,
    /// Ids of real nodes in scheduling order (zones interleaved).
    order: Vec<usize>,
    order_dirty: bool,
    pub pods: HashMap<String, CachedPod>,
    pub namespaces: HashMap<String, Labels>,
    pub priority_classes: HashMap<String, PriorityClass>,
    pub pdbs: HashMap<String, Pdb>,
    /// PersistentVolumeClaims, PersistentVolumes and StorageClasses.
    pub volumes: crate::plugins::volume::Volumes,
    /// Pending pods nominated to a node (by name): uid → pod.
    pub nominated: HashMap<String, HashMap<String, Arc<PodInfo>>>,
    nominated_by_uid: HashMap<String, String>,
    /// Topology spread indexes.
    pub(crate) topology: crate::topology::Topology,
    /// Cached pods with any pod (anti-)affinity / with required anti-affinity, cluster-wide
    /// (lets InterPodAffinity skip its node scans when there are none).
    pub pods_with_affinity: usize,
    pub pods_with_required_anti: usize,
}

fn zone_of(spec: &NodeSpec) -> String {
    let l = &spec.labels;
    let region = l
        .get("topology.kubernetes.io/region")
        .or_else(|| l.get("failure-domain.beta.kubernetes.io/region"));
    let zone = l
        .get("topology.kubernetes.io/zone")
        .or_else(|| l.get("failure-domain.beta.kubernetes.io/zone"));
    format!(
        "{}:\u{0}:{}",
        region.map(String::as_str).unwrap_or(""),
        zone.map(String::as_str).unwrap_or("")
    )
}

impl Cache {
    pub fn node_id(&self, name: &str) -> Option<usize> {
        self.node_ids.get(name).copied()
    }

    fn ensure_node(&mut self, name: &str) -> usize {
        if let Some(&i) = self.node_ids.get(name) {
            return i;
        }
        let i = self.nodes.len();
        self.nodes.push(NodeInfo::new(i, name));
        self.node_ids.insert(name.to_string(), i);
        i
    }

    /// Real (schedulable-candidate) nodes in scheduling order.
    pub fn node_order(&mut self) -> &[usize] {
        if self.order_dirty {
            self.rebuild_order();
        }
        &self.order
    }

    /// The current order without rebuilding (callers that already called `node_order`).
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    pub fn num_nodes(&self) -> usize {
        self.nodes.iter().filter(|n| n.spec.is_some()).count()
    }

    /// Upstream's node tree: round-robin over zones so a sampled prefix spans zones.
    fn rebuild_order(&mut self) {
        let mut zones: Vec<(String, Vec<usize>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(spec) = &n.spec else { continue };
            let z = zone_of(spec);
            let zi = *index.entry(z.clone()).or_insert_with(|| {
                zones.push((z, Vec::new()));
                zones.len() - 1
            });
            zones[zi].1.push(i);
        }
        let mut order = Vec::with_capacity(self.nodes.len());
        let longest = zones.iter().map(|z| z.1.len()).max().unwrap_or(0);
        for k in 0..longest {
            for (_, ids) in &zones {
                if let Some(&i) = ids.get(k) {
                    order.push(i);
                }
            }
        }
        self.order = order;
        self.order_dirty = false;
    }

    /// Add or update a node; returns whether scheduling-relevant fields changed.
    pub fn upsert_node(&mut self, spec: NodeSpec) -> bool {
        let i = self.ensure_node(&spec.name.clone());
        let n = &mut self.nodes[i];
        if n.spec.as_ref() == Some(&spec) {
            return false;
        }
        if n.spec
            .as_ref()
            .is_none_or(|old| zone_of(old) != zone_of(&spec))
        {
            self.order_dirty = true;
        }
        let relabelled = n.spec.as_ref().is_none_or(|old| old.labels != spec.labels);
        n.spec = Some(spec);
        if relabelled {
            self.topology_invalidate();
        }
        true
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(&i) = self.node_ids.get(name) {
            // Keep the slot (pods may still point at it) but make it a ghost.
            self.nodes[i].spec = None;
            self.order_dirty = true;
            self.topology_invalidate();
        }
    }

    /// Node names no longer present after a relist.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.spec.is_some())
            .map(|n| n.name.clone())
            .collect()
    }

    /// Record a bound pod from the watch. Returns the previous state, if any.
    pub fn upsert_bound_pod(&mut self, info: Arc<PodInfo>) -> Option<CachedPod> {
        let node = self.ensure_node(&info.node_name.clone());
        let prev = self.pods.remove(&info.uid);
        if let Some(p) = &prev {
            self.detach(p.node, &info.uid);
        }
        self.attach(node, info.clone());
        self.pods.insert(
            info.uid.clone(),
            CachedPod {
                info,
                node,
                assumed: false,
            },
        );
        prev
    }

    /// Count `info` on `node` before the binding is confirmed.
    pub fn assume(&mut self, info: Arc<PodInfo>, node: usize) {
        if let Some(p) = self.pods.remove(&info.uid) {
            self.detach(p.node, &info.uid);
        }
        self.attach(node, info.clone());
        self.pods.insert(
            info.uid.clone(),
            CachedPod {
                info,
                node,
                assumed: true,
            },
        );
    }

    /// Undo `assume` (binding failed).
    pub fn forget(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        match self.pods.get(uid) {
            Some(p) if p.assumed => {}
            _ => return None,
        }
        let p = self.pods.remove(uid)?;
        self.detach(p.node, uid);
        Some(p.info)
    }

    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|p| p.assumed)
    }

    /// Drop a pod (deleted, finished, or relisted away).
    pub fn remove_pod(&mut self, uid: &str) -> Option<CachedPod> {
        let p = self.pods.remove(uid)?;
        self.detach(p.node, uid);
        Some(p)
    }

    fn attach(&mut self, node: usize, info: Arc<PodInfo>) {
        self.topology_account(&info, node, 1);
        self.count_affinity(&info, 1);
        self.nodes[node].add_pod(info);
    }

    fn detach(&mut self, node: usize, uid: &str) {
        if let Some(p) = self.nodes[node].remove_pod(uid) {
            self.topology_account(&p, node, -1);
            self.count_affinity(&p, -1);
        }
    }

    fn count_affinity(&mut self, p: &PodInfo, sign: isize) {
        if p.has_affinity() {
            self.pods_with_affinity = self.pods_with_affinity.saturating_add_signed(sign);
        }
        if !p.affinity.required_anti.is_empty() {
            self.pods_with_required_anti = self.pods_with_required_anti.saturating_add_signed(sign);
        }
    }

    /// Effective priority: `spec.priority`, else the class's value, else the global default.
    pub fn priority(&self, p: &PodInfo) -> i32 {
        if let Some(v) = p.priority {
            return v;
        }
        if !p.priority_class.is_empty() {
            return self
                .priority_classes
                .get(&p.priority_class)
                .map(|c| c.value)
                .unwrap_or(0);
        }
        self.priority_classes
            .values()
            .filter(|c| c.global_default)
            .map(|c| c.value)
            .max()
            .unwrap_or(0)
    }

    /// Whether the pod may preempt (its policy, or its class's when unset on the pod).
    pub fn preempt_never(&self, p: &PodInfo) -> bool {
        p.preempt_never
            || (p.priority.is_none()
                && self
                    .priority_classes
                    .get(&p.priority_class)
                    .is_some_and(|c| c.preempt_never))
    }

    pub fn ns_labels(&self, ns: &str) -> Option<&Labels> {
        self.namespaces.get(ns)
    }

    /// Record (or clear, with an empty node) a pending pod's nomination.
    pub fn set_nominated(&mut self, info: &Arc<PodInfo>, node: &str) {
        self.clear_nominated(&info.uid);
        if node.is_empty() {
            return;
        }
        self.nominated
            .entry(node.to_string())
            .or_default()
            .insert(info.uid.clone(), info.clone());
        self.nominated_by_uid
            .insert(info.uid.clone(), node.to_string());
    }

    pub fn clear_nominated(&mut self, uid: &str) {
        if let Some(node) = self.nominated_by_uid.remove(uid)
            && let Some(m) = self.nominated.get_mut(&node)
        {
            m.remove(uid);
            if m.is_empty() {
                self.nominated.remove(&node);
            }
        }
    }

    /// Pods nominated to `node` with priority ≥ `priority`, other than `except`.
    pub fn nominated_on<'a>(
        &'a self,
        node: &str,
        priority: i32,
        except: &'a str,
    ) -> impl Iterator<Item = &'a Arc<PodInfo>> + 'a {
        self.nominated
            .get(node)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(move |p| p.uid != except && self.priority(p) >= priority)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    pub fn node(name: &str, zone: &str) -> NodeSpec {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
            "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": "10"}, "conditions": [{"type": "Ready", "status": "True"}]}}))
        .expect("node");
        NodeSpec::from_node(&n)
    }

    fn pod(uid: &str, node: &str, cpu: &str) -> Arc<PodInfo> {
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": uid, "namespace": "d", "uid": uid},
            "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}},
                     "ports": [{"containerPort": 80, "hostPort": 80}]}]}}))
        .expect("pod");
        Arc::new(PodInfo::from_pod(&p))
    }

    #[test]
    fn order_interleaves_zones() {
        let mut c = Cache::default();
        for (n, z) in [
            ("a1", "a"),
            ("a2", "a"),
            ("a3", "a"),
            ("b1", "b"),
            ("c1", "c"),
        ] {
            assert!(c.upsert_node(node(n, z)));
        }
        assert!(
            !c.upsert_node(node("a1", "a")),
            "unchanged node is not an update"
        );
        let names: Vec<&str> = c
            .node_order()
            .to_vec()
            .iter()
            .map(|&i| c.nodes[i].name.as_str())
            .collect();
        assert_eq!(names, ["a1", "b1", "c1", "a2", "a3"]);
        c.remove_node("b1");
        assert_eq!(c.node_order().len(), 4);
    }

    #[test]
    fn assume_confirm_forget_and_aggregates() {
        let mut c = Cache::default();
        c.upsert_node(node("n", "a"));
        let n = c.node_id("n").expect("id");
        c.assume(pod("p1", "n", "500m"), n);
        assert!(c.is_assumed("p1"));
        assert_eq!(
            (c.nodes[n].requested.milli_cpu, c.nodes[n].used_ports.len()),
            (500, 1)
        );
        // Confirmation replaces without double counting.
        c.upsert_bound_pod(pod("p1", "n", "500m"));
        assert!(!c.is_assumed("p1"));
        assert_eq!(c.nodes[n].requested.milli_cpu, 500);
        assert!(c.forget("p1").is_none(), "confirmed pods are not forgotten");
        c.assume(pod("p2", "n", "1"), n);
        assert_eq!(c.nodes[n].requested.milli_cpu, 1500);
        c.forget("p2");
        assert_eq!(
            (c.nodes[n].requested.milli_cpu, c.nodes[n].pods.len()),
            (500, 1)
        );
        c.remove_pod("p1");
        assert_eq!(
            (c.nodes[n].requested.milli_cpu, c.nodes[n].used_ports.len()),
            (0, 0)
        );
        // A pod on an unknown node creates a ghost that is not schedulable.
        c.upsert_bound_pod(pod("p3", "ghost", "1"));
        assert_eq!(c.node_order().len(), 1);
    }

    #[test]
    fn priorities_and_nominations() {
        let mut c = Cache::default();
        c.priority_classes.insert(
            "high".into(),
            PriorityClass {
                value: 1000,
                global_default: false,
                preempt_never: false,
            },
        );
        let mut p = (*pod("p", "", "1")).clone();
        assert_eq!(c.priority(&p), 0);
        p.priority_class = "high".into();
        assert_eq!(c.priority(&p), 1000);
        c.priority_classes.insert(
            "def".into(),
            PriorityClass {
                value: 7,
                global_default: true,
                preempt_never: false,
            },
        );
        p.priority_class.clear();
        assert_eq!(c.priority(&p), 7);
        let p = Arc::new(p);
        c.set_nominated(&p, "n1");
        assert_eq!(c.nominated_on("n1", 0, "x").count(), 1);
        assert_eq!(c.nominated_on("n1", 100, "x").count(), 0);
        assert_eq!(c.nominated_on("n1", 0, "p").count(), 0);
        c.set_nominated(&p, "");
        assert!(c.nominated.is_empty());
    }
}

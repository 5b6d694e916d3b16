//! The volume plugins for PersistentVolumeClaims: VolumeBinding (bound claims only) and
//! VolumeZone, plus the compact PVC / PV / StorageClass models their caches hold.
//!
//! r8s has no dynamic provisioning and no PV binder, so VolumeBinding only checks claims:
//! a missing, lost or deleting claim, or an unbound claim whose class binds immediately,
//! rejects the pod up front; a bound claim restricts it to nodes matching its volume's
//! required node affinity. Unbound `WaitForFirstConsumer` claims are let through (upstream
//! would look for a matching PV or provision one on the chosen node). Unlike upstream, a
//! claim counts as bound once `spec.volumeName` is set, without waiting for the PV
//! controller's `pv.kubernetes.io/bind-completed` annotation, since nothing here sets it.

use crate::framework::{Plugin, Status};
use crate::model::{NodeSpec, PodInfo};
use crate::selector::{Labels, NodeSelectorTerms};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use std::collections::HashMap;

pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
pub const ERR_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const ERR_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
pub const ERR_ZONE_CONFLICT: &str = "node(s) had no available volume zone";

const ZONE: &str = "topology.kubernetes.io/zone";
const REGION: &str = "topology.kubernetes.io/region";
const BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";
const BETA_REGION: &str = "failure-domain.beta.kubernetes.io/region";
/// Upstream's order of the labels VolumeZone looks at.
const TOPOLOGY_LABELS: [&str; 4] = [BETA_ZONE, BETA_REGION, ZONE, REGION];
/// The legacy annotation that overrides `spec.storageClassName`.
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// A PersistentVolumeClaim as the volume plugins need it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pvc {
    pub namespace: String,
    pub name: String,
    /// `spec.volumeName` (empty: unbound).
    pub volume_name: String,
    /// The claim's class (beta annotation first, then `spec.storageClassName`).
    pub class: String,
    /// `status.phase: Lost`.
    pub lost: bool,
    pub deleting: bool,
    /// UID of the controlling owner (ephemeral claims must be controlled by their pod).
    pub controller_uid: Option<String>,
}

impl Pvc {
    pub fn from_api(c: &PersistentVolumeClaim) -> Self {
        let meta = &c.metadata;
        let spec = c.spec.as_ref();
        let class = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(BETA_CLASS_ANNOTATION))
            .cloned()
            .or_else(|| spec.and_then(|s| s.storage_class_name.clone()))
            .unwrap_or_default();
        Pvc {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            volume_name: spec.and_then(|s| s.volume_name.clone()).unwrap_or_default(),
            class,
            lost: c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Lost"),
            deleting: meta.deletion_timestamp.is_some(),
            controller_uid: meta
                .owner_references
                .iter()
                .flatten()
                .find(|o| o.controller == Some(true))
                .map(|o| o.uid.clone()),
        }
    }

    /// Cache key: `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A PersistentVolume as the volume plugins need it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pv {
    /// `spec.nodeAffinity.required`.
    pub node_affinity: Option<NodeSelectorTerms>,
    /// Zone/region labels: (label key, allowed values; `a__b` lists several zones).
    pub topology: Vec<(&'static str, Vec<String>)>,
}

/// Upstream `LabelZonesToSet`: `__`-separated values; a blank entry makes the label unusable.
fn label_zones(v: &str) -> Option<Vec<String>> {
    v.split("__")
        .map(|z| {
            let z = z.trim();
            (!z.is_empty()).then(|| z.to_string())
        })
        .collect()
}

impl Pv {
    pub fn from_api(pv: &PersistentVolume) -> Self {
        let labels = pv.metadata.labels.as_ref();
        Pv {
            node_affinity: pv
                .spec
                .as_ref()
                .and_then(|s| s.node_affinity.as_ref())
                .and_then(|a| a.required.as_ref())
                .map(NodeSelectorTerms::parse),
            topology: TOPOLOGY_LABELS
                .iter()
                .filter_map(|&k| {
                    let v = labels?.get(k)?;
                    // Upstream logs and ignores labels it cannot parse.
                    label_zones(v).map(|zones| (k, zones))
                })
                .collect(),
        }
    }
}

/// Whether a StorageClass delays binding until a pod uses the claim.
pub fn waits_for_first_consumer(c: &StorageClass) -> bool {
    // The API server defaults an unset mode to Immediate.
    c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
}

/// The volume caches: claims by `namespace/name`, volumes by name, and each class's
/// binding mode (`true`: WaitForFirstConsumer).
#[derive(Debug, Default)]
pub struct Volumes {
    pub pvcs: HashMap<String, Pvc>,
    pub pvs: HashMap<String, Pv>,
    pub classes: HashMap<String, bool>,
}

/// PreFilter results: the volumes of the pod's bound claims.
#[derive(Debug)]
pub struct FilterState<'a> {
    /// (volume name, volume if cached) per bound claim.
    bound: Vec<(&'a str, Option<&'a Pv>)>,
    /// Zone/region constraints of those volumes.
    zones: Vec<(&'static str, &'a [String])>,
}

/// VolumeBinding's then VolumeZone's PreFilter. `Ok(None)`: the pod uses no claims.
pub fn prefilter<'a>(pod: &PodInfo, vols: &'a Volumes) -> Result<Option<FilterState<'a>>, Status> {
    if pod.claims.is_empty() {
        return Ok(None);
    }
    let binding = |msg: String| Status::unresolvable(Plugin::VolumeBinding, msg);
    let mut claims = Vec::with_capacity(pod.claims.len());
    for c in &pod.claims {
        let Some(pvc) = vols.pvcs.get(&format!("{}/{}", pod.namespace, c.name)) else {
            return Err(binding(if c.ephemeral {
                format!(
                    "waiting for ephemeral volume controller to create the persistentvolumeclaim \"{}\"",
                    c.name
                )
            } else {
                format!("persistentvolumeclaim \"{}\" not found", c.name)
            }));
        };
        if pvc.lost {
            return Err(binding(format!(
                "persistentvolumeclaim \"{}\" bound to non-existent persistentvolume \"{}\"",
                pvc.name, pvc.volume_name
            )));
        }
        if pvc.deleting {
            return Err(binding(format!(
                "persistentvolumeclaim \"{}\" is being deleted",
                pvc.name
            )));
        }
        if c.ephemeral && pvc.controller_uid.as_deref() != Some(pod.uid.as_str()) {
            return Err(binding(format!(
                "PVC {}/{} was not created for pod {}/{} (pod is not owner)",
                pvc.namespace, pvc.name, pod.namespace, pod.name
            )));
        }
        claims.push((pvc, c.ephemeral));
    }
    // Upstream refuses a pod whose Immediate-mode claim is still unbound, waiting for the
    // PV controller. r8s has no PV binder or provisioner yet, so such a claim would never
    // bind and e.g. every StatefulSet with volumeClaimTemplates would stay Pending: unbound
    // claims of any mode pass without a constraint (like WaitForFirstConsumer), and the
    // kubelet provides their storage. ERR_UNBOUND_IMMEDIATE stays for when a binder exists.
    let _ = &vols.classes;
    let mut state = FilterState {
        bound: Vec::new(),
        zones: Vec::new(),
    };
    for (c, ephemeral) in claims {
        if c.volume_name.is_empty() {
            // WaitForFirstConsumer: no volume yet, so no constraint.
            continue;
        }
        let pv = vols.pvs.get(&c.volume_name);
        state.bound.push((c.volume_name.as_str(), pv));
        if ephemeral {
            // Like upstream, VolumeZone only looks at `persistentVolumeClaim` volumes.
            continue;
        }
        // VolumeZone's PreFilter reads the volume directly and rejects a missing one.
        let Some(pv) = pv else {
            return Err(Status::unresolvable(
                Plugin::VolumeZone,
                format!("persistentvolume \"{}\" not found", c.volume_name),
            ));
        };
        state
            .zones
            .extend(pv.topology.iter().map(|(k, v)| (*k, v.as_slice())));
    }
    Ok(Some(state))
}

/// VolumeBinding filter: every bound claim's volume exists and its required node affinity
/// accepts the node.
pub fn binding_filter(state: &FilterState, node: &NodeSpec) -> Result<(), Status> {
    for (_, pv) in &state.bound {
        let Some(pv) = pv else {
            return Err(Status::unresolvable(
                Plugin::VolumeBinding,
                ERR_PV_NOT_EXIST,
            ));
        };
        // Upstream matches the terms against the node's labels only (an unnamed node), so
        // `matchFields` on `metadata.name` never matches here either.
        if let Some(terms) = &pv.node_affinity
            && !terms.matches(&node.labels, "")
        {
            return Err(Status::unresolvable(
                Plugin::VolumeBinding,
                ERR_NODE_CONFLICT,
            ));
        }
    }
    Ok(())
}

/// The GA label for a deprecated beta one (nodes may carry only the GA label).
fn ga_label(k: &str) -> &str {
    match k {
        BETA_ZONE => ZONE,
        BETA_REGION => REGION,
        other => other,
    }
}

/// VolumeZone filter: nodes without any zone/region label accept any volume; others must
/// carry, for each constrained label of the pod's volumes, one of its values.
pub fn zone_filter(state: &FilterState, node: &NodeSpec) -> Result<(), Status> {
    if state.zones.is_empty() {
        return Ok(());
    }
    let labels: &Labels = &node.labels;
    if !TOPOLOGY_LABELS.iter().any(|k| labels.contains_key(*k)) {
        return Ok(());
    }
    for (key, values) in &state.zones {
        let v = labels.get(*key).or_else(|| labels.get(ga_label(key)));
        if !v.is_some_and(|v| values.contains(v)) {
            return Err(Status::unresolvable(Plugin::VolumeZone, ERR_ZONE_CONFLICT));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "volume_tests.rs"]
mod tests;

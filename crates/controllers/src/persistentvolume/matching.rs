//! Pure parts of the PersistentVolume controller: which volume a claim binds to, and the
//! volume the local-path provisioner makes for a claim.

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;
use r8s_api::strategy::quantity::parse_quantity;
use std::collections::BTreeMap;
use std::path::Path;

/// The provisioner name of r8s's built-in local-path StorageClass (k3s's name, so charts
/// written for k3s find it).
pub const LOCAL_PATH_PROVISIONER: &str = "rancher.io/local-path";
/// Annotation naming who provisioned a volume.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// The node the scheduler chose for a WaitForFirstConsumer claim.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Marks claims whose binding the controller finished.
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// Set on claims a provisioner is asked to serve.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";

/// The class a claim asks for ("" for none).
pub fn claim_class(pvc: &PersistentVolumeClaim) -> &str {
    pvc.spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or("")
}

/// The storage a claim requests (milli-bytes, as quantities parse).
pub fn claim_request(pvc: &PersistentVolumeClaim) -> i128 {
    pvc.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| parse_quantity(&q.0).ok())
        .unwrap_or(0)
}

fn volume_capacity(pv: &PersistentVolume) -> i128 {
    pv.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| parse_quantity(&q.0).ok())
        .unwrap_or(0)
}

fn volume_mode(mode: Option<&String>) -> &str {
    mode.map_or("Filesystem", String::as_str)
}

/// Whether `pv` may be bound to `pvc`: free (or reserved for it), same class and volume
/// mode, offering every access mode asked for and at least the requested size, and
/// matching the claim's selector labels.
pub fn fits(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let (Some(spec), Some(claim)) = (pv.spec.as_ref(), pvc.spec.as_ref()) else {
        return false;
    };
    if pv.metadata.deletion_timestamp.is_some() {
        return false;
    }
    if let Some(r) = &spec.claim_ref {
        let same = r.name.as_deref() == pvc.metadata.name.as_deref()
            && r.namespace.as_deref() == pvc.metadata.namespace.as_deref()
            && r.uid
                .as_deref()
                .is_none_or(|u| u.is_empty() || Some(u) == pvc.metadata.uid.as_deref());
        if !same {
            return false;
        }
    } else if pv.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Released") {
        return false;
    }
    if spec.storage_class_name.as_deref().unwrap_or("") != claim_class(pvc) {
        return false;
    }
    if volume_mode(spec.volume_mode.as_ref()) != volume_mode(claim.volume_mode.as_ref()) {
        return false;
    }
    let offered = spec.access_modes.clone().unwrap_or_default();
    if !claim
        .access_modes
        .iter()
        .flatten()
        .all(|m| offered.contains(m))
    {
        return false;
    }
    if volume_capacity(pv) < claim_request(pvc) {
        return false;
    }
    // No selector: any volume; otherwise matchLabels AND matchExpressions.
    claim.selector.is_none()
        || crate::util::selector::matches(claim.selector.as_ref(), pv.metadata.labels.as_ref())
}

/// The volume `pvc` binds to: one reserved for it first, else the smallest that fits
/// (upstream's `FindMatchingVolume`).
pub fn best_volume<'a>(
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    pvc: &PersistentVolumeClaim,
) -> Option<&'a PersistentVolume> {
    let mut fitting: Vec<&PersistentVolume> =
        volumes.into_iter().filter(|pv| fits(pv, pvc)).collect();
    fitting.sort_by_key(|pv| {
        let reserved = pv.spec.as_ref().is_some_and(|s| s.claim_ref.is_some());
        (!reserved, volume_capacity(pv), pv.metadata.name.clone())
    });
    fitting.into_iter().next()
}

/// A reference to `pvc` as a volume's `claimRef`.
pub fn claim_ref(pvc: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: pvc.metadata.namespace.clone(),
        name: pvc.metadata.name.clone(),
        uid: pvc.metadata.uid.clone(),
        resource_version: pvc.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// The volume the local-path provisioner makes for `pvc` on `node`: a directory under
/// `base` named after the claim, pinned to that node.
pub fn local_path_volume(
    pvc: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &str,
    base: &Path,
) -> PersistentVolume {
    let uid = pvc.metadata.uid.clone().unwrap_or_default();
    let ns = pvc.metadata.namespace.clone().unwrap_or_default();
    let claim = pvc.metadata.name.clone().unwrap_or_default();
    let name = format!("pvc-{uid}");
    let dir = base.join(format!("{name}_{ns}_{claim}"));
    let spec = pvc.spec.clone().unwrap_or_default();
    let request = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .cloned()
        .unwrap_or_else(|| Quantity("0".into()));
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name),
            annotations: Some(BTreeMap::from([(
                PROVISIONED_BY.to_string(),
                LOCAL_PATH_PROVISIONER.to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_string(), request)])),
            access_modes: spec.access_modes.clone(),
            volume_mode: Some(volume_mode(spec.volume_mode.as_ref()).to_string()),
            storage_class_name: class.metadata.name.clone(),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            claim_ref: Some(claim_ref(pvc)),
            host_path: Some(HostPathVolumeSource {
                path: dir.display().to_string(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/hostname".into(),
                            operator: "In".into(),
                            values: Some(vec![node.to_string()]),
                        }]),
                        ..Default::default()
                    }],
                }),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pvc(class: &str, size: &str, modes: &[&str]) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "ns", "uid": "u-1"},
            "spec": {"storageClassName": class, "accessModes": modes,
                     "resources": {"requests": {"storage": size}}}
        }))
        .unwrap()
    }

    fn pv(name: &str, class: &str, size: &str, modes: &[&str]) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"tier": "fast"}},
            "spec": {"storageClassName": class, "accessModes": modes,
                     "capacity": {"storage": size}, "hostPath": {"path": "/tmp/x"}}
        }))
        .unwrap()
    }

    #[test]
    fn the_smallest_fitting_volume_of_the_class_wins() {
        let claim = pvc("manual", "3Gi", &["ReadWriteOnce"]);
        let vols = [
            pv("big", "manual", "10Gi", &["ReadWriteOnce"]),
            pv("small", "manual", "1Gi", &["ReadWriteOnce"]),
            pv("just", "manual", "3Gi", &["ReadWriteOnce", "ReadOnlyMany"]),
            pv("other-class", "", "3Gi", &["ReadWriteOnce"]),
            pv("ro", "manual", "5Gi", &["ReadOnlyMany"]),
        ];
        let best = best_volume(vols.iter(), &claim).unwrap();
        assert_eq!(best.metadata.name.as_deref(), Some("just"));
        let none = pvc("manual", "20Gi", &["ReadWriteOnce"]);
        assert!(best_volume(vols.iter(), &none).is_none());
    }

    #[test]
    fn reserved_volumes_only_fit_their_claim() {
        let claim = pvc("manual", "1Gi", &["ReadWriteOnce"]);
        let mut mine = pv("mine", "manual", "5Gi", &["ReadWriteOnce"]);
        mine.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
            namespace: Some("ns".into()),
            name: Some("data".into()),
            ..Default::default()
        });
        let mut theirs = pv("theirs", "manual", "1Gi", &["ReadWriteOnce"]);
        theirs.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
            namespace: Some("ns".into()),
            name: Some("other".into()),
            ..Default::default()
        });
        let free = pv("free", "manual", "1Gi", &["ReadWriteOnce"]);
        let vols = [theirs, free, mine];
        // Reserved for it beats a smaller free one.
        assert_eq!(
            best_volume(vols.iter(), &claim)
                .unwrap()
                .metadata
                .name
                .as_deref(),
            Some("mine")
        );
    }

    #[test]
    fn selectors_filter_by_label() {
        let mut claim = pvc("manual", "1Gi", &["ReadWriteOnce"]);
        claim.spec.as_mut().unwrap().selector = serde_json::from_value(
            json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["slow"]}]}),
        )
        .unwrap();
        assert!(!fits(&pv("a", "manual", "1Gi", &["ReadWriteOnce"]), &claim));
    }

    #[test]
    fn local_path_volumes_are_pinned_to_the_node_and_reserved_for_the_claim() {
        let claim = pvc("local-path", "2Gi", &["ReadWriteOnce"]);
        let class: StorageClass = serde_json::from_value(json!({
            "metadata": {"name": "local-path"}, "provisioner": LOCAL_PATH_PROVISIONER,
            "reclaimPolicy": "Delete"
        }))
        .unwrap();
        let pv = local_path_volume(&claim, &class, "node-a", Path::new("/var/lib/r8s/storage"));
        assert_eq!(pv.metadata.name.as_deref(), Some("pvc-u-1"));
        let spec = pv.spec.as_ref().unwrap();
        assert_eq!(
            spec.host_path.as_ref().unwrap().path,
            "/var/lib/r8s/storage/pvc-u-1_ns_data"
        );
        assert_eq!(spec.claim_ref.as_ref().unwrap().uid.as_deref(), Some("u-1"));
        assert!(fits(&pv, &claim));
        let terms = &spec
            .node_affinity
            .as_ref()
            .unwrap()
            .required
            .as_ref()
            .unwrap()
            .node_selector_terms;
        assert_eq!(
            terms[0].match_expressions.as_ref().unwrap()[0].values,
            Some(vec!["node-a".to_string()])
        );
    }
}

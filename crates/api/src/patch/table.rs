//! The patch strategies of the built-in types: `x-kubernetes-patch-strategy` and
//! `x-kubernetes-patch-merge-key` per (OpenAPI definition, field).
//!
//! Extracted from the `patchStrategy`/`patchMergeKey` struct tags of k8s.io/api v0.33 (stable
//! versions) and k8s.io/apimachinery's ObjectMeta. Inline Go structs are flattened as the
//! OpenAPI documents flatten them (EphemeralContainerCommon → EphemeralContainer).
//! One table drives both the strategic merge and the published OpenAPI extensions, so
//! kubectl (which reads the extensions to build its patches) and the server agree.

/// One field with a patch strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchStrategy {
    /// OpenAPI definition holding the field, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    /// JSON field name, e.g. `containers`.
    pub field: &'static str,
    /// `x-kubernetes-patch-merge-key`: the key identifying items of a list of objects.
    pub merge_key: Option<&'static str>,
    /// `x-kubernetes-patch-strategy`: `merge`, `replace`, `retainKeys` or `merge,retainKeys`.
    pub strategy: &'static str,
}

const fn s(
    definition: &'static str,
    field: &'static str,
    merge_key: Option<&'static str>,
    strategy: &'static str,
) -> PatchStrategy {
    PatchStrategy { definition, field, merge_key, strategy }
}

/// Every patch strategy of the built-in types, sorted by definition then field.
pub fn patch_strategies() -> &'static [PatchStrategy] {
    PATCH_STRATEGIES
}

static PATCH_STRATEGIES: &[PatchStrategy] = &[
    s("io.k8s.api.admissionregistration.v1.MutatingWebhook", "matchConditions", Some("name"), "merge"),
    s("io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration", "webhooks", Some("name"), "merge"),
    s("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", "matchConditions", Some("name"), "merge"),
    s("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", "variables", Some("name"), "merge"),
    s("io.k8s.api.admissionregistration.v1.ValidatingWebhook", "matchConditions", Some("name"), "merge"),
    s("io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration", "webhooks", Some("name"), "merge"),
    s("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.apps.v1.DeploymentSpec", "strategy", None, "retainKeys"),
    s("io.k8s.api.apps.v1.DeploymentStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.batch.v1.JobStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.core.v1.ComponentStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.core.v1.Container", "env", Some("name"), "merge"),
    s("io.k8s.api.core.v1.Container", "ports", Some("containerPort"), "merge"),
    s("io.k8s.api.core.v1.Container", "volumeDevices", Some("devicePath"), "merge"),
    s("io.k8s.api.core.v1.Container", "volumeMounts", Some("mountPath"), "merge"),
    s("io.k8s.api.core.v1.ContainerStatus", "allocatedResourcesStatus", Some("name"), "merge"),
    s("io.k8s.api.core.v1.ContainerStatus", "volumeMounts", Some("mountPath"), "merge"),
    s("io.k8s.api.core.v1.EphemeralContainer", "env", Some("name"), "merge"),
    s("io.k8s.api.core.v1.EphemeralContainer", "ports", Some("containerPort"), "merge"),
    s("io.k8s.api.core.v1.EphemeralContainer", "volumeDevices", Some("devicePath"), "merge"),
    s("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts", Some("mountPath"), "merge"),
    s("io.k8s.api.core.v1.NamespaceStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.core.v1.NodeSpec", "podCIDRs", None, "merge"),
    s("io.k8s.api.core.v1.NodeStatus", "addresses", Some("type"), "merge"),
    s("io.k8s.api.core.v1.NodeStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.core.v1.PodSpec", "containers", Some("name"), "merge"),
    s("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", Some("name"), "merge"),
    s("io.k8s.api.core.v1.PodSpec", "hostAliases", Some("ip"), "merge"),
    s("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", Some("name"), "merge"),
    s("io.k8s.api.core.v1.PodSpec", "initContainers", Some("name"), "merge"),
    s("io.k8s.api.core.v1.PodSpec", "resourceClaims", Some("name"), "merge,retainKeys"),
    s("io.k8s.api.core.v1.PodSpec", "schedulingGates", Some("name"), "merge"),
    s("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", Some("topologyKey"), "merge"),
    s("io.k8s.api.core.v1.PodSpec", "volumes", Some("name"), "merge,retainKeys"),
    s("io.k8s.api.core.v1.PodStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.core.v1.PodStatus", "hostIPs", Some("ip"), "merge"),
    s("io.k8s.api.core.v1.PodStatus", "podIPs", Some("ip"), "merge"),
    s("io.k8s.api.core.v1.PodStatus", "resourceClaimStatuses", Some("name"), "merge,retainKeys"),
    s("io.k8s.api.core.v1.ReplicationControllerStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.core.v1.ServiceAccount", "secrets", Some("name"), "merge"),
    s("io.k8s.api.core.v1.ServiceSpec", "ports", Some("port"), "merge"),
    s("io.k8s.api.core.v1.ServiceStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.flowcontrol.v1.FlowSchemaStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.flowcontrol.v1.PriorityLevelConfigurationStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.networking.v1.ServiceCIDRStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.policy.v1.PodDisruptionBudgetSpec", "selector", None, "replace"),
    s("io.k8s.api.policy.v1.PodDisruptionBudgetStatus", "conditions", Some("type"), "merge"),
    s("io.k8s.api.storage.v1.CSINodeSpec", "drivers", Some("name"), "merge"),
    s("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", None, "merge"),
    s("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", Some("uid"), "merge"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        let t = patch_strategies();
        for w in t.windows(2) {
            assert!(
                (w[0].definition, w[0].field) < (w[1].definition, w[1].field),
                "{w:?}"
            );
        }
    }

    #[test]
    fn strategies_are_known_values() {
        for e in patch_strategies() {
            assert!(
                matches!(e.strategy, "merge" | "replace" | "retainKeys" | "merge,retainKeys"),
                "{e:?}"
            );
            // A merge key only makes sense on a merged list.
            if e.merge_key.is_some() {
                assert!(e.strategy.starts_with("merge"), "{e:?}");
            }
        }
    }

    #[test]
    fn well_known_entries() {
        let find = |d: &str, f: &str| {
            patch_strategies()
                .iter()
                .find(|e| e.definition == d && e.field == f)
                .copied()
        };
        let c = find("io.k8s.api.core.v1.PodSpec", "containers").expect("containers");
        assert_eq!((c.merge_key, c.strategy), (Some("name"), "merge"));
        let v = find("io.k8s.api.core.v1.PodSpec", "volumes").expect("volumes");
        assert_eq!(v.strategy, "merge,retainKeys");
        assert!(find("io.k8s.api.core.v1.PodSpec", "tolerations").is_none());
        assert!(find("io.k8s.api.core.v1.Container", "envFrom").is_none());
        let p = find("io.k8s.api.core.v1.ServiceSpec", "ports").expect("ports");
        assert_eq!(p.merge_key, Some("port"));
    }
}

//! Per-kind behaviour plugged into the generic registry, in upstream's hook order:
//! defaults → prepare (status split, generation) → validate.
//!
//! Objects are handled as `serde_json::Value` in their stored (JSON) form; strategies may
//! deserialize into k8s-openapi types where typing helps.

pub mod admissionregistration;
pub mod apiextensions;
pub mod apiregistration;
pub mod apps;
pub mod batch;
pub mod certificates;
pub(crate) mod compare;
pub mod core;
pub mod custom_resource;
pub mod errors;
pub mod event;
pub(crate) mod json;
pub mod misc;
pub mod pod;
pub mod quantity;
pub mod service;
pub mod storage;
#[cfg(test)]
pub(crate) mod test_support;
pub mod validation;
pub mod validation_rules;

use serde_json::Value;

pub use validation::NameRule;

/// One validation failure, reported in a 422 Status `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueDuplicate`, `FieldValueForbidden`, `FieldValueTooLong`, …
    pub reason: &'static str,
    /// JSON path like `spec.template.spec.containers[0].image`.
    pub field: String,
    /// Human message, upstream style (`Required value`, `Invalid value: "X": …`).
    pub message: String,
}

/// Per-kind hooks. Every method has a neutral default so simple kinds need no code.
pub trait Strategy: Send + Sync {
    /// Fill defaults (as upstream's SetDefaults_*), on create, update and patch results.
    fn default(&self, _obj: &mut Value) {}

    /// Create: e.g. clear status for kinds with a status subresource; generation = 1 is
    /// set by the registry for the kinds that have one ([`generation`]).
    fn prepare_for_create(&self, _obj: &mut Value) {}

    /// Update of the main resource: e.g. keep the old status.
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// Validate a new object (metadata name/namespace rules are checked by the registry).
    fn validate_create(&self, _obj: &Value) -> Vec<FieldError> {
        Vec::new()
    }

    /// Validate an update (immutable fields etc.).
    fn validate_update(&self, new: &Value, _old: &Value) -> Vec<FieldError> {
        self.validate_create(new)
    }

    /// Validate a write through a subresource other than status (e.g. a pod's
    /// `ephemeralcontainers`); `new` is the old object with only what that subresource may
    /// change replaced. Internal subresources (binding, finalize, scale) need nothing here.
    fn validate_subresource_update(
        &self,
        _subresource: &str,
        _new: &Value,
        _old: &Value,
    ) -> Vec<FieldError> {
        Vec::new()
    }

    /// Extra field-selector fields of this kind besides `metadata.name` and
    /// `metadata.namespace` (e.g. pods: `spec.nodeName`, `status.phase`). Unlike the other
    /// hooks, `obj` is the object as served at the request's version (selectors use that
    /// version's field names: events.k8s.io selects by `regarding.*`).
    fn field_selector_fields(&self, _obj: &Value) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    /// How `metadata.name` is validated for this kind (the registry passes it to
    /// [`validation::validate_object_meta`]).
    fn name_rule(&self) -> NameRule {
        NameRule::Dns1123Subdomain
    }

    /// Whether a PUT of a missing object creates it (upstream's `AllowCreateOnUpdate`):
    /// true for Services, Endpoints, Events, LimitRanges, Leases and the RBAC kinds; a PUT
    /// of any other missing object is a 404.
    fn allow_create_on_update(&self) -> bool {
        false
    }
}

/// Whether a delete that removes the object at once answers with the object (upstream's
/// `ReturnDeletedObject`, set for these kinds only); every other kind answers with a
/// `Status` of `Success` naming what was deleted.
pub fn returns_deleted_object(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        (
            "",
            "Pod"
                | "Service"
                | "ServiceAccount"
                | "PodTemplate"
                | "ResourceQuota"
                | "PersistentVolume"
                | "PersistentVolumeClaim"
                | "Namespace"
        ) | (
            "storage.k8s.io",
            "StorageClass" | "CSIDriver" | "CSINode" | "VolumeAttachment"
        )
    )
}

/// What moves a kind's `metadata.generation`. Upstream's strategies give one only to the
/// kinds whose controllers report an `observedGeneration` (set to 1 on create, raised by
/// one on a change); every other kind keeps whatever generation it was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// Not counted (ConfigMaps, Services, Pods, …).
    Untracked,
    /// Raised when anything but metadata and status changes (the spec; an EndpointSlice's
    /// endpoints and ports; a PodTemplate's template). Upstream also counts a Deployment's
    /// annotation changes; here they do not count, because the deployment controller
    /// writes its revision annotation through the main resource (this API server's
    /// status endpoint writes status only), which would count every rollout twice.
    Spec,
    /// Also raised by label changes (EndpointSlices: the proxy selects them by label).
    SpecOrLabels,
}

/// How `group`/`kind` counts its generation (see [`Generation`]).
pub fn generation(group: &str, kind: &str) -> Generation {
    match (group, kind) {
        ("discovery.k8s.io", "EndpointSlice") => Generation::SpecOrLabels,
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("", "ReplicationController" | "PodTemplate")
        | ("batch", "Job" | "CronJob")
        | ("networking.k8s.io", "Ingress" | "IngressClass" | "NetworkPolicy")
        | ("policy", "PodDisruptionBudget")
        | ("apiextensions.k8s.io", "CustomResourceDefinition")
        | (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration"
            | "ValidatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding",
        ) => Generation::Spec,
        // Custom resources count every change but metadata (and status, if a subresource).
        (group, kind) if crate::catalog::custom::defines(group, kind) => Generation::Spec,
        _ => Generation::Untracked,
    }
}

/// A kind without special behaviour: metadata validation only.
pub struct Neutral;

impl Strategy for Neutral {}

static NEUTRAL: Neutral = Neutral;

/// The strategy of `group`/`kind` (`""` is the core group); a neutral one for kinds
/// without special behaviour.
pub fn for_kind(group: &str, kind: &str) -> &'static dyn Strategy {
    match (group, kind) {
        ("", "Pod") => &pod::PodStrategy,
        ("", "PodTemplate") => &pod::PodTemplateStrategy,
        ("", "Service") => &service::ServiceStrategy,
        ("", "Namespace") => &core::NamespaceStrategy,
        ("", "ConfigMap") => &core::ConfigMapStrategy,
        ("", "Secret") => &core::SecretStrategy,
        ("", "Node") => &core::NodeStrategy,
        ("", "Event") => &event::EventStrategy,
        ("events.k8s.io", "Event") => &event::EventsV1Strategy,
        ("", "Endpoints") => &core::EndpointsStrategy,
        ("", "LimitRange") => &core::LimitRangeStrategy,
        ("", "ResourceQuota") => &core::ResourceQuotaStrategy,
        ("", "ReplicationController") => &apps::ReplicationControllerStrategy,
        ("", "PersistentVolume") => &storage::PersistentVolumeStrategy,
        ("", "PersistentVolumeClaim") => &storage::PersistentVolumeClaimStrategy,
        ("apps", "Deployment") => &apps::DeploymentStrategy,
        ("apps", "ReplicaSet") => &apps::ReplicaSetStrategy,
        ("apps", "StatefulSet") => &apps::StatefulSetStrategy,
        ("apps", "DaemonSet") => &apps::DaemonSetStrategy,
        ("batch", "Job") => &batch::JobStrategy,
        ("batch", "CronJob") => &batch::CronJobStrategy,
        ("autoscaling", "HorizontalPodAutoscaler") => &misc::HorizontalPodAutoscalerStrategy,
        ("networking.k8s.io", "Ingress") => &misc::IngressStrategy,
        ("discovery.k8s.io", "EndpointSlice") => &misc::EndpointSliceStrategy,
        ("coordination.k8s.io", "Lease") => &LEASE,
        ("policy", "PodDisruptionBudget") => &misc::PodDisruptionBudgetStrategy,
        ("scheduling.k8s.io", "PriorityClass") => &misc::PriorityClassStrategy,
        ("storage.k8s.io", "StorageClass") => &storage::StorageClassStrategy,
        ("certificates.k8s.io", "CertificateSigningRequest") => {
            &certificates::CertificateSigningRequestStrategy
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            &apiextensions::CustomResourceDefinitionStrategy
        }
        ("apiregistration.k8s.io", "APIService") => &apiregistration::ApiServiceStrategy,
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
            &admissionregistration::WebhookConfigurationStrategy { mutating: true }
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
            &admissionregistration::WebhookConfigurationStrategy { mutating: false }
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            &admissionregistration::ValidatingAdmissionPolicyStrategy
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            &admissionregistration::ValidatingAdmissionPolicyBindingStrategy
        }
        (
            "rbac.authorization.k8s.io",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        ) => &RBAC,
        (group, kind) if crate::catalog::custom::defines(group, kind) => {
            &custom_resource::CustomResourceStrategy
        }
        _ => &NEUTRAL,
    }
}

/// RBAC kinds: names are URL path segments (e.g. `system:controller:x`); a PUT may
/// create them, as upstream.
pub struct Rbac;

impl Strategy for Rbac {
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }
}

static RBAC: Rbac = Rbac;

/// Leases: no special validation here; a PUT may create one, as upstream.
pub struct LeaseStrategy;

impl Strategy for LeaseStrategy {
    fn allow_create_on_update(&self) -> bool {
        true
    }
}

static LEASE: LeaseStrategy = LeaseStrategy;

#[cfg(test)]
mod tests;

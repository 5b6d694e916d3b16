//! Where the strategic merge learns each field's strategy: the [`MergeKeys`] trait and the
//! built-in implementation for the kinds r8s serves.
//!
//! The built-in lookup walks the type structure of k8s-openapi (its `schemars` schemas name
//! every nested object by its OpenAPI definition, e.g. `Deployment.spec.template.spec` →
//! `io.k8s.api.core.v1.PodSpec`) and then consults [`patch_strategies`], the same table the
//! OpenAPI documents publish.

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use serde_json::Value;

use super::table::{PatchStrategy, patch_strategies};

/// How the strategic merge treats one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FieldStrategy {
    /// `merge`: lists are merged (by `merge_key` for objects, as a set for primitives).
    pub merge: bool,
    /// `replace`: a map is replaced as a whole rather than merged.
    pub replace: bool,
    /// `retainKeys`: clients send `$retainKeys` for this field (the server honours the
    /// directive wherever it appears, so this only informs).
    pub retain_keys: bool,
    /// The field identifying items of a merged list of objects.
    pub merge_key: Option<&'static str>,
}

impl FieldStrategy {
    /// Parses an `x-kubernetes-patch-strategy` value (`merge,retainKeys` …).
    pub fn parse(strategy: &str, merge_key: Option<&'static str>) -> FieldStrategy {
        let mut s = FieldStrategy { merge_key, ..FieldStrategy::default() };
        for part in strategy.split(',') {
            match part.trim() {
                "merge" => s.merge = true,
                "replace" => s.replace = true,
                "retainKeys" => s.retain_keys = true,
                _ => {}
            }
        }
        s
    }

    /// A list merged by `key`.
    pub const fn merge_by(key: &'static str) -> FieldStrategy {
        FieldStrategy { merge: true, replace: false, retain_keys: false, merge_key: Some(key) }
    }

    /// A list of primitives merged as a set.
    pub const fn merge_set() -> FieldStrategy {
        FieldStrategy { merge: true, replace: false, retain_keys: false, merge_key: None }
    }
}

impl From<&PatchStrategy> for FieldStrategy {
    fn from(p: &PatchStrategy) -> FieldStrategy {
        FieldStrategy::parse(p.strategy, p.merge_key)
    }
}

/// Patch metadata of the fields of one kind.
///
/// `path` names a field from the object root by JSON field names; list items add no
/// segment, so `["spec", "template", "spec", "containers", "env"]` is the `env` field of
/// any container of a Deployment. Map keys (labels, resource names) are path segments too.
pub trait MergeKeys {
    /// The strategy of the field at `path`, or `None` for an ordinary field (maps merge,
    /// lists are replaced).
    fn lookup(&self, path: &[&str]) -> Option<FieldStrategy>;

    /// Whether strategic merge patch is served for this kind at all (upstream answers 415
    /// for custom resources, which carry no patch metadata).
    fn supports_strategic_merge(&self) -> bool {
        true
    }
}

/// Any closure from path to strategy is a schema (handy for tests and custom kinds).
impl<F> MergeKeys for F
where
    F: Fn(&[&str]) -> Option<FieldStrategy>,
{
    fn lookup(&self, path: &[&str]) -> Option<FieldStrategy> {
        self(path)
    }
}

/// No patch metadata: every list is replaced, maps merge (JSON-merge-patch-like, but with
/// the `$` directives understood).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMergeKeys;

impl MergeKeys for NoMergeKeys {
    fn lookup(&self, _path: &[&str]) -> Option<FieldStrategy> {
        None
    }
}

/// Patch metadata of a built-in kind, from its type structure and [`patch_strategies`].
#[derive(Debug, Clone, Copy)]
pub struct BuiltinMergeKeys {
    /// OpenAPI definition of the kind; `None` for kinds r8s knows nothing of.
    root: Option<&'static str>,
}

impl BuiltinMergeKeys {
    /// Whether the kind is a built-in one (strategic merge patch is supported).
    pub fn is_known(&self) -> bool {
        self.root.is_some()
    }

    /// The OpenAPI definition name of the kind, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub fn definition(&self) -> Option<&'static str> {
        self.root
    }

    /// The OpenAPI definition of the object at `path` (list items and map values are
    /// followed transparently), e.g. `spec.template.spec` of a Deployment → PodSpec.
    pub fn definition_at(&self, path: &[&str]) -> Option<&'static str> {
        let graph = graph();
        let mut def = self.root?;
        for seg in path {
            def = graph.children.get(def)?.get(*seg)?;
        }
        Some(def)
    }
}

impl MergeKeys for BuiltinMergeKeys {
    fn lookup(&self, path: &[&str]) -> Option<FieldStrategy> {
        let (field, parent) = path.split_last()?;
        let def = self.definition_at(parent)?;
        graph().strategies.get(&(def, *field)).copied()
    }

    fn supports_strategic_merge(&self) -> bool {
        self.is_known()
    }
}

/// Patch metadata of the built-in kind `kind` of API group `group` ("" for core).
///
/// Kinds served at several versions use their stable version's structure (autoscaling →
/// v2 HorizontalPodAutoscaler; v1's fields hold no lists, so nothing differs).
pub fn merge_keys_for(group: &str, kind: &str) -> BuiltinMergeKeys {
    let root = graph().roots.get(&(group, kind)).copied();
    BuiltinMergeKeys { root }
}

/// Field → child definition per definition, plus the strategy index. Built once.
struct Graph {
    roots: HashMap<(&'static str, &'static str), &'static str>,
    children: HashMap<&'static str, HashMap<&'static str, &'static str>>,
    strategies: HashMap<(&'static str, &'static str), FieldStrategy>,
}

fn graph() -> &'static Graph {
    static GRAPH: OnceLock<Graph> = OnceLock::new();
    GRAPH.get_or_init(build_graph)
}

/// Registers `T` with the generator and returns its definition name.
fn reg<T: JsonSchema>(g: &mut SchemaGenerator) -> String {
    g.subschema_for::<T>();
    T::schema_name().into_owned()
}

type Register = fn(&mut SchemaGenerator) -> String;

/// The root kinds: every stable built-in kind that can be patched.
fn roots() -> Vec<(&'static str, &'static str, Register)> {
    use k8s_openapi::api::{
        admissionregistration::v1 as admreg, apps::v1 as apps, autoscaling::v1 as as1,
        autoscaling::v2 as as2, batch::v1 as batch, certificates::v1 as certs,
        coordination::v1 as coord, core::v1 as core, discovery::v1 as disc,
        events::v1 as events, flowcontrol::v1 as fc, networking::v1 as net, node::v1 as node,
        policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as sched, storage::v1 as storage,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    vec![
        ("", "Binding", reg::<core::Binding>),
        ("", "ComponentStatus", reg::<core::ComponentStatus>),
        ("", "ConfigMap", reg::<core::ConfigMap>),
        ("", "Endpoints", reg::<core::Endpoints>),
        ("", "Event", reg::<core::Event>),
        ("", "LimitRange", reg::<core::LimitRange>),
        ("", "Namespace", reg::<core::Namespace>),
        ("", "Node", reg::<core::Node>),
        ("", "PersistentVolume", reg::<core::PersistentVolume>),
        ("", "PersistentVolumeClaim", reg::<core::PersistentVolumeClaim>),
        ("", "Pod", reg::<core::Pod>),
        ("", "PodTemplate", reg::<core::PodTemplate>),
        ("", "ReplicationController", reg::<core::ReplicationController>),
        ("", "ResourceQuota", reg::<core::ResourceQuota>),
        ("", "Secret", reg::<core::Secret>),
        ("", "Service", reg::<core::Service>),
        ("", "ServiceAccount", reg::<core::ServiceAccount>),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration", reg::<admreg::MutatingWebhookConfiguration>),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", reg::<admreg::ValidatingWebhookConfiguration>),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy", reg::<admreg::ValidatingAdmissionPolicy>),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding", reg::<admreg::ValidatingAdmissionPolicyBinding>),
        ("apiextensions.k8s.io", "CustomResourceDefinition", reg::<apiext::CustomResourceDefinition>),
        ("apps", "ControllerRevision", reg::<apps::ControllerRevision>),
        ("apps", "DaemonSet", reg::<apps::DaemonSet>),
        ("apps", "Deployment", reg::<apps::Deployment>),
        ("apps", "ReplicaSet", reg::<apps::ReplicaSet>),
        ("apps", "StatefulSet", reg::<apps::StatefulSet>),
        ("autoscaling", "HorizontalPodAutoscaler", reg::<as2::HorizontalPodAutoscaler>),
        ("autoscaling", "Scale", reg::<as1::Scale>),
        ("batch", "CronJob", reg::<batch::CronJob>),
        ("batch", "Job", reg::<batch::Job>),
        ("certificates.k8s.io", "CertificateSigningRequest", reg::<certs::CertificateSigningRequest>),
        ("coordination.k8s.io", "Lease", reg::<coord::Lease>),
        ("discovery.k8s.io", "EndpointSlice", reg::<disc::EndpointSlice>),
        ("events.k8s.io", "Event", reg::<events::Event>),
        ("flowcontrol.apiserver.k8s.io", "FlowSchema", reg::<fc::FlowSchema>),
        ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration", reg::<fc::PriorityLevelConfiguration>),
        ("networking.k8s.io", "IPAddress", reg::<net::IPAddress>),
        ("networking.k8s.io", "Ingress", reg::<net::Ingress>),
        ("networking.k8s.io", "IngressClass", reg::<net::IngressClass>),
        ("networking.k8s.io", "NetworkPolicy", reg::<net::NetworkPolicy>),
        ("networking.k8s.io", "ServiceCIDR", reg::<net::ServiceCIDR>),
        ("node.k8s.io", "RuntimeClass", reg::<node::RuntimeClass>),
        ("policy", "Eviction", reg::<policy::Eviction>),
        ("policy", "PodDisruptionBudget", reg::<policy::PodDisruptionBudget>),
        ("rbac.authorization.k8s.io", "ClusterRole", reg::<rbac::ClusterRole>),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding", reg::<rbac::ClusterRoleBinding>),
        ("rbac.authorization.k8s.io", "Role", reg::<rbac::Role>),
        ("rbac.authorization.k8s.io", "RoleBinding", reg::<rbac::RoleBinding>),
        ("scheduling.k8s.io", "PriorityClass", reg::<sched::PriorityClass>),
        ("storage.k8s.io", "CSIDriver", reg::<storage::CSIDriver>),
        ("storage.k8s.io", "CSINode", reg::<storage::CSINode>),
        ("storage.k8s.io", "CSIStorageCapacity", reg::<storage::CSIStorageCapacity>),
        ("storage.k8s.io", "StorageClass", reg::<storage::StorageClass>),
        ("storage.k8s.io", "VolumeAttachment", reg::<storage::VolumeAttachment>),
    ]
}

/// Names live for the whole process (the graph is built once), so leaking them is fine
/// and keeps lookups free of allocation.
fn intern(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn build_graph() -> Graph {
    let mut generator = SchemaGenerator::default();
    let mut roots = HashMap::new();
    for (group, kind, register) in self::roots() {
        let name = register(&mut generator);
        roots.insert((group, kind), intern(&name));
    }

    let mut names: HashMap<String, &'static str> = HashMap::new();
    let mut name_of = |s: &str| -> &'static str {
        if let Some(n) = names.get(s) {
            return n;
        }
        let n = intern(s);
        names.insert(s.to_owned(), n);
        n
    };
    for root in roots.values_mut() {
        *root = name_of(root);
    }

    let mut children: HashMap<&'static str, HashMap<&'static str, &'static str>> =
        HashMap::new();
    for (def, schema) in generator.definitions() {
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            continue;
        };
        let mut fields = HashMap::new();
        for (field, prop) in props {
            if let Some(target) = referenced_definition(prop) {
                fields.insert(name_of(field), name_of(target));
            }
        }
        if !fields.is_empty() {
            children.insert(name_of(def), fields);
        }
    }

    let strategies = patch_strategies()
        .iter()
        .map(|p| ((p.definition, p.field), FieldStrategy::from(p)))
        .collect();
    Graph { roots, children, strategies }
}

/// The definition an object property leads to: its own `$ref`, its array items' or its map
/// values' (`additionalProperties`), looking through `allOf` wrappers.
fn referenced_definition(prop: &Value) -> Option<&str> {
    if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next();
    }
    if let Some(first) = prop.get("allOf").and_then(Value::as_array).and_then(|a| a.first()) {
        return referenced_definition(first);
    }
    for nested in ["items", "additionalProperties"] {
        if let Some(inner) = prop.get(nested).filter(|v| v.is_object()) {
            return referenced_definition(inner);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_template_reaches_pod_spec() {
        let d = merge_keys_for("apps", "Deployment");
        assert!(d.is_known());
        assert_eq!(d.definition(), Some("io.k8s.api.apps.v1.Deployment"));
        assert_eq!(
            d.definition_at(&["spec", "template", "spec"]),
            Some("io.k8s.api.core.v1.PodSpec")
        );
        assert_eq!(
            d.definition_at(&["spec", "template", "spec", "containers"]),
            Some("io.k8s.api.core.v1.Container")
        );
        assert_eq!(
            d.lookup(&["spec", "template", "spec", "containers"]),
            Some(FieldStrategy::merge_by("name"))
        );
        assert_eq!(
            d.lookup(&["spec", "template", "spec", "containers", "ports"]),
            Some(FieldStrategy::merge_by("containerPort"))
        );
        let strategy = d.lookup(&["spec", "strategy"]).expect("strategy");
        assert!(strategy.retain_keys && !strategy.merge);
        assert_eq!(d.lookup(&["spec", "template", "spec", "tolerations"]), None);
        assert_eq!(
            d.lookup(&["metadata", "finalizers"]),
            Some(FieldStrategy::merge_set())
        );
        assert_eq!(
            d.lookup(&["status", "conditions"]),
            Some(FieldStrategy::merge_by("type"))
        );
    }

    #[test]
    fn nested_templates_of_other_workloads() {
        let cj = merge_keys_for("batch", "CronJob");
        assert_eq!(
            cj.lookup(&["spec", "jobTemplate", "spec", "template", "spec", "volumes"]),
            Some(FieldStrategy::parse("merge,retainKeys", Some("name")))
        );
        let sts = merge_keys_for("apps", "StatefulSet");
        assert_eq!(
            sts.lookup(&["spec", "template", "spec", "initContainers", "env"]),
            Some(FieldStrategy::merge_by("name"))
        );
        let pod = merge_keys_for("", "Pod");
        assert_eq!(
            pod.lookup(&["spec", "ephemeralContainers", "volumeMounts"]),
            Some(FieldStrategy::merge_by("mountPath"))
        );
        assert_eq!(
            pod.lookup(&["status", "podIPs"]),
            Some(FieldStrategy::merge_by("ip"))
        );
        let node = merge_keys_for("", "Node");
        assert_eq!(
            node.lookup(&["status", "addresses"]),
            Some(FieldStrategy::merge_by("type"))
        );
        let svc = merge_keys_for("", "Service");
        assert_eq!(svc.lookup(&["spec", "ports"]), Some(FieldStrategy::merge_by("port")));
        let pdb = merge_keys_for("policy", "PodDisruptionBudget");
        assert!(pdb.lookup(&["spec", "selector"]).is_some_and(|s| s.replace));
    }

    #[test]
    fn unknown_kinds_and_paths() {
        let x = merge_keys_for("example.com", "Widget");
        assert!(!x.is_known());
        assert!(!x.supports_strategic_merge());
        assert_eq!(x.lookup(&["spec", "items"]), None);
        let cm = merge_keys_for("", "ConfigMap");
        assert_eq!(cm.lookup(&["data", "key"]), None);
        assert_eq!(cm.lookup(&[]), None);
        let pod = merge_keys_for("", "Pod");
        assert_eq!(pod.lookup(&["spec", "nosuch", "containers"]), None);
        assert_eq!(pod.lookup(&["metadata", "labels", "app"]), None);
    }

    #[test]
    fn every_table_definition_is_reachable() {
        // Catches a typo in the table or a definition no root kind contains.
        let g = graph();
        for p in patch_strategies() {
            assert!(g.children.contains_key(p.definition), "{} unreachable", p.definition);
        }
    }

    #[test]
    fn parse_strategies() {
        let s = FieldStrategy::parse("merge,retainKeys", Some("name"));
        assert!(s.merge && s.retain_keys && !s.replace);
        assert_eq!(FieldStrategy::parse("", None), FieldStrategy::default());
    }
}

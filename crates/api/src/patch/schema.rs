//! Where the strategic merge learns each field's strategy: the [`MergeKeys`] trait and the
//! built-in implementation for the kinds r8s describes.
//!
//! The built-in lookup walks the same definitions `/openapi/v3` publishes
//! ([`openapi::all_definitions`]: every nested object is a `$ref` to its upstream definition,
//! so `Deployment.spec.template.spec` → `io.k8s.api.core.v1.PodSpec`) and reads the strategy
//! from the same table the documents' `x-kubernetes-patch-*` extensions come from
//! ([`openapi::patch_strategies`]), so kubectl (which builds its patches from the documents)
//! and the server agree.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::catalog;
use crate::openapi::{self, PatchStrategy};

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
        let mut s = FieldStrategy {
            merge_key,
            ..FieldStrategy::default()
        };
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
        FieldStrategy {
            merge: true,
            replace: false,
            retain_keys: false,
            merge_key: Some(key),
        }
    }

    /// A list of primitives merged as a set.
    pub const fn merge_set() -> FieldStrategy {
        FieldStrategy {
            merge: true,
            replace: false,
            retain_keys: false,
            merge_key: None,
        }
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

/// Patch metadata of a built-in kind, from its published definitions and
/// [`openapi::patch_strategies`].
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
            def = graph.get(def)?.get(*seg)?;
        }
        Some(def)
    }
}

impl MergeKeys for BuiltinMergeKeys {
    fn lookup(&self, path: &[&str]) -> Option<FieldStrategy> {
        let (field, parent) = path.split_last()?;
        let def = self.definition_at(parent)?;
        strategy_of(def, field)
    }

    fn supports_strategic_merge(&self) -> bool {
        self.is_known()
    }
}

/// Go structs embedded inline: the published definition flattens them, while a table
/// derived from the Go types may name the embedded struct.
const INLINED: &[(&str, &str)] = &[(
    "io.k8s.api.core.v1.EphemeralContainer",
    "io.k8s.api.core.v1.EphemeralContainerCommon",
)];

fn strategy_of(definition: &str, field: &str) -> Option<FieldStrategy> {
    let found = openapi::patch_strategy(definition, field).or_else(|| {
        INLINED
            .iter()
            .find(|(outer, _)| *outer == definition)
            .and_then(|(_, inner)| openapi::patch_strategy(inner, field))
    });
    found.map(FieldStrategy::from)
}

/// Patch metadata of the built-in kind `kind` of API group `group` ("" for core), at the
/// group's preferred served version (the stable one for kinds r8s does not serve).
pub fn merge_keys_for(group: &str, kind: &str) -> BuiltinMergeKeys {
    let preferred = catalog::group(group).map(|g| g.preferred);
    let served = catalog::all()
        .iter()
        .filter(|r| r.group == group && r.kind == kind)
        .map(|r| r.version);
    let candidates = preferred.into_iter().chain(served).chain(["v1", "v2"]);
    for version in candidates {
        let keys = merge_keys_for_version(group, version, kind);
        if keys.is_known() {
            return keys;
        }
    }
    BuiltinMergeKeys { root: None }
}

/// Patch metadata of `kind` at exactly `group`/`version`.
pub fn merge_keys_for_version(group: &str, version: &str, kind: &str) -> BuiltinMergeKeys {
    let root = openapi::definition_name(group, version, kind).filter(|name| {
        // Kinds published without a schema (free-form objects) carry no patch metadata:
        // like custom resources, they get no strategic merge.
        openapi::all_definitions()
            .get(*name)
            .is_some_and(|d| d.get("x-kubernetes-preserve-unknown-fields").is_none())
    });
    BuiltinMergeKeys { root }
}

/// Field → definition of the object it holds, per definition. Built once.
fn graph() -> &'static HashMap<&'static str, HashMap<&'static str, &'static str>> {
    static GRAPH: OnceLock<HashMap<&'static str, HashMap<&'static str, &'static str>>> =
        OnceLock::new();
    GRAPH.get_or_init(|| {
        let mut children = HashMap::new();
        for (def, schema) in openapi::all_definitions() {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                continue;
            };
            let fields: HashMap<&'static str, &'static str> = props
                .iter()
                .filter_map(|(field, prop)| {
                    referenced_definition(prop).map(|target| (field.as_str(), target))
                })
                .collect();
            if !fields.is_empty() {
                children.insert(def.as_str(), fields);
            }
        }
        children
    })
}

/// The definition an object property leads to: its own `$ref`, its array items' or its map
/// values' (`additionalProperties`), looking through `allOf` wrappers.
fn referenced_definition(prop: &'static Value) -> Option<&'static str> {
    if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next();
    }
    if let Some(first) = prop
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
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
        assert_eq!(
            svc.lookup(&["spec", "ports"]),
            Some(FieldStrategy::merge_by("port"))
        );
        let hpa = merge_keys_for("autoscaling", "HorizontalPodAutoscaler");
        assert_eq!(
            hpa.definition(),
            Some("io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler")
        );
        assert_eq!(
            hpa.lookup(&["status", "conditions"]),
            Some(FieldStrategy::merge_by("type"))
        );
        let v1 = merge_keys_for_version("autoscaling", "v1", "HorizontalPodAutoscaler");
        assert!(v1.is_known() && v1.lookup(&["status", "conditions"]).is_none());
        assert!(merge_keys_for("autoscaling", "Scale").is_known());
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
        // Catches a table entry naming a stable definition that is not published (and so
        // can never match), other than the inlined ones handled above.
        let g = graph();
        let missing: Vec<&str> = openapi::patch_strategies()
            .iter()
            .map(|p| p.definition)
            .filter(|d| !d.contains("alpha") && !d.contains("beta"))
            .filter(|d| !INLINED.iter().any(|(_, inner)| inner == d))
            .filter(|d| !g.contains_key(d))
            .collect();
        assert!(missing.is_empty(), "unpublished: {missing:?}");
    }

    #[test]
    fn parse_strategies() {
        let s = FieldStrategy::parse("merge,retainKeys", Some("name"));
        assert!(s.merge && s.retain_keys && !s.replace);
        assert_eq!(FieldStrategy::parse("", None), FieldStrategy::default());
    }
}

//! Resources defined at run time by CustomResourceDefinitions. The API server registers a
//! CRD's served versions here when the CRD is stored (and for every stored CRD at start),
//! and removes them when it is deleted; lookups in [`super`] see them next to the
//! built-in kinds.
//!
//! Entries must be `&'static` like the built-in table, so each distinct definition is
//! leaked once; re-registering a definition whose names, scope and versions did not
//! change (every CRD status write does) reuses its entries, so only such changes cost
//! memory (a few hundred bytes each).

use super::ResourceInfo;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Every registered CRD by (group, plural): one lock, so a lookup never sees a
/// half-applied registration.
static REGISTERED: RwLock<BTreeMap<(String, String), Registered>> = RwLock::new(BTreeMap::new());

/// What one CRD registered.
struct Registered {
    definition: Definition,
    /// One catalog entry per served version (leaked: lookups hand out `&'static`).
    infos: Vec<&'static ResourceInfo>,
    /// Table columns, scale paths and schema, by version.
    served: BTreeMap<String, Arc<Served>>,
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn strings(v: Option<&Value>) -> Vec<String> {
    crate::strategy::json::str_list(v)
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Where a custom resource keeps what its `scale` subresource shows (JSON paths such as
/// `.spec.replicas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    /// A string-valued label selector (for autoscalers), if declared.
    pub label_selector: Option<String>,
}

impl ScalePaths {
    fn from_value(v: &Value) -> Option<ScalePaths> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Some(ScalePaths {
            spec_replicas: text("specReplicasPath")?,
            status_replicas: text("statusReplicasPath")?,
            label_selector: text("labelSelectorPath"),
        })
    }
}

/// One served version's table columns and object schema.
#[derive(Debug)]
pub struct Served {
    pub kind: String,
    /// After NAME.
    pub columns: Vec<PrinterColumn>,
    /// The `scale` subresource, if the version has one.
    pub scale: Option<ScalePaths>,
    /// The whole object's schema: the CRD's `openAPIV3Schema` with `apiVersion`, `kind`
    /// and `metadata` (a reference to ObjectMeta) added, as upstream completes it.
    pub schema: Value,
    /// The schema's validation rules (`x-kubernetes-validations`), compiled; `None` if it
    /// has none.
    pub rules: Option<crate::strategy::validation_rules::Validator>,
}

/// One `additionalPrinterColumns` entry of a CRD version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub kind: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub json_path: String,
}

impl PrinterColumn {
    fn from_value(v: &Value) -> Option<PrinterColumn> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let json_path = text("jsonPath");
        let description = match text("description") {
            d if d.is_empty() => {
                format!("Custom resource definition column (in JSONPath format): {json_path}")
            }
            d => d,
        };
        Some(PrinterColumn {
            name: v.get("name")?.as_str()?.to_string(),
            kind: text("type"),
            format: text("format"),
            description,
            priority: v.get("priority").and_then(Value::as_i64).unwrap_or(0),
            json_path,
        })
    }

    /// Upstream's column for custom resources that declare none.
    fn age() -> PrinterColumn {
        PrinterColumn {
            name: "Age".into(),
            kind: "date".into(),
            format: String::new(),
            description: "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp".into(),
            priority: 0,
            json_path: ".metadata.creationTimestamp".into(),
        }
    }
}

/// The table columns and schema of a custom resource version, if it is one.
pub fn served(group: &str, version: &str, plural: &str) -> Option<Arc<Served>> {
    let registered = REGISTERED.read().ok()?;
    registered
        .get(&(group.to_string(), plural.to_string()))?
        .served
        .get(version)
        .cloned()
}

/// [`served`] by kind.
pub fn served_kind(group: &str, version: &str, kind: &str) -> Option<Arc<Served>> {
    let registered = REGISTERED.read().ok()?;
    registered
        .values()
        .find(|r| r.definition.group == group && r.definition.kind == kind)?
        .served
        .get(version)
        .cloned()
}

/// The object schema of a CRD version, completed with the fields every object has.
fn object_schema(version: &Value) -> Value {
    let mut schema = version
        .pointer("/schema/openAPIV3Schema")
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    if let Some(obj) = schema.as_object_mut() {
        let props = obj
            .entry("properties")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(props) = props.as_object_mut() {
            let text = serde_json::json!({"type": "string"});
            props.entry("apiVersion").or_insert_with(|| text.clone());
            props.entry("kind").or_insert(text);
            props.insert(
                "metadata".into(),
                serde_json::json!({"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}),
            );
        }
    }
    schema
}

/// What a CRD's spec declares for one served version.
#[derive(Debug, Clone, PartialEq)]
struct Version {
    name: String,
    status: bool,
    scale: Option<ScalePaths>,
    columns: Vec<PrinterColumn>,
    schema: Value,
}

/// The resource a CRD spec defines, as plain data (compared before leaking).
#[derive(Debug, Clone, PartialEq)]
struct Definition {
    group: String,
    kind: String,
    plural: String,
    singular: String,
    namespaced: bool,
    short_names: Vec<String>,
    categories: Vec<String>,
    storage_version: String,
    versions: Vec<Version>,
}

impl Definition {
    fn from_crd(crd: &Value) -> Option<Definition> {
        let spec = crd.get("spec")?;
        let names = spec.get("names")?;
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let kind = text(names, "kind")?;
        let plural = text(names, "plural")?;
        let versions: Vec<&Value> = spec.get("versions")?.as_array()?.iter().collect();
        let storage_version = versions
            .iter()
            .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .and_then(|v| text(v, "name"))?;
        Some(Definition {
            group: text(spec, "group")?,
            singular: text(names, "singular").unwrap_or_else(|| kind.to_lowercase()),
            kind,
            plural,
            namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            storage_version,
            versions: versions
                .iter()
                .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| {
                    let mut columns: Vec<PrinterColumn> = v
                        .get("additionalPrinterColumns")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(PrinterColumn::from_value)
                        .collect();
                    if columns.is_empty() {
                        columns.push(PrinterColumn::age());
                    }
                    Some(Version {
                        name: text(v, "name")?,
                        status: v.pointer("/subresources/status").is_some(),
                        scale: v
                            .pointer("/subresources/scale")
                            .and_then(ScalePaths::from_value),
                        columns,
                        schema: object_schema(v),
                    })
                })
                .collect(),
        })
    }

    /// Whether both define the same catalog entries (columns and schemas aside).
    fn infos_equal(&self, other: &Definition) -> bool {
        let entries = |d: &Definition| {
            (
                d.group.clone(),
                d.kind.clone(),
                d.plural.clone(),
                d.singular.clone(),
                d.namespaced,
                d.short_names.clone(),
                d.categories.clone(),
                d.storage_version.clone(),
                d.versions
                    .iter()
                    .map(|v| (v.name.clone(), v.status, v.scale.is_some()))
                    .collect::<Vec<_>>(),
            )
        };
        entries(self) == entries(other)
    }

    /// The catalog entries, leaked.
    fn infos(&self) -> Vec<&'static ResourceInfo> {
        let group = leak(&self.group);
        let kind = leak(&self.kind);
        let plural = leak(&self.plural);
        let singular = leak(&self.singular);
        let list = |v: &[String]| -> &'static [&'static str] {
            Box::leak(
                v.iter()
                    .map(|s| leak(s))
                    .collect::<Vec<_>>()
                    .into_boxed_slice(),
            )
        };
        let short_names = list(&self.short_names);
        let categories = list(&self.categories);
        let storage_version = leak(&self.storage_version);
        self.versions
            .iter()
            .map(|v| {
                let version = leak(&v.name);
                let mut subresources = Vec::new();
                if v.status {
                    subresources.push(super::data::status(kind, group, version));
                }
                if v.scale.is_some() {
                    subresources.push(super::data::SCALE);
                }
                let info = ResourceInfo {
                    storage_version,
                    ..super::data::res(
                        group,
                        version,
                        kind,
                        plural,
                        singular,
                        self.namespaced,
                        short_names,
                        categories,
                        Box::leak(subresources.into_boxed_slice()),
                    )
                };
                &*Box::leak(Box::new(info))
            })
            .collect()
    }

    fn served(&self) -> BTreeMap<String, Arc<Served>> {
        self.versions
            .iter()
            .map(|v| {
                let served = Served {
                    kind: self.kind.clone(),
                    columns: v.columns.clone(),
                    scale: v.scale.clone(),
                    schema: v.schema.clone(),
                    rules: crate::strategy::validation_rules::Validator::new(&v.schema),
                };
                (v.name.clone(), Arc::new(served))
            })
            .collect()
    }
}

/// Serve what the stored CRD `crd` defines (replacing what it defined before). A CRD
/// whose spec is incomplete defines nothing.
pub fn register(crd: &Value) {
    let Some(definition) = Definition::from_crd(crd) else {
        return;
    };
    let key = (definition.group.clone(), definition.plural.clone());
    let Ok(mut registered) = REGISTERED.write() else {
        return;
    };
    let previous = registered.get(&key);
    // CRD status writes re-register the same definition: nothing to do.
    if previous.is_some_and(|p| p.definition == definition) {
        return;
    }
    // Only changed names, scope or versions cost newly leaked entries.
    let infos = match previous {
        Some(p) if p.definition.infos_equal(&definition) => p.infos.clone(),
        _ => definition.infos(),
    };
    let served = definition.served();
    registered.insert(
        key,
        Registered {
            definition,
            infos,
            served,
        },
    );
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// Stop serving `plural.group`.
pub fn unregister(group: &str, plural: &str) {
    if let Ok(mut registered) = REGISTERED.write() {
        registered.remove(&(group.to_string(), plural.to_string()));
    }
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// Raised by every registration change (documents built from the definitions use it
/// to know when to rebuild).
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The current [`GENERATION`].
pub fn generation() -> u64 {
    GENERATION.load(std::sync::atomic::Ordering::SeqCst)
}

/// Every registered custom resource version.
pub fn all() -> Vec<&'static ResourceInfo> {
    REGISTERED
        .read()
        .map(|r| r.values().flat_map(|r| r.infos.iter().copied()).collect())
        .unwrap_or_default()
}

/// Whether a custom resource of `group` has objects of `kind`.
pub fn defines(group: &str, kind: &str) -> bool {
    REGISTERED.read().is_ok_and(|r| {
        r.values()
            .any(|r| r.definition.group == group && r.definition.kind == kind)
    })
}

/// Kubernetes' version order: GA before beta before alpha, higher numbers first, then
/// other names alphabetically (upstream's `CompareKubeAwareVersionStrings`).
pub fn version_priority(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> Option<(u32, u32, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((2, major, 0));
        }
        let (stage, n) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        Some((stage, major, n.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(group: &str, versions: Value) -> Value {
        json!({"spec": {
            "group": group, "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"]},
            "versions": versions
        }})
    }

    #[test]
    fn registers_served_versions_and_reuses_unchanged_ones() {
        let group = "widgets.catalog-test.example.com";
        let def = crd(
            group,
            json!([
                {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                {"name": "v1beta1", "served": true, "storage": false},
                {"name": "v1alpha1", "served": false, "storage": false}
            ]),
        );
        register(&def);
        let first: Vec<_> = all().into_iter().filter(|r| r.group == group).collect();
        assert_eq!(first.len(), 2);
        let v1 = first.iter().find(|r| r.version == "v1").unwrap();
        assert_eq!(v1.subresource("status").map(|s| s.kind), Some("Widget"));
        assert!(v1.namespaced);
        assert_eq!(v1.short_names, ["wd"]);
        let beta = first.iter().find(|r| r.version == "v1beta1").unwrap();
        assert_eq!(beta.storage_version, "v1");
        assert_eq!(beta.key_prefix(), format!("/registry/{group}/widgets/"));
        register(&def);
        let again: Vec<_> = all().into_iter().filter(|r| r.group == group).collect();
        assert!(first.iter().zip(&again).all(|(a, b)| std::ptr::eq(*a, *b)));
        unregister(group, "widgets");
        assert!(all().iter().all(|r| r.group != group));
    }

    #[test]
    fn kube_aware_version_order() {
        let mut v = vec![
            "v1alpha1", "foo", "v2", "v1beta2", "v1", "v1beta1", "v10", "bar",
        ];
        v.sort_by(|a, b| version_priority(a, b));
        assert_eq!(
            v,
            [
                "v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"
            ]
        );
    }
}

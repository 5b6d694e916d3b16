//! `components.schemas`: upstream-shaped definitions built from the k8s-openapi types.
//!
//! All definitions are built once (one schemars generator over every known kind), reshaped
//! the way the upstream API server publishes OpenAPI v3, and shared; each group-version
//! document takes the closure of its kinds' references.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::{extensions, types};
use crate::catalog::{self, ResourceInfo, custom};

/// The Kubernetes release whose API the documents describe.
pub(super) use crate::KUBERNETES_VERSION;

/// Where definitions live in a document, and what every `$ref` starts with.
pub(super) const REF_PREFIX: &str = "#/components/schemas/";

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";
pub(super) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(super) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(super) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(super) const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";
const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// Every definition, plus which definition describes which group/version/kind.
struct Definitions {
    schemas: Map<String, Value>,
    /// Definition names by group, version, kind (looked up on every write; nested so a
    /// lookup builds no key).
    by_gvk: HashMap<String, HashMap<String, HashMap<String, String>>>,
    meta_roots: Vec<String>,
}

fn definitions() -> &'static Definitions {
    static DEFS: OnceLock<Definitions> = OnceLock::new();
    DEFS.get_or_init(build)
}

/// Every definition r8s publishes, keyed by upstream definition name. The
/// strategic-merge-patch code walks these for merge keys of nested fields.
pub fn all_definitions() -> &'static Map<String, Value> {
    &definitions().schemas
}

/// The definition name describing `group`/`version`/`kind`
/// (`io.k8s.api.apps.v1.Deployment`, `io.k8s.api.apps.v1.DeploymentList`).
pub fn definition_name(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    definitions()
        .by_gvk
        .get(group)?
        .get(version)?
        .get(kind)
        .map(String::as_str)
}

/// The definition name documents use for `group`/`version`/`kind`: a built-in
/// definition, or the CRD-style name of a custom resource (or of its list).
pub(super) fn schema_name(group: &str, version: &str, kind: &str) -> Option<String> {
    if let Some(name) = definition_name(group, version, kind) {
        return Some(name.to_string());
    }
    if custom::served_kind(group, version, kind).is_some() {
        return Some(fallback_name(group, version, kind));
    }
    let item = kind.strip_suffix("List")?;
    custom::served_kind(group, version, item)
        .map(|_| format!("{}List", fallback_name(group, version, item)))
}

/// The definitions of a custom resource group-version document: each kind's schema from
/// its CRD and its list, plus the meta types and what they reference.
pub(super) fn custom_document_schemas(resources: &[&ResourceInfo]) -> Map<String, Value> {
    let defs = definitions();
    let mut own = Map::new();
    for r in resources {
        let Some(served) = custom::served_kind(r.group, r.version, r.kind) else {
            continue;
        };
        let name = fallback_name(r.group, r.version, r.kind);
        let mut schema = served.schema.clone();
        if let Value::Object(obj) = &mut schema {
            obj.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([gvk(r.group, r.version, r.kind)]),
            );
        }
        let mut list = list_schema(r, &name, Some(&schema));
        if let Value::Object(obj) = &mut list {
            obj.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([gvk(r.group, r.version, &r.list_kind())]),
            );
        }
        own.insert(format!("{name}List"), list);
        own.insert(name, schema);
    }
    let mut roots = defs.meta_roots.clone();
    for schema in own.values() {
        collect_refs(schema, &mut roots);
    }
    let mut out = closure(&defs.schemas, roots);
    out.extend(own);
    out
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({ "group": group, "kind": kind, "version": version })
}

fn build() -> Definitions {
    let settings = SchemaSettings::openapi3().with(|s| {
        s.meta_schema = None;
        s.transforms.clear();
    });
    let mut generator = settings.into_generator();
    let mut names = BTreeMap::new();
    let mut gvks: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for k in types::KINDS {
        let name = (k.add)(&mut generator);
        gvks.entry(name.clone())
            .or_default()
            .push(gvk(k.group, k.version, k.kind));
        names.insert(key(k.group, k.version, k.kind), name);
    }
    let meta_roots: Vec<String> = types::META.iter().map(|add| add(&mut generator)).collect();
    let mut schemas = generator.take_definitions(false);

    // Kinds the catalog serves that k8s-openapi does not model: describe them as free-form
    // objects so their operations still resolve.
    for r in catalog::all() {
        if names.contains_key(&key(r.group, r.version, r.kind)) {
            continue;
        }
        let name = fallback_name(r.group, r.version, r.kind);
        schemas.insert(
            name.clone(),
            json!({
                "description": format!("{} is served by r8s without a published schema.", r.kind),
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
            }),
        );
        gvks.entry(name.clone())
            .or_default()
            .push(gvk(r.group, r.version, r.kind));
        names.insert(key(r.group, r.version, r.kind), name);
    }

    // Lists of every listable served kind (k8s-openapi has one generic `List<T>` instead).
    for r in catalog::all().iter().filter(|r| r.verbs.contains(&"list")) {
        let Some(item) = names.get(&key(r.group, r.version, r.kind)).cloned() else {
            continue;
        };
        let list = format!("{item}List");
        if !schemas.contains_key(&list) {
            let schema = list_schema(r, &item, schemas.get(&item));
            schemas.insert(list.clone(), schema);
        }
        let list_kind = r.list_kind();
        gvks.entry(list.clone())
            .or_default()
            .push(gvk(r.group, r.version, &list_kind));
        names.insert(key(r.group, r.version, &list_kind), list);
    }

    // Meta kinds: Status and APIResourceList are core/v1; DeleteOptions and WatchEvent are
    // accepted in every group-version.
    gvks.entry(STATUS.into())
        .or_default()
        .push(gvk("", "v1", "Status"));
    gvks.entry(API_RESOURCE_LIST.into())
        .or_default()
        .push(gvk("", "v1", "APIResourceList"));
    let mut gvs: BTreeSet<(&str, &str)> = catalog::all()
        .iter()
        .map(|r| (r.group, r.version))
        .collect();
    gvs.insert(("", "v1"));
    for (name, kind) in [
        (DELETE_OPTIONS, "DeleteOptions"),
        (WATCH_EVENT, "WatchEvent"),
    ] {
        let entry = gvks.entry(name.into()).or_default();
        entry.clear();
        entry.extend(gvs.iter().map(|(g, v)| gvk(g, v, kind)));
    }

    for (name, schema) in schemas.iter_mut() {
        reshape(schema);
        override_scalar(name, schema);
        let Value::Object(obj) = schema else { continue };
        extensions::annotate(name, obj);
        if let Some(list) = gvks.get(name.as_str()) {
            drop_required_metadata(obj);
            obj.insert(
                "x-kubernetes-group-version-kind".into(),
                Value::Array(list.clone()),
            );
        }
    }
    let mut by_gvk: HashMap<String, HashMap<String, HashMap<String, String>>> = HashMap::new();
    for ((g, v, k), name) in &names {
        by_gvk
            .entry(g.clone())
            .or_default()
            .entry(v.clone())
            .or_default()
            .insert(k.clone(), name.clone());
    }
    Definitions {
        schemas,
        by_gvk,
        meta_roots,
    }
}

fn key(group: &str, version: &str, kind: &str) -> (String, String, String) {
    (group.to_string(), version.to_string(), kind.to_string())
}

/// A CRD-style name for a kind without a k8s-openapi type: reversed group, version, kind.
fn fallback_name(group: &str, version: &str, kind: &str) -> String {
    if group.is_empty() {
        return format!("io.k8s.api.core.{version}.{kind}");
    }
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// `<Kind>List`: apiVersion, kind, ListMeta and the items.
fn list_schema(r: &ResourceInfo, item: &str, item_schema: Option<&Value>) -> Value {
    let prop = |field: &str| {
        item_schema
            .and_then(|s| s.pointer(&format!("/properties/{field}")))
            .cloned()
            .unwrap_or_else(|| json!({ "type": "string" }))
    };
    json!({
        "description": format!("{}List is a list of {} objects.", r.kind, r.kind),
        "type": "object",
        "properties": {
            "apiVersion": prop("apiVersion"),
            "kind": prop("kind"),
            "metadata": {
                "allOf": [{ "$ref": format!("{REF_PREFIX}{META}ListMeta") }],
                "default": {},
                "description": "Standard list metadata.",
            },
            "items": {
                "description": format!("The {} in the list.", r.plural),
                "type": "array",
                "items": { "allOf": [{ "$ref": format!("{REF_PREFIX}{item}") }], "default": {} },
            },
        },
        "required": ["items"],
    })
}

/// Upstream publishes a reference with siblings (a field's own description) as
/// `allOf: [{$ref}]` plus the siblings, since OpenAPI 3.0 ignores siblings of `$ref`.
fn reshape(schema: &mut Value) {
    let Value::Object(obj) = schema else { return };
    let reference = if obj.len() > 1 {
        obj.remove("$ref")
    } else {
        None
    };
    if let Some(reference) = reference {
        obj.insert("allOf".into(), json!([{ "$ref": reference }]));
    }
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        props.values_mut().for_each(reshape);
    }
    for k in ["items", "additionalProperties", "not"] {
        if let Some(sub) = obj.get_mut(k) {
            reshape(sub);
        }
    }
    for k in ["allOf", "oneOf", "anyOf"] {
        if let Some(Value::Array(subs)) = obj.get_mut(k) {
            subs.iter_mut().for_each(reshape);
        }
    }
}

/// Int-or-string and quantity are `oneOf` their JSON types in upstream's v3 documents
/// (kubectl explain then shows them by name).
fn override_scalar(name: &str, schema: &mut Value) {
    let one_of = match name {
        INT_OR_STRING => json!([{ "type": "integer" }, { "type": "string" }]),
        QUANTITY => json!([{ "type": "string" }, { "type": "number" }]),
        _ => return,
    };
    let description = schema.get("description").cloned();
    let mut out = Map::new();
    if let Some(d) = description {
        out.insert("description".into(), d);
    }
    if name == INT_OR_STRING {
        out.insert("format".into(), json!("int-or-string"));
    }
    out.insert("oneOf".into(), one_of);
    *schema = Value::Object(out);
}

/// k8s-openapi marks `metadata` required on every resource (it is not optional in Rust);
/// upstream does not, and kubectl explain would print it as required.
fn drop_required_metadata(obj: &mut Map<String, Value>) {
    let Some(Value::Array(required)) = obj.get_mut("required") else {
        return;
    };
    required.retain(|r| r != "metadata");
    if required.is_empty() {
        obj.remove("required");
    }
}

/// The definitions one group-version document needs: its kinds and lists, subresource
/// bodies, the meta types, and everything those reference.
pub(super) fn document_schemas(
    group: &str,
    version: &str,
    resources: &[&ResourceInfo],
) -> Map<String, Value> {
    let defs = definitions();
    let mut roots: Vec<String> = defs.meta_roots.clone();
    for r in resources {
        let list_kind = r.list_kind();
        let mut kinds = vec![
            (group, version, r.kind),
            (group, version, list_kind.as_str()),
        ];
        kinds.extend(r.subresources.iter().map(|s| (s.group, s.version, s.kind)));
        for (g, v, k) in kinds {
            if let Some(name) = definition_name(g, v, k) {
                roots.push(name.to_string());
            }
        }
    }
    closure(&defs.schemas, roots)
}

/// `roots` and every definition reachable from them through `$ref`.
fn closure(all: &Map<String, Value>, roots: Vec<String>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut pending = roots;
    while let Some(name) = pending.pop() {
        if out.contains_key(&name) {
            continue;
        }
        let Some(schema) = all.get(&name) else {
            continue;
        };
        collect_refs(schema, &mut pending);
        out.insert(name, schema.clone());
    }
    out
}

/// Pushes the definition names of every `$ref` inside `value`.
pub(super) fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(obj) => {
            for (k, v) in obj {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix(REF_PREFIX) {
                            out.push(name.to_string());
                        }
                    }
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

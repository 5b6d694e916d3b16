//! Unknown-field detection against the OpenAPI schemas, for `fieldValidation`
//! (Strict / Warn / Ignore). Unknown fields are always dropped from what is stored, as
//! upstream's typed decoding drops them; the mode only decides whether the client hears
//! about it (400 for Strict, a warning for Warn).

use crate::openapi;
use serde_json::{Map, Value};

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    /// Parse the parameter; absent means Warn (the server default).
    pub fn from_param(v: Option<&str>) -> Result<Self, String> {
        match v {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            )),
        }
    }
}

/// Remove fields the schema of `group/version/kind` does not know, returning their paths
/// (`spec.template.spec.containers[0].foo`) in document order. Kinds without a schema are
/// left alone.
pub fn prune_unknown_fields(
    group: &str,
    version: &str,
    kind: &str,
    obj: &mut Value,
) -> Vec<String> {
    let mut found = Found::default();
    walk_kind(group, version, kind, obj, &mut found);
    found.unknown
}

/// Walks `obj` against the schema of its kind: a built-in definition, or the schema of a
/// custom resource's CRD.
fn walk_kind(group: &str, version: &str, kind: &str, obj: &mut Value, found: &mut Found) {
    if let Some(def) = openapi::definition_name(group, version, kind) {
        let schema = Value::String(def.to_string());
        walk(&schema, obj, "", found, 0);
    } else if let Some(served) = crate::catalog::custom::served_kind(group, version, kind) {
        found.structural = true;
        walk(&served.schema, obj, "", found, 0);
    }
}

/// [`prune_unknown_fields`], also refusing what upstream's typed decoding cannot read:
/// a `[]byte` field (OpenAPI `format: byte`, e.g. Secret `data`) that is not base64. The
/// error is decoding's message (`illegal base64 data at input byte 3`), which the API
/// server answers with a 400, before any validation.
pub fn prune_and_check(
    group: &str,
    version: &str,
    kind: &str,
    obj: &mut Value,
) -> Result<Vec<String>, String> {
    let mut found = Found::default();
    walk_kind(group, version, kind, obj, &mut found);
    match found.undecodable {
        Some(e) => Err(e),
        None => Ok(found.unknown),
    }
}

/// What a walk finds: unknown field paths, and the first value typed decoding rejects.
#[derive(Default)]
struct Found {
    unknown: Vec<String>,
    undecodable: Option<String>,
    /// Walking a CRD's structural schema, where an object declaring no properties holds
    /// nothing (upstream prunes what it is given). Not in the built-in definitions
    /// referenced from it, whose free-form objects (e.g. `fieldsV1`) have no properties.
    structural: bool,
}

/// Go's base64 decoding error for a `[]byte` field, or `None` when it decodes.
fn base64_error(s: &str) -> Option<String> {
    use base64::DecodeError;
    use base64::Engine as _;
    let at = match base64::engine::general_purpose::STANDARD.decode(s) {
        Ok(_) => return None,
        Err(DecodeError::InvalidByte(at, _) | DecodeError::InvalidLastSymbol(at, _)) => at,
        Err(DecodeError::InvalidLength(_) | DecodeError::InvalidPadding) => s.len(),
    };
    Some(format!("illegal base64 data at input byte {at}"))
}

/// Maximum nesting followed (deeper documents are not checked further).
const MAX_DEPTH: usize = 64;

/// Resolve `$ref` / `allOf` wrappers to a schema object. A bare string is a definition name.
fn resolve(schema: &Value) -> Option<&'static Value> {
    let defs = openapi::all_definitions();
    let mut name = match schema {
        Value::String(n) => Some(n.as_str()),
        _ => ref_name(schema),
    }?;
    for _ in 0..8 {
        let s = defs.get(name)?;
        match ref_name(s) {
            Some(next) if s.get("properties").is_none() => name = next,
            _ => return Some(s),
        }
    }
    None
}

fn ref_name(schema: &Value) -> Option<&str> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next();
    }
    schema
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|all| {
            all.iter()
                .find_map(|s| s.get("$ref").and_then(Value::as_str))
        })
        .and_then(|r| r.rsplit('/').next())
}

fn walk(schema: &Value, v: &mut Value, path: &str, found: &mut Found, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let referenced = match schema {
        Value::String(_) => true,
        s => ref_name(s).is_some() && s.get("properties").is_none(),
    };
    if !referenced {
        walk_resolved(schema, v, path, found, depth);
        return;
    }
    // A schema reached through `resolve` is 'static; an inline one borrows `schema`.
    let Some(resolved) = resolve(schema) else {
        return;
    };
    let structural = std::mem::replace(&mut found.structural, false);
    walk_resolved(resolved, v, path, found, depth);
    found.structural = structural;
}

fn walk_resolved(schema: &Value, v: &mut Value, path: &str, found: &mut Found, depth: usize) {
    if schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return;
    }
    match v {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                walk_properties(props, map, path, found, depth);
            } else if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for (k, child) in map.iter_mut() {
                    walk(extra, child, &join(path, k), found, depth + 1);
                }
            } else if found.structural
                && schema.get("type").and_then(Value::as_str) == Some("object")
            {
                found.unknown.extend(map.keys().map(|k| join(path, k)));
                map.clear();
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), found, depth + 1);
                }
            }
        }
        Value::String(text)
            if found.undecodable.is_none()
                && schema.get("format").and_then(Value::as_str) == Some("byte") =>
        {
            found.undecodable = base64_error(text);
        }
        _ => {}
    }
}

fn walk_properties(
    props: &Map<String, Value>,
    map: &mut Map<String, Value>,
    path: &str,
    found: &mut Found,
    depth: usize,
) {
    let mut unknown = Vec::new();
    for (k, child) in map.iter_mut() {
        match props.get(k) {
            Some(prop) => walk(prop, child, &join(path, k), found, depth + 1),
            None => {
                found.unknown.push(join(path, k));
                unknown.push(k.clone());
            }
        }
    }
    for k in unknown {
        map.remove(&k);
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_and_drops_unknown_fields_at_every_depth() {
        let mut d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"any": "thing"}, "bogus": 1},
            "spec": {
                "replicas": 1, "nope": true,
                "selector": {"matchLabels": {"a": "b"}},
                "strategy": {"rollingUpdate": {"maxSurge": "25%"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
                    {"name": "c", "image": "i", "imagePullPolicyX": "Always",
                     "resources": {"limits": {"cpu": "1"}}, "ports": [{"containerPort": 80, "extra": 1}]}
                ]}}
            }
        });
        let found = prune_unknown_fields("apps", "v1", "Deployment", &mut d);
        assert_eq!(
            found,
            vec![
                "metadata.bogus",
                "spec.nope",
                "spec.template.spec.containers[0].imagePullPolicyX",
                "spec.template.spec.containers[0].ports[0].extra",
            ]
        );
        assert!(d["spec"].get("nope").is_none());
        assert_eq!(d["metadata"]["labels"]["any"], "thing");
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    }

    #[test]
    fn custom_resources_prune_by_their_structural_schema() {
        crate::catalog::custom::register(&json!({"spec": {
            "group": "prune.fieldvalidation-test.example.com", "scope": "Namespaced",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "properties": {
                    "size": {"type": "integer"},
                    "empty": {"type": "object"},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                }}}
            }}}]
        }}));
        let mut obj = json!({
            "apiVersion": "prune.fieldvalidation-test.example.com/v1", "kind": "Thing",
            "metadata": {"name": "t", "bogus": 1, "managedFields": [{"fieldsV1": {"f:spec": {}}}]},
            "spec": {"size": 1, "extra": true, "empty": {"x": 1}, "free": {"y": {"z": 2}}},
            "status": {"anything": 1}
        });
        let found = prune_unknown_fields(
            "prune.fieldvalidation-test.example.com",
            "v1",
            "Thing",
            &mut obj,
        );
        assert_eq!(
            found,
            ["metadata.bogus", "spec.empty.x", "spec.extra", "status"]
        );
        assert_eq!(
            obj["spec"],
            json!({"size": 1, "empty": {}, "free": {"y": {"z": 2}}})
        );
        assert_eq!(
            obj["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:spec": {}})
        );
    }

    #[test]
    fn byte_fields_must_be_base64() {
        let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"ok": "aGk=", "bad": "%%%not-base64"}});
        assert_eq!(
            prune_and_check("", "v1", "Secret", &mut secret),
            Err("illegal base64 data at input byte 0".to_string())
        );
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"k": "%%%"}, "binaryData": {"b": "aGk=", "c": "aGk"}});
        assert_eq!(
            prune_and_check("", "v1", "ConfigMap", &mut cm),
            Err("illegal base64 data at input byte 3".to_string())
        );
        let mut fine = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"ok": "aGk="}, "extra": 1});
        assert_eq!(
            prune_and_check("", "v1", "Secret", &mut fine),
            Ok(vec!["extra".to_string()])
        );
    }

    #[test]
    fn known_objects_are_untouched() {
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}});
        let before = cm.clone();
        assert!(prune_unknown_fields("", "v1", "ConfigMap", &mut cm).is_empty());
        assert_eq!(cm, before);
    }

    #[test]
    fn modes_parse() {
        assert_eq!(
            FieldValidation::from_param(None).unwrap(),
            FieldValidation::Warn
        );
        assert_eq!(
            FieldValidation::from_param(Some("Strict")).unwrap(),
            FieldValidation::Strict
        );
        assert!(FieldValidation::from_param(Some("strict")).is_err());
    }
}

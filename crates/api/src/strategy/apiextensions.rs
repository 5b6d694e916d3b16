//! CustomResourceDefinition (apiextensions.k8s.io/v1): upstream's defaults, the
//! validation users meet most (name = `<plural>.<group>`, scope, exactly one storage
//! version, a schema per version, patterns that compile, validation rules that compile:
//! see [`super::validation_rules::check_schema`]), and the status upstream's controllers
//! would write at once here: the names are accepted, the CRD is Established, the storage
//! version is recorded in `storedVersions`.

use super::validation::{is_dns1035_label, is_dns1123_subdomain};
use super::{FieldError, Strategy};
use serde_json::{Map, Value, json};

pub struct CustomResourceDefinitionStrategy;

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn versions(crd: &Value) -> &[Value] {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

impl Strategy for CustomResourceDefinitionStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        spec.entry("conversion")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|c| c.entry("strategy").or_insert_with(|| json!("None")));
        if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
            let kind = names
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if !kind.is_empty() {
                names
                    .entry("singular")
                    .or_insert_with(|| json!(kind.to_lowercase()));
                names
                    .entry("listKind")
                    .or_insert_with(|| json!(format!("{kind}List")));
            }
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let status = accepted_status(obj, &[]);
        if let Some(map) = obj.as_object_mut() {
            map.insert("status".into(), status);
        }
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let stored = super::json::str_list(old.pointer("/status/storedVersions"));
        let status = accepted_status(new, &stored);
        if let Some(map) = new.as_object_mut() {
            map.insert("status".into(), status);
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let group = text(obj, "/spec/group");
        if group.is_empty() {
            errs.push(FieldError::required("spec.group", ""));
        } else if !group.contains('.') {
            errs.push(FieldError::invalid(
                "spec.group",
                group,
                "should be a domain with at least one dot",
            ));
        } else if let Some(e) = is_dns1123_subdomain(group).first() {
            errs.push(FieldError::invalid("spec.group", group, e));
        }
        let plural = text(obj, "/spec/names/plural");
        let name = text(obj, "/metadata/name");
        if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
        for (field, value) in [
            ("plural", plural),
            ("singular", text(obj, "/spec/names/singular")),
        ] {
            if value.is_empty() {
                if field == "plural" {
                    errs.push(FieldError::required("spec.names.plural", ""));
                }
            } else if let Some(e) = is_dns1035_label(value).first() {
                errs.push(FieldError::invalid(format!("spec.names.{field}"), value, e));
            }
        }
        if text(obj, "/spec/names/kind").is_empty() {
            errs.push(FieldError::required("spec.names.kind", ""));
        }
        let scope = text(obj, "/spec/scope");
        if scope.is_empty() {
            errs.push(FieldError::required("spec.scope", ""));
        } else if !matches!(scope, "Cluster" | "Namespaced") {
            errs.push(FieldError::not_supported(
                "spec.scope",
                scope,
                &["Cluster", "Namespaced"],
            ));
        }
        let versions = versions(obj);
        if versions.is_empty() {
            errs.push(FieldError::invalid(
                "spec.versions",
                &Value::Array(Vec::new()),
                "must have exactly one version marked as storage version",
            ));
        }
        let storage = versions
            .iter()
            .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
            .count();
        if !versions.is_empty() && storage != 1 {
            errs.push(FieldError::invalid(
                "spec.versions",
                &Value::Array(versions.to_vec()),
                "must have exactly one version marked as storage version",
            ));
        }
        if !versions.is_empty()
            && !versions
                .iter()
                .any(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        {
            errs.push(FieldError::invalid(
                "spec.versions",
                &Value::Array(versions.to_vec()),
                "must have at least one version marked as served",
            ));
        }
        // Upstream validates its internal form, where a schema that every version shares
        // is the CRD's `spec.validation`: its errors are reported there, once.
        let schemas: Vec<Option<&Value>> = versions
            .iter()
            .map(|v| v.pointer("/schema/openAPIV3Schema"))
            .collect();
        let shared = !schemas.is_empty() && schemas.iter().all(|s| s.is_some() && *s == schemas[0]);
        let mut seen = Vec::new();
        for (i, v) in versions.iter().enumerate() {
            let name = text(v, "/name");
            let field = format!("spec.versions[{i}]");
            if name.is_empty() {
                errs.push(FieldError::required(format!("{field}.name"), ""));
            } else if let Some(e) = is_dns1035_label(name).first() {
                errs.push(FieldError::invalid(format!("{field}.name"), name, e));
            } else if seen.contains(&name) {
                errs.push(FieldError::duplicate(format!("{field}.name"), name));
            }
            seen.push(name);
            match v.pointer("/schema/openAPIV3Schema") {
                None => errs.push(FieldError::required(
                    format!("{field}.schema.openAPIV3Schema"),
                    "schemas are required",
                )),
                Some(_) if shared && i > 0 => {}
                Some(schema) => {
                    let at = if shared {
                        "spec.validation.openAPIV3Schema".to_string()
                    } else {
                        format!("{field}.schema.openAPIV3Schema")
                    };
                    check_patterns(schema, &at, &mut errs, 0);
                    super::validation_rules::check_schema(schema, &at, &mut errs);
                }
            }
            validate_scale(v, &field, &mut errs);
            validate_columns(v, &field, &mut errs);
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_create(new);
        let (scope, old_scope) = (text(new, "/spec/scope"), text(old, "/spec/scope"));
        if scope != old_scope && !old_scope.is_empty() {
            errs.push(FieldError::invalid(
                "spec.scope",
                scope,
                super::validation::FIELD_IMMUTABLE,
            ));
        }
        errs
    }
}

/// The `scale` subresource's paths must point into the object where the scale handler
/// reads and writes them (a bad path would write a stray top-level field).
fn validate_scale(version: &Value, field: &str, errs: &mut Vec<FieldError>) {
    let Some(scale) = version.pointer("/subresources/scale") else {
        return;
    };
    let field = format!("{field}.subresources.scale");
    let checks: [(&str, &[&str], &str, bool); 3] = [
        (
            "specReplicasPath",
            &[".spec."],
            "should be a json path under .spec",
            true,
        ),
        (
            "statusReplicasPath",
            &[".status."],
            "should be a json path under .status",
            true,
        ),
        (
            "labelSelectorPath",
            &[".spec.", ".status."],
            "should be a json path under either .spec or .status",
            false,
        ),
    ];
    for (key, prefixes, message, required) in checks {
        match scale.get(key).and_then(Value::as_str) {
            None if required => errs.push(FieldError::required(format!("{field}.{key}"), "")),
            None => {}
            Some(path) => {
                let under = prefixes
                    .iter()
                    .any(|p| path.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
                let plain = path
                    .split('.')
                    .skip(1)
                    .all(|seg| !seg.is_empty() && !seg.contains(['[', ']']));
                if !(under && plain) {
                    errs.push(FieldError::invalid(format!("{field}.{key}"), path, message));
                }
            }
        }
    }
}

/// Printer columns: a name, one of the column types, and a JSONPath.
fn validate_columns(version: &Value, field: &str, errs: &mut Vec<FieldError>) {
    const TYPES: [&str; 5] = ["boolean", "date", "integer", "number", "string"];
    let columns = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for (i, c) in columns.iter().enumerate() {
        let at = format!("{field}.additionalPrinterColumns[{i}]");
        if text(c, "/name").is_empty() {
            errs.push(FieldError::required(format!("{at}.name"), ""));
        }
        match text(c, "/type") {
            "" => errs.push(FieldError::required(format!("{at}.type"), "")),
            t if !TYPES.contains(&t) => {
                errs.push(FieldError::not_supported(format!("{at}.type"), t, &TYPES))
            }
            _ => {}
        }
        if text(c, "/jsonPath").is_empty() {
            errs.push(FieldError::required(format!("{at}.jsonPath"), ""));
        }
    }
}

/// Every `pattern` in the schema must compile: objects are validated against them.
fn check_patterns(schema: &Value, field: &str, errs: &mut Vec<FieldError>, depth: usize) {
    const MAX_DEPTH: usize = 64;
    if depth > MAX_DEPTH {
        return;
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Err(e) = regex::Regex::new(pattern)
    {
        errs.push(FieldError::invalid(
            format!("{field}.pattern"),
            pattern,
            &format!("must be a valid regular expression, but isn't: {e}"),
        ));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            check_patterns(
                prop,
                &format!("{field}.properties[{name}]"),
                errs,
                depth + 1,
            );
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = schema.get(key).filter(|s| s.is_object()) {
            check_patterns(sub, &format!("{field}.{key}"), errs, depth + 1);
        }
    }
}

/// The status upstream's naming and establishing controllers settle on for a CRD without
/// name conflicts; `stored` are the versions stored before (kept, as upstream keeps them
/// until a migration removes them).
fn accepted_status(crd: &Value, stored: &[&str]) -> Value {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut stored: Vec<String> = stored.iter().map(|s| s.to_string()).collect();
    if let Some(storage) = versions(crd)
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| text(v, "/name").to_string())
        && !stored.contains(&storage)
    {
        stored.push(storage);
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let previous = |kind: &str| {
        crd.pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(now))
    };
    let condition = |kind: &str, reason: &str, message: &str| {
        let mut c = Map::new();
        c.insert("type".into(), json!(kind));
        c.insert("status".into(), json!("True"));
        c.insert("lastTransitionTime".into(), previous(kind));
        c.insert("reason".into(), json!(reason));
        c.insert("message".into(), json!(message));
        Value::Object(c)
    };
    json!({
        "acceptedNames": names,
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com",
                "scope": "Namespaced",
                "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                              "schema": {"openAPIV3Schema": {"type": "object"}}}]
            }
        })
    }

    #[test]
    fn defaults_and_status_on_create() {
        let s = CustomResourceDefinitionStrategy;
        let mut obj = crd();
        s.default(&mut obj);
        s.prepare_for_create(&mut obj);
        assert_eq!(obj["spec"]["names"]["singular"], "crontab");
        assert_eq!(obj["spec"]["names"]["listKind"], "CronTabList");
        assert_eq!(obj["spec"]["conversion"]["strategy"], "None");
        assert_eq!(obj["status"]["acceptedNames"]["kind"], "CronTab");
        assert_eq!(obj["status"]["storedVersions"], json!(["v1"]));
        let types: Vec<&str> = obj["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["NamesAccepted", "Established"]);
        assert!(
            s.validate_create(&obj).is_empty(),
            "{:?}",
            s.validate_create(&obj)
        );
    }

    /// The fields the CRD strategy refuses in `obj`.
    fn refused_fields(obj: &Value) -> Vec<String> {
        CustomResourceDefinitionStrategy
            .validate_create(obj)
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn refuses_what_upstream_refuses() {
        let mut bad = crd();
        bad["metadata"]["name"] = json!("wrong");
        bad["spec"]["scope"] = json!("Global");
        bad["spec"]["versions"][0]["storage"] = json!(false);
        bad["spec"]["versions"][0]
            .as_object_mut()
            .unwrap()
            .remove("schema");
        assert_eq!(
            refused_fields(&bad),
            [
                "metadata.name",
                "spec.scope",
                "spec.versions",
                "spec.versions[0].schema.openAPIV3Schema"
            ]
        );
    }

    #[test]
    fn scale_paths_columns_and_patterns_are_checked() {
        let s = CustomResourceDefinitionStrategy;
        let mut bad = crd();
        bad["spec"]["versions"][0]["subresources"] = json!({"scale": {
            "specReplicasPath": ".", "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".metadata.labels"
        }});
        bad["spec"]["versions"][0]["additionalPrinterColumns"] =
            json!([{"name": "X", "type": "text", "jsonPath": ".spec.x"}, {"type": "date"}]);
        bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({"type": "object",
            "properties": {"spec": {"type": "object", "properties": {"id": {"type": "string", "pattern": "("}}}}});
        assert_eq!(
            refused_fields(&bad),
            [
                "spec.validation.openAPIV3Schema.properties[spec].properties[id].pattern",
                "spec.versions[0].subresources.scale.specReplicasPath",
                "spec.versions[0].subresources.scale.labelSelectorPath",
                "spec.versions[0].additionalPrinterColumns[0].type",
                "spec.versions[0].additionalPrinterColumns[1].name",
                "spec.versions[0].additionalPrinterColumns[1].jsonPath",
            ]
        );
        let mut good = crd();
        good["spec"]["versions"][0]["subresources"] = json!({"scale": {
            "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector"
        }});
        assert!(s.validate_create(&good).is_empty());
    }

    #[test]
    fn stored_versions_accumulate() {
        let s = CustomResourceDefinitionStrategy;
        let mut old = crd();
        s.prepare_for_create(&mut old);
        let mut new = crd();
        new["spec"]["versions"] = json!([
            {"name": "v1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {}}},
            {"name": "v2", "served": true, "storage": true, "schema": {"openAPIV3Schema": {}}}
        ]);
        s.prepare_for_update(&mut new, &old);
        assert_eq!(new["status"]["storedVersions"], json!(["v1", "v2"]));
    }
}

//! Objects of custom resources: defaulted from (`default`) and validated against their CRD
//! version's OpenAPI v3 schema, with upstream's messages for the checks users meet (`type`, `required`,
//! `enum`, bounds, lengths, `pattern`, item counts). Unknown fields were pruned before
//! (see `fieldvalidation`). Then the CEL validation rules (`x-kubernetes-validations`,
//! compiled once per served version: see [`super::validation_rules`]) are evaluated,
//! with the old object on updates for transition rules, unless the schema checks found an
//! error that makes the object unfit for them (as upstream).

use super::errors::go_quote;
use super::{FieldError, Strategy};
use crate::catalog::custom;
use serde_json::Value;

pub struct CustomResourceStrategy;

/// The served version `obj` (by its apiVersion and kind) belongs to.
fn served_for(obj: &Value) -> Option<std::sync::Arc<custom::Served>> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    custom::served_kind(group, version, kind)
}

impl Strategy for CustomResourceStrategy {
    /// The schema's `default`s fill missing fields, as upstream's structural defaulting.
    fn default(&self, obj: &mut Value) {
        if let Some(served) = served_for(obj) {
            apply_defaults(&served.schema, obj, 0);
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        validate(obj, None)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        validate(new, Some(old))
    }
}

/// Schema errors after which upstream does not evaluate the validation rules (the object
/// is not of the shape the rules were written for).
const BLOCKING: [&str; 5] = [
    "FieldValueNotSupported",
    "FieldValueRequired",
    "FieldValueTooLong",
    "FieldValueTooMany",
    "FieldValueTypeInvalid",
];

fn validate(obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let Some(served) = served_for(obj) else {
        return Vec::new();
    };
    let mut errors = Vec::new();
    check(&served.schema, obj, "", &mut errors, 0);
    if let Some(rules) = &served.rules {
        if errors.iter().any(|e| BLOCKING.contains(&e.reason)) {
            errors.push(FieldError::invalid(
                "<nil>",
                "null",
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
        } else {
            errors.extend(rules.validate(obj, old));
        }
    }
    errors
}

/// Sets every missing property that has a `default` in `schema`, at every depth of `v`.
fn apply_defaults(schema: &Value, v: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, prop) in props {
                    if let Some(default) = prop.get("default")
                        && map.get(k).is_none_or(Value::is_null)
                        && !(map.get(k).is_some_and(Value::is_null)
                            && prop.get("nullable").and_then(Value::as_bool) == Some(true))
                    {
                        map.insert(k.clone(), default.clone());
                    }
                    if let Some(child) = map.get_mut(k) {
                        apply_defaults(prop, child, depth + 1);
                    }
                }
            } else if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for child in map.values_mut() {
                    apply_defaults(extra, child, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item_schema, item, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Deeper documents are not checked further.
const MAX_DEPTH: usize = 64;

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A value as upstream's messages quote it.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => go_quote(s),
        other => other.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A value of the wrong type (upstream's `field.TypeInvalid`: an `Invalid value` message
/// with its own reason).
fn type_invalid(path: &str, actual: &str, detail: &str) -> FieldError {
    FieldError {
        reason: "FieldValueTypeInvalid",
        ..FieldError::invalid(path, actual, detail)
    }
}

fn check(schema: &Value, v: &Value, path: &str, errors: &mut Vec<FieldError>, depth: usize) {
    // `metadata` is ObjectMeta, checked by the registry; references are not followed.
    if depth > MAX_DEPTH || schema.get("$ref").is_some() {
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if v.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true)
            && schema.get("type").is_some()
        {
            let expected = schema.get("type").and_then(Value::as_str).unwrap_or("");
            errors.push(type_invalid(
                path,
                "null",
                &format!("{path} in body must be of type {expected}: \"null\""),
            ));
        }
        return;
    }
    if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        let actual = type_name(v);
        let fits = actual == expected
            || (expected == "number" && actual == "integer")
            || (int_or_string && matches!(actual, "integer" | "string"));
        if !fits {
            errors.push(type_invalid(
                path,
                actual,
                &format!("{path} in body must be of type {expected}: \"{actual}\""),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        let options: Vec<String> = allowed.iter().map(shown).collect();
        let options: Vec<&str> = options.iter().map(String::as_str).collect();
        errors.push(FieldError {
            reason: "FieldValueNotSupported",
            field: path.to_string(),
            message: format!(
                "Unsupported value: {}: supported values: {}",
                shown(v),
                options.join(", ")
            ),
        });
    }
    match v {
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(0.0), v, path, errors),
        Value::String(s) => check_string(schema, s, v, path, errors),
        Value::Array(items) => {
            check_count(schema, items.len(), "Items", "items", v, path, errors);
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(
                        item_schema,
                        item,
                        &format!("{path}[{i}]"),
                        errors,
                        depth + 1,
                    );
                }
            }
        }
        Value::Object(map) => {
            for required in super::json::str_list(schema.get("required")) {
                if !map.contains_key(required) {
                    errors.push(FieldError::required(join(path, required), ""));
                }
            }
            check_count(
                schema,
                map.len(),
                "Properties",
                "properties",
                v,
                path,
                errors,
            );
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            for (k, child) in map {
                match (props.and_then(|p| p.get(k)), extra) {
                    (Some(s), _) | (None, Some(s)) => {
                        check(s, child, &join(path, k), errors, depth + 1)
                    }
                    (None, None) => {}
                }
            }
        }
        _ => {}
    }
}

fn check_number(schema: &Value, n: f64, v: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let bound = |k: &str| schema.get(k).and_then(Value::as_f64);
    let exclusive = |k: &str| schema.get(k).and_then(Value::as_bool) == Some(true);
    let shown_bound = |k: &str| schema.get(k).map(Value::to_string).unwrap_or_default();
    if let Some(max) = bound("maximum") {
        let (bad, words) = if exclusive("exclusiveMaximum") {
            (n >= max, "less than")
        } else {
            (n > max, "less than or equal to")
        };
        if bad {
            errors.push(FieldError::invalid(
                path,
                v,
                &format!(
                    "{path} in body should be {words} {}",
                    shown_bound("maximum")
                ),
            ));
        }
    }
    if let Some(min) = bound("minimum") {
        let (bad, words) = if exclusive("exclusiveMinimum") {
            (n <= min, "greater than")
        } else {
            (n < min, "greater than or equal to")
        };
        if bad {
            errors.push(FieldError::invalid(
                path,
                v,
                &format!(
                    "{path} in body should be {words} {}",
                    shown_bound("minimum")
                ),
            ));
        }
    }
    if let Some(m) = bound("multipleOf").filter(|m| *m != 0.0)
        && (n / m).fract() != 0.0
    {
        errors.push(FieldError::invalid(
            path,
            v,
            &format!(
                "{path} in body should be a multiple of {}",
                shown_bound("multipleOf")
            ),
        ));
    }
}

fn check_string(schema: &Value, s: &str, v: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let len = s.chars().count();
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len as u64 > max
    {
        errors.push(FieldError {
            reason: "FieldValueTooLong",
            field: path.to_string(),
            message: format!("Too long: may not be more than {max} bytes"),
        });
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (len as u64) < min
    {
        errors.push(FieldError::invalid(
            path,
            v,
            &format!("{path} in body should be at least {min} chars long"),
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Some(re) = compiled(pattern)
        && !re.is_match(s)
    {
        errors.push(FieldError::invalid(
            path,
            v,
            &format!("{path} in body should match '{pattern}'"),
        ));
    }
}

/// Schema patterns, compiled once (CRD validation already refused the ones that do not
/// compile). Bounded: cleared when it outgrows any sensible number of CRD patterns.
fn compiled(pattern: &str) -> Option<std::sync::Arc<regex::Regex>> {
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock, Mutex};
    const MAX_PATTERNS: usize = 4096;
    static CACHE: LazyLock<Mutex<HashMap<String, Arc<regex::Regex>>>> =
        LazyLock::new(Mutex::default);
    let mut cache = CACHE.lock().ok()?;
    if let Some(re) = cache.get(pattern) {
        return Some(re.clone());
    }
    let re = Arc::new(regex::Regex::new(pattern).ok()?);
    if cache.len() >= MAX_PATTERNS {
        cache.clear();
    }
    cache.insert(pattern.to_string(), re.clone());
    Some(re)
}

/// `minItems`/`maxItems` or `minProperties`/`maxProperties`.
fn check_count(
    schema: &Value,
    n: usize,
    suffix: &str,
    noun: &str,
    v: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(max) = schema
        .get(format!("max{suffix}").as_str())
        .and_then(Value::as_u64)
        && n as u64 > max
    {
        errors.push(FieldError {
            reason: "FieldValueTooMany",
            field: path.to_string(),
            message: format!("Too many: {n}: must have at most {max} {noun}"),
        });
    }
    if let Some(min) = schema
        .get(format!("min{suffix}").as_str())
        .and_then(Value::as_u64)
        && (n as u64) < min
    {
        errors.push(FieldError::invalid(
            path,
            v,
            &format!("{path} in body should have at least {min} {noun}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: Value, obj: Value) -> Vec<String> {
        let mut out = Vec::new();
        check(&schema, &obj, "", &mut out, 0);
        out.into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn defaults_fill_missing_fields_at_every_depth() {
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object",
            "properties": {
                "replicas": {"type": "integer", "default": 1},
                "mode": {"type": "string", "default": "fast", "nullable": true},
                "ports": {"type": "array", "items": {"type": "object", "properties": {
                    "protocol": {"type": "string", "default": "TCP"}
                }}}
            }
        }}});
        let mut obj = json!({"spec": {"mode": null, "ports": [{"port": 80}, {"protocol": "UDP"}]}});
        apply_defaults(&schema, &mut obj, 0);
        assert_eq!(
            obj,
            json!({"spec": {"replicas": 1, "mode": null,
                "ports": [{"port": 80, "protocol": "TCP"}, {"protocol": "UDP"}]}})
        );
        let mut empty = json!({});
        apply_defaults(&schema, &mut empty, 0);
        assert_eq!(empty, json!({}), "no spec, nothing to default inside it");
    }

    #[test]
    fn upstream_messages() {
        let schema = json!({"type": "object", "properties": {"spec": {
            "type": "object", "required": ["image"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
                "port": {"x-kubernetes-int-or-string": true},
                "tags": {"type": "array", "maxItems": 1, "items": {"type": "string"}},
                "ratio": {"type": "number"}
            }
        }}});
        assert_eq!(
            errors(
                schema.clone(),
                json!({"spec": {"replicas": "x", "mode": "c", "name": "ABCDEFG",
                "tags": ["a", 2], "ratio": 1}})
            ),
            [
                "spec.image: Required value",
                "spec.mode: Unsupported value: \"c\": supported values: \"a\", \"b\"",
                "spec.name: Too long: may not be more than 5 bytes",
                "spec.name: Invalid value: \"ABCDEFG\": spec.name in body should match '^[a-z]+$'",
                "spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\"",
                "spec.tags: Too many: 2: must have at most 1 items",
                "spec.tags[1]: Invalid value: \"integer\": spec.tags[1] in body must be of type string: \"integer\"",
            ]
        );
        assert_eq!(
            errors(
                schema.clone(),
                json!({"spec": {"image": "i", "replicas": 11, "port": "http"}})
            ),
            [
                "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"
            ]
        );
        assert!(
            errors(
                schema,
                json!({"spec": {"image": "i", "replicas": 3, "port": 80}})
            )
            .is_empty()
        );
    }
}

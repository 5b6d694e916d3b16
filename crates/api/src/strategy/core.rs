//! Core kinds with small behaviours: Namespace, ConfigMap, Secret, Node, Endpoints,
//! LimitRange, ResourceQuota (Events are in [`super::event`]).

use base64::Engine as _;
use serde_json::{Value, json};

use super::apps::clear_status;
use super::compare::semantic_eq;
use super::errors::Raw;
use super::json::{
    Errs, child, default_str, each_obj_mut, ensure_obj, get, get_arr, get_bool, get_str, index,
    key, opt_arr, opt_bool, opt_obj, opt_str, opt_str_list, str_at, with_obj,
};
use super::validation::{
    IS_NEGATIVE, NameRule, is_config_map_key, is_qualified_name, is_valid_label_value,
};
use super::{FieldError, Strategy};

pub struct NamespaceStrategy;
pub struct ConfigMapStrategy;
pub struct SecretStrategy;
pub struct NodeStrategy;
pub struct EndpointsStrategy;
pub struct LimitRangeStrategy;
pub struct ResourceQuotaStrategy;

/// ConfigMap and Secret payload limit.
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";

// ---- Namespace ----

impl Strategy for NamespaceStrategy {
    fn default(&self, obj: &mut Value) {
        let name = str_at(obj, &["metadata", "name"]).to_string();
        let Some(o) = obj.as_object_mut() else { return };
        if !name.is_empty()
            && let Some(labels) = ensure_obj(o, "metadata").and_then(|m| ensure_obj(m, "labels"))
        {
            labels.insert("kubernetes.io/metadata.name".into(), json!(name));
        }
        if let Some(status) = ensure_obj(o, "status") {
            default_str(status, "phase", "Active");
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        o.insert("status".into(), json!({"phase": "Active"}));
        let Some(spec) = ensure_obj(o, "spec") else {
            return;
        };
        let has = get_arr(&Value::Object(spec.clone()), "finalizers")
            .iter()
            .any(|f| f.as_str() == Some("kubernetes"));
        if !has {
            match spec.get_mut("finalizers").and_then(Value::as_array_mut) {
                Some(list) => list.push(json!("kubernetes")),
                None => {
                    spec.insert("finalizers".into(), json!(["kubernetes"]));
                }
            }
        }
    }

    /// Finalizers change only through the `finalize` subresource.
    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let old_fin = get(old, "spec").and_then(|s| get(s, "finalizers")).cloned();
        let Some(o) = new.as_object_mut() else { return };
        let Some(spec) = ensure_obj(o, "spec") else {
            return;
        };
        match old_fin {
            Some(f) => spec.insert("finalizers".into(), f),
            None => spec.remove("finalizers"),
        };
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let Some(spec) = opt_obj(obj, "spec", "", &mut errs) else {
            return errs;
        };
        if let Some(list) = opt_str_list(spec, "finalizers", "spec", &mut errs) {
            for f in list {
                for m in is_qualified_name(f) {
                    errs.push(FieldError::invalid("spec.finalizers", f, &m));
                }
                if !f.contains('/') && !matches!(f, "kubernetes" | "orphan" | "foregroundDeletion")
                {
                    errs.push(FieldError::invalid(
                        "spec.finalizers",
                        f,
                        "name is neither a standard finalizer name nor is it fully qualified",
                    ));
                }
            }
        }
        errs
    }

    fn field_selector_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![(
            "status.phase",
            str_at(obj, &["status", "phase"]).to_string(),
        )]
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1123Label
    }
}

// ---- ConfigMap / Secret ----

fn immutable_payload(new: &Value, old: &Value, fields: &[&str], errs: &mut Errs) {
    if get_bool(old, "immutable") != Some(true) {
        return;
    }
    if get_bool(new, "immutable") != Some(true) {
        errs.push(FieldError::forbidden("immutable", IMMUTABLE_WHEN_SET));
    }
    for f in fields {
        if !semantic_eq(get(new, f), get(old, f)) {
            errs.push(FieldError::forbidden(*f, IMMUTABLE_WHEN_SET));
        }
    }
}

impl Strategy for ConfigMapStrategy {
    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let data = opt_obj(obj, "data", "", &mut errs);
        let binary = opt_obj(obj, "binaryData", "", &mut errs);
        opt_bool(obj, "immutable", "", &mut errs);
        let mut total = 0usize;
        if let Some(m) = data.and_then(Value::as_object) {
            for (k, v) in m {
                let p = key("data", k);
                for msg in is_config_map_key(k) {
                    errs.push(FieldError::invalid(&p, k.as_str(), &msg));
                }
                if binary.and_then(|b| get(b, k)).is_some() {
                    errs.push(FieldError::invalid(
                        &p,
                        k.as_str(),
                        "duplicate of key present in binaryData",
                    ));
                }
                match v {
                    Value::String(s) => total = total.saturating_add(s.len()),
                    Value::Null => {}
                    other => errs.push(FieldError::type_invalid(&p, other, "string")),
                }
            }
        }
        if let Some(m) = binary.and_then(Value::as_object) {
            for (k, v) in m {
                let p = key("binaryData", k);
                for msg in is_config_map_key(k) {
                    errs.push(FieldError::invalid(&p, k.as_str(), &msg));
                }
                if data.and_then(|d| get(d, k)).is_some() {
                    errs.push(FieldError::invalid(
                        &p,
                        k.as_str(),
                        "duplicate of key present in data",
                    ));
                }
                total = total.saturating_add(decoded_len(v, &p, &mut errs));
            }
        }
        if total > MAX_SECRET_SIZE {
            errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_create(new);
        immutable_payload(new, old, &["data", "binaryData"], &mut errs);
        errs
    }
}

/// Length of a base64 `[]byte` field, reporting undecodable input.
fn decoded_len(v: &Value, path: &str, errs: &mut Errs) -> usize {
    match v {
        Value::Null => 0,
        Value::String(s) => match base64::engine::general_purpose::STANDARD.decode(s) {
            Ok(b) => b.len(),
            Err(e) => {
                errs.push(FieldError::invalid(
                    path,
                    "<secret contents redacted>",
                    &format!("illegal base64 data: {e}"),
                ));
                0
            }
        },
        other => {
            errs.push(FieldError::type_invalid(path, other, "base64 string"));
            0
        }
    }
}

impl Strategy for SecretStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        default_str(o, "type", "Opaque");
        // v1 conversion folds `stringData` into `data` (stringData wins) and drops it.
        if let Some(Value::Object(sd)) = o.remove("stringData")
            && let Some(data) = ensure_obj(o, "data")
        {
            for (k, v) in sd {
                if let Some(s) = v.as_str() {
                    let enc = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
                    data.insert(k, json!(enc));
                }
            }
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let data = opt_obj(obj, "data", "", &mut errs);
        opt_bool(obj, "immutable", "", &mut errs);
        let mut total = 0usize;
        let has = |k: &str| data.and_then(|d| get(d, k)).is_some();
        if let Some(m) = data.and_then(Value::as_object) {
            for (k, v) in m {
                let p = key("data", k);
                for msg in is_config_map_key(k) {
                    errs.push(FieldError::invalid(&p, k.as_str(), &msg));
                }
                total = total.saturating_add(decoded_len(v, &p, &mut errs));
            }
        }
        if total > MAX_SECRET_SIZE {
            errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
        }
        let ty = opt_str(obj, "type", "", &mut errs).unwrap_or("");
        let required =
            |k: &str, errs: &mut Errs| errs.push(FieldError::required(key("data", k), ""));
        match ty {
            "kubernetes.io/service-account-token"
                if str_at(
                    obj,
                    &[
                        "metadata",
                        "annotations",
                        "kubernetes.io/service-account.name",
                    ],
                )
                .is_empty() =>
            {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
            "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
                let k = if ty == "kubernetes.io/dockercfg" {
                    ".dockercfg"
                } else {
                    ".dockerconfigjson"
                };
                match data.and_then(|d| get_str(d, k)) {
                    None => required(k, &mut errs),
                    Some(b64) => {
                        let parsed = base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .ok()
                            .and_then(|b| {
                                serde_json::from_slice::<serde_json::Map<String, Value>>(&b).ok()
                            });
                        if parsed.is_none() {
                            errs.push(FieldError::invalid(
                                key("data", k),
                                "<secret contents redacted>",
                                "invalid character in JSON document",
                            ));
                        }
                    }
                }
            }
            "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
                required("username", &mut errs);
                required("password", &mut errs);
            }
            "kubernetes.io/ssh-auth"
                if data
                    .and_then(|d| get_str(d, "ssh-privatekey"))
                    .unwrap_or("")
                    .is_empty() =>
            {
                required("ssh-privatekey", &mut errs);
            }
            "kubernetes.io/tls" => {
                if !has("tls.crt") {
                    required("tls.crt", &mut errs);
                }
                if !has("tls.key") {
                    required("tls.key", &mut errs);
                }
            }
            _ => {}
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_create(new);
        let nt = get_str(new, "type").unwrap_or("");
        if nt != get_str(old, "type").unwrap_or("") {
            errs.push(FieldError::invalid(
                "type",
                nt,
                super::validation::FIELD_IMMUTABLE,
            ));
        }
        immutable_payload(new, old, &["data"], &mut errs);
        errs
    }

    fn field_selector_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        vec![("type", get_str(obj, "type").unwrap_or("").to_string())]
    }
}

// ---- Node ----

impl Strategy for NodeStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) else {
            return;
        };
        if super::json::is_unset(status, "allocatable")
            && let Some(cap) = status.get("capacity").filter(|c| c.is_object()).cloned()
        {
            status.insert("allocatable".into(), cap);
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let Some(spec) = opt_obj(obj, "spec", "", &mut errs) else {
            return errs;
        };
        opt_bool(spec, "unschedulable", "spec", &mut errs);
        let Some(taints) = opt_arr(spec, "taints", "spec", &mut errs) else {
            return errs;
        };
        let mut seen = Vec::new();
        for (i, t) in taints.iter().enumerate() {
            let p = index("spec.taints", i);
            if !t.is_object() {
                errs.push(FieldError::type_invalid(&p, t, "object"));
                continue;
            }
            let k = opt_str(t, "key", &p, &mut errs).unwrap_or("");
            for m in is_qualified_name(k) {
                errs.push(FieldError::invalid(child(&p, "key"), k, &m));
            }
            let v = opt_str(t, "value", &p, &mut errs).unwrap_or("");
            let msgs = is_valid_label_value(v);
            if !msgs.is_empty() {
                errs.push(FieldError::invalid(child(&p, "value"), v, &msgs.join(";")));
            }
            let effect = opt_str(t, "effect", &p, &mut errs).unwrap_or("");
            match effect {
                "" => errs.push(FieldError::required(child(&p, "effect"), "")),
                "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
                other => errs.push(FieldError::not_supported(
                    child(&p, "effect"),
                    other,
                    &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                )),
            }
            if seen.contains(&(k, effect)) {
                let mut e = FieldError::duplicate(&p, &Raw(&t.to_string()));
                e.message
                    .push_str(": taints must be unique by key and effect pair");
                errs.push(e);
                continue;
            }
            seen.push((k, effect));
        }
        errs
    }

    fn field_selector_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let u = get(obj, "spec")
            .and_then(|s| get_bool(s, "unschedulable"))
            .unwrap_or(false);
        vec![("spec.unschedulable", u.to_string())]
    }
}

// ---- Endpoints / LimitRange / ResourceQuota ----

impl Strategy for EndpointsStrategy {
    fn default(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            each_obj_mut(o, "subsets", |s| {
                each_obj_mut(s, "ports", |p| default_str(p, "protocol", "TCP"))
            });
        }
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }
}

impl Strategy for LimitRangeStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        with_obj(o, "spec", |spec| {
            each_obj_mut(spec, "limits", |item| {
                if item.get("type").and_then(Value::as_str) != Some("Container") {
                    return;
                }
                let copy_missing =
                    |item: &mut serde_json::Map<String, Value>, from: &str, to: &str| {
                        let src = item
                            .get(from)
                            .and_then(Value::as_object)
                            .cloned()
                            .unwrap_or_default();
                        if let Some(dst) = ensure_obj(item, to) {
                            for (k, v) in src {
                                dst.entry(k).or_insert(v);
                            }
                        }
                    };
                copy_missing(item, "max", "default");
                copy_missing(item, "default", "defaultRequest");
                copy_missing(item, "min", "defaultRequest");
            });
        });
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }
}

impl Strategy for ResourceQuotaStrategy {
    fn prepare_for_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Some(hard) = get(obj, "spec").and_then(|s| get(s, "hard")) {
            let Some(m) = hard.as_object() else {
                return vec![FieldError::type_invalid("spec.hard", hard, "object")];
            };
            for (k, v) in m {
                let p = key("spec.hard", k);
                match v.as_str().map(super::quantity::parse_quantity) {
                    Some(Ok(milli)) if milli < 0 => {
                        errs.push(FieldError::invalid(
                            &p,
                            v.as_str().unwrap_or(""),
                            IS_NEGATIVE,
                        ));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => errs.push(FieldError::invalid(
                        &p,
                        v.as_str().unwrap_or(""),
                        &e.to_string(),
                    )),
                    None => errs.push(FieldError::type_invalid(&p, v, "quantity string")),
                }
            }
        }
        errs
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;

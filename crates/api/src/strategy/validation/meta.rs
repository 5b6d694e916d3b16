//! `ObjectMeta` validation: labels, annotations, owner references, finalizers, and the
//! immutable identity fields on update.

use serde_json::Value;

use super::{
    FIELD_IMMUTABLE, NameRule, TOTAL_ANNOTATION_SIZE_LIMIT, is_qualified_name,
    is_valid_label_value, validate_name, validate_nonnegative,
};
use crate::strategy::FieldError;
use crate::strategy::errors::{Raw, go_string_slice};
use crate::strategy::json::{
    self, Errs, child, get, index, opt_arr, opt_int, opt_str, opt_str_list, opt_str_map,
};

/// Validates label keys and values; `labels` is the (possibly junk) JSON map.
pub fn validate_labels(labels: &Value, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if labels.is_null() {
        return errs;
    }
    if let Some(entries) = json::str_map_of(labels, field, &mut errs) {
        validate_label_pairs(&entries, field, &mut errs);
    }
    errs
}

pub(crate) fn validate_label_pairs(entries: &[(&str, &str)], field: &str, errs: &mut Errs) {
    for (k, v) in entries {
        for m in is_qualified_name(k) {
            errs.push(FieldError::invalid(field, *k, &m));
        }
        for m in is_valid_label_value(v) {
            errs.push(FieldError::invalid(field, *v, &m));
        }
    }
}

/// Validates annotation keys and the total size limit.
pub fn validate_annotations(annotations: &Value, field: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if annotations.is_null() {
        return errs;
    }
    if let Some(entries) = json::str_map_of(annotations, field, &mut errs) {
        let mut total = 0usize;
        for (k, v) in &entries {
            for m in is_qualified_name(&k.to_lowercase()) {
                errs.push(FieldError::invalid(field, *k, &m));
            }
            total = total.saturating_add(k.len()).saturating_add(v.len());
        }
        if total > TOTAL_ANNOTATION_SIZE_LIMIT {
            errs.push(FieldError::too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT));
        }
    }
    errs
}

fn validate_owner_references(refs: &[Value], field: &str, errs: &mut Errs) {
    let mut first_controller: Option<String> = None;
    for (i, r) in refs.iter().enumerate() {
        let p = index(field, i);
        if !r.is_object() {
            errs.push(FieldError::type_invalid(p, r, "object"));
            continue;
        }
        let api_version = opt_str(r, "apiVersion", &p, errs).unwrap_or("");
        let kind = opt_str(r, "kind", &p, errs).unwrap_or("");
        let name = opt_str(r, "name", &p, errs).unwrap_or("");
        let uid = opt_str(r, "uid", &p, errs).unwrap_or("");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        if version.is_empty() {
            errs.push(FieldError::invalid(
                child(field, "apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(FieldError::invalid(
                child(field, "kind"),
                kind,
                "kind must not be empty",
            ));
        }
        if name.is_empty() {
            errs.push(FieldError::invalid(
                child(field, "name"),
                name,
                "name must not be empty",
            ));
        }
        if uid.is_empty() {
            errs.push(FieldError::invalid(
                child(field, "uid"),
                uid,
                "uid must not be empty",
            ));
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            errs.push(FieldError::invalid(
                field,
                &Raw(&r.to_string()),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if json::opt_bool(r, "controller", &p, errs) == Some(true) {
            let cur = format!("{kind}/{name}");
            match &first_controller {
                Some(first) => errs.push(FieldError::invalid(
                    field,
                    &Raw(&Value::Array(refs.to_vec()).to_string()),
                    &format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {cur}"
                    ),
                )),
                None => first_controller = Some(cur),
            }
        }
    }
}

fn validate_finalizers(list: &[&str], field: &str, errs: &mut Errs) {
    for f in list {
        for m in is_qualified_name(f) {
            errs.push(FieldError::invalid(field, *f, &m));
        }
        // Core's extra rule: unqualified finalizers must be one of the standard ones.
        if !f.contains('/') && !matches!(*f, "kubernetes" | "orphan" | "foregroundDeletion") {
            errs.push(FieldError::invalid(
                field,
                *f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    if list.contains(&"orphan") && list.contains(&"foregroundDeletion") {
        errs.push(FieldError::invalid(
            field,
            &Raw(&go_string_slice(list.iter().copied())),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// `ValidateObjectMeta`: name/generateName, namespace presence, generation, labels,
/// annotations, owner references and finalizers of `obj.metadata`.
pub fn validate_object_meta(obj: &Value, namespaced: bool, name_rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Value::Object(Default::default());
    let meta = match get(obj, "metadata") {
        Some(m) if m.is_object() => m,
        Some(other) => {
            errs.push(FieldError::type_invalid("metadata", other, "object"));
            &empty
        }
        None => &empty,
    };
    let p = "metadata";
    if let Some(gen_name) = opt_str(meta, "generateName", p, &mut errs).filter(|s| !s.is_empty()) {
        for m in validate_name(name_rule, gen_name, true) {
            errs.push(FieldError::invalid("metadata.generateName", gen_name, &m));
        }
    }
    match opt_str(meta, "name", p, &mut errs).filter(|s| !s.is_empty()) {
        None => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(name) => {
            for m in validate_name(name_rule, name, false) {
                errs.push(FieldError::invalid("metadata.name", name, &m));
            }
        }
    }
    let ns = opt_str(meta, "namespace", p, &mut errs).unwrap_or("");
    if namespaced {
        if ns.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        } else {
            for m in validate_name(NameRule::Dns1123Label, ns, false) {
                errs.push(FieldError::invalid("metadata.namespace", ns, &m));
            }
        }
    } else if !ns.is_empty() {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    if let Some(g) = opt_int(meta, "generation", p, &mut errs) {
        errs.extend(validate_nonnegative("metadata.generation", g));
    }
    if let Some(labels) = opt_str_map(meta, "labels", p, &mut errs) {
        validate_label_pairs(&labels, "metadata.labels", &mut errs);
    }
    if let Some(a) = get(meta, "annotations") {
        errs.extend(validate_annotations(a, "metadata.annotations"));
    }
    if let Some(refs) = opt_arr(meta, "ownerReferences", p, &mut errs) {
        validate_owner_references(refs, "metadata.ownerReferences", &mut errs);
    }
    if let Some(list) = opt_str_list(meta, "finalizers", p, &mut errs) {
        validate_finalizers(&list, "metadata.finalizers", &mut errs);
    }
    errs
}

/// `ValidateObjectMetaUpdate`: immutable identity fields, resourceVersion presence,
/// generation monotonicity, no new finalizers while deleting, plus label/annotation
/// validity of the new object.
pub fn validate_object_meta_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = Value::Object(Default::default());
    let nm = get(new, "metadata")
        .filter(|m| m.is_object())
        .unwrap_or(&empty);
    let om = get(old, "metadata")
        .filter(|m| m.is_object())
        .unwrap_or(&empty);
    if get(om, "deletionTimestamp").is_some() {
        let newf = json::get_arr(nm, "finalizers");
        let oldf = json::get_arr(om, "finalizers");
        let mut extra: Vec<&str> = newf
            .iter()
            .filter(|f| !oldf.contains(f))
            .filter_map(Value::as_str)
            .collect();
        extra.sort_unstable();
        extra.dedup();
        if !extra.is_empty() {
            errs.push(FieldError::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {}",
                    go_string_slice(extra)
                ),
            ));
        }
    }
    if json::get_str(nm, "resourceVersion")
        .unwrap_or("")
        .is_empty()
    {
        errs.push(FieldError::invalid(
            "metadata.resourceVersion",
            "",
            "must be specified for an update",
        ));
    }
    let ng = json::get_int(nm, "generation").unwrap_or(0);
    if ng < json::get_int(om, "generation").unwrap_or(0) {
        errs.push(FieldError::invalid(
            "metadata.generation",
            &ng,
            "must not be decremented",
        ));
    }
    for key in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        let nv = get(nm, key).cloned().unwrap_or(Value::Null);
        let ov = get(om, key).cloned().unwrap_or(Value::Null);
        if nv != ov && !(is_empty_string(&nv) && is_empty_string(&ov)) {
            errs.push(FieldError::invalid(
                format!("metadata.{key}"),
                &nv,
                FIELD_IMMUTABLE,
            ));
        }
    }
    if let Some(l) = get(nm, "labels") {
        errs.extend(validate_labels(l, "metadata.labels"));
    }
    if let Some(a) = get(nm, "annotations") {
        errs.extend(validate_annotations(a, "metadata.annotations"));
    }
    if let Some(refs) = opt_arr(nm, "ownerReferences", "metadata", &mut errs) {
        validate_owner_references(refs, "metadata.ownerReferences", &mut errs);
    }
    errs
}

fn is_empty_string(v: &Value) -> bool {
    v.is_null() || v.as_str() == Some("")
}

//! PersistentVolume, PersistentVolumeClaim and StorageClass.

use serde_json::{Value, json};

use super::compare::semantic_eq;
use super::errors::Raw;
use super::json::{
    Errs, child, default_str, default_value, ensure_obj, get, get_str, key, opt_obj, opt_str,
    opt_str_list, opt_str_map, str_at, with_obj,
};
use super::quantity::parse_quantity;
use super::validation::{FIELD_IMMUTABLE, is_dns1123_subdomain, validate_label_selector};
use super::{FieldError, Strategy};

pub struct PersistentVolumeStrategy;
pub struct PersistentVolumeClaimStrategy;
pub struct StorageClassStrategy;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const PV_SOURCES: &[&str] = &[
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "hostPath",
    "glusterfs",
    "nfs",
    "rbd",
    "quobyte",
    "iscsi",
    "cinder",
    "cephfs",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

fn spec_or_empty<'a>(obj: &'a Value, empty: &'a Value, errs: &mut Errs) -> &'a Value {
    match get(obj, "spec") {
        Some(s) if s.is_object() => s,
        Some(other) => {
            errs.push(FieldError::type_invalid("spec", other, "object"));
            empty
        }
        None => empty,
    }
}

fn validate_access_modes(spec: &Value, required_detail: &str, errs: &mut Errs) {
    let modes = opt_str_list(spec, "accessModes", "spec", errs).unwrap_or_default();
    if modes.is_empty() {
        errs.push(FieldError::required("spec.accessModes", required_detail));
    }
    for m in modes {
        if !ACCESS_MODES.contains(&m) {
            errs.push(FieldError::not_supported(
                "spec.accessModes",
                m,
                ACCESS_MODES,
            ));
        }
    }
}

/// `ValidatePositiveQuantityValue` on a quantity string.
fn positive_quantity(v: &str, path: &str, errs: &mut Errs) {
    match parse_quantity(v) {
        Ok(m) if m <= 0 => errs.push(FieldError::invalid(path, v, "must be greater than zero")),
        Ok(_) => {}
        Err(e) => errs.push(FieldError::invalid(path, v, &e.to_string())),
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

// ---- PersistentVolume ----

impl Strategy for PersistentVolumeStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        if let Some(spec) = ensure_obj(o, "spec") {
            default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
            default_value(spec, "volumeMode", json!("Filesystem"));
        }
        if let Some(status) = ensure_obj(o, "status") {
            default_str(status, "phase", "Pending");
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            o.insert(
                "status".into(),
                json!({"phase": "Pending", "lastPhaseTransitionTime": now_rfc3339()}),
            );
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let empty = json!({});
        let spec = spec_or_empty(obj, &empty, &mut errs);
        validate_access_modes(spec, "", &mut errs);
        match opt_str_map(spec, "capacity", "spec", &mut errs) {
            None => errs.push(FieldError::required("spec.capacity", "")),
            Some(cap) => {
                if cap.is_empty() {
                    errs.push(FieldError::required("spec.capacity", ""));
                }
                if !cap.iter().any(|(k, _)| *k == "storage") || cap.len() > 1 {
                    let shown = get(spec, "capacity").map_or_else(String::new, Value::to_string);
                    errs.push(FieldError::not_supported(
                        "spec.capacity",
                        &Raw(&shown),
                        &["storage"],
                    ));
                }
                for (k, v) in cap {
                    positive_quantity(v, &key("spec.capacity", k), &mut errs);
                }
            }
        }
        if let Some(p) = opt_str(spec, "persistentVolumeReclaimPolicy", "spec", &mut errs)
            .filter(|p| !p.is_empty())
            && !matches!(p, "Delete" | "Recycle" | "Retain")
        {
            errs.push(FieldError::not_supported(
                "spec.persistentVolumeReclaimPolicy",
                p,
                &["Delete", "Recycle", "Retain"],
            ));
        }
        if let Some(m) = opt_str(spec, "volumeMode", "spec", &mut errs)
            && m != "Block"
            && m != "Filesystem"
        {
            errs.push(FieldError::not_supported(
                "spec.volumeMode",
                m,
                &["Block", "Filesystem"],
            ));
        }
        let mut count = 0;
        for src in PV_SOURCES {
            let Some(s) = get(spec, src) else { continue };
            if count > 0 {
                errs.push(FieldError::forbidden(
                    child("spec", src),
                    "may not specify more than 1 volume type",
                ));
                continue;
            }
            count += 1;
            let sp = child("spec", src);
            if !s.is_object() {
                errs.push(FieldError::type_invalid(&sp, s, "object"));
                continue;
            }
            match *src {
                "hostPath" | "local"
                    if opt_str(s, "path", &sp, &mut errs).unwrap_or("").is_empty() =>
                {
                    errs.push(FieldError::required(child(&sp, "path"), ""));
                }
                "nfs" => {
                    for f in ["server", "path"] {
                        if opt_str(s, f, &sp, &mut errs).unwrap_or("").is_empty() {
                            errs.push(FieldError::required(child(&sp, f), ""));
                        }
                    }
                }
                "csi" => {
                    for f in ["driver", "volumeHandle"] {
                        if opt_str(s, f, &sp, &mut errs).unwrap_or("").is_empty() {
                            errs.push(FieldError::required(child(&sp, f), ""));
                        }
                    }
                }
                _ => {}
            }
        }
        if count == 0 {
            errs.push(FieldError::required("spec", "must specify a volume type"));
        }
        if get(spec, "local").is_some() && get(spec, "nodeAffinity").is_none() {
            errs.push(FieldError::required(
                "spec.nodeAffinity",
                "Local volume requires node affinity",
            ));
        }
        if let Some(sc) =
            opt_str(spec, "storageClassName", "spec", &mut errs).filter(|s| !s.is_empty())
        {
            for m in is_dns1123_subdomain(sc) {
                errs.push(FieldError::invalid("spec.storageClassName", sc, &m));
            }
        }
        opt_obj(spec, "claimRef", "spec", &mut errs);
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_create(new);
        let sources = |o: &Value| {
            let mut m = serde_json::Map::new();
            for src in PV_SOURCES {
                if let Some(v) = get(o, "spec").and_then(|s| get(s, src)) {
                    m.insert((*src).to_string(), v.clone());
                }
            }
            Value::Object(m)
        };
        if !semantic_eq(Some(&sources(new)), Some(&sources(old))) {
            errs.push(FieldError::forbidden(
                "spec.persistentvolumesource",
                "spec.persistentvolumesource is forbidden to be changed",
            ));
        }
        let nm = get(new, "spec").and_then(|s| get(s, "volumeMode"));
        let om = get(old, "spec").and_then(|s| get(s, "volumeMode"));
        if !semantic_eq(nm, om) {
            let shown = nm.map_or_else(
                || "null".to_string(),
                |v| {
                    use super::errors::BadValue;
                    v.render()
                },
            );
            errs.push(FieldError::invalid(
                "spec.volumeMode",
                &Raw(&shown),
                FIELD_IMMUTABLE,
            ));
        }
        errs
    }
}

// ---- PersistentVolumeClaim ----

impl Strategy for PersistentVolumeClaimStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        if let Some(spec) = ensure_obj(o, "spec") {
            default_value(spec, "volumeMode", json!("Filesystem"));
        }
        if let Some(status) = ensure_obj(o, "status") {
            default_str(status, "phase", "Pending");
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            o.insert("status".into(), json!({"phase": "Pending"}));
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let empty = json!({});
        let spec = spec_or_empty(obj, &empty, &mut errs);
        validate_pvc_spec(spec, &mut errs);
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_create(new);
        let bound = str_at(new, &["status", "phase"]) == "Bound";
        let mut ns = get(new, "spec").cloned().unwrap_or(json!({}));
        let mut os = get(old, "spec").cloned().unwrap_or(json!({}));
        let old_volume_name_empty = str_at(&os, &["volumeName"]).is_empty();
        for s in [&mut ns, &mut os] {
            let Some(m) = s.as_object_mut() else { continue };
            m.remove("volumeAttributesClassName");
            // The binder may set volumeName once.
            if old_volume_name_empty {
                m.remove("volumeName");
            }
            // Bound claims may be resized (checked below).
            if bound {
                with_obj(m, "resources", |r| {
                    with_obj(r, "requests", |q| {
                        q.remove("storage");
                    })
                });
            }
        }
        if !semantic_eq(Some(&ns), Some(&os)) {
            errs.push(FieldError::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
        let size = |o: &Value, path: &[&str]| parse_quantity(str_at(o, path)).ok();
        let new_size = size(new, &["spec", "resources", "requests", "storage"]);
        let old_size = size(old, &["spec", "resources", "requests", "storage"]);
        let status_size = size(old, &["status", "capacity", "storage"]);
        if let (Some(n), Some(o)) = (new_size, old_size)
            && n < o
            && status_size.is_none_or(|s| n <= s)
        {
            errs.push(FieldError::forbidden(
                "spec.resources.requests.storage",
                "field can not be less than status.capacity",
            ));
        }
        errs
    }
}

fn validate_pvc_spec(spec: &Value, errs: &mut Errs) {
    validate_access_modes(spec, "at least 1 access mode is required", errs);
    if let Some(sel) = get(spec, "selector") {
        validate_label_selector(sel, "spec.selector", errs);
    }
    let storage_path = "spec.resources[storage]";
    match get(spec, "resources")
        .and_then(|r| get(r, "requests"))
        .and_then(|q| get(q, "storage"))
    {
        None => errs.push(FieldError::required(storage_path, "")),
        Some(Value::String(s)) => positive_quantity(s, storage_path, errs),
        Some(other) => errs.push(FieldError::type_invalid(
            storage_path,
            other,
            "quantity string",
        )),
    }
    if let Some(sc) = opt_str(spec, "storageClassName", "spec", errs).filter(|s| !s.is_empty()) {
        for m in is_dns1123_subdomain(sc) {
            errs.push(FieldError::invalid("spec.storageClassName", sc, &m));
        }
    }
    if let Some(m) = opt_str(spec, "volumeMode", "spec", errs)
        && m != "Block"
        && m != "Filesystem"
    {
        errs.push(FieldError::not_supported(
            "spec.volumeMode",
            m,
            &["Block", "Filesystem"],
        ));
    }
}

// ---- StorageClass ----

impl Strategy for StorageClassStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        default_value(o, "reclaimPolicy", json!("Delete"));
        default_value(o, "volumeBindingMode", json!("Immediate"));
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        match opt_str(obj, "provisioner", "", &mut errs).unwrap_or("") {
            "" => errs.push(FieldError::required("provisioner", "")),
            p => {
                for m in super::validation::is_qualified_name(&p.to_lowercase()) {
                    errs.push(FieldError::invalid("provisioner", p, &m));
                }
            }
        }
        if let Some(rp) = opt_str(obj, "reclaimPolicy", "", &mut errs)
            && rp != "Delete"
            && rp != "Retain"
        {
            errs.push(FieldError::not_supported(
                "reclaimPolicy",
                rp,
                &["Delete", "Retain"],
            ));
        }
        if let Some(m) = opt_str(obj, "volumeBindingMode", "", &mut errs)
            && m != "Immediate"
            && m != "WaitForFirstConsumer"
        {
            errs.push(FieldError::not_supported(
                "volumeBindingMode",
                m,
                &["Immediate", "WaitForFirstConsumer"],
            ));
        }
        opt_str_map(obj, "parameters", "", &mut errs);
        super::json::opt_bool(obj, "allowVolumeExpansion", "", &mut errs);
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_create(new);
        if !semantic_eq(get(new, "parameters"), get(old, "parameters")) {
            errs.push(FieldError::forbidden(
                "parameters",
                "updates to parameters are forbidden.",
            ));
        }
        if get_str(new, "provisioner") != get_str(old, "provisioner") {
            errs.push(FieldError::forbidden(
                "provisioner",
                "updates to provisioner are forbidden.",
            ));
        }
        if get_str(new, "reclaimPolicy") != get_str(old, "reclaimPolicy") {
            errs.push(FieldError::forbidden(
                "reclaimPolicy",
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        let nm = get_str(new, "volumeBindingMode").unwrap_or("");
        if nm != get_str(old, "volumeBindingMode").unwrap_or("") {
            errs.push(FieldError::invalid(
                "volumeBindingMode",
                nm,
                FIELD_IMMUTABLE,
            ));
        }
        errs
    }
}

#[cfg(test)]
#[path = "storage_tests.rs"]
mod tests;

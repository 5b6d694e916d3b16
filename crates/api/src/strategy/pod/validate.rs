//! Pod spec validation (upstream `ValidatePodSpec` and the container, volume, probe,
//! toleration and resource checks it calls), on JSON input.

use std::collections::HashSet;

use serde_json::Value;

use super::container::{validate_container, validate_ephemeral_container};
use super::defaults::VOLUME_SOURCES;
use crate::strategy::FieldError;
use crate::strategy::errors::Raw;
use crate::strategy::json::{
    Errs, child, get, index, opt_arr, opt_bool, opt_int, opt_obj, opt_str, opt_str_map,
};
use crate::strategy::validation::{
    inclusive_range_error, is_dns1123_label, is_dns1123_subdomain, is_qualified_name,
    is_valid_label_value, validate_annotations, validate_label_pairs,
};

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const TAINT_EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

/// Validates a pod template (`spec.template` of workloads): its labels, annotations and
/// pod spec.
pub(crate) fn validate_pod_template(tpl: &Value, path: &str, errs: &mut Errs) {
    if !tpl.is_object() {
        errs.push(FieldError::type_invalid(path, tpl, "object"));
        return;
    }
    if let Some(meta) = opt_obj(tpl, "metadata", path, errs) {
        // ObjectMeta is embedded upstream, so these paths have no "metadata" segment.
        if let Some(labels) = opt_str_map(meta, "labels", path, errs) {
            validate_label_pairs(&labels, &child(path, "labels"), errs);
        }
        if let Some(a) = get(meta, "annotations") {
            errs.extend(validate_annotations(a, &child(path, "annotations")));
        }
    }
    let spec_path = child(path, "spec");
    match get(tpl, "spec") {
        Some(spec) => {
            validate_pod_spec(spec, &spec_path, errs);
            if get(spec, "ephemeralContainers").is_some() {
                errs.push(FieldError::forbidden(
                    child(&spec_path, "ephemeralContainers"),
                    "ephemeral containers not allowed in pod template",
                ));
            }
        }
        None => errs.push(FieldError::required(child(&spec_path, "containers"), "")),
    }
}

/// Validates a pod spec at `path` (e.g. `spec` or `spec.template.spec`).
pub(crate) fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Errs) {
    if !spec.is_object() {
        errs.push(FieldError::type_invalid(path, spec, "object"));
        return;
    }
    let volumes = validate_volumes(spec, path, errs);
    let host_network = opt_bool(spec, "hostNetwork", path, errs).unwrap_or(false);
    let mut names = HashSet::new();
    let cpath = child(path, "containers");
    match opt_arr(spec, "containers", path, errs) {
        None => errs.push(FieldError::required(&cpath, "")),
        Some([]) => errs.push(FieldError::required(&cpath, "")),
        Some(list) => {
            for (i, c) in list.iter().enumerate() {
                validate_container(
                    c,
                    &index(&cpath, i),
                    &volumes,
                    &mut names,
                    false,
                    host_network,
                    errs,
                );
            }
        }
    }
    let ipath = child(path, "initContainers");
    if let Some(list) = opt_arr(spec, "initContainers", path, errs) {
        for (i, c) in list.iter().enumerate() {
            validate_container(
                c,
                &index(&ipath, i),
                &volumes,
                &mut names,
                true,
                host_network,
                errs,
            );
        }
    }
    let targets = names.clone();
    let epath = child(path, "ephemeralContainers");
    if let Some(list) = opt_arr(spec, "ephemeralContainers", path, errs) {
        for (i, c) in list.iter().enumerate() {
            validate_ephemeral_container(
                c,
                &index(&epath, i),
                &volumes,
                &mut names,
                &targets,
                errs,
            );
        }
    }
    validate_restart_policy(spec, path, errs);
    match opt_str(spec, "dnsPolicy", path, errs) {
        None | Some("") => errs.push(FieldError::required(child(path, "dnsPolicy"), "")),
        Some(p) if !DNS_POLICIES.contains(&p) => {
            errs.push(FieldError::not_supported(
                child(path, "dnsPolicy"),
                p,
                DNS_POLICIES,
            ));
        }
        Some(_) => {}
    }
    if let Some(sel) = opt_str_map(spec, "nodeSelector", path, errs) {
        validate_label_pairs(&sel, &child(path, "nodeSelector"), errs);
    }
    for (field, check) in [
        (
            "serviceAccountName",
            is_dns1123_subdomain as fn(&str) -> Vec<String>,
        ),
        ("nodeName", is_dns1123_subdomain),
        ("priorityClassName", is_dns1123_subdomain),
        ("hostname", is_dns1123_label),
        ("subdomain", is_dns1123_label),
    ] {
        if let Some(v) = opt_str(spec, field, path, errs).filter(|v| !v.is_empty()) {
            for m in check(v) {
                errs.push(FieldError::invalid(child(path, field), v, &m));
            }
        }
    }
    if let Some(ads) = opt_int(spec, "activeDeadlineSeconds", path, errs)
        && !(1..=i64::from(i32::MAX)).contains(&ads)
    {
        errs.push(FieldError::invalid(
            child(path, "activeDeadlineSeconds"),
            &ads,
            &inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    opt_int(spec, "terminationGracePeriodSeconds", path, errs);
    opt_int(spec, "priority", path, errs);
    for f in [
        "hostPID",
        "hostIPC",
        "shareProcessNamespace",
        "automountServiceAccountToken",
        "enableServiceLinks",
    ] {
        opt_bool(spec, f, path, errs);
    }
    for f in ["securityContext", "affinity", "dnsConfig", "overhead"] {
        opt_obj(spec, f, path, errs);
    }
    if let Some(tols) = opt_arr(spec, "tolerations", path, errs) {
        validate_tolerations(tols, &child(path, "tolerations"), errs);
    }
    if let Some(list) = opt_arr(spec, "imagePullSecrets", path, errs) {
        for (i, s) in list.iter().enumerate() {
            if !s.is_object() {
                errs.push(FieldError::type_invalid(
                    index(&child(path, "imagePullSecrets"), i),
                    s,
                    "object",
                ));
            }
        }
    }
}

fn validate_restart_policy(spec: &Value, path: &str, errs: &mut Errs) {
    match opt_str(spec, "restartPolicy", path, errs) {
        None | Some("") => errs.push(FieldError::required(child(path, "restartPolicy"), "")),
        Some(p) if !RESTART_POLICIES.contains(&p) => {
            errs.push(FieldError::not_supported(
                child(path, "restartPolicy"),
                p,
                RESTART_POLICIES,
            ));
        }
        Some(_) => {}
    }
}

/// Validates `volumes` and returns the declared names.
fn validate_volumes(spec: &Value, path: &str, errs: &mut Errs) -> HashSet<String> {
    let mut names = HashSet::new();
    let vpath = child(path, "volumes");
    let Some(list) = opt_arr(spec, "volumes", path, errs) else {
        return names;
    };
    for (i, vol) in list.iter().enumerate() {
        let p = index(&vpath, i);
        if !vol.is_object() {
            errs.push(FieldError::type_invalid(&p, vol, "object"));
            continue;
        }
        validate_volume_source(vol, &p, errs);
        let name_path = child(&p, "name");
        match opt_str(vol, "name", &p, errs).unwrap_or("") {
            "" => errs.push(FieldError::required(&name_path, "")),
            name => {
                for m in is_dns1123_label(name) {
                    errs.push(FieldError::invalid(&name_path, name, &m));
                }
                if !names.insert(name.to_string()) {
                    errs.push(FieldError::duplicate(&name_path, name));
                }
            }
        }
    }
    names
}

fn validate_volume_source(vol: &Value, p: &str, errs: &mut Errs) {
    let mut count = 0;
    for source in VOLUME_SOURCES {
        let Some(src) = get(vol, source) else {
            continue;
        };
        if count > 0 {
            errs.push(FieldError::forbidden(
                child(p, source),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let sp = child(p, source);
        if !src.is_object() {
            errs.push(FieldError::type_invalid(&sp, src, "object"));
            continue;
        }
        match *source {
            "hostPath" => {
                if opt_str(src, "path", &sp, errs).unwrap_or("").is_empty() {
                    errs.push(FieldError::required(child(&sp, "path"), ""));
                }
                if let Some(t) = opt_str(src, "type", &sp, errs)
                    && !HOST_PATH_TYPES.contains(&t)
                {
                    errs.push(FieldError::not_supported(
                        child(&sp, "type"),
                        t,
                        HOST_PATH_TYPES,
                    ));
                }
            }
            "secret" => {
                required_str(src, "secretName", &sp, errs);
                validate_mode(src, "defaultMode", &sp, errs);
                validate_key_to_path_items(src, &sp, errs);
            }
            "configMap" => {
                required_str(src, "name", &sp, errs);
                validate_mode(src, "defaultMode", &sp, errs);
                validate_key_to_path_items(src, &sp, errs);
            }
            "persistentVolumeClaim" => required_str(src, "claimName", &sp, errs),
            "nfs" => {
                required_str(src, "server", &sp, errs);
                required_str(src, "path", &sp, errs);
            }
            "emptyDir" => {
                if let Some(q) = opt_str(src, "sizeLimit", &sp, errs) {
                    super::resources::validate_quantity_str(q, &child(&sp, "sizeLimit"), errs);
                }
            }
            "projected" | "downwardAPI" => validate_mode(src, "defaultMode", &sp, errs),
            _ => {}
        }
    }
    if count == 0 {
        errs.push(FieldError::required(p, "must specify a volume type"));
    }
}

pub(super) fn required_str(obj: &Value, field: &str, path: &str, errs: &mut Errs) {
    if opt_str(obj, field, path, errs).unwrap_or("").is_empty() {
        errs.push(FieldError::required(child(path, field), ""));
    }
}

fn validate_mode(obj: &Value, field: &str, path: &str, errs: &mut Errs) {
    if let Some(mode) = opt_int(obj, field, path, errs)
        && !(0..=0o777).contains(&mode)
    {
        errs.push(FieldError::invalid(
            child(path, field),
            &mode,
            "must be a number between 0 and 0777 (octal), both inclusive",
        ));
    }
}

fn validate_key_to_path_items(src: &Value, path: &str, errs: &mut Errs) {
    let Some(items) = opt_arr(src, "items", path, errs) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let p = index(&child(path, "items"), i);
        if !item.is_object() {
            errs.push(FieldError::type_invalid(&p, item, "object"));
            continue;
        }
        required_str(item, "key", &p, errs);
        required_str(item, "path", &p, errs);
        validate_mode(item, "mode", &p, errs);
    }
}

/// `ValidateTolerations`.
pub(crate) fn validate_tolerations(tols: &[Value], path: &str, errs: &mut Errs) {
    for (i, t) in tols.iter().enumerate() {
        let p = index(path, i);
        if !t.is_object() {
            errs.push(FieldError::type_invalid(&p, t, "object"));
            continue;
        }
        let k = opt_str(t, "key", &p, errs).unwrap_or("");
        let op = opt_str(t, "operator", &p, errs).unwrap_or("");
        let value = opt_str(t, "value", &p, errs).unwrap_or("");
        let effect = opt_str(t, "effect", &p, errs).unwrap_or("");
        let seconds = opt_int(t, "tolerationSeconds", &p, errs);
        if !k.is_empty() {
            for m in is_qualified_name(k) {
                errs.push(FieldError::invalid(child(&p, "key"), k, &m));
            }
        }
        if k.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                child(&p, "operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                child(&p, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "" | "Equal" => {
                let msgs = is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        child(&p, "operator"),
                        value,
                        &msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        child(&p, "operator"),
                        &Raw(&t.to_string()),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                child(&p, "operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !TAINT_EFFECTS.contains(&effect) {
            errs.push(FieldError::not_supported(
                child(&p, "effect"),
                effect,
                TAINT_EFFECTS,
            ));
        }
    }
}

/// Restart policy check for workload templates: `allowed` lists what the controller
/// supports (e.g. only `Always` for Deployments).
pub(crate) fn require_template_restart_policy(
    tpl: &Value,
    path: &str,
    allowed: &[&str],
    errs: &mut Errs,
) {
    let Some(rp) =
        crate::strategy::json::at(tpl, &["spec", "restartPolicy"]).and_then(Value::as_str)
    else {
        return;
    };
    if !allowed.contains(&rp) {
        errs.push(FieldError::not_supported(
            child(&child(path, "spec"), "restartPolicy"),
            rp,
            allowed,
        ));
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;

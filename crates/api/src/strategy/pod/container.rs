//! Container-level validation: names, images, policies, ports, env, volume mounts,
//! resources, probes and lifecycle handlers.

use std::collections::HashSet;

use serde_json::Value;

use super::resources::validate_resources;
use super::validate::required_str;
use crate::strategy::FieldError;
use crate::strategy::json::{
    Errs, IntOrStr, child, get, index, opt_arr, opt_bool, opt_int, opt_int_or_str, opt_obj,
    opt_str, opt_str_list,
};
use crate::strategy::validation::{
    inclusive_range_error, is_config_map_key, is_dns1123_label, is_qualified_name,
    is_relaxed_env_var_name, is_valid_port_name, is_valid_port_num, validate_nonnegative,
};

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

#[allow(clippy::too_many_arguments)]
pub(super) fn validate_container(
    c: &Value,
    p: &str,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    init: bool,
    host_network: bool,
    errs: &mut Errs,
) {
    if !c.is_object() {
        errs.push(FieldError::type_invalid(p, c, "object"));
        return;
    }
    let name_path = child(p, "name");
    match opt_str(c, "name", p, errs).unwrap_or("") {
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
    match opt_str(c, "image", p, errs).unwrap_or("") {
        "" => errs.push(FieldError::required(child(p, "image"), "")),
        img if img.trim() != img => errs.push(FieldError::invalid(
            child(p, "image"),
            img,
            "must not have leading or trailing whitespace",
        )),
        _ => {}
    }
    match opt_str(c, "imagePullPolicy", p, errs) {
        None | Some("") => errs.push(FieldError::required(child(p, "imagePullPolicy"), "")),
        Some(v) if !PULL_POLICIES.contains(&v) => {
            errs.push(FieldError::not_supported(
                child(p, "imagePullPolicy"),
                v,
                PULL_POLICIES,
            ));
        }
        Some(_) => {}
    }
    match opt_str(c, "terminationMessagePolicy", p, errs) {
        None | Some("") => errs.push(FieldError::required(
            child(p, "terminationMessagePolicy"),
            "must be 'File' or 'FallbackToLogsOnError'",
        )),
        Some("File" | "FallbackToLogsOnError") => {}
        Some(v) => errs.push(FieldError::not_supported(
            child(p, "terminationMessagePolicy"),
            v,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    opt_str_list(c, "command", p, errs);
    opt_str_list(c, "args", p, errs);
    opt_str(c, "workingDir", p, errs);
    if let Some(ports) = opt_arr(c, "ports", p, errs) {
        validate_container_ports(ports, &child(p, "ports"), host_network, errs);
    }
    if let Some(env) = opt_arr(c, "env", p, errs) {
        validate_env(env, &child(p, "env"), errs);
    }
    if let Some(mounts) = opt_arr(c, "volumeMounts", p, errs) {
        validate_volume_mounts(mounts, &child(p, "volumeMounts"), volumes, errs);
    }
    if let Some(res) = opt_obj(c, "resources", p, errs) {
        validate_resources(res, &child(p, "resources"), errs);
    }
    // Only sidecars (restartPolicy Always) may have probes among init containers.
    let sidecar = init && get(c, "restartPolicy").and_then(Value::as_str) == Some("Always");
    if let Some(rp) = opt_str(c, "restartPolicy", p, errs) {
        if !init {
            errs.push(FieldError::forbidden(
                child(p, "restartPolicy"),
                "may not be set for non-init containers",
            ));
        } else if rp != "Always" {
            errs.push(FieldError::not_supported(
                child(p, "restartPolicy"),
                rp,
                &["Always"],
            ));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(pr) = opt_obj(c, probe, p, errs) else {
            continue;
        };
        let pp = child(p, probe);
        if init && !sidecar {
            errs.push(FieldError::forbidden(
                &pp,
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        validate_probe(pr, &pp, probe != "readinessProbe", errs);
    }
    if let Some(lc) = opt_obj(c, "lifecycle", p, errs) {
        for hook in ["postStart", "preStop"] {
            if let Some(h) = opt_obj(lc, hook, &child(p, "lifecycle"), errs) {
                validate_handler(h, &child(&child(p, "lifecycle"), hook), false, errs);
            }
        }
    }
}

/// Fields an ephemeral container may not set (upstream allows only what a debugging
/// process needs: no ports, resources, probes or lifecycle hooks).
const EPHEMERAL_FORBIDDEN: &[&str] = &[
    "ports",
    "resources",
    "resizePolicy",
    "lifecycle",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "restartPolicy",
];

/// Validates ephemeral container `c` at `p`: the common container rules, the fields it may
/// not set, and `targetContainerName` naming one of `targets` (the pod's containers).
pub(super) fn validate_ephemeral_container(
    c: &Value,
    p: &str,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    targets: &HashSet<String>,
    errs: &mut Errs,
) {
    let Some(fields) = c.as_object() else {
        errs.push(FieldError::type_invalid(p, c, "object"));
        return;
    };
    let mut allowed = fields.clone();
    for f in EPHEMERAL_FORBIDDEN {
        // Go clients send zero values (`resources: {}`), which count as unset.
        let set = |v: &Value| match v {
            Value::Null => false,
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        };
        if allowed.remove(*f).is_some_and(|v| set(&v)) {
            errs.push(FieldError::forbidden(
                child(p, f),
                "cannot be set for an Ephemeral Container",
            ));
        }
    }
    let target = allowed.remove("targetContainerName");
    validate_container(
        &Value::Object(allowed),
        p,
        volumes,
        names,
        false,
        false,
        errs,
    );
    match target {
        Some(Value::String(t)) if !t.is_empty() && !targets.contains(&t) => {
            errs.push(FieldError::not_found(
                child(p, "targetContainerName"),
                t.as_str(),
            ));
        }
        Some(Value::String(_)) | Some(Value::Null) | None => {}
        Some(other) => errs.push(FieldError::type_invalid(
            child(p, "targetContainerName"),
            &other,
            "string",
        )),
    }
}

fn validate_container_ports(ports: &[Value], path: &str, host_network: bool, errs: &mut Errs) {
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index(path, i);
        if !port.is_object() {
            errs.push(FieldError::type_invalid(&p, port, "object"));
            continue;
        }
        if let Some(name) = opt_str(port, "name", &p, errs).filter(|n| !n.is_empty()) {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(FieldError::invalid(child(&p, "name"), name, &m));
                }
            } else if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(child(&p, "name"), name));
            }
        }
        let container_port = opt_int(port, "containerPort", &p, errs).unwrap_or(0);
        if container_port == 0 {
            errs.push(FieldError::required(child(&p, "containerPort"), ""));
        } else {
            for m in is_valid_port_num(container_port) {
                errs.push(FieldError::invalid(
                    child(&p, "containerPort"),
                    &container_port,
                    &m,
                ));
            }
        }
        let host_port = opt_int(port, "hostPort", &p, errs).unwrap_or(0);
        if host_port != 0 {
            for m in is_valid_port_num(host_port) {
                errs.push(FieldError::invalid(child(&p, "hostPort"), &host_port, &m));
            }
            if host_network && host_port != container_port {
                errs.push(FieldError::invalid(
                    child(&p, "containerPort"),
                    &container_port,
                    "must match `hostPort` when `hostNetwork` is true",
                ));
            }
        }
        match opt_str(port, "protocol", &p, errs) {
            None | Some("") => errs.push(FieldError::required(child(&p, "protocol"), "")),
            Some(proto) if !PROTOCOLS.contains(&proto) => {
                errs.push(FieldError::not_supported(
                    child(&p, "protocol"),
                    proto,
                    PROTOCOLS,
                ));
            }
            Some(_) => {}
        }
    }
}

fn validate_env(env: &[Value], path: &str, errs: &mut Errs) {
    for (i, e) in env.iter().enumerate() {
        let p = index(path, i);
        if !e.is_object() {
            errs.push(FieldError::type_invalid(&p, e, "object"));
            continue;
        }
        match opt_str(e, "name", &p, errs).unwrap_or("") {
            "" => errs.push(FieldError::required(child(&p, "name"), "")),
            name => {
                for m in is_relaxed_env_var_name(name) {
                    errs.push(FieldError::invalid(child(&p, "name"), name, &m));
                }
            }
        }
        let value = opt_str(e, "value", &p, errs).unwrap_or("");
        let Some(vf) = opt_obj(e, "valueFrom", &p, errs) else {
            continue;
        };
        let vp = child(&p, "valueFrom");
        let mut count = 0;
        for src in [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
        ] {
            let Some(s) = opt_obj(vf, src, &vp, errs) else {
                continue;
            };
            count += 1;
            let sp = child(&vp, src);
            match src {
                "fieldRef" => validate_env_field_ref(s, &sp, errs),
                "resourceFieldRef" => required_str(s, "resource", &sp, errs),
                "configMapKeyRef" | "secretKeyRef" => {
                    match opt_str(s, "key", &sp, errs).unwrap_or("") {
                        "" => errs.push(FieldError::required(child(&sp, "key"), "")),
                        k => {
                            for m in is_config_map_key(k) {
                                errs.push(FieldError::invalid(child(&sp, "key"), k, &m));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        // Upstream reports only the first of these problems.
        let problem = if count == 0 {
            Some(
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            )
        } else if !value.is_empty() {
            Some("may not be specified when `value` is not empty")
        } else if count > 1 {
            Some("may not have more than one field specified at a time")
        } else {
            None
        };
        if let Some(msg) = problem {
            errs.push(FieldError::invalid(&vp, "", msg));
        }
    }
}

fn validate_env_field_ref(s: &Value, sp: &str, errs: &mut Errs) {
    let fp = opt_str(s, "fieldPath", sp, errs).unwrap_or("");
    if fp.is_empty() {
        errs.push(FieldError::required(child(sp, "fieldPath"), ""));
        return;
    }
    let base = fp.split_once('[').map_or(fp, |(b, _)| b);
    let subscripted = base != fp;
    if subscripted && matches!(base, "metadata.labels" | "metadata.annotations") {
        let Some(inner) = fp[base.len()..]
            .strip_prefix("['")
            .and_then(|r| r.strip_suffix("']"))
        else {
            errs.push(FieldError::invalid(
                child(sp, "fieldPath"),
                fp,
                "error converting fieldPath: field label not supported",
            ));
            return;
        };
        let check = if base == "metadata.labels" {
            inner.to_string()
        } else {
            inner.to_lowercase()
        };
        for m in is_qualified_name(&check) {
            errs.push(FieldError::invalid(child(sp, "fieldPath"), fp, &m));
        }
    } else if subscripted
        || !ENV_FIELD_PATHS.contains(&fp)
        || matches!(fp, "metadata.labels" | "metadata.annotations")
    {
        errs.push(FieldError::not_supported(
            child(sp, "fieldPath"),
            fp,
            ENV_FIELD_PATHS,
        ));
    }
}

fn validate_volume_mounts(
    mounts: &[Value],
    path: &str,
    volumes: &HashSet<String>,
    errs: &mut Errs,
) {
    let mut points = HashSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = index(path, i);
        if !m.is_object() {
            errs.push(FieldError::type_invalid(&p, m, "object"));
            continue;
        }
        let name = opt_str(m, "name", &p, errs).unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        }
        if !volumes.contains(name) {
            errs.push(FieldError::not_found(child(&p, "name"), name));
        }
        let mount_path = opt_str(m, "mountPath", &p, errs).unwrap_or("");
        if mount_path.is_empty() {
            errs.push(FieldError::required(child(&p, "mountPath"), ""));
        }
        if !points.insert(mount_path.to_string()) {
            errs.push(FieldError::invalid(
                child(&p, "mountPath"),
                mount_path,
                "must be unique",
            ));
        }
        if let Some(sub) = opt_str(m, "subPath", &p, errs).filter(|s| !s.is_empty()) {
            if sub.starts_with('/') {
                errs.push(FieldError::invalid(
                    child(&p, "subPath"),
                    sub,
                    "must be a relative path",
                ));
            }
            if sub.split('/').any(|part| part == "..") {
                errs.push(FieldError::invalid(
                    child(&p, "subPath"),
                    sub,
                    "must not contain '..'",
                ));
            }
        }
        opt_bool(m, "readOnly", &p, errs);
    }
}

fn validate_probe(pr: &Value, p: &str, must_succeed_once: bool, errs: &mut Errs) {
    validate_handler(pr, p, true, errs);
    for f in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        if let Some(n) = opt_int(pr, f, p, errs) {
            errs.extend(validate_nonnegative(&child(p, f), n));
        }
    }
    if must_succeed_once
        && let Some(st) = get(pr, "successThreshold").and_then(Value::as_i64)
        && st != 1
    {
        errs.push(FieldError::invalid(
            child(p, "successThreshold"),
            &st,
            "must be 1",
        ));
    }
    if let Some(t) = opt_int(pr, "terminationGracePeriodSeconds", p, errs)
        && t <= 0
    {
        errs.push(FieldError::invalid(
            child(p, "terminationGracePeriodSeconds"),
            &t,
            "must be greater than 0",
        ));
    }
}

fn validate_handler(h: &Value, p: &str, is_probe: bool, errs: &mut Errs) {
    let kinds: &[&str] = if is_probe {
        &["exec", "httpGet", "tcpSocket", "grpc"]
    } else {
        &["exec", "httpGet", "tcpSocket", "sleep"]
    };
    let mut count = 0;
    for kind in kinds {
        let Some(action) = get(h, kind) else { continue };
        let ap = child(p, kind);
        if count > 0 {
            errs.push(FieldError::forbidden(
                &ap,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        count += 1;
        if !action.is_object() {
            errs.push(FieldError::type_invalid(&ap, action, "object"));
            continue;
        }
        match *kind {
            "exec"
                if opt_str_list(action, "command", &ap, errs)
                    .unwrap_or_default()
                    .is_empty() =>
            {
                errs.push(FieldError::required(child(&ap, "command"), ""));
            }
            "httpGet" => {
                if opt_str(action, "path", &ap, errs).unwrap_or("").is_empty() {
                    errs.push(FieldError::required(child(&ap, "path"), ""));
                }
                validate_port_num_or_name(action, &ap, errs);
                if let Some(s) = opt_str(action, "scheme", &ap, errs)
                    && s != "HTTP"
                    && s != "HTTPS"
                {
                    errs.push(FieldError::not_supported(
                        child(&ap, "scheme"),
                        s,
                        &["HTTP", "HTTPS"],
                    ));
                }
            }
            "tcpSocket" => validate_port_num_or_name(action, &ap, errs),
            "grpc" => {
                if let Some(port) = opt_int(action, "port", &ap, errs) {
                    for m in is_valid_port_num(port) {
                        errs.push(FieldError::invalid(child(&ap, "port"), &port, &m));
                    }
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(FieldError::required(p, "must specify a handler type"));
    }
}

/// `ValidatePortNumOrName` on the `port` member of an action.
pub(crate) fn validate_port_num_or_name(obj: &Value, path: &str, errs: &mut Errs) {
    let pp = child(path, "port");
    match opt_int_or_str(obj, "port", path, errs) {
        None => errs.push(FieldError::invalid(
            &pp,
            &0i64,
            &inclusive_range_error(1, 65535),
        )),
        Some(IntOrStr::Int(n)) => {
            for m in is_valid_port_num(n) {
                errs.push(FieldError::invalid(&pp, &n, &m));
            }
        }
        Some(IntOrStr::Str(s)) => {
            for m in is_valid_port_name(s) {
                errs.push(FieldError::invalid(&pp, s, &m));
            }
        }
    }
}

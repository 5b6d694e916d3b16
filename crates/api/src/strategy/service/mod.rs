//! Core Service: defaults (`SetDefaults_Service` plus the single-stack IPv4 family
//! defaults upstream's allocator applies), the update-time fixups of upstream's service
//! REST (see [`update`]), validation. IP and NodePort allocation and the NodePort range
//! check belong to the registry.

mod update;

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::errors::{Raw, go_quote, go_string_slice};
use super::json::{
    Errs, Obj, child, default_str, default_value, each_obj_mut, ensure_obj, get, get_arr, get_str,
    index, opt_arr, opt_bool, opt_int, opt_obj, opt_str, opt_str_list, opt_str_map,
};
use super::pod::validate_port_num_or_name;
use super::validation::{
    NameRule, is_dns1123_label, is_dns1123_subdomain, is_qualified_name, is_valid_port_num,
    validate_label_pairs,
};
use super::{FieldError, Strategy};
use update::{
    drop_type_dependent_fields, normalize_on_update, patch_allocated_values,
    validate_cluster_ip_update,
};

pub struct ServiceStrategy;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

pub(super) fn svc_type(spec: &Value) -> &str {
    get_str(spec, "type").unwrap_or("ClusterIP")
}

pub(super) fn needs_cluster_ip(spec: &Value) -> bool {
    svc_type(spec) != "ExternalName"
}

pub(super) fn needs_node_port(spec: &Value) -> bool {
    match svc_type(spec) {
        "NodePort" => true,
        "LoadBalancer" => {
            get(spec, "allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false)
        }
        _ => false,
    }
}

pub(super) fn externally_accessible(spec: &Value) -> bool {
    match svc_type(spec) {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => !get_arr(spec, "externalIPs").is_empty(),
        _ => false,
    }
}

pub(super) fn is_headless(spec: &Value) -> bool {
    svc_type(spec) == "ClusterIP"
        && (get_arr(spec, "clusterIPs").first().and_then(Value::as_str) == Some("None")
            || get_str(spec, "clusterIP") == Some("None"))
}

fn default_spec(spec: &mut Obj) {
    default_str(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| get(c, "clientIP"))
                .and_then(|c| get(c, "timeoutSeconds"))
                .is_some();
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    default_str(spec, "type", "ClusterIP");
    each_obj_mut(spec, "ports", |p| {
        default_str(p, "protocol", "TCP");
        let unset = match p.get("targetPort") {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset && let Some(port) = p.get("port").filter(|v| v.is_i64()).cloned() {
            p.insert("targetPort".into(), port);
        }
    });
    let view = Value::Object(spec.clone());
    let ty = svc_type(&view).to_string();
    if externally_accessible(&view) {
        default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        default_value(spec, "internalTrafficPolicy", json!("Cluster"));
        // Single-stack IPv4 cluster: headless services without a selector may span
        // families, everything else is SingleStack.
        let selectorless = view
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(|m| m.is_empty());
        let policy = if is_headless(&view) && selectorless {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        default_value(spec, "ipFamilyPolicy", json!(policy));
        if get_arr(&view, "ipFamilies").is_empty() {
            spec.insert("ipFamilies".into(), json!(["IPv4"]));
        }
    }
    if ty == "LoadBalancer" {
        default_value(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

/// Client-style (singular only) requests get `clusterIPs` from `clusterIP`.
fn normalize_on_create(spec: &mut Obj) {
    let ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !ip.is_empty()
        && spec
            .get("clusterIPs")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
    {
        spec.insert("clusterIPs".into(), json!([ip]));
    }
}

impl Strategy for ServiceStrategy {
    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn default(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        if let Some(spec) = ensure_obj(o, "spec") {
            default_spec(spec);
        }
        let is_lb = o.get("spec").and_then(|s| get_str(s, "type")) == Some("LoadBalancer");
        if is_lb
            && let Some(lb) = o
                .get_mut("status")
                .and_then(|s| s.get_mut("loadBalancer"))
                .and_then(|l| l.as_object_mut())
        {
            each_obj_mut(lb, "ingress", |i| {
                if i.get("ip")
                    .and_then(Value::as_str)
                    .is_some_and(|ip| !ip.is_empty())
                {
                    default_value(i, "ipMode", json!("VIP"));
                }
            });
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        o.insert("status".into(), json!({"loadBalancer": {}}));
        if let Some(spec) = ensure_obj(o, "spec") {
            normalize_on_create(spec);
        }
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let Some(old_spec) = get(old, "spec").filter(|s| s.is_object()) else {
            return;
        };
        let Some(o) = new.as_object_mut() else { return };
        let Some(spec) = ensure_obj(o, "spec") else {
            return;
        };
        patch_allocated_values(spec, old_spec);
        normalize_on_update(spec, old_spec);
        let went_non_lb = svc_type(old_spec) == "LoadBalancer"
            && svc_type(&Value::Object(spec.clone())) != "LoadBalancer";
        drop_type_dependent_fields(spec, old_spec);
        if went_non_lb {
            o.insert("status".into(), json!({"loadBalancer": {}}));
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        validate_service(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_service(new);
        let empty = json!({});
        let ns = get(new, "spec").unwrap_or(&empty);
        let os = get(old, "spec").unwrap_or(&empty);
        validate_cluster_ip_update(ns, os, &mut errs);
        errs
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035Label
    }
}

fn valid_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// Go's `%#v` of the `core.ServicePort{Port, Protocol}` key upstream reports duplicates
/// with.
fn go_service_port(port: i64, protocol: &str) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        go_quote(protocol)
    )
}

fn validate_service(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = json!({});
    let spec = match get(obj, "spec") {
        Some(s) if s.is_object() => s,
        Some(other) => {
            errs.push(FieldError::type_invalid("spec", other, "object"));
            &empty
        }
        None => &empty,
    };
    let p = "spec";
    let ty = opt_str(spec, "type", p, &mut errs).unwrap_or("");
    if !TYPES.contains(&ty) {
        errs.push(FieldError::not_supported("spec.type", ty, TYPES));
    }
    let cluster_ip = opt_str(spec, "clusterIP", p, &mut errs).unwrap_or("");
    let cluster_ips = opt_str_list(spec, "clusterIPs", p, &mut errs).unwrap_or_default();
    if ty == "ExternalName" {
        validate_external_name(spec, cluster_ip, &cluster_ips, &mut errs);
    } else {
        validate_cluster_ips(ty, cluster_ip, &cluster_ips, &mut errs);
    }
    let headless =
        ty == "ClusterIP" && cluster_ips.first().copied().unwrap_or(cluster_ip) == "None";
    let ports = opt_arr(spec, "ports", p, &mut errs).unwrap_or(&[]);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    validate_ports(ports, ty, &mut errs);
    if let Some(sel) = opt_str_map(spec, "selector", p, &mut errs) {
        validate_label_pairs(&sel, "spec.selector", &mut errs);
    }
    validate_session_affinity(spec, &mut errs);
    if let Some(ips) = opt_str_list(spec, "externalIPs", p, &mut errs) {
        for (i, ip) in ips.iter().enumerate() {
            if !valid_ip(ip) {
                errs.push(FieldError::invalid(
                    index("spec.externalIPs", i),
                    *ip,
                    IP_MSG,
                ));
            }
        }
    }
    validate_traffic_policies(spec, ty, &mut errs);
    validate_ip_families(spec, &mut errs);
    if opt_bool(spec, "allocateLoadBalancerNodePorts", p, &mut errs).is_some()
        && ty != "LoadBalancer"
    {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if let Some(ip) = opt_str(spec, "loadBalancerIP", p, &mut errs).filter(|s| !s.is_empty())
        && !valid_ip(ip)
    {
        errs.push(FieldError::invalid("spec.loadBalancerIP", ip, IP_MSG));
    }
    opt_bool(spec, "publishNotReadyAddresses", p, &mut errs);
    opt_int(spec, "healthCheckNodePort", p, &mut errs);
    opt_str_list(spec, "loadBalancerSourceRanges", p, &mut errs);
    opt_obj(spec, "sessionAffinityConfig", p, &mut errs);
    errs
}

fn validate_external_name(spec: &Value, cluster_ip: &str, cluster_ips: &[&str], errs: &mut Errs) {
    if !cluster_ips.is_empty() || !cluster_ip.is_empty() {
        errs.push(FieldError::forbidden(
            "spec.clusterIPs",
            "may not be set for ExternalName services",
        ));
    }
    if get(spec, "ipFamilies").is_some() {
        errs.push(FieldError::forbidden(
            "spec.ipFamilies",
            "may not be set for ExternalName services",
        ));
    }
    if get(spec, "ipFamilyPolicy").is_some() {
        errs.push(FieldError::forbidden(
            "spec.ipFamilyPolicy",
            "may not be set for ExternalName services",
        ));
    }
    let name = opt_str(spec, "externalName", "spec", errs).unwrap_or("");
    // The value (a CNAME) may have a trailing dot to denote it as fully qualified.
    let cname = name.strip_suffix('.').unwrap_or(name);
    if cname.is_empty() {
        errs.push(FieldError::required("spec.externalName", ""));
    } else {
        for m in is_dns1123_subdomain(cname) {
            errs.push(FieldError::invalid("spec.externalName", cname, &m));
        }
    }
}

fn validate_cluster_ips(ty: &str, cluster_ip: &str, ips: &[&str], errs: &mut Errs) {
    let shown = go_string_slice(ips.iter().copied());
    if cluster_ip.is_empty() && !ips.is_empty() {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            &Raw(&shown),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    if !cluster_ip.is_empty() && !ips.is_empty() && ips[0] != cluster_ip {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            &Raw(&shown),
            "first value must match `clusterIP`",
        ));
    }
    let list: Vec<&str> = if ips.is_empty() && !cluster_ip.is_empty() {
        vec![cluster_ip]
    } else {
        ips.to_vec()
    };
    if list.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            &Raw(&go_string_slice(list.iter().copied())),
            "may only hold up to 2 values",
        ));
    }
    for (i, ip) in list.iter().enumerate() {
        let f = index("spec.clusterIPs", i);
        if *ip == "None" {
            if ty != "ClusterIP" {
                errs.push(FieldError::invalid(
                    &f,
                    *ip,
                    &format!("may not be set to 'None' for {ty} services"),
                ));
            } else if list.len() > 1 {
                errs.push(FieldError::invalid(
                    &f,
                    *ip,
                    "must not have more than one value when `clusterIP` is `None`",
                ));
            }
            continue;
        }
        if !valid_ip(ip) {
            errs.push(FieldError::invalid(&f, *ip, IP_MSG));
        }
    }
}

fn validate_ports(ports: &[Value], ty: &str, errs: &mut Errs) {
    let require_name = ports.len() > 1;
    let mut names = HashSet::new();
    let mut keys = HashSet::new();
    let mut node_ports = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = index("spec.ports", i);
        if !port.is_object() {
            errs.push(FieldError::type_invalid(&pp, port, "object"));
            continue;
        }
        let name = opt_str(port, "name", &pp, errs).unwrap_or("");
        if require_name && name.is_empty() {
            errs.push(FieldError::required(child(&pp, "name"), ""));
        } else if !name.is_empty() {
            for m in is_dns1123_label(name) {
                errs.push(FieldError::invalid(child(&pp, "name"), name, &m));
            }
            if !names.insert(name.to_string()) {
                errs.push(FieldError::duplicate(child(&pp, "name"), name));
            }
        }
        let number = opt_int(port, "port", &pp, errs).unwrap_or(0);
        for m in is_valid_port_num(number) {
            errs.push(FieldError::invalid(child(&pp, "port"), &number, &m));
        }
        let protocol = opt_str(port, "protocol", &pp, errs).unwrap_or("");
        if protocol.is_empty() {
            errs.push(FieldError::required(child(&pp, "protocol"), ""));
        } else if !PROTOCOLS.contains(&protocol) {
            errs.push(FieldError::not_supported(
                child(&pp, "protocol"),
                protocol,
                PROTOCOLS,
            ));
        }
        validate_target_port(port, &pp, errs);
        if let Some(ap) = opt_str(port, "appProtocol", &pp, errs) {
            for m in is_qualified_name(ap) {
                errs.push(FieldError::invalid(child(&pp, "appProtocol"), ap, &m));
            }
        }
        if !keys.insert((number, protocol.to_string())) {
            errs.push(FieldError::duplicate(
                &pp,
                &Raw(&go_service_port(number, protocol)),
            ));
        }
        let node_port = opt_int(port, "nodePort", &pp, errs).unwrap_or(0);
        if node_port != 0 {
            if ty == "ClusterIP" {
                errs.push(FieldError::forbidden(
                    child(&pp, "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else {
                for m in is_valid_port_num(node_port) {
                    errs.push(FieldError::invalid(child(&pp, "nodePort"), &node_port, &m));
                }
                if !node_ports.insert((node_port, protocol.to_string())) {
                    errs.push(FieldError::duplicate(child(&pp, "nodePort"), &node_port));
                }
            }
        }
    }
}

fn validate_target_port(port: &Value, pp: &str, errs: &mut Errs) {
    // `validate_port_num_or_name` reads a member called `port`; feed it the target port.
    let shim = json!({"port": port.get("targetPort").cloned().unwrap_or(Value::Null)});
    let mut local = Vec::new();
    validate_port_num_or_name(&shim, pp, &mut local);
    for mut e in local {
        e.field = child(pp, "targetPort");
        errs.push(e);
    }
}

fn validate_session_affinity(spec: &Value, errs: &mut Errs) {
    let sa = opt_str(spec, "sessionAffinity", "spec", errs).unwrap_or("");
    let tp = "spec.sessionAffinityConfig.clientIP.timeoutSeconds";
    match sa {
        "None" => {
            if let Some(c) = get(spec, "sessionAffinityConfig") {
                errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig",
                    &Raw(&c.to_string()),
                    "must not be set when session affinity is None",
                ));
            }
        }
        "ClientIP" => {
            let t = get(spec, "sessionAffinityConfig")
                .and_then(|c| get(c, "clientIP"))
                .and_then(|c| get(c, "timeoutSeconds"));
            match t {
                None => errs.push(FieldError::required(tp, "")),
                Some(v) => match v.as_i64() {
                    Some(n) if n > 0 && n <= 86400 => {}
                    Some(n) => errs.push(FieldError::invalid(
                        tp,
                        &n,
                        "must be greater than 0 and less than 86400",
                    )),
                    None => errs.push(FieldError::type_invalid(tp, v, "integer")),
                },
            }
        }
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        other => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
}

fn validate_traffic_policies(spec: &Value, ty: &str, errs: &mut Errs) {
    let etp = opt_str(spec, "externalTrafficPolicy", "spec", errs).unwrap_or("");
    if externally_accessible(spec) {
        match etp {
            "Cluster" | "Local" => {}
            "" => errs.push(FieldError::required("spec.externalTrafficPolicy", "")),
            other => errs.push(FieldError::not_supported(
                "spec.externalTrafficPolicy",
                other,
                &["Cluster", "Local"],
            )),
        }
    } else if !etp.is_empty() {
        errs.push(FieldError::invalid(
            "spec.externalTrafficPolicy",
            etp,
            "may only be set for externally-accessible services",
        ));
    }
    match opt_str(spec, "internalTrafficPolicy", "spec", errs) {
        None if ty != "ExternalName" && TYPES.contains(&ty) => {
            errs.push(FieldError::required("spec.internalTrafficPolicy", ""));
        }
        Some(itp) if itp != "Cluster" && itp != "Local" => {
            errs.push(FieldError::not_supported(
                "spec.internalTrafficPolicy",
                itp,
                &["Cluster", "Local"],
            ));
        }
        _ => {}
    }
}

fn validate_ip_families(spec: &Value, errs: &mut Errs) {
    let policy = opt_str(spec, "ipFamilyPolicy", "spec", errs);
    if let Some(p) = policy
        && !matches!(p, "SingleStack" | "PreferDualStack" | "RequireDualStack")
    {
        errs.push(FieldError::not_supported(
            "spec.ipFamilyPolicy",
            p,
            &["PreferDualStack", "RequireDualStack", "SingleStack"],
        ));
    }
    let families = opt_str_list(spec, "ipFamilies", "spec", errs).unwrap_or_default();
    let mut seen = HashSet::new();
    for (i, f) in families.iter().enumerate() {
        let fp = index("spec.ipFamilies", i);
        if *f != "IPv4" && *f != "IPv6" {
            errs.push(FieldError::not_supported(&fp, *f, &["IPv4", "IPv6"]));
        } else if !seen.insert(*f) {
            errs.push(FieldError::duplicate(&fp, *f));
        }
    }
    let shown = go_string_slice(families.iter().copied());
    if families.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.ipFamilies",
            &Raw(&shown),
            "may specify no more than two IP families",
        ));
    }
    if policy == Some("SingleStack") && families.len() > 1 {
        errs.push(FieldError::invalid(
            "spec.ipFamilies",
            &Raw(&shown),
            "must contain exactly one entry when ipFamilyPolicy is SingleStack",
        ));
    }
}

#[cfg(test)]
mod tests;

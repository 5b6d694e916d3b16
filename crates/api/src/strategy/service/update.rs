//! Update-time behaviour of upstream's service REST: keep allocated values the client
//! omitted, keep `clusterIP`/`clusterIPs` in sync, drop fields a type change makes
//! meaningless, and the clusterIP upgrade/downgrade rules.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{externally_accessible, is_headless, needs_cluster_ip, needs_node_port, svc_type};
use crate::strategy::FieldError;
use crate::strategy::compare::semantic_eq;
use crate::strategy::errors::{Raw, go_string_slice};
use crate::strategy::json::{Errs, Obj, each_obj_mut, get, get_arr, get_str, index, is_zero_int};

/// Upstream `patchAllocatedValues`.
pub(super) fn patch_allocated_values(spec: &mut Obj, old: &Value) {
    let view = Value::Object(spec.clone());
    if needs_cluster_ip(old) && needs_cluster_ip(&view) {
        if get_str(&view, "clusterIP").unwrap_or("").is_empty()
            && let Some(ip) = get(old, "clusterIP")
        {
            spec.insert("clusterIP".into(), ip.clone());
        }
        if get_arr(&view, "clusterIPs").is_empty()
            && !get_arr(old, "clusterIPs").is_empty()
            && let Some(ips) = get(old, "clusterIPs")
        {
            spec.insert("clusterIPs".into(), ips.clone());
        }
    }
    if needs_node_port(old) && needs_node_port(&view) {
        let node_ports = |s: &Value| -> HashSet<i64> {
            get_arr(s, "ports")
                .iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .filter(|n| *n != 0)
                .collect()
        };
        // Ports still used by the new object can't be patched in again.
        let used: HashSet<i64> = node_ports(old)
            .intersection(&node_ports(&view))
            .copied()
            .collect();
        // NodePorts are matched by port name; the last one wins like upstream's map.
        let by_name: Vec<(String, i64)> = get_arr(old, "ports")
            .iter()
            .map(|p| {
                let name = get_str(p, "name").unwrap_or("").to_string();
                (name, p.get("nodePort").and_then(Value::as_i64).unwrap_or(0))
            })
            .collect();
        each_obj_mut(spec, "ports", |p| {
            if is_zero_int(p, "nodePort") {
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some((_, np)) = by_name.iter().rev().find(|(n, _)| n == name)
                    && *np != 0
                    && !used.contains(np)
                {
                    p.insert("nodePort".into(), json!(np));
                }
            }
        });
    }
    let needs_hc = |s: &Value| {
        matches!(svc_type(s), "LoadBalancer")
            && get_str(s, "externalTrafficPolicy") == Some("Local")
    };
    if needs_hc(old)
        && needs_hc(&view)
        && get(&view, "healthCheckNodePort").is_none()
        && let Some(h) = get(old, "healthCheckNodePort")
    {
        spec.insert("healthCheckNodePort".into(), h.clone());
    }
}

/// Upstream `normalizeClusterIPs` for updates.
pub(super) fn normalize_on_update(spec: &mut Obj, old: &Value) {
    let new_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let old_ip = get_str(old, "clusterIP").unwrap_or("");
    let same_plural = semantic_eq(spec.get("clusterIPs"), get(old, "clusterIPs"));
    if new_ip == old_ip && same_plural {
        return;
    }
    // The client cleared the singular field and left the plural: clear both.
    if !old_ip.is_empty() && new_ip.is_empty() && same_plural {
        spec.remove("clusterIPs");
        return;
    }
    // The client changed the singular field only: follow it.
    if !new_ip.is_empty() && new_ip != old_ip && same_plural {
        spec.insert("clusterIPs".into(), json!([new_ip]));
    }
}

/// Upstream `dropTypeDependentFields`: wipe values that no longer apply after a type
/// change, but only those the client left untouched.
pub(super) fn drop_type_dependent_fields(spec: &mut Obj, old: &Value) {
    let view = Value::Object(spec.clone());
    let same = |k: &str| semantic_eq(get(&view, k), get(old, k));
    if needs_cluster_ip(old) && !needs_cluster_ip(&view) {
        if same("clusterIP") && same("clusterIPs") {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        if same("ipFamilies") {
            spec.remove("ipFamilies");
        }
        if same("ipFamilyPolicy") {
            spec.remove("ipFamilyPolicy");
        }
    }
    if needs_node_port(old) && !needs_node_port(&view) {
        let ports = |s: &Value| -> Vec<i64> {
            get_arr(s, "ports")
                .iter()
                .map(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0))
                .collect()
        };
        if ports(&view) == ports(old) {
            each_obj_mut(spec, "ports", |p| {
                p.remove("nodePort");
            });
        }
    }
    if get(old, "healthCheckNodePort").is_some()
        && get_str(&view, "externalTrafficPolicy") != Some("Local")
        && same("healthCheckNodePort")
    {
        spec.remove("healthCheckNodePort");
    }
    if svc_type(old) == "LoadBalancer" && svc_type(&view) != "LoadBalancer" {
        if same("allocateLoadBalancerNodePorts") {
            spec.remove("allocateLoadBalancerNodePorts");
        }
        if same("loadBalancerClass") {
            spec.remove("loadBalancerClass");
        }
    }
    if externally_accessible(old) && !externally_accessible(&view) && same("externalTrafficPolicy")
    {
        spec.remove("externalTrafficPolicy");
    }
}

/// Upstream `validateUpgradeDowngradeClusterIPs`.
pub(super) fn validate_cluster_ip_update(new: &Value, old: &Value, errs: &mut Errs) {
    if svc_type(new) == "ExternalName" || svc_type(old) == "ExternalName" {
        return;
    }
    if is_headless(new) && is_headless(old) {
        return;
    }
    let ips = |s: &Value| -> Vec<String> {
        get_arr(s, "clusterIPs")
            .iter()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    let (n, o) = (ips(new), ips(old));
    let shown_text = go_string_slice(n.iter().map(String::as_str));
    let shown = Raw(&shown_text);
    let f0 = "spec.clusterIPs[0]";
    if n.len() == o.len() {
        for (i, ip) in o.iter().enumerate() {
            if *ip != n[i] {
                errs.push(FieldError::invalid(
                    index("spec.clusterIPs", i),
                    &shown,
                    "may not change once set",
                ));
            }
        }
    } else if o.len() > n.len() {
        if n.is_empty() {
            errs.push(FieldError::invalid(
                f0,
                &shown,
                "primary clusterIP can not be unset",
            ));
        }
        if !o.is_empty() && !n.is_empty() && n[0] != o[0] {
            errs.push(FieldError::invalid(f0, &shown, "may not change once set"));
        }
        if n.len() == 1 && get_str(new, "ipFamilyPolicy") != Some("SingleStack") {
            errs.push(FieldError::invalid(
                f0,
                &shown,
                "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !o.is_empty() && n[0] != o[0] {
        errs.push(FieldError::invalid(f0, &shown, "may not change once set"));
    }
}

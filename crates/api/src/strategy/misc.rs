//! Smaller API-group kinds: PriorityClass, HorizontalPodAutoscaler, Ingress,
//! EndpointSlice, PodDisruptionBudget.

use serde_json::{Value, json};

use super::apps::clear_status;
use super::errors::{BadValue, Raw};
use super::json::{
    Errs, IntOrStr, Obj, child, default_str, default_value, each_obj_mut, ensure_obj, get, get_str,
    index, opt_arr, opt_bool, opt_i32, opt_int_or_str, opt_obj, opt_str, with_obj,
};
use super::validation::{
    FIELD_IMMUTABLE, NameRule, is_dns1035_label, is_dns1123_subdomain, is_valid_port_num,
    validate_label_selector, validate_name,
};
use super::{FieldError, Strategy};

pub struct PriorityClassStrategy;
pub struct HorizontalPodAutoscalerStrategy;
pub struct IngressStrategy;
pub struct EndpointSliceStrategy;
pub struct PodDisruptionBudgetStrategy;

// ---- PriorityClass ----

const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

impl Strategy for PriorityClassStrategy {
    fn default(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            default_value(o, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let name = super::json::str_at(obj, &["metadata", "name"]);
        let value = opt_i32(obj, "value", "", &mut errs).unwrap_or(0);
        let global_default = opt_bool(obj, "globalDefault", "", &mut errs).unwrap_or(false);
        if name.starts_with("system-") {
            let known = match name {
                "system-node-critical" => Some(2_000_001_000),
                "system-cluster-critical" => Some(2_000_000_000),
                _ => None,
            };
            let problem = match known {
                None => Some(format!("{name} is not a known system priority class")),
                Some(v) if v != value => Some(format!("value of {name} PriorityClass must be {v}")),
                Some(_) if global_default => Some(format!(
                    "globalDefault of {name} PriorityClass must be false"
                )),
                Some(_) => None,
            };
            if let Some(p) = problem {
                errs.push(FieldError::forbidden(
                    "metadata.name",
                    &format!("priority class names with 'system-' prefix are reserved for system use only. error: {p}"),
                ));
            }
        } else if value > HIGHEST_USER_PRIORITY {
            errs.push(FieldError::forbidden(
                "value",
                &format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"
                ),
            ));
        }
        if let Some(p) = opt_str(obj, "preemptionPolicy", "", &mut errs)
            && p != "Never"
            && p != "PreemptLowerPriority"
        {
            errs.push(FieldError::not_supported(
                "preemptionPolicy",
                p,
                &["Never", "PreemptLowerPriority"],
            ));
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_create(new);
        if get(new, "value") != get(old, "value") {
            errs.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        let np = get(new, "preemptionPolicy");
        if np != get(old, "preemptionPolicy") {
            let shown = np.map_or_else(|| "null".to_string(), BadValue::render);
            errs.push(FieldError::invalid(
                "preemptionPolicy",
                &Raw(&shown),
                FIELD_IMMUTABLE,
            ));
        }
        errs
    }
}

// ---- HorizontalPodAutoscaler ----

fn is_v1_hpa(obj: &Value) -> bool {
    match get_str(obj, "apiVersion") {
        Some(v) => v == "autoscaling/v1",
        None => get(obj, "spec")
            .and_then(|s| get(s, "targetCPUUtilizationPercentage"))
            .is_some(),
    }
}

fn default_scaling_rules(rules: &mut Obj, up: bool) {
    // Scale-down's window stays unset, as upstream: the controller manager's
    // --horizontal-pod-autoscaler-downscale-stabilization then applies.
    if up {
        default_value(rules, "stabilizationWindowSeconds", json!(0));
    }
    default_str(rules, "selectPolicy", "Max");
    let policies = if up {
        json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}])
    } else {
        json!([{"type": "Percent", "value": 100, "periodSeconds": 15}])
    };
    default_value(rules, "policies", policies);
}

impl Strategy for HorizontalPodAutoscalerStrategy {
    fn default(&self, obj: &mut Value) {
        let v1 = is_v1_hpa(obj);
        let Some(spec) = obj.as_object_mut().and_then(|o| ensure_obj(o, "spec")) else {
            return;
        };
        default_value(spec, "minReplicas", json!(1));
        if v1 {
            return;
        }
        if spec
            .get("metrics")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            spec.insert(
                "metrics".into(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
            );
        }
        with_obj(spec, "behavior", |b| {
            if let Some(up) = ensure_obj(b, "scaleUp") {
                default_scaling_rules(up, true);
            }
            if let Some(down) = ensure_obj(b, "scaleDown") {
                default_scaling_rules(down, false);
            }
        });
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let Some(spec) = opt_obj(obj, "spec", "", &mut errs) else {
            errs.push(FieldError::required("spec.scaleTargetRef.kind", ""));
            return errs;
        };
        let rp = "spec.scaleTargetRef";
        let target = opt_obj(spec, "scaleTargetRef", "spec", &mut errs)
            .cloned()
            .unwrap_or(json!({}));
        for f in ["kind", "name"] {
            match opt_str(&target, f, rp, &mut errs).unwrap_or("") {
                "" => errs.push(FieldError::required(child(rp, f), "")),
                v => {
                    for m in validate_name(NameRule::PathSegment, v, false) {
                        errs.push(FieldError::invalid(child(rp, f), v, &m));
                    }
                }
            }
        }
        let min = opt_i32(spec, "minReplicas", "spec", &mut errs);
        if let Some(m) = min.filter(|m| *m < 1) {
            errs.push(FieldError::invalid(
                "spec.minReplicas",
                &m,
                "must be greater than or equal to 1",
            ));
        }
        let max = opt_i32(spec, "maxReplicas", "spec", &mut errs).unwrap_or(0);
        if max < 1 {
            errs.push(FieldError::invalid(
                "spec.maxReplicas",
                &max,
                "must be greater than 0",
            ));
        }
        if min.is_some_and(|m| max < m) {
            errs.push(FieldError::invalid(
                "spec.maxReplicas",
                &max,
                "must be greater than or equal to `minReplicas`",
            ));
        }
        if is_v1_hpa(obj) {
            if let Some(t) = opt_i32(spec, "targetCPUUtilizationPercentage", "spec", &mut errs)
                .filter(|t| *t < 1)
            {
                errs.push(FieldError::invalid(
                    "spec.targetCPUUtilizationPercentage",
                    &t,
                    "must be greater than 0",
                ));
            }
        } else if let Some(metrics) = opt_arr(spec, "metrics", "spec", &mut errs) {
            validate_metrics(metrics, &mut errs);
        }
        errs
    }
}

fn validate_metrics(metrics: &[Value], errs: &mut Errs) {
    const TYPES: &[&str] = &[
        "ContainerResource",
        "External",
        "Object",
        "Pods",
        "Resource",
    ];
    for (i, m) in metrics.iter().enumerate() {
        let p = index("spec.metrics", i);
        if !m.is_object() {
            errs.push(FieldError::type_invalid(&p, m, "object"));
            continue;
        }
        let ty = opt_str(m, "type", &p, errs).unwrap_or("");
        if ty.is_empty() {
            errs.push(FieldError::required(
                child(&p, "type"),
                "must specify a metric source type",
            ));
            continue;
        }
        if !TYPES.contains(&ty) {
            errs.push(FieldError::not_supported(child(&p, "type"), ty, TYPES));
            continue;
        }
        let member = match ty {
            "ContainerResource" => "containerResource",
            "External" => "external",
            "Object" => "object",
            "Pods" => "pods",
            _ => "resource",
        };
        let mp = child(&p, member);
        let Some(src) = opt_obj(m, member, &p, errs) else {
            errs.push(FieldError::required(
                &mp,
                "must populate information for the given metric source",
            ));
            continue;
        };
        if (member == "resource" || member == "containerResource")
            && opt_str(src, "name", &mp, errs).unwrap_or("").is_empty()
        {
            errs.push(FieldError::required(
                child(&mp, "name"),
                "must specify a resource name",
            ));
        }
        let tp = child(&mp, "target");
        let Some(target) = opt_obj(src, "target", &mp, errs) else {
            errs.push(FieldError::required(&tp, ""));
            continue;
        };
        match opt_str(target, "type", &tp, errs).unwrap_or("") {
            "Utilization" | "Value" | "AverageValue" => {}
            "" => errs.push(FieldError::required(
                child(&tp, "type"),
                "must specify a metric target type",
            )),
            other => errs.push(FieldError::not_supported(
                child(&tp, "type"),
                other,
                &["AverageValue", "Utilization", "Value"],
            )),
        }
        if let Some(u) = opt_i32(target, "averageUtilization", &tp, errs).filter(|u| *u < 1) {
            errs.push(FieldError::invalid(
                child(&tp, "averageUtilization"),
                &u,
                "must be greater than 0",
            ));
        }
    }
}

// ---- Ingress ----

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

impl Strategy for IngressStrategy {
    fn prepare_for_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let empty = json!({});
        let spec = opt_obj(obj, "spec", "", &mut errs).unwrap_or(&empty);
        let rules = opt_arr(spec, "rules", "spec", &mut errs).unwrap_or(&[]);
        let default_backend = opt_obj(spec, "defaultBackend", "spec", &mut errs);
        if rules.is_empty() && default_backend.is_none() {
            errs.push(FieldError::invalid(
                "spec",
                &Raw("[]networking.IngressRule(nil)"),
                "either `defaultBackend` or `rules` must be specified",
            ));
        }
        if let Some(b) = default_backend {
            validate_backend(b, "spec.defaultBackend", &mut errs);
        }
        if let Some(c) = opt_str(spec, "ingressClassName", "spec", &mut errs) {
            for m in is_dns1123_subdomain(c) {
                errs.push(FieldError::invalid("spec.ingressClassName", c, &m));
            }
        }
        for (i, rule) in rules.iter().enumerate() {
            let rp = index("spec.rules", i);
            if let Some(host) = opt_str(rule, "host", &rp, &mut errs).filter(|h| !h.is_empty()) {
                let hp = child(&rp, "host");
                if host.parse::<std::net::IpAddr>().is_ok() {
                    errs.push(FieldError::invalid(
                        &hp,
                        host,
                        "must be a DNS name, not an IP address",
                    ));
                } else if let Some(rest) = host.strip_prefix("*.") {
                    if !is_dns1123_subdomain(rest).is_empty() {
                        errs.push(FieldError::invalid(&hp, host, "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
                    }
                } else {
                    for m in is_dns1123_subdomain(host) {
                        errs.push(FieldError::invalid(&hp, host, &m));
                    }
                }
            }
            let Some(http) = opt_obj(rule, "http", &rp, &mut errs) else {
                continue;
            };
            let hp = child(&rp, "http");
            let paths = opt_arr(http, "paths", &hp, &mut errs).unwrap_or(&[]);
            if paths.is_empty() {
                errs.push(FieldError::required(child(&hp, "paths"), ""));
            }
            for (j, path) in paths.iter().enumerate() {
                validate_ingress_path(path, &index(&child(&hp, "paths"), j), &mut errs);
            }
        }
        errs
    }
}

fn validate_ingress_path(path: &Value, pp: &str, errs: &mut Errs) {
    if !path.is_object() {
        errs.push(FieldError::type_invalid(pp, path, "object"));
        return;
    }
    let p = opt_str(path, "path", pp, errs).unwrap_or("");
    match opt_str(path, "pathType", pp, errs) {
        None | Some("") => errs.push(FieldError::required(
            child(pp, "pathType"),
            "pathType must be specified",
        )),
        Some(t) if !PATH_TYPES.contains(&t) => errs.push(FieldError::not_supported(
            child(pp, "pathType"),
            t,
            PATH_TYPES,
        )),
        Some("Exact" | "Prefix") => {
            if !p.starts_with('/') {
                errs.push(FieldError::invalid(
                    child(pp, "path"),
                    p,
                    "must be an absolute path",
                ));
            }
        }
        Some(_) => {}
    }
    match opt_obj(path, "backend", pp, errs) {
        Some(b) => validate_backend(b, &child(pp, "backend"), errs),
        None => errs.push(FieldError::required(child(pp, "backend"), "")),
    }
}

fn validate_backend(b: &Value, bp: &str, errs: &mut Errs) {
    let service = opt_obj(b, "service", bp, errs);
    let resource = opt_obj(b, "resource", bp, errs);
    match (service, resource) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            bp,
            "",
            "cannot set both service and resource backends",
        )),
        (None, None) => errs.push(FieldError::invalid(
            bp,
            &Raw(&b.to_string()),
            "one backend (service or resource) must be specified",
        )),
        (Some(svc), None) => {
            let sp = child(bp, "service");
            match opt_str(svc, "name", &sp, errs).unwrap_or("") {
                "" => errs.push(FieldError::required(child(&sp, "name"), "")),
                n => {
                    for m in is_dns1035_label(n) {
                        errs.push(FieldError::invalid(child(&sp, "name"), n, &m));
                    }
                }
            }
            let port = opt_obj(svc, "port", &sp, errs)
                .cloned()
                .unwrap_or(json!({}));
            let pp = child(&sp, "port");
            let name = opt_str(&port, "name", &pp, errs).unwrap_or("");
            let number = super::json::opt_int(&port, "number", &pp, errs).unwrap_or(0);
            if name.is_empty() && number == 0 {
                errs.push(FieldError::required(&pp, "port name or number is required"));
            } else if !name.is_empty() && number != 0 {
                errs.push(FieldError::invalid(
                    &pp,
                    &Raw(&port.to_string()),
                    "cannot set both port name & port number",
                ));
            } else if number != 0 {
                for m in is_valid_port_num(number) {
                    errs.push(FieldError::invalid(child(&pp, "number"), &number, &m));
                }
            }
        }
        (None, Some(_)) => {}
    }
}

// ---- EndpointSlice ----

impl Strategy for EndpointSliceStrategy {
    fn default(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            each_obj_mut(o, "ports", |p| {
                default_value(p, "name", json!(""));
                default_str(p, "protocol", "TCP");
            });
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        match opt_str(obj, "addressType", "", &mut errs).unwrap_or("") {
            "IPv4" | "IPv6" | "FQDN" => {}
            "" => errs.push(FieldError::required("addressType", "")),
            other => errs.push(FieldError::not_supported(
                "addressType",
                other,
                &["FQDN", "IPv4", "IPv6"],
            )),
        }
        opt_arr(obj, "endpoints", "", &mut errs);
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_create(new);
        let n = get_str(new, "addressType").unwrap_or("");
        if n != get_str(old, "addressType").unwrap_or("") {
            errs.push(FieldError::invalid("addressType", n, FIELD_IMMUTABLE));
        }
        errs
    }
}

// ---- PodDisruptionBudget ----

impl Strategy for PodDisruptionBudgetStrategy {
    fn prepare_for_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let empty = json!({});
        let spec = opt_obj(obj, "spec", "", &mut errs).unwrap_or(&empty);
        let min = opt_int_or_str(spec, "minAvailable", "spec", &mut errs);
        let max = opt_int_or_str(spec, "maxUnavailable", "spec", &mut errs);
        if let (Some(m), Some(_)) = (&min, &max) {
            errs.push(FieldError::invalid(
                "spec.minAvailable",
                &Raw(&m.display()),
                "minAvailable and maxUnavailable cannot be both set",
            ));
        }
        for (f, v) in [("minAvailable", &min), ("maxUnavailable", &max)] {
            match v {
                Some(IntOrStr::Int(n)) if *n < 0 => {
                    errs.push(FieldError::invalid(
                        child("spec", f),
                        n,
                        super::validation::IS_NEGATIVE,
                    ));
                }
                Some(IntOrStr::Str(s)) => {
                    for m in super::validation::is_valid_percent(s) {
                        errs.push(FieldError::invalid(child("spec", f), &Raw(s), &m));
                    }
                }
                _ => {}
            }
        }
        if let Some(sel) = get(spec, "selector") {
            validate_label_selector(sel, "spec.selector", &mut errs);
        }
        if let Some(p) = opt_str(spec, "unhealthyPodEvictionPolicy", "spec", &mut errs)
            && p != "IfHealthyBudget"
            && p != "AlwaysAllow"
        {
            errs.push(FieldError::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                p,
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
        errs
    }
}

#[cfg(test)]
#[path = "misc_tests.rs"]
mod tests;

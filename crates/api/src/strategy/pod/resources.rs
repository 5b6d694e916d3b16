//! Container resource requirements: names, quantities, requests ≤ limits, and the pod
//! QoS class derived from them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::strategy::FieldError;
use crate::strategy::json::{Errs, child, get, key, str_map_of};
use crate::strategy::quantity::parse_quantity;
use crate::strategy::validation::{IS_NEGATIVE, is_qualified_name};

/// Reports a quantity string that does not parse; returns its milli value otherwise.
pub(crate) fn validate_quantity_str(q: &str, path: &str, errs: &mut Errs) -> Option<i128> {
    match parse_quantity(q) {
        Ok(m) => Some(m),
        Err(e) => {
            errs.push(FieldError::invalid(path, q, &e.to_string()));
            None
        }
    }
}

/// Quantities arrive as strings, but plain JSON numbers decode too (Go accepts both).
fn quantity_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

/// Native resources except hugepages may be overcommitted (requests < limits).
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !is_hugepages(name)
}

fn is_extended(name: &str) -> bool {
    if is_native(name) || name.starts_with("requests.") {
        return false;
    }
    is_qualified_name(&format!("requests.{name}")).is_empty()
}

fn validate_resource_name(name: &str, path: &str, errs: &mut Errs) {
    let msgs = is_qualified_name(name);
    if !msgs.is_empty() {
        for m in msgs {
            errs.push(FieldError::invalid(path, name, &m));
        }
        return;
    }
    if !name.contains('/') {
        let standard = matches!(name, "cpu" | "memory" | "ephemeral-storage") || is_hugepages(name);
        if !standard {
            errs.push(FieldError::invalid(
                path,
                name,
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native(name) && !is_extended(name) {
        errs.push(FieldError::invalid(
            path,
            name,
            "doesn't follow extended resource name standard",
        ));
    }
}

/// Parses and checks one resource list (`limits` or `requests`); returns name → (text, milli).
fn resource_list(
    res: &Value,
    field: &str,
    path: &str,
    errs: &mut Errs,
) -> BTreeMap<String, (String, i128)> {
    let mut out = BTreeMap::new();
    let Some(list) = get(res, field) else {
        return out;
    };
    let lpath = child(path, field);
    let Some(m) = list.as_object() else {
        errs.push(FieldError::type_invalid(&lpath, list, "object"));
        return out;
    };
    for (name, v) in m {
        let kp = key(&lpath, name);
        validate_resource_name(name, &kp, errs);
        let Some(text) = quantity_text(v) else {
            errs.push(FieldError::type_invalid(&kp, v, "quantity string"));
            continue;
        };
        let Some(milli) = validate_quantity_str(&text, &kp, errs) else {
            continue;
        };
        if milli < 0 {
            errs.push(FieldError::invalid(&kp, text.as_str(), IS_NEGATIVE));
        } else if is_extended(name) && milli % 1000 != 0 {
            errs.push(FieldError::invalid(
                &kp,
                text.as_str(),
                "must be an integer",
            ));
        }
        out.insert(name.clone(), (text, milli));
    }
    out
}

/// `ValidateResourceRequirements` for a container's `resources`.
pub(crate) fn validate_resources(res: &Value, path: &str, errs: &mut Errs) {
    let limits = resource_list(res, "limits", path, errs);
    let requests = resource_list(res, "requests", path, errs);
    let req_path = child(path, "requests");
    for (name, (text, milli)) in &requests {
        match limits.get(name) {
            Some((ltext, lmilli)) => {
                if milli != lmilli && !overcommit_allowed(name) {
                    errs.push(FieldError::invalid(
                        &req_path,
                        text.as_str(),
                        &format!("must be equal to {name} limit of {ltext}"),
                    ));
                } else if milli > lmilli {
                    errs.push(FieldError::invalid(
                        &req_path,
                        text.as_str(),
                        &format!("must be less than or equal to {name} limit of {ltext}"),
                    ));
                }
            }
            None if !overcommit_allowed(name) => errs.push(FieldError::required(
                child(path, "limits"),
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
    }
    if let Some(claims) = get(res, "claims")
        && !claims.is_array()
    {
        errs.push(FieldError::type_invalid(
            child(path, "claims"),
            claims,
            "array",
        ));
    }
}

/// cpu/memory amounts (milli) of a container's requests or limits, positive values only.
fn qos_amounts(container: &Value, field: &str) -> BTreeMap<&'static str, i128> {
    let mut out = BTreeMap::new();
    let Some(list) = get(container, "resources").and_then(|r| get(r, field)) else {
        return out;
    };
    let mut sink = Vec::new();
    let Some(entries) = str_map_of(list, "", &mut sink) else {
        return out;
    };
    for (name, text) in entries {
        let name: &'static str = match name {
            "cpu" => "cpu",
            "memory" => "memory",
            _ => continue,
        };
        if let Ok(m) = parse_quantity(text)
            && m > 0
        {
            out.insert(name, m);
        }
    }
    out
}

/// Upstream `ComputePodQOS` over containers and init containers.
pub(crate) fn pod_qos(spec: &Value) -> &'static str {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    let containers = crate::strategy::json::get_arr(spec, "containers")
        .iter()
        .chain(crate::strategy::json::get_arr(spec, "initContainers"));
    for c in containers {
        for (k, v) in qos_amounts(c, "requests") {
            let e = requests.entry(k).or_insert(0);
            *e = e.saturating_add(v);
        }
        let lims = qos_amounts(c, "limits");
        if !(lims.contains_key("cpu") && lims.contains_key("memory")) {
            guaranteed = false;
        }
        for (k, v) in lims {
            let e = limits.entry(k).or_insert(0);
            *e = e.saturating_add(v);
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed
        && requests.iter().all(|(k, v)| limits.get(k) == Some(v))
        && requests.len() == limits.len()
    {
        return "Guaranteed";
    }
    "Burstable"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(res: Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate_resources(&res, "r", &mut errs);
        errs.into_iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn resource_validation() {
        assert!(
            msgs(json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}))
                .is_empty()
        );
        assert_eq!(
            msgs(json!({"limits": {"cpu": "1"}, "requests": {"cpu": "2"}})),
            ["r.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1"]
        );
        assert_eq!(
            msgs(json!({"limits": {"cpu": "abc"}})),
            [
                "r.limits[cpu]: Invalid value: \"abc\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            ]
        );
        assert_eq!(
            msgs(json!({"requests": {"memory": "-1"}})),
            ["r.requests[memory]: Invalid value: \"-1\": must be greater than or equal to 0"]
        );
        assert_eq!(
            msgs(json!({"requests": {"gpu": "1"}})),
            ["r.requests[gpu]: Invalid value: \"gpu\": must be a standard resource for containers"]
        );
        assert_eq!(
            msgs(json!({"requests": {"example.com/gpu": "1"}})),
            ["r.limits: Required value: Limit must be set for non overcommitable resources"]
        );
        assert_eq!(
            msgs(json!({"limits": {"example.com/gpu": "2"}, "requests": {"example.com/gpu": "1"}})),
            ["r.requests: Invalid value: \"1\": must be equal to example.com/gpu limit of 2"]
        );
        assert_eq!(
            msgs(json!({"limits": {"example.com/gpu": "500m"}, "requests": {"example.com/gpu": "500m"}})).len(),
            2
        );
        assert_eq!(msgs(json!({"limits": "junk"})).len(), 1);
        assert_eq!(msgs(json!({"limits": {"cpu": [1]}})).len(), 1);
        assert!(msgs(json!({"limits": {"cpu": 2}})).is_empty());
    }

    #[test]
    fn qos_classes() {
        let c = |res: Value| json!({"containers": [{"name": "a", "resources": res}]});
        assert_eq!(pod_qos(&c(json!({}))), "BestEffort");
        assert_eq!(pod_qos(&json!({})), "BestEffort");
        assert_eq!(
            pod_qos(&c(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            pod_qos(&c(
                json!({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
            )),
            "Burstable"
        );
        assert_eq!(pod_qos(&c(json!({"requests": {"cpu": "1"}}))), "Burstable");
        assert_eq!(
            pod_qos(&c(json!({"requests": {"example.com/x": "1"}}))),
            "BestEffort"
        );
    }
}

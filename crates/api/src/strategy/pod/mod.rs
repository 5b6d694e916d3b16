//! Pods and pod templates: defaults, the create-time mutations of upstream's pod strategy
//! and admission plugins (initial status, QoS class, default NoExecute tolerations,
//! priority), validation and update rules, field selectors.

mod container;
pub(crate) mod defaults;
pub(crate) mod resources;
mod update;
pub(crate) mod validate;

use serde_json::{Value, json};

use super::json::{Obj, child, get, get_arr, get_bool, get_str, str_at, with_obj};
use super::{FieldError, Strategy};

pub(crate) use container::validate_port_num_or_name;
pub(crate) use defaults::default_pod_spec;
pub(crate) use validate::{
    require_template_restart_policy, validate_pod_spec, validate_pod_template,
};

/// Defaults `obj.template.spec` (workload pod templates; `key` is the member holding the
/// template, normally `template`).
pub(crate) fn default_template_at(obj: &mut Obj, key: &str) {
    with_obj(obj, key, |t| {
        with_obj(t, "spec", |s| default_pod_spec(s, false))
    });
}

/// Core `Pod`.
pub struct PodStrategy;

/// Core `PodTemplate` (the standalone kind, template under `.template`).
pub struct PodTemplateStrategy;

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Upstream's DefaultTolerationSeconds admission: tolerate not-ready/unreachable
/// NoExecute taints for 300 s unless the pod already tolerates them.
fn add_default_tolerations(spec: &mut Obj) {
    let tols = spec.get("tolerations");
    let list: &[Value] = match tols {
        None | Some(Value::Null) => &[],
        Some(Value::Array(a)) => a,
        Some(_) => return,
    };
    let tolerates = |taint: &str| {
        list.iter().any(|t| {
            let k = get_str(t, "key").unwrap_or("");
            let e = get_str(t, "effect").unwrap_or("");
            (k == taint || k.is_empty()) && (e == "NoExecute" || e.is_empty())
        })
    };
    let mut add = Vec::new();
    for taint in [NOT_READY, UNREACHABLE] {
        if !tolerates(taint) {
            add.push(json!({"key": taint, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    if add.is_empty() {
        return;
    }
    let mut all = list.to_vec();
    all.extend(add);
    spec.insert("tolerations".into(), Value::Array(all));
}

/// Upstream's Priority admission for pods without a class (classes needing a lookup are
/// left to the registry). The two built-in system classes have fixed values.
fn default_priority(spec: &mut Obj) {
    let class = spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let value = match class {
        "" => 0,
        "system-cluster-critical" => 2_000_000_000,
        "system-node-critical" => 2_000_001_000,
        _ => return,
    };
    super::json::default_value(spec, "priority", json!(value));
    super::json::default_str(spec, "preemptionPolicy", "PreemptLowerPriority");
}

impl Strategy for PodStrategy {
    fn default(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            with_obj(o, "spec", |s| default_pod_spec(s, true));
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        let empty = json!({});
        let qos = resources::pod_qos(o.get("spec").unwrap_or(&empty));
        let gated = !get_arr(o.get("spec").unwrap_or(&empty), "schedulingGates").is_empty();
        let mut status = json!({"phase": "Pending", "qosClass": qos});
        if gated {
            status["conditions"] = json!([{
                "type": "PodScheduled",
                "status": "False",
                "lastProbeTime": null,
                "lastTransitionTime": null,
                "reason": "SchedulingGated",
                "message": "Scheduling is blocked due to non-empty scheduling gates",
            }]);
        }
        o.insert("status".into(), status);
        with_obj(o, "spec", |s| {
            add_default_tolerations(s);
            default_priority(s);
        });
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        if let Some(o) = new.as_object_mut() {
            with_obj(o, "spec", add_default_tolerations);
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        match get(obj, "spec") {
            Some(spec) => {
                validate_pod_spec(spec, "spec", &mut errs);
                if get(spec, "ephemeralContainers").is_some() {
                    errs.push(FieldError::forbidden(
                        "spec.ephemeralContainers",
                        "cannot be set on create",
                    ));
                }
            }
            None => errs.push(FieldError::required("spec.containers", "")),
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        match get(new, "spec") {
            Some(spec) => validate_pod_spec(spec, "spec", &mut errs),
            None => errs.push(FieldError::required("spec.containers", "")),
        }
        update::validate_pod_spec_update(new, old, &mut errs);
        errs
    }

    fn validate_subresource_update(&self, sub: &str, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if sub == "ephemeralcontainers" {
            if let Some(spec) = get(new, "spec") {
                validate_pod_spec(spec, "spec", &mut errs);
            }
            update::validate_ephemeral_containers_update(new, old, &mut errs);
        }
        errs
    }

    fn field_selector_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let spec = get(obj, "spec").unwrap_or(&Value::Null);
        let host_network = get_bool(spec, "hostNetwork").unwrap_or(false);
        let pod_ip = get_arr(get(obj, "status").unwrap_or(&Value::Null), "podIPs")
            .first()
            .and_then(|p| get_str(p, "ip"))
            .unwrap_or_else(|| str_at(obj, &["status", "podIP"]));
        vec![
            ("spec.nodeName", str_at(spec, &["nodeName"]).to_string()),
            (
                "spec.restartPolicy",
                str_at(spec, &["restartPolicy"]).to_string(),
            ),
            (
                "spec.schedulerName",
                str_at(spec, &["schedulerName"]).to_string(),
            ),
            (
                "spec.serviceAccountName",
                str_at(spec, &["serviceAccountName"]).to_string(),
            ),
            ("spec.hostNetwork", host_network.to_string()),
            (
                "status.phase",
                str_at(obj, &["status", "phase"]).to_string(),
            ),
            ("status.podIP", pod_ip.to_string()),
            (
                "status.nominatedNodeName",
                str_at(obj, &["status", "nominatedNodeName"]).to_string(),
            ),
        ]
    }
}

impl Strategy for PodTemplateStrategy {
    fn default(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            default_template_at(o, "template");
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        match get(obj, "template") {
            Some(t) => validate_pod_template(t, "template", &mut errs),
            None => errs.push(FieldError::required(
                child("template", "spec.containers"),
                "",
            )),
        }
        errs
    }
}

#[cfg(test)]
#[path = "pod_tests.rs"]
mod tests;

//! `apps/v1` workloads (Deployment, ReplicaSet, StatefulSet, DaemonSet) and the core
//! ReplicationController: defaults (`SetDefaults_*` of apps/v1), create-time status
//! reset, spec validation and update rules.

use serde_json::{Value, json};

use super::errors::Raw;
use super::json::{
    Errs, IntOrStr, Obj, child, default_str, default_value, ensure_obj, get, get_str, opt_bool,
    opt_i32, opt_int_or_str, opt_obj, opt_str,
};
use super::pod::{default_template_at, require_template_restart_policy, validate_pod_template};
use super::validation::{
    FIELD_IMMUTABLE, SelectorMatch, go_label_selector, go_labels, is_valid_percent, selector_match,
    validate_label_pairs, validate_label_selector, validate_nonnegative,
};
use super::{FieldError, Strategy};

pub struct DeploymentStrategy;
pub struct ReplicaSetStrategy;
pub struct ReplicationControllerStrategy;

mod sets;
pub use sets::{DaemonSetStrategy, StatefulSetStrategy};

pub(super) fn spec_mut(obj: &mut Value) -> Option<&mut Obj> {
    ensure_obj(obj.as_object_mut()?, "spec")
}

/// Create-time reset shared by every kind with a status subresource.
pub(crate) fn clear_status(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        o.insert("status".into(), json!({}));
    }
}

pub(super) fn nonneg_i32(spec: &Value, field: &str, errs: &mut Errs) -> Option<i64> {
    let n = opt_i32(spec, field, "spec", errs)?;
    errs.extend(validate_nonnegative(&child("spec", field), n));
    Some(n)
}

/// `ValidatePositiveIntOrPercent` on `obj[key]`; returns the parsed value.
pub(super) fn int_or_percent<'a>(
    obj: &'a Value,
    key: &str,
    path: &str,
    errs: &mut Errs,
) -> Option<IntOrStr<'a>> {
    let v = opt_int_or_str(obj, key, path, errs)?;
    let p = child(path, key);
    match &v {
        IntOrStr::Str(s) => {
            for m in is_valid_percent(s) {
                errs.push(FieldError::invalid(&p, &Raw(s), &m));
            }
        }
        IntOrStr::Int(n) => errs.extend(validate_nonnegative(&p, *n)),
    }
    Some(v)
}

/// Upstream's `getIntOrPercentValue` (unparsable strings count as 0).
pub(super) fn int_or_percent_value(v: Option<&IntOrStr<'_>>) -> i64 {
    match v {
        None => 0,
        Some(IntOrStr::Int(n)) => *n,
        Some(IntOrStr::Str(s)) => s.strip_suffix('%').unwrap_or(s).parse().unwrap_or(0),
    }
}

pub(super) fn not_more_than_100_percent(v: Option<&IntOrStr<'_>>, path: &str, errs: &mut Errs) {
    if let Some(IntOrStr::Str(s)) = v
        && let Some(n) = s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok())
        && n > 100
    {
        errs.push(FieldError::invalid(
            path,
            &Raw(s),
            "must not be greater than 100%",
        ));
    }
}

/// Selector presence/validity and its match against the template labels.
pub(super) fn validate_selector(
    spec: &Value,
    what: &str,
    errs: &mut Errs,
) -> Option<SelectorMatch> {
    let Some(sel) = get(spec, "selector") else {
        errs.push(FieldError::required("spec.selector", ""));
        return None;
    };
    validate_label_selector(sel, "spec.selector", errs);
    let labels = get(spec, "template")
        .and_then(|t| get(t, "metadata"))
        .and_then(|m| get(m, "labels"));
    let m = selector_match(sel, labels);
    if m == SelectorMatch::Everything {
        errs.push(FieldError::invalid(
            "spec.selector",
            &Raw(&go_label_selector(sel)),
            &format!("empty selector is invalid for {what}"),
        ));
    }
    if m == SelectorMatch::NoMatch {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            &Raw(&go_labels(labels)),
            "`selector` does not match template `labels`",
        ));
    }
    Some(m)
}

/// Full template validation plus the controller's restart-policy and deadline rules.
fn validate_workload_template(spec: &Value, kind: &str, errs: &mut Errs) {
    match get(spec, "template") {
        Some(t) => {
            validate_pod_template(t, "spec.template", errs);
            require_template_restart_policy(t, "spec.template", &["Always"], errs);
            if get(t, "spec")
                .and_then(|s| get(s, "activeDeadlineSeconds"))
                .is_some()
            {
                errs.push(FieldError::forbidden(
                    "spec.template.spec.activeDeadlineSeconds",
                    &format!("activeDeadlineSeconds in {kind} is not Supported"),
                ));
            }
        }
        None => errs.push(FieldError::required("spec.template", "")),
    }
}

/// The object's spec (borrowed: pod templates can be hundreds of KB), or an empty one.
pub(super) fn spec_of<'a>(obj: &'a Value, errs: &mut Errs) -> &'a Value {
    static EMPTY: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| json!({}));
    match get(obj, "spec") {
        Some(s) if s.is_object() => s,
        Some(other) => {
            errs.push(FieldError::type_invalid("spec", other, "object"));
            &EMPTY
        }
        None => &EMPTY,
    }
}

pub(super) fn selector_immutable(new: &Value, old: &Value, errs: &mut Errs) {
    let ns = get(new, "spec").and_then(|s| get(s, "selector"));
    let os = get(old, "spec").and_then(|s| get(s, "selector"));
    if !super::compare::semantic_eq(ns, os) {
        let shown = ns.map_or_else(|| "null".to_string(), go_label_selector);
        errs.push(FieldError::invalid(
            "spec.selector",
            &Raw(&shown),
            FIELD_IMMUTABLE,
        ));
    }
}

// ---- Deployment ----

impl Strategy for DeploymentStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = spec_mut(obj) else { return };
        default_value(spec, "replicas", json!(1));
        if let Some(strategy) = ensure_obj(spec, "strategy") {
            default_str(strategy, "type", "RollingUpdate");
            if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate")
                && let Some(ru) = ensure_obj(strategy, "rollingUpdate")
            {
                default_value(ru, "maxUnavailable", json!("25%"));
                default_value(ru, "maxSurge", json!("25%"));
            }
        }
        default_value(spec, "revisionHistoryLimit", json!(10));
        default_value(spec, "progressDeadlineSeconds", json!(600));
        default_template_at(spec, "template");
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = spec_of(obj, &mut errs);
        nonneg_i32(spec, "replicas", &mut errs);
        let min_ready = nonneg_i32(spec, "minReadySeconds", &mut errs).unwrap_or(0);
        validate_selector(spec, "deployment", &mut errs);
        validate_workload_template(spec, "ReplicaSet", &mut errs);
        validate_deployment_strategy(spec, &mut errs);
        nonneg_i32(spec, "revisionHistoryLimit", &mut errs);
        opt_bool(spec, "paused", "spec", &mut errs);
        if let Some(pds) = nonneg_i32(spec, "progressDeadlineSeconds", &mut errs)
            && pds <= min_ready
        {
            errs.push(FieldError::invalid(
                "spec.progressDeadlineSeconds",
                &pds,
                "must be greater than minReadySeconds",
            ));
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_create(new);
        selector_immutable(new, old, &mut errs);
        errs
    }
}

fn validate_deployment_strategy(spec: &Value, errs: &mut Errs) {
    let Some(strategy) = opt_obj(spec, "strategy", "spec", errs) else {
        return;
    };
    let p = "spec.strategy";
    match opt_str(strategy, "type", p, errs).unwrap_or("") {
        "Recreate" => {
            if get(strategy, "rollingUpdate").is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match opt_obj(strategy, "rollingUpdate", p, errs) {
            None => errs.push(FieldError::required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(ru) => {
                let rp = "spec.strategy.rollingUpdate";
                let mu = int_or_percent(ru, "maxUnavailable", rp, errs);
                let ms = int_or_percent(ru, "maxSurge", rp, errs);
                if int_or_percent_value(mu.as_ref()) == 0 && int_or_percent_value(ms.as_ref()) == 0
                {
                    let shown = mu
                        .as_ref()
                        .map_or_else(|| "null".to_string(), IntOrStr::display);
                    errs.push(FieldError::invalid(
                        child(rp, "maxUnavailable"),
                        &Raw(&shown),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_more_than_100_percent(mu.as_ref(), &child(rp, "maxUnavailable"), errs);
            }
        },
        other => errs.push(FieldError::not_supported(
            "spec.strategy.type",
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
}

// ---- ReplicaSet / ReplicationController ----

impl Strategy for ReplicaSetStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = spec_mut(obj) else { return };
        default_value(spec, "replicas", json!(1));
        default_template_at(spec, "template");
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = spec_of(obj, &mut errs);
        nonneg_i32(spec, "replicas", &mut errs);
        nonneg_i32(spec, "minReadySeconds", &mut errs);
        validate_selector(spec, "deployment", &mut errs);
        validate_workload_template(spec, "ReplicaSet", &mut errs);
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_create(new);
        selector_immutable(new, old, &mut errs);
        errs
    }

    fn field_selector_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        replicas_field(obj)
    }
}

fn replicas_field(obj: &Value) -> Vec<(&'static str, String)> {
    let n = get(obj, "status")
        .and_then(|s| s.get("replicas"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    vec![("status.replicas", n.to_string())]
}

impl Strategy for ReplicationControllerStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        let labels = o
            .get("spec")
            .and_then(|s| get(s, "template"))
            .and_then(|t| get(t, "metadata"))
            .and_then(|m| get(m, "labels"))
            .filter(|l| l.is_object())
            .cloned();
        if let Some(labels) = labels {
            if let Some(spec) = ensure_obj(o, "spec")
                && spec
                    .get("selector")
                    .and_then(Value::as_object)
                    .is_none_or(|m| m.is_empty())
            {
                spec.insert("selector".into(), labels.clone());
            }
            if let Some(meta) = ensure_obj(o, "metadata")
                && meta
                    .get("labels")
                    .and_then(Value::as_object)
                    .is_none_or(|m| m.is_empty())
            {
                meta.insert("labels".into(), labels);
            }
        }
        if let Some(spec) = ensure_obj(o, "spec") {
            default_value(spec, "replicas", json!(1));
            default_template_at(spec, "template");
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = spec_of(obj, &mut errs);
        nonneg_i32(spec, "replicas", &mut errs);
        nonneg_i32(spec, "minReadySeconds", &mut errs);
        let selector =
            super::json::opt_str_map(spec, "selector", "spec", &mut errs).unwrap_or_default();
        if selector.is_empty() {
            errs.push(FieldError::required("spec.selector", ""));
        } else {
            validate_label_pairs(&selector, "spec.selector", &mut errs);
        }
        let labels = get(spec, "template")
            .and_then(|t| get(t, "metadata"))
            .and_then(|m| get(m, "labels"));
        if !selector.is_empty()
            && !selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| get_str(l, k)) == Some(*v))
        {
            errs.push(FieldError::invalid(
                "spec.template.metadata.labels",
                &Raw(&go_labels(labels)),
                "`selector` does not match template `labels`",
            ));
        }
        validate_workload_template(spec, "ReplicationController", &mut errs);
        errs
    }

    fn field_selector_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        replicas_field(obj)
    }
}

#[cfg(test)]
mod tests;

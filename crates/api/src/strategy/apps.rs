//! `apps/v1` workloads (Deployment, ReplicaSet, StatefulSet, DaemonSet) and the core
//! ReplicationController: defaults (`SetDefaults_*` of apps/v1), create-time status
//! reset, spec validation and update rules.

use serde_json::{Value, json};

use super::errors::Raw;
use super::json::{
    Errs, IntOrStr, Obj, child, default_str, default_value, ensure_obj, get, get_str, opt_bool, opt_i32, opt_int_or_str,
    opt_obj, opt_str, with_obj,
};
use super::pod::{default_template_at, require_template_restart_policy, validate_pod_template};
use super::validation::{
    FIELD_IMMUTABLE, NameRule, SelectorMatch, go_label_selector, go_labels, is_valid_percent, selector_match,
    validate_annotations, validate_label_pairs, validate_label_selector, validate_nonnegative,
};
use super::{FieldError, Strategy};

pub struct DeploymentStrategy;
pub struct ReplicaSetStrategy;
pub struct StatefulSetStrategy;
pub struct DaemonSetStrategy;
pub struct ReplicationControllerStrategy;

const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn spec_mut(obj: &mut Value) -> Option<&mut Obj> {
    ensure_obj(obj.as_object_mut()?, "spec")
}

/// Create-time reset shared by every kind with a status subresource.
pub(crate) fn clear_status(obj: &mut Value) {
    if let Some(o) = obj.as_object_mut() {
        o.insert("status".into(), json!({}));
    }
}

fn nonneg_i32(spec: &Value, field: &str, errs: &mut Errs) -> Option<i64> {
    let n = opt_i32(spec, field, "spec", errs)?;
    errs.extend(validate_nonnegative(&child("spec", field), n));
    Some(n)
}

/// `ValidatePositiveIntOrPercent` on `obj[key]`; returns the parsed value.
fn int_or_percent<'a>(obj: &'a Value, key: &str, path: &str, errs: &mut Errs) -> Option<IntOrStr<'a>> {
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
fn int_or_percent_value(v: Option<&IntOrStr<'_>>) -> i64 {
    match v {
        None => 0,
        Some(IntOrStr::Int(n)) => *n,
        Some(IntOrStr::Str(s)) => s.strip_suffix('%').unwrap_or(s).parse().unwrap_or(0),
    }
}

fn not_more_than_100_percent(v: Option<&IntOrStr<'_>>, path: &str, errs: &mut Errs) {
    if let Some(IntOrStr::Str(s)) = v {
        if let Some(n) = s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
            if n > 100 {
                errs.push(FieldError::invalid(path, &Raw(s), "must not be greater than 100%"));
            }
        }
    }
}

/// Selector presence/validity and its match against the template labels.
fn validate_selector(spec: &Value, what: &str, errs: &mut Errs) -> Option<SelectorMatch> {
    let Some(sel) = get(spec, "selector") else {
        errs.push(FieldError::required("spec.selector", ""));
        return None;
    };
    validate_label_selector(sel, "spec.selector", errs);
    let labels = get(spec, "template").and_then(|t| get(t, "metadata")).and_then(|m| get(m, "labels"));
    let m = selector_match(sel, labels);
    if m == SelectorMatch::Everything {
        errs.push(FieldError::invalid("spec.selector", &Raw(&go_label_selector(sel)), &format!("empty selector is invalid for {what}")));
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
            if get(t, "spec").and_then(|s| get(s, "activeDeadlineSeconds")).is_some() {
                errs.push(FieldError::forbidden(
                    "spec.template.spec.activeDeadlineSeconds",
                    &format!("activeDeadlineSeconds in {kind} is not Supported"),
                ));
            }
        }
        None => errs.push(FieldError::required("spec.template", "")),
    }
}

fn spec_of(obj: &Value, errs: &mut Errs) -> Value {
    match get(obj, "spec") {
        Some(s) if s.is_object() => s.clone(),
        Some(other) => {
            errs.push(FieldError::type_invalid("spec", other, "object"));
            json!({})
        }
        None => json!({}),
    }
}

fn selector_immutable(new: &Value, old: &Value, errs: &mut Errs) {
    let ns = get(new, "spec").and_then(|s| get(s, "selector"));
    let os = get(old, "spec").and_then(|s| get(s, "selector"));
    if !super::compare::semantic_eq(ns, os) {
        let shown = ns.map_or_else(|| "null".to_string(), go_label_selector);
        errs.push(FieldError::invalid("spec.selector", &Raw(&shown), FIELD_IMMUTABLE));
    }
}

// ---- Deployment ----

impl Strategy for DeploymentStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = spec_mut(obj) else { return };
        default_value(spec, "replicas", json!(1));
        if let Some(strategy) = ensure_obj(spec, "strategy") {
            default_str(strategy, "type", "RollingUpdate");
            if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                if let Some(ru) = ensure_obj(strategy, "rollingUpdate") {
                    default_value(ru, "maxUnavailable", json!("25%"));
                    default_value(ru, "maxSurge", json!("25%"));
                }
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
        nonneg_i32(&spec, "replicas", &mut errs);
        let min_ready = nonneg_i32(&spec, "minReadySeconds", &mut errs).unwrap_or(0);
        validate_selector(&spec, "deployment", &mut errs);
        validate_workload_template(&spec, "ReplicaSet", &mut errs);
        validate_deployment_strategy(&spec, &mut errs);
        nonneg_i32(&spec, "revisionHistoryLimit", &mut errs);
        opt_bool(&spec, "paused", "spec", &mut errs);
        if let Some(pds) = nonneg_i32(&spec, "progressDeadlineSeconds", &mut errs) {
            if pds <= min_ready {
                errs.push(FieldError::invalid("spec.progressDeadlineSeconds", &pds, "must be greater than minReadySeconds"));
            }
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
    let Some(strategy) = opt_obj(spec, "strategy", "spec", errs) else { return };
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
                if int_or_percent_value(mu.as_ref()) == 0 && int_or_percent_value(ms.as_ref()) == 0 {
                    let shown = mu.as_ref().map_or_else(|| "null".to_string(), IntOrStr::display);
                    errs.push(FieldError::invalid(
                        child(rp, "maxUnavailable"),
                        &Raw(&shown),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_more_than_100_percent(mu.as_ref(), &child(rp, "maxUnavailable"), errs);
            }
        },
        other => errs.push(FieldError::not_supported("spec.strategy.type", other, &["Recreate", "RollingUpdate"])),
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
        nonneg_i32(&spec, "replicas", &mut errs);
        nonneg_i32(&spec, "minReadySeconds", &mut errs);
        validate_selector(&spec, "deployment", &mut errs);
        validate_workload_template(&spec, "ReplicaSet", &mut errs);
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
    let n = get(obj, "status").and_then(|s| s.get("replicas")).and_then(Value::as_i64).unwrap_or(0);
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
            if let Some(spec) = ensure_obj(o, "spec") {
                if spec.get("selector").and_then(Value::as_object).is_none_or(|m| m.is_empty()) {
                    spec.insert("selector".into(), labels.clone());
                }
            }
            if let Some(meta) = ensure_obj(o, "metadata") {
                if meta.get("labels").and_then(Value::as_object).is_none_or(|m| m.is_empty()) {
                    meta.insert("labels".into(), labels);
                }
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
        nonneg_i32(&spec, "replicas", &mut errs);
        nonneg_i32(&spec, "minReadySeconds", &mut errs);
        let selector = super::json::opt_str_map(&spec, "selector", "spec", &mut errs).unwrap_or_default();
        if selector.is_empty() {
            errs.push(FieldError::required("spec.selector", ""));
        } else {
            validate_label_pairs(&selector, "spec.selector", &mut errs);
        }
        let labels = get(&spec, "template").and_then(|t| get(t, "metadata")).and_then(|m| get(m, "labels"));
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
        validate_workload_template(&spec, "ReplicationController", &mut errs);
        errs
    }

    fn field_selector_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        replicas_field(obj)
    }
}

// ---- StatefulSet ----

impl Strategy for StatefulSetStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = spec_mut(obj) else { return };
        default_str(spec, "podManagementPolicy", "OrderedReady");
        if let Some(us) = ensure_obj(spec, "updateStrategy") {
            if super::json::is_blank(us, "type") {
                us.insert("type".into(), json!("RollingUpdate"));
                default_value(us, "rollingUpdate", json!({}));
            }
            if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                with_obj(us, "rollingUpdate", |ru| default_value(ru, "partition", json!(0)));
            }
        }
        if let Some(p) = ensure_obj(spec, "persistentVolumeClaimRetentionPolicy") {
            default_str(p, "whenDeleted", "Retain");
            default_str(p, "whenScaled", "Retain");
        }
        default_value(spec, "replicas", json!(1));
        default_value(spec, "revisionHistoryLimit", json!(10));
        default_template_at(spec, "template");
        super::json::each_obj_mut(spec, "volumeClaimTemplates", |pvc| {
            with_obj(pvc, "spec", |s| default_value(s, "volumeMode", json!("Filesystem")));
            if let Some(st) = ensure_obj(pvc, "status") {
                default_str(st, "phase", "Pending");
            }
        });
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        validate_statefulset_spec(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_statefulset_spec(new);
        let strip = |o: &Value| {
            let mut s = get(o, "spec").cloned().unwrap_or(json!({}));
            if let Some(m) = s.as_object_mut() {
                for f in ["replicas", "template", "updateStrategy", "minReadySeconds", "ordinals", "persistentVolumeClaimRetentionPolicy"] {
                    m.remove(f);
                }
            }
            s
        };
        if !super::compare::semantic_eq(Some(&strip(new)), Some(&strip(old))) {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
        errs
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1123Label
    }
}

fn validate_statefulset_spec(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = spec_of(obj, &mut errs);
    match opt_str(&spec, "podManagementPolicy", "spec", &mut errs).unwrap_or("") {
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let us = opt_obj(&spec, "updateStrategy", "spec", &mut errs).cloned().unwrap_or(json!({}));
    let usp = "spec.updateStrategy";
    match opt_str(&us, "type", usp, &mut errs).unwrap_or("") {
        "" => errs.push(FieldError::required(usp, "")),
        "OnDelete" => {
            if let Some(ru) = get(&us, "rollingUpdate") {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    &Raw(&ru.to_string()),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = opt_obj(&us, "rollingUpdate", usp, &mut errs) {
                if let Some(p) = opt_i32(ru, "partition", "spec.updateStrategy.rollingUpdate", &mut errs) {
                    errs.extend(validate_nonnegative("spec.updateStrategy.rollingUpdate.partition", p));
                }
                int_or_percent(ru, "maxUnavailable", "spec.updateStrategy.rollingUpdate", &mut errs);
            }
        }
        _ => errs.push(FieldError::invalid(usp, &Raw(&us.to_string()), "must be 'RollingUpdate' or 'OnDelete'")),
    }
    if let Some(p) = opt_obj(&spec, "persistentVolumeClaimRetentionPolicy", "spec", &mut errs) {
        let pp = "spec.persistentVolumeClaimRetentionPolicy";
        for f in ["whenDeleted", "whenScaled"] {
            let v = opt_str(p, f, pp, &mut errs).unwrap_or("");
            if v != "Retain" && v != "Delete" {
                errs.push(FieldError::not_supported(child(pp, f), v, &["Retain", "Delete"]));
            }
        }
    }
    nonneg_i32(&spec, "replicas", &mut errs);
    nonneg_i32(&spec, "minReadySeconds", &mut errs);
    nonneg_i32(&spec, "revisionHistoryLimit", &mut errs);
    if let Some(o) = opt_obj(&spec, "ordinals", "spec", &mut errs) {
        if let Some(start) = opt_i32(o, "start", "spec.ordinals", &mut errs) {
            errs.extend(validate_nonnegative("spec.ordinals.start", start));
        }
    }
    opt_str(&spec, "serviceName", "spec", &mut errs);
    validate_selector(&spec, "statefulset", &mut errs);
    // Upstream validates only the template's labels and annotations here (the pod spec is
    // checked when the controller creates pods), plus the controller's own rules.
    match get(&spec, "template") {
        Some(t) if t.is_object() => {
            if let Some(meta) = opt_obj(t, "metadata", "spec.template", &mut errs) {
                if let Some(labels) = super::json::opt_str_map(meta, "labels", "spec.template", &mut errs) {
                    validate_label_pairs(&labels, "spec.template.labels", &mut errs);
                }
                if let Some(a) = get(meta, "annotations") {
                    errs.extend(validate_annotations(a, "spec.template.annotations"));
                }
            }
            require_template_restart_policy(t, "spec.template", &["Always"], &mut errs);
            if get(t, "spec").and_then(|s| get(s, "activeDeadlineSeconds")).is_some() {
                errs.push(FieldError::forbidden(
                    "spec.template.spec.activeDeadlineSeconds",
                    "activeDeadlineSeconds in StatefulSet is not Supported",
                ));
            }
        }
        Some(other) => errs.push(FieldError::type_invalid("spec.template", other, "object")),
        None => errs.push(FieldError::required("spec.template", "")),
    }
    if let Some(vcts) = super::json::opt_arr(&spec, "volumeClaimTemplates", "spec", &mut errs) {
        for (i, t) in vcts.iter().enumerate() {
            let p = super::json::index("spec.volumeClaimTemplates", i);
            if super::json::str_at(t, &["metadata", "name"]).is_empty() {
                errs.push(FieldError::required(child(&p, "metadata.name"), ""));
            }
        }
    }
    errs
}

// ---- DaemonSet ----

impl Strategy for DaemonSetStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = spec_mut(obj) else { return };
        if let Some(us) = ensure_obj(spec, "updateStrategy") {
            default_str(us, "type", "RollingUpdate");
            if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                if let Some(ru) = ensure_obj(us, "rollingUpdate") {
                    default_value(ru, "maxUnavailable", json!(1));
                    default_value(ru, "maxSurge", json!(0));
                }
            }
        }
        default_value(spec, "revisionHistoryLimit", json!(10));
        default_template_at(spec, "template");
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        clear_status(obj);
        set_template_generation(obj, 1);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        let old_gen = get(old, "metadata")
            .and_then(|m| get(m, "annotations"))
            .and_then(|a| get_str(a, TEMPLATE_GENERATION))
            .and_then(|g| g.parse::<i64>().ok())
            .unwrap_or(1);
        let nt = get(new, "spec").and_then(|s| get(s, "template"));
        let ot = get(old, "spec").and_then(|s| get(s, "template"));
        let generation = if super::compare::semantic_eq(nt, ot) { old_gen } else { old_gen + 1 };
        set_template_generation(new, generation);
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = spec_of(obj, &mut errs);
        validate_selector(&spec, "daemonset", &mut errs);
        match get(&spec, "template") {
            Some(t) => {
                validate_pod_template(t, "spec.template", &mut errs);
                require_template_restart_policy(t, "spec.template", &["Always"], &mut errs);
                if let Some(ads) = get(t, "spec").and_then(|s| get(s, "activeDeadlineSeconds")) {
                    errs.push(FieldError::invalid(
                        "spec.template.spec.activeDeadlineSeconds",
                        ads,
                        "activeDeadlineSeconds in DaemonSet is not Supported",
                    ));
                }
            }
            None => errs.push(FieldError::required("spec.template", "")),
        }
        nonneg_i32(&spec, "minReadySeconds", &mut errs);
        nonneg_i32(&spec, "revisionHistoryLimit", &mut errs);
        validate_daemonset_strategy(&spec, &mut errs);
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = self.validate_create(new);
        selector_immutable(new, old, &mut errs);
        errs
    }
}

fn set_template_generation(obj: &mut Value, generation: i64) {
    let Some(o) = obj.as_object_mut() else { return };
    let Some(meta) = ensure_obj(o, "metadata") else { return };
    if let Some(ann) = ensure_obj(meta, "annotations") {
        ann.insert(TEMPLATE_GENERATION.into(), json!(generation.to_string()));
    }
}

fn validate_daemonset_strategy(spec: &Value, errs: &mut Errs) {
    let Some(us) = opt_obj(spec, "updateStrategy", "spec", errs) else { return };
    let p = "spec.updateStrategy";
    match opt_str(us, "type", p, errs).unwrap_or("") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let Some(ru) = opt_obj(us, "rollingUpdate", p, errs) else {
                errs.push(FieldError::required("spec.updateStrategy.rollingUpdate", ""));
                return;
            };
            let rp = "spec.updateStrategy.rollingUpdate";
            let mu = int_or_percent(ru, "maxUnavailable", rp, errs);
            let ms = int_or_percent(ru, "maxSurge", rp, errs);
            not_more_than_100_percent(mu.as_ref(), &child(rp, "maxUnavailable"), errs);
            not_more_than_100_percent(ms.as_ref(), &child(rp, "maxSurge"), errs);
            let has_unavailable = int_or_percent_value(mu.as_ref()) != 0;
            let has_surge = int_or_percent_value(ms.as_ref()) != 0;
            if has_unavailable && has_surge {
                let shown = ms.as_ref().map_or_else(|| "null".to_string(), IntOrStr::display);
                errs.push(FieldError::invalid(
                    child(rp, "maxSurge"),
                    &Raw(&shown),
                    "may not be set when maxUnavailable is non-zero",
                ));
            } else if !has_unavailable && !has_surge {
                errs.push(FieldError::required(child(rp, "maxUnavailable"), "cannot be 0 when maxSurge is 0"));
            }
        }
        other => errs.push(FieldError::not_supported("spec.updateStrategy.type", other, &["RollingUpdate", "OnDelete"])),
    }
}

#[cfg(test)]
#[path = "apps_tests.rs"]
mod tests;

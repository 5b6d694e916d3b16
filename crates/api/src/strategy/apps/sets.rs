//! StatefulSet and DaemonSet.

use serde_json::{Value, json};

use super::{
    clear_status, int_or_percent, int_or_percent_value, nonneg_i32, not_more_than_100_percent,
    selector_immutable, spec_mut, spec_of, validate_selector,
};
use crate::strategy::errors::Raw;
use crate::strategy::json::{
    Errs, IntOrStr, child, default_str, default_value, ensure_obj, get, get_str, opt_i32, opt_obj,
    opt_str, with_obj,
};
use crate::strategy::pod::{
    default_template_at, require_template_restart_policy, validate_pod_template,
};
use crate::strategy::validation::{
    NameRule, validate_annotations, validate_label_pairs, validate_nonnegative,
};
use crate::strategy::{FieldError, Strategy};

pub struct StatefulSetStrategy;
pub struct DaemonSetStrategy;

const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

// ---- StatefulSet ----

impl Strategy for StatefulSetStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(spec) = spec_mut(obj) else { return };
        default_str(spec, "podManagementPolicy", "OrderedReady");
        if let Some(us) = ensure_obj(spec, "updateStrategy") {
            if crate::strategy::json::is_blank(us, "type") {
                us.insert("type".into(), json!("RollingUpdate"));
                default_value(us, "rollingUpdate", json!({}));
            }
            if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                with_obj(us, "rollingUpdate", |ru| {
                    default_value(ru, "partition", json!(0))
                });
            }
        }
        if let Some(p) = ensure_obj(spec, "persistentVolumeClaimRetentionPolicy") {
            default_str(p, "whenDeleted", "Retain");
            default_str(p, "whenScaled", "Retain");
        }
        default_value(spec, "replicas", json!(1));
        default_value(spec, "revisionHistoryLimit", json!(10));
        default_template_at(spec, "template");
        crate::strategy::json::each_obj_mut(spec, "volumeClaimTemplates", |pvc| {
            with_obj(pvc, "spec", |s| {
                default_value(s, "volumeMode", json!("Filesystem"))
            });
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
                for f in [
                    "replicas",
                    "template",
                    "updateStrategy",
                    "minReadySeconds",
                    "ordinals",
                    "persistentVolumeClaimRetentionPolicy",
                ] {
                    m.remove(f);
                }
            }
            s
        };
        if !crate::strategy::compare::semantic_eq(Some(&strip(new)), Some(&strip(old))) {
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
    match opt_str(spec, "podManagementPolicy", "spec", &mut errs).unwrap_or("") {
        "" => errs.push(FieldError::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let us = opt_obj(spec, "updateStrategy", "spec", &mut errs)
        .cloned()
        .unwrap_or(json!({}));
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
                if let Some(p) = opt_i32(
                    ru,
                    "partition",
                    "spec.updateStrategy.rollingUpdate",
                    &mut errs,
                ) {
                    errs.extend(validate_nonnegative(
                        "spec.updateStrategy.rollingUpdate.partition",
                        p,
                    ));
                }
                int_or_percent(
                    ru,
                    "maxUnavailable",
                    "spec.updateStrategy.rollingUpdate",
                    &mut errs,
                );
            }
        }
        _ => errs.push(FieldError::invalid(
            usp,
            &Raw(&us.to_string()),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(p) = opt_obj(
        spec,
        "persistentVolumeClaimRetentionPolicy",
        "spec",
        &mut errs,
    ) {
        let pp = "spec.persistentVolumeClaimRetentionPolicy";
        for f in ["whenDeleted", "whenScaled"] {
            let v = opt_str(p, f, pp, &mut errs).unwrap_or("");
            if v != "Retain" && v != "Delete" {
                errs.push(FieldError::not_supported(
                    child(pp, f),
                    v,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    nonneg_i32(spec, "replicas", &mut errs);
    nonneg_i32(spec, "minReadySeconds", &mut errs);
    nonneg_i32(spec, "revisionHistoryLimit", &mut errs);
    if let Some(o) = opt_obj(spec, "ordinals", "spec", &mut errs)
        && let Some(start) = opt_i32(o, "start", "spec.ordinals", &mut errs)
    {
        errs.extend(validate_nonnegative("spec.ordinals.start", start));
    }
    opt_str(spec, "serviceName", "spec", &mut errs);
    validate_selector(spec, "statefulset", &mut errs);
    // Upstream validates only the template's labels and annotations here (the pod spec is
    // checked when the controller creates pods), plus the controller's own rules.
    match get(spec, "template") {
        Some(t) if t.is_object() => {
            if let Some(meta) = opt_obj(t, "metadata", "spec.template", &mut errs) {
                if let Some(labels) =
                    crate::strategy::json::opt_str_map(meta, "labels", "spec.template", &mut errs)
                {
                    validate_label_pairs(&labels, "spec.template.labels", &mut errs);
                }
                if let Some(a) = get(meta, "annotations") {
                    errs.extend(validate_annotations(a, "spec.template.annotations"));
                }
            }
            require_template_restart_policy(t, "spec.template", &["Always"], &mut errs);
            if get(t, "spec")
                .and_then(|s| get(s, "activeDeadlineSeconds"))
                .is_some()
            {
                errs.push(FieldError::forbidden(
                    "spec.template.spec.activeDeadlineSeconds",
                    "activeDeadlineSeconds in StatefulSet is not Supported",
                ));
            }
        }
        Some(other) => errs.push(FieldError::type_invalid("spec.template", other, "object")),
        None => errs.push(FieldError::required("spec.template", "")),
    }
    if let Some(vcts) =
        crate::strategy::json::opt_arr(spec, "volumeClaimTemplates", "spec", &mut errs)
    {
        for (i, t) in vcts.iter().enumerate() {
            let p = crate::strategy::json::index("spec.volumeClaimTemplates", i);
            if crate::strategy::json::str_at(t, &["metadata", "name"]).is_empty() {
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
            if us.get("type").and_then(Value::as_str) == Some("RollingUpdate")
                && let Some(ru) = ensure_obj(us, "rollingUpdate")
            {
                default_value(ru, "maxUnavailable", json!(1));
                default_value(ru, "maxSurge", json!(0));
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
        let generation = if crate::strategy::compare::semantic_eq(nt, ot) {
            old_gen
        } else {
            old_gen + 1
        };
        set_template_generation(new, generation);
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = spec_of(obj, &mut errs);
        validate_selector(spec, "daemonset", &mut errs);
        match get(spec, "template") {
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
        nonneg_i32(spec, "minReadySeconds", &mut errs);
        nonneg_i32(spec, "revisionHistoryLimit", &mut errs);
        validate_daemonset_strategy(spec, &mut errs);
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
    let Some(meta) = ensure_obj(o, "metadata") else {
        return;
    };
    if let Some(ann) = ensure_obj(meta, "annotations") {
        ann.insert(TEMPLATE_GENERATION.into(), json!(generation.to_string()));
    }
}

fn validate_daemonset_strategy(spec: &Value, errs: &mut Errs) {
    let Some(us) = opt_obj(spec, "updateStrategy", "spec", errs) else {
        return;
    };
    let p = "spec.updateStrategy";
    match opt_str(us, "type", p, errs).unwrap_or("") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let Some(ru) = opt_obj(us, "rollingUpdate", p, errs) else {
                errs.push(FieldError::required(
                    "spec.updateStrategy.rollingUpdate",
                    "",
                ));
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
                let shown = ms
                    .as_ref()
                    .map_or_else(|| "null".to_string(), IntOrStr::display);
                errs.push(FieldError::invalid(
                    child(rp, "maxSurge"),
                    &Raw(&shown),
                    "may not be set when maxUnavailable is non-zero",
                ));
            } else if !has_unavailable && !has_surge {
                errs.push(FieldError::required(
                    child(rp, "maxUnavailable"),
                    "cannot be 0 when maxSurge is 0",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.updateStrategy.type",
            other,
            &["RollingUpdate", "OnDelete"],
        )),
    }
}

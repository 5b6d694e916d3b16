//! `batch/v1` Job and CronJob: defaults, the generated Job selector, spec validation and
//! Job immutability rules.

use serde_json::{Value, json};

use super::apps::clear_status;
use super::compare::semantic_eq;
use super::errors::Raw;
use super::json::{
    Errs, Obj, child, default_str, default_value, each_obj_mut, ensure_obj, get, get_bool, get_str,
    opt_bool, opt_i32, opt_int, opt_obj, opt_str, str_at, with_obj,
};
use super::pod::{default_template_at, require_template_restart_policy, validate_pod_template};
use super::validation::{
    FIELD_IMMUTABLE, SelectorMatch, go_label_selector, go_labels, is_dns1123_label, selector_match,
    validate_label_selector, validate_nonnegative,
};
use super::{FieldError, Strategy};
use crate::cron;

pub struct JobStrategy;
pub struct CronJobStrategy;

const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_JOB_NAME: &str = "job-name";
const MAX_PARALLELISM_INDEXED: i64 = 100_000;

/// `SetDefaults_Job` on a job spec object.
fn default_job_spec(spec: &mut Obj) {
    let completions_unset = super::json::is_unset(spec, "completions");
    if completions_unset && super::json::is_unset(spec, "parallelism") {
        spec.insert("completions".into(), json!(1));
        spec.insert("parallelism".into(), json!(1));
    }
    default_value(spec, "parallelism", json!(1));
    let per_index = !super::json::is_unset(spec, "backoffLimitPerIndex");
    default_value(
        spec,
        "backoffLimit",
        json!(if per_index { i64::from(i32::MAX) } else { 6 }),
    );
    default_value(spec, "completionMode", json!("NonIndexed"));
    default_value(spec, "suspend", json!(false));
    let has_pfp = !super::json::is_unset(spec, "podFailurePolicy");
    with_obj(spec, "podFailurePolicy", |pfp| {
        each_obj_mut(pfp, "rules", |rule| {
            each_obj_mut(rule, "onPodConditions", |c| {
                default_str(c, "status", "True")
            });
        });
    });
    default_value(
        spec,
        "podReplacementPolicy",
        json!(if has_pfp {
            "Failed"
        } else {
            "TerminatingOrFailed"
        }),
    );
    default_template_at(spec, "template");
}

impl Strategy for JobStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        let template_labels = o
            .get("spec")
            .and_then(|s| get(s, "template"))
            .and_then(|t| get(t, "metadata"))
            .and_then(|m| get(m, "labels"))
            .filter(|l| l.is_object())
            .cloned();
        if let Some(spec) = ensure_obj(o, "spec") {
            default_job_spec(spec);
        }
        if let Some(labels) = template_labels
            && let Some(meta) = ensure_obj(o, "metadata")
            && meta
                .get("labels")
                .and_then(Value::as_object)
                .is_none_or(|m| m.is_empty())
        {
            meta.insert("labels".into(), labels);
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        clear_status(obj);
        let manual = get(obj, "spec").and_then(|s| get_bool(s, "manualSelector")) == Some(true);
        if !manual {
            generate_selector(obj);
        }
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        validate_job(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = validate_job(new);
        validate_job_update(new, old, &mut errs);
        errs
    }

    fn field_selector_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let n = get(obj, "status")
            .and_then(|s| s.get("succeeded"))
            .and_then(Value::as_i64)
            .unwrap_or(0);
        vec![("status.successful", n.to_string())]
    }
}

/// Upstream's `generateSelector`: label the pod template with the job's name and UID and
/// select on the UID.
fn generate_selector(obj: &mut Value) {
    let name = str_at(obj, &["metadata", "name"]).to_string();
    let uid = str_at(obj, &["metadata", "uid"]).to_string();
    let Some(o) = obj.as_object_mut() else { return };
    let Some(spec) = ensure_obj(o, "spec") else {
        return;
    };
    if let Some(tpl) = ensure_obj(spec, "template")
        && let Some(meta) = ensure_obj(tpl, "metadata")
        && let Some(labels) = ensure_obj(meta, "labels")
    {
        for (k, v) in [
            (LEGACY_JOB_NAME, &name),
            (JOB_NAME, &name),
            (LEGACY_CONTROLLER_UID, &uid),
            (CONTROLLER_UID, &uid),
        ] {
            labels.entry(k).or_insert_with(|| json!(v));
        }
    }
    if let Some(sel) = ensure_obj(spec, "selector")
        && let Some(ml) = ensure_obj(sel, "matchLabels")
    {
        ml.entry(CONTROLLER_UID).or_insert_with(|| json!(uid));
    }
}

fn template_labels(spec: &Value) -> Option<&Value> {
    get(spec, "template")
        .and_then(|t| get(t, "metadata"))
        .and_then(|m| get(m, "labels"))
}

fn has_label(spec: &Value, key: &str, expected: &str, errs: &mut Errs) {
    let labels = template_labels(spec);
    let p = format!("spec.template.metadata.labels[{key}]");
    match labels.and_then(|l| get_str(l, key)) {
        None => errs.push(FieldError::required(p, expected)),
        Some(v) if v != expected => errs.push(FieldError::invalid(
            p,
            &Raw(&go_labels(labels)),
            &format!("must be '{expected}'"),
        )),
        Some(_) => {}
    }
}

fn validate_job(obj: &Value) -> Vec<FieldError> {
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
    let name = str_at(obj, &["metadata", "name"]);
    let uid = str_at(obj, &["metadata", "uid"]);
    if get_bool(spec, "manualSelector") != Some(true) {
        if template_labels(spec).is_none() {
            errs.push(FieldError::required("spec.template.metadata.labels", ""));
        }
        if let Some(sel) = get(spec, "selector") {
            if uid.is_empty() {
                errs.push(FieldError::required("metadata.uid", ""));
            }
            has_label(spec, LEGACY_CONTROLLER_UID, uid, &mut errs);
            has_label(spec, LEGACY_JOB_NAME, name, &mut errs);
            has_label(spec, CONTROLLER_UID, uid, &mut errs);
            has_label(spec, JOB_NAME, name, &mut errs);
            let expected = json!({ CONTROLLER_UID: uid });
            if selector_match(sel, Some(&expected)) == SelectorMatch::NoMatch {
                errs.push(FieldError::invalid(
                    "spec.selector",
                    &Raw(&go_label_selector(sel)),
                    "`selector` not auto-generated",
                ));
            }
        }
    }
    validate_job_spec(spec, "spec", &mut errs);
    match get(spec, "selector") {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => validate_label_selector(sel, "spec.selector", &mut errs),
    }
    let labels = template_labels(spec);
    let m = get(spec, "selector").map_or(SelectorMatch::NoMatch, |s| selector_match(s, labels));
    if m == SelectorMatch::NoMatch {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            &Raw(&go_labels(labels)),
            "`selector` does not match template `labels`",
        ));
    }
    if get_str(spec, "completionMode") == Some("Indexed")
        && let Some(c) = get(spec, "completions")
            .and_then(Value::as_i64)
            .filter(|c| *c > 0)
    {
        let host = format!("{name}-{}", c - 1);
        if !is_dns1123_label(&host).is_empty() {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                &format!("will not able to create pod with invalid DNS label: {host}"),
            ));
        }
    }
    errs
}

/// Shared by Jobs and CronJob job templates (`path` is `spec` or `spec.jobTemplate.spec`).
fn validate_job_spec(spec: &Value, path: &str, errs: &mut Errs) {
    let nonneg = |field: &str, errs: &mut Errs, int32: bool| -> Option<i64> {
        let n = if int32 {
            opt_i32(spec, field, path, errs)
        } else {
            opt_int(spec, field, path, errs)
        }?;
        errs.extend(validate_nonnegative(&child(path, field), n));
        Some(n)
    };
    let parallelism = nonneg("parallelism", errs, true);
    let completions = nonneg("completions", errs, true);
    nonneg("activeDeadlineSeconds", errs, false);
    nonneg("backoffLimit", errs, true);
    nonneg("ttlSecondsAfterFinished", errs, true);
    nonneg("backoffLimitPerIndex", errs, true);
    nonneg("maxFailedIndexes", errs, true);
    opt_bool(spec, "suspend", path, errs);
    opt_bool(spec, "manualSelector", path, errs);
    if let Some(mode) = opt_str(spec, "completionMode", path, errs) {
        if mode != "NonIndexed" && mode != "Indexed" {
            errs.push(FieldError::not_supported(
                child(path, "completionMode"),
                mode,
                &["NonIndexed", "Indexed"],
            ));
        }
        if mode == "Indexed" {
            if completions.is_none() {
                errs.push(FieldError::required(
                    child(path, "completions"),
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = parallelism.filter(|p| *p > MAX_PARALLELISM_INDEXED) {
                errs.push(FieldError::invalid(
                    child(path, "parallelism"),
                    &p,
                    &format!("must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"),
                ));
            }
        }
    }
    let has_pfp = opt_obj(spec, "podFailurePolicy", path, errs).is_some();
    if let Some(prp) = opt_str(spec, "podReplacementPolicy", path, errs) {
        if prp != "TerminatingOrFailed" && prp != "Failed" {
            errs.push(FieldError::not_supported(
                child(path, "podReplacementPolicy"),
                prp,
                &["Failed", "TerminatingOrFailed"],
            ));
        } else if has_pfp && prp != "Failed" {
            errs.push(FieldError::not_supported(
                child(path, "podReplacementPolicy"),
                prp,
                &["Failed"],
            ));
        }
    }
    let tpath = child(path, "template");
    match get(spec, "template") {
        Some(t) => {
            validate_pod_template(t, &tpath, errs);
            let rp = super::json::at(t, &["spec", "restartPolicy"]).and_then(Value::as_str);
            if let Some(rp) = rp {
                if rp != "OnFailure" && rp != "Never" {
                    require_template_restart_policy(t, &tpath, &["OnFailure", "Never"], errs);
                } else if rp == "OnFailure" && has_pfp {
                    errs.push(FieldError::invalid(
                        child(&child(&tpath, "spec"), "restartPolicy"),
                        rp,
                        "only \"Never\" is supported when podFailurePolicy is specified",
                    ));
                }
            }
        }
        None => errs.push(FieldError::required(
            child(&child(&tpath, "spec"), "containers"),
            "",
        )),
    }
}

/// Fields a suspended, never-started Job may still change in its template.
const MUTABLE_WHEN_SUSPENDED: &[&[&str]] = &[
    &["metadata", "labels"],
    &["metadata", "annotations"],
    &["spec", "nodeSelector"],
    &["spec", "tolerations"],
    &["spec", "affinity"],
    &["spec", "schedulingGates"],
];

fn validate_job_update(new: &Value, old: &Value, errs: &mut Errs) {
    let ns = get(new, "spec").cloned().unwrap_or(json!({}));
    let os = get(old, "spec").cloned().unwrap_or(json!({}));
    let indexed = get_str(&ns, "completionMode") == Some("Indexed");
    let elastic = indexed
        && get(&ns, "completions").is_some()
        && get(&ns, "completions") == get(&ns, "parallelism")
        && get(&os, "completions") == get(&os, "parallelism");
    if !elastic {
        immutable(&ns, &os, "completions", errs, |v| v.to_string());
    }
    immutable(&ns, &os, "selector", errs, go_label_selector);
    let suspended = get_bool(&ns, "suspend") == Some(true);
    let never_started = get(old, "status")
        .and_then(|s| get(s, "startTime"))
        .is_none();
    let strip = |t: Option<&Value>| -> Value {
        let mut t = t.cloned().unwrap_or(Value::Null);
        if suspended && never_started {
            for path in MUTABLE_WHEN_SUSPENDED {
                if let Some(parent) = t.get_mut(path[0]).and_then(Value::as_object_mut) {
                    parent.remove(path[1]);
                }
            }
        }
        t
    };
    if !semantic_eq(
        Some(&strip(get(&ns, "template"))),
        Some(&strip(get(&os, "template"))),
    ) {
        let shown = get(&ns, "template").map_or_else(|| "null".to_string(), Value::to_string);
        errs.push(FieldError::invalid(
            "spec.template",
            &Raw(&shown),
            FIELD_IMMUTABLE,
        ));
    }
    for f in [
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        immutable(&ns, &os, f, errs, |v| {
            use super::errors::BadValue;
            v.render()
        });
    }
}

fn immutable(
    ns: &Value,
    os: &Value,
    field: &str,
    errs: &mut Errs,
    shown: impl Fn(&Value) -> String,
) {
    let n = get(ns, field);
    if !semantic_eq(n, get(os, field)) {
        let s = n.map_or_else(|| "null".to_string(), &shown);
        errs.push(FieldError::invalid(
            child("spec", field),
            &Raw(&s),
            FIELD_IMMUTABLE,
        ));
    }
}

// ---- CronJob ----

impl Strategy for CronJobStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(o) = obj.as_object_mut() else { return };
        let Some(spec) = ensure_obj(o, "spec") else {
            return;
        };
        default_str(spec, "concurrencyPolicy", "Allow");
        default_value(spec, "suspend", json!(false));
        default_value(spec, "successfulJobsHistoryLimit", json!(3));
        default_value(spec, "failedJobsHistoryLimit", json!(1));
        with_obj(spec, "jobTemplate", |jt| {
            with_obj(jt, "spec", |js| default_template_at(js, "template"))
        });
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        clear_status(obj);
    }

    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let name = str_at(obj, &["metadata", "name"]);
        // The controller appends an 11-character suffix to job names (max 63).
        if name.len() > 52 {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                "must be no more than 52 characters",
            ));
        }
        validate_cronjob_spec(obj, &mut errs);
        errs
    }

    fn validate_update(&self, new: &Value, _old: &Value) -> Vec<FieldError> {
        let mut errs = Vec::new();
        validate_cronjob_spec(new, &mut errs);
        errs
    }
}

fn validate_cronjob_spec(obj: &Value, errs: &mut Errs) {
    let empty = json!({});
    let spec = match get(obj, "spec") {
        Some(s) if s.is_object() => s,
        Some(other) => {
            errs.push(FieldError::type_invalid("spec", other, "object"));
            &empty
        }
        None => &empty,
    };
    let tz = opt_str(spec, "timeZone", "spec", errs);
    match opt_str(spec, "schedule", "spec", errs).unwrap_or("") {
        "" => errs.push(FieldError::required("spec.schedule", "")),
        schedule => {
            if let Err(e) = cron::parse_standard(schedule) {
                errs.push(FieldError::invalid("spec.schedule", schedule, &e.0));
            }
            if schedule.contains("TZ") {
                errs.push(FieldError::invalid(
                    "spec.schedule",
                    schedule,
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            }
        }
    }
    if let Some(tz) = tz {
        for m in cron::validate_time_zone(tz) {
            errs.push(FieldError::invalid("spec.timeZone", tz, &m));
        }
    }
    match opt_str(spec, "concurrencyPolicy", "spec", errs).unwrap_or("") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        other => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    opt_bool(spec, "suspend", "spec", errs);
    if let Some(n) = opt_int(spec, "startingDeadlineSeconds", "spec", errs) {
        errs.extend(validate_nonnegative("spec.startingDeadlineSeconds", n));
    }
    for f in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        if let Some(n) = opt_i32(spec, f, "spec", errs) {
            errs.extend(validate_nonnegative(&child("spec", f), n));
        }
    }
    let jt = match opt_obj(spec, "jobTemplate", "spec", errs) {
        Some(jt) => jt,
        None => &empty,
    };
    let js = get(jt, "spec").cloned().unwrap_or(json!({}));
    validate_job_spec(&js, "spec.jobTemplate.spec", errs);
    if let Some(sel) = get(&js, "selector") {
        errs.push(FieldError::invalid(
            "spec.jobTemplate.spec.selector",
            &Raw(&go_label_selector(sel)),
            "`selector` will be auto-generated",
        ));
    }
    if get_bool(&js, "manualSelector") == Some(true) {
        errs.push(FieldError::not_supported(
            "spec.jobTemplate.spec.manualSelector",
            &true,
            &["nil", "false"],
        ));
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;

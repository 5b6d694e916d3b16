//! Event strategies for the two APIs that serve the one stored (core/v1) Event.
//!
//! Both validate the stored form, as upstream validates its internal Event: a core/v1
//! request gets the legacy checks only (kept lax for old clients); an events.k8s.io/v1
//! request also gets the strict ones (eventTime and reporting fields required, deprecated
//! fields unset, most fields immutable). Error paths use the core names (`message`,
//! `involvedObject`) except `reportingController`, exactly as upstream reports them.
//!
//! Field selectors are evaluated on the object as served, so each API has its own labels:
//! `involvedObject.*`/`reportingComponent` for core, `regarding.*`/`reportingController`
//! for events.k8s.io (upstream maps the latter onto the former).

use serde_json::Value;

use super::compare::semantic_eq;
use super::json::{Errs, get, opt_str, str_at};
use super::validation::{FIELD_IMMUTABLE, NameRule, is_dns1123_subdomain, is_qualified_name};
use super::{FieldError, Strategy};

/// core/v1 Events.
pub struct EventStrategy;
/// events.k8s.io/v1 Events (stored as core/v1).
pub struct EventsV1Strategy;

const REPORTING_INSTANCE_MAX: usize = 128;
const ACTION_MAX: usize = 128;
const REASON_MAX: usize = 128;
const NOTE_MAX: usize = 1024;

/// The core fields an events.k8s.io/v1 update may not change, with the path upstream
/// reports (the core name, but `reportingController` for `reportingComponent`).
const IMMUTABLE: [(&str, &str); 13] = [
    ("involvedObject", "involvedObject"),
    ("reason", "reason"),
    ("message", "message"),
    ("source", "source"),
    ("firstTimestamp", "firstTimestamp"),
    ("lastTimestamp", "lastTimestamp"),
    ("count", "count"),
    ("type", "type"),
    ("eventTime", "eventTime"),
    ("action", "action"),
    ("related", "related"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
];

impl Strategy for EventStrategy {
    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        legacy(obj)
    }

    fn validate_update(&self, new: &Value, _old: &Value) -> Vec<FieldError> {
        legacy(new)
    }

    fn field_selector_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let reporting = str_at(obj, &["reportingComponent"]);
        let io = |k: &str| str_at(obj, &["involvedObject", k]).to_string();
        vec![
            ("involvedObject.kind", io("kind")),
            ("involvedObject.namespace", io("namespace")),
            ("involvedObject.name", io("name")),
            ("involvedObject.uid", io("uid")),
            ("involvedObject.apiVersion", io("apiVersion")),
            ("involvedObject.resourceVersion", io("resourceVersion")),
            ("involvedObject.fieldPath", io("fieldPath")),
            ("reason", str_at(obj, &["reason"]).to_string()),
            ("reportingComponent", reporting.to_string()),
            (
                "source",
                source(str_at(obj, &["source", "component"]), reporting),
            ),
            ("type", str_at(obj, &["type"]).to_string()),
        ]
    }

    /// Core Events only get the generic path-segment rule (legacy validation).
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }
}

impl Strategy for EventsV1Strategy {
    fn validate_create(&self, obj: &Value) -> Vec<FieldError> {
        let mut errs = legacy(obj);
        errs.extend(series(obj));
        if is_zero_time(get(obj, "eventTime")) {
            errs.push(FieldError::required("eventTime", ""));
        }
        let t = str_at(obj, &["type"]);
        if t != "Normal" && t != "Warning" {
            errs.push(FieldError::invalid(
                "type",
                "",
                &format!("has invalid value: {t}"),
            ));
        }
        for field in ["firstTimestamp", "lastTimestamp"] {
            if !is_zero_time(get(obj, field)) {
                errs.push(FieldError::invalid(field, "", "needs to be unset"));
            }
        }
        if get(obj, "count").and_then(Value::as_i64).unwrap_or(0) != 0 {
            errs.push(FieldError::invalid("count", "", "needs to be unset"));
        }
        if !str_at(obj, &["source", "component"]).is_empty()
            || !str_at(obj, &["source", "host"]).is_empty()
        {
            errs.push(FieldError::invalid("source", "", "needs to be unset"));
        }
        errs
    }

    fn validate_update(&self, new: &Value, old: &Value) -> Vec<FieldError> {
        let mut errs = legacy(new);
        if !same(get(new, "series"), get(old, "series")) {
            errs.extend(series(new));
        }
        for (key, path) in IMMUTABLE {
            if !same(get(new, key), get(old, key)) {
                let value = get(new, key).cloned().unwrap_or(Value::Null);
                errs.push(FieldError::invalid(path, &value, FIELD_IMMUTABLE));
            }
        }
        errs
    }

    fn field_selector_fields(&self, obj: &Value) -> Vec<(&'static str, String)> {
        let reporting = str_at(obj, &["reportingController"]);
        let regarding = |k: &str| str_at(obj, &["regarding", k]).to_string();
        vec![
            ("regarding.kind", regarding("kind")),
            ("regarding.namespace", regarding("namespace")),
            ("regarding.name", regarding("name")),
            ("regarding.uid", regarding("uid")),
            ("regarding.apiVersion", regarding("apiVersion")),
            ("regarding.resourceVersion", regarding("resourceVersion")),
            ("regarding.fieldPath", regarding("fieldPath")),
            ("reason", str_at(obj, &["reason"]).to_string()),
            ("reportingController", reporting.to_string()),
            (
                "source",
                source(str_at(obj, &["deprecatedSource", "component"]), reporting),
            ),
            ("type", str_at(obj, &["type"]).to_string()),
        ]
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }
}

/// The `source` selector value: the legacy source component, else the reporting
/// controller (so selecting by source finds events of either recorder).
fn source(component: &str, reporting: &str) -> String {
    if component.is_empty() {
        reporting
    } else {
        component
    }
    .to_string()
}

/// Upstream's legacy checks, which every Event passes whatever API wrote it.
fn legacy(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    let ns = str_at(obj, &["metadata", "namespace"]);
    let io_ns = str_at(obj, &["involvedObject", "namespace"]);
    let ns_mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            io_ns,
            "does not match event.namespace",
        )
    };
    if is_zero_time(get(obj, "eventTime")) {
        // An old-style event: its namespace is its object's (or default for cluster-scoped
        // objects, as old clients did).
        let ok = if io_ns.is_empty() {
            ns.is_empty() || ns == "default"
        } else {
            ns == io_ns
        };
        if !ok {
            errs.push(ns_mismatch());
        }
    } else {
        if io_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(ns_mismatch());
        }
        let rc = opt_str(obj, "reportingComponent", "", &mut errs).unwrap_or("");
        if rc.is_empty() {
            errs.push(FieldError::required("reportingController", ""));
        }
        for m in is_qualified_name(rc) {
            errs.push(FieldError::invalid("reportingController", rc, &m));
        }
        required_bounded(obj, "reportingInstance", REPORTING_INSTANCE_MAX, &mut errs);
        required_bounded(obj, "action", ACTION_MAX, &mut errs);
        required_bounded(obj, "reason", REASON_MAX, &mut errs);
        let message = opt_str(obj, "message", "", &mut errs).unwrap_or("");
        if message.len() > NOTE_MAX {
            errs.push(FieldError::invalid("message", "", &at_most(NOTE_MAX)));
        }
    }
    for m in is_dns1123_subdomain(ns) {
        errs.push(FieldError::invalid("namespace", ns, &m));
    }
    errs
}

/// A string field that must be set and at most `max` bytes long.
fn required_bounded(obj: &Value, key: &str, max: usize, errs: &mut Errs) {
    let v = opt_str(obj, key, "", errs).unwrap_or("");
    if v.is_empty() {
        errs.push(FieldError::required(key, ""));
    }
    if v.len() > max {
        errs.push(FieldError::invalid(key, "", &at_most(max)));
    }
}

fn at_most(max: usize) -> String {
    format!("can have at most {max} characters")
}

/// An events.k8s.io/v1 series: at least 2 occurrences and a last observation time.
fn series(obj: &Value) -> Errs {
    let mut errs = Vec::new();
    if let Some(s) = get(obj, "series") {
        if get(s, "count").and_then(Value::as_i64).unwrap_or(0) < 2 {
            errs.push(FieldError::invalid(
                "series.count",
                "",
                "should be at least 2",
            ));
        }
        if is_zero_time(get(s, "lastObservedTime")) {
            errs.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    errs
}

/// Unset, empty, or Go's zero time.
fn is_zero_time(v: Option<&Value>) -> bool {
    match v.and_then(Value::as_str) {
        Some(s) => s.is_empty() || parse_time(s).is_some_and(|t| t.timestamp() == ZERO_TIME),
        None => v.is_none(),
    }
}

/// Seconds of `0001-01-01T00:00:00Z`, Go's zero `time.Time`.
const ZERO_TIME: i64 = -62_135_596_800;

fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s).ok()
}

/// Semantic equality as upstream compares decoded fields: zero values (absent, null, "",
/// 0, {}) are equal, and timestamps compare as instants whatever their spelling.
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    let zero_number = |v: Option<&Value>| v.is_some_and(|v| v.as_f64() == Some(0.0));
    let a = if zero_number(a) { None } else { a };
    let b = if zero_number(b) { None } else { b };
    if let (Some(x), Some(y)) = (
        a.and_then(Value::as_str).and_then(parse_time),
        b.and_then(Value::as_str).and_then(parse_time),
    ) {
        return x == y;
    }
    semantic_eq(a, b)
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;

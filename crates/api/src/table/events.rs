//! Event rows, for core/v1 events and events.k8s.io/v1 events (which name the same data
//! differently).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::duration::since;
use super::fields::{at, int_at, name, str_at, time_at};
use super::{Column, col, wide};

pub(super) const EVENT: &[Column] = &[
    col("Last Seen", "Time since the event was last observed."),
    col("Type", "Normal or Warning."),
    col("Reason", "Short machine-readable reason."),
    col("Object", "The object the event is about."),
    wide("Subobject", "Part of the object the event is about."),
    wide("Source", "Component (and host) that reported the event."),
    col("Message", "Human-readable description."),
    wide("First Seen", "Time since the event was first observed."),
    wide("Count", "How many times the event occurred."),
    Column {
        format: "name",
        ..wide("Name", "Name of the event object.")
    },
];

/// Field names of an event: core/v1 and events.k8s.io/v1 name the same data differently.
struct EventFields {
    regarding: &'static str,
    message: &'static str,
    first: &'static str,
    last: &'static str,
    count: &'static str,
    source: &'static str,
    controller: &'static str,
}

const CORE_EVENT: EventFields = EventFields {
    regarding: "involvedObject",
    message: "message",
    first: "firstTimestamp",
    last: "lastTimestamp",
    count: "count",
    source: "source",
    controller: "reportingComponent",
};

const EVENTS_V1_EVENT: EventFields = EventFields {
    regarding: "regarding",
    message: "note",
    first: "deprecatedFirstTimestamp",
    last: "deprecatedLastTimestamp",
    count: "deprecatedCount",
    source: "deprecatedSource",
    controller: "reportingController",
};

pub(super) fn core_event(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    event(ev, now, &CORE_EVENT)
}

pub(super) fn events_v1_event(ev: &Value, now: DateTime<Utc>) -> Vec<Value> {
    event(ev, now, &EVENTS_V1_EVENT)
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() { b } else { a }
}

fn event(ev: &Value, now: DateTime<Utc>, f: &EventFields) -> Vec<Value> {
    let first = match time_at(ev, &[f.first]) {
        Some(t) => since(Some(t), now),
        None => since(time_at(ev, &["eventTime"]), now),
    };
    let mut last = match time_at(ev, &[f.last]) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int_at(ev, &[f.count]).unwrap_or(0);
    if at(ev, &["series"]).is_some_and(|s| !s.is_null()) {
        last = since(time_at(ev, &["series", "lastObservedTime"]), now);
        count = int_at(ev, &["series", "count"]).unwrap_or(0);
    } else if count == 0 {
        // Singleton events of the new API have no count.
        count = 1;
    }
    let kind = str_at(ev, &[f.regarding, "kind"]).to_lowercase();
    let object_name = str_at(ev, &[f.regarding, "name"]);
    let target = if object_name.is_empty() {
        kind
    } else {
        format!("{kind}/{object_name}")
    };
    let component = first_non_empty(
        str_at(ev, &[f.source, "component"]),
        str_at(ev, &[f.controller]),
    );
    let instance = first_non_empty(
        str_at(ev, &[f.source, "host"]),
        str_at(ev, &["reportingInstance"]),
    );
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        last.into(),
        str_at(ev, &["type"]).into(),
        str_at(ev, &["reason"]).into(),
        target.into(),
        str_at(ev, &[f.regarding, "fieldPath"]).into(),
        source.into(),
        str_at(ev, &[f.message]).trim().into(),
        first.into(),
        count.into(),
        name(ev).into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-05-01T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("time")
    }

    #[test]
    fn events_both_apis() {
        let core = json!({"metadata": {"name": "e1"}, "type": "Normal", "reason": "Pulled",
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{c}"},
            "message": " pulled \n", "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2024-05-01T11:50:00Z", "lastTimestamp": "2024-05-01T11:59:00Z", "count": 3});
        assert_eq!(
            core_event(&core, now()),
            vec![
                json!("60s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web-1"),
                json!("spec.containers{c}"),
                json!("kubelet, n1"),
                json!("pulled"),
                json!("10m"),
                json!(3),
                json!("e1")
            ]
        );
        let v1 = json!({"metadata": {"name": "e2"}, "type": "Warning", "reason": "Failed",
            "regarding": {"kind": "Node"}, "note": "boom", "reportingController": "ctrl",
            "eventTime": "2024-05-01T11:59:58.000000Z"});
        let cells = events_v1_event(&v1, now());
        assert_eq!(cells[0], "2s");
        assert_eq!(cells[3], "node");
        assert_eq!(cells[5], "ctrl");
        assert_eq!(cells[6], "boom");
        assert_eq!(cells[8], 1);
    }
}

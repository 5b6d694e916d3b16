//! Upstream's `LimitRanger` admission plugin for pod creates: the namespace's LimitRanges
//! fill in missing container requests and limits (`defaultRequest`, `default`), recorded in
//! the `kubernetes.io/limit-ranger` annotation, then every `Container` and `Pod` item's
//! `min`, `max` and `maxLimitRequestRatio` is enforced; a violation refuses the pod (403).
//!
//! Pod updates are not checked, as upstream: containers' resources cannot change after
//! creation, and a pod admitted under an older LimitRange must stay valid.

use r8s_api::quota::Amount;
use serde_json::{Map, Value, json};

/// The annotation recording which defaults were set.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// One `spec.limits` item, its defaults derived as upstream's LimitRange defaulting does.
struct Item<'a> {
    kind: &'a str,
    min: Option<&'a Map<String, Value>>,
    max: Option<&'a Map<String, Value>>,
    ratio: Option<&'a Map<String, Value>>,
    default_limit: Map<String, Value>,
    default_request: Map<String, Value>,
}

fn map<'a>(v: &'a Value, k: &str) -> Option<&'a Map<String, Value>> {
    v.get(k).and_then(Value::as_object)
}

impl<'a> Item<'a> {
    fn new(v: &'a Value) -> Item<'a> {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        let (min, max) = (map(v, "min"), map(v, "max"));
        let mut default_limit = map(v, "default").cloned().unwrap_or_default();
        let mut default_request = map(v, "defaultRequest").cloned().unwrap_or_default();
        if kind == "Container" {
            // A missing default limit is the max; a missing default request the default
            // limit, else the min.
            for (k, q) in max.into_iter().flatten() {
                default_limit.entry(k.clone()).or_insert_with(|| q.clone());
            }
            for (k, q) in default_limit.iter().chain(min.into_iter().flatten()) {
                default_request
                    .entry(k.clone())
                    .or_insert_with(|| q.clone());
            }
        }
        Item {
            kind,
            min,
            max,
            ratio: map(v, "maxLimitRequestRatio"),
            default_limit,
            default_request,
        }
    }
}

/// The containers of a pod (then its init containers, upstream's order) with the word
/// messages use for them.
fn containers_mut(pod: &mut Value) -> Vec<(&'static str, &mut Value)> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Vec::new();
    };
    let mut fields: Vec<(&'static str, &mut Value)> = spec
        .iter_mut()
        .filter_map(|(field, items)| match field.as_str() {
            "containers" => Some(("container", items)),
            "initContainers" => Some(("init container", items)),
            _ => None,
        })
        .collect();
    fields.sort_by_key(|(label, _)| *label != "container");
    fields
        .into_iter()
        .flat_map(|(label, items)| {
            items
                .as_array_mut()
                .into_iter()
                .flatten()
                .map(move |c| (label, c))
        })
        .collect()
}

/// Fills missing requests and limits of every container from the `Container` items;
/// returns the annotation value naming what was set (`None`: nothing).
pub fn apply_defaults(pod: &mut Value, limit_ranges: &[Value]) -> Option<String> {
    let items: Vec<Item> = all_items(limit_ranges)
        .filter(|i| i.kind == "Container")
        .collect();
    if items.is_empty() {
        return None;
    }
    let mut notes = Vec::new();
    for (label, c) in containers_mut(pod) {
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let Some(obj) = c.as_object_mut() else {
            continue;
        };
        let resources = obj.entry("resources").or_insert_with(|| json!({}));
        let Some(resources) = resources.as_object_mut() else {
            continue;
        };
        for (field, what) in [("requests", "request"), ("limits", "limit")] {
            let mut set: Vec<String> = Vec::new();
            let target = resources.entry(field).or_insert_with(|| json!({}));
            let Some(target) = target.as_object_mut() else {
                continue;
            };
            for item in &items {
                let defaults = if field == "requests" {
                    &item.default_request
                } else {
                    &item.default_limit
                };
                for (k, q) in defaults {
                    if !target.contains_key(k) {
                        target.insert(k.clone(), q.clone());
                        set.push(k.clone());
                    }
                }
            }
            if !set.is_empty() {
                set.sort();
                notes.push(format!("{} {what} for {label} {name}", set.join(", ")));
            }
        }
        // Keep the object as clients would send it: no empty maps added.
        resources.retain(|_, v| v.as_object().is_none_or(|m| !m.is_empty()));
    }
    // Requests and limits are noted per container in upstream's order: requests first.
    (!notes.is_empty()).then(|| format!("LimitRanger plugin set: {}", notes.join("; ")))
}

fn all_items(limit_ranges: &[Value]) -> impl Iterator<Item = Item<'_>> {
    limit_ranges
        .iter()
        .filter_map(|lr| lr.pointer("/spec/limits").and_then(Value::as_array))
        .flatten()
        .map(Item::new)
}

/// A container's (or the pod's summed) requests and limits in milli-units, with the
/// strings as written for messages.
#[derive(Default)]
struct Usage {
    requests: Map<String, Value>,
    limits: Map<String, Value>,
}

fn milli(v: &Value) -> Option<i128> {
    Amount::from_value(v).map(|a| a.milli)
}

/// A quantity as upstream prints it in messages (its canonical form: `1.5Gi` is `1536Mi`,
/// `0.5` is `500m`, `2000` is `2k`).
fn text(v: &Value) -> String {
    match (Amount::from_value(v), v) {
        (Some(a), _) => a.text(),
        (None, Value::String(s)) => s.clone(),
        (None, other) => other.to_string(),
    }
}

/// Checks `usage` against one item's min, max and ratio; messages as upstream's.
fn check(item: &Item, usage: &Usage, errors: &mut Vec<String>) {
    let kind = item.kind;
    for (k, min) in item.min.into_iter().flatten() {
        match usage.requests.get(k) {
            None => errors.push(format!(
                "minimum {k} usage per {kind} is {}.  No request is specified",
                text(min)
            )),
            Some(req) if milli(req) < milli(min) => errors.push(format!(
                "minimum {k} usage per {kind} is {}, but request is {}",
                text(min),
                text(req)
            )),
            _ => {}
        }
    }
    for (k, max) in item.max.into_iter().flatten() {
        match usage.limits.get(k) {
            None => errors.push(format!(
                "maximum {k} usage per {kind} is {}.  No limit is specified",
                text(max)
            )),
            Some(lim) if milli(lim) > milli(max) => errors.push(format!(
                "maximum {k} usage per {kind} is {}, but limit is {}",
                text(max),
                text(lim)
            )),
            _ => {}
        }
    }
    for (k, ratio) in item.ratio.into_iter().flatten() {
        let (Some(lim), Some(req)) = (usage.limits.get(k), usage.requests.get(k)) else {
            if usage.limits.contains_key(k) || usage.requests.contains_key(k) {
                errors.push(format!(
                    "{k} max limit to request ratio per {kind} is {}, but no request is specified or request is 0",
                    text(ratio)
                ));
            }
            continue;
        };
        let (Some(l), Some(r), Some(max)) = (milli(lim), milli(req), milli(ratio)) else {
            continue;
        };
        if r == 0 {
            errors.push(format!(
                "{k} max limit to request ratio per {kind} is {}, but no request is specified or request is 0",
                text(ratio)
            ));
        } else if l * 1000 > max * r {
            errors.push(format!(
                "{k} max limit to request ratio per {kind} is {}, but provided ratio is {:.6}",
                text(ratio),
                l as f64 / r as f64
            ));
        }
    }
}

fn container_usage(c: &Value) -> Usage {
    let get = |f: &str| {
        c.pointer(&format!("/resources/{f}"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    Usage {
        requests: get("requests"),
        limits: get("limits"),
    }
}

/// The pod's total: the sum over its containers, or the largest init container where that
/// is more (init containers run one at a time, before the others).
fn pod_usage(pod: &Value) -> Usage {
    Usage {
        requests: pod_total(pod, "requests"),
        limits: pod_total(pod, "limits"),
    }
}

/// [`pod_usage`] of one of `requests` and `limits`, printed in binary units where any
/// container gave the resource in them.
fn pod_total(pod: &Value, field: &str) -> Map<String, Value> {
    r8s_api::quota::pod_totals(pod, field)
        .into_iter()
        .map(|(k, a)| (k, Value::String(a.text())))
        .collect()
}

/// Every min/max/ratio violation of `pod` (after defaulting), in upstream's wording.
pub fn violations(pod: &Value, limit_ranges: &[Value]) -> Vec<String> {
    let mut errors = Vec::new();
    for item in all_items(limit_ranges) {
        match item.kind {
            "Container" => {
                for field in ["initContainers", "containers"] {
                    let containers = pod.pointer(&format!("/spec/{field}"));
                    for c in containers.and_then(Value::as_array).into_iter().flatten() {
                        check(&item, &container_usage(c), &mut errors);
                    }
                }
            }
            "Pod" => check(&item, &pod_usage(pod), &mut errors),
            _ => {}
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(resources: Value) -> Value {
        json!({"metadata": {"name": "p"},
               "spec": {"containers": [{"name": "app", "image": "busybox", "resources": resources}]}})
    }

    fn limit_range(item: Value) -> Vec<Value> {
        vec![json!({"spec": {"limits": [item]}})]
    }

    #[test]
    fn defaults_fill_only_what_is_missing_and_are_noted() {
        let lr = limit_range(json!({"type": "Container",
            "default": {"memory": "512Mi", "cpu": "1"}, "defaultRequest": {"memory": "256Mi"}}));
        let mut p = pod(json!({"limits": {"cpu": "2"}}));
        let note = apply_defaults(&mut p, &lr);
        let r = &p["spec"]["containers"][0]["resources"];
        assert_eq!(r["limits"], json!({"cpu": "2", "memory": "512Mi"}));
        // The default request of cpu is its default limit, as LimitRange defaulting has it.
        assert_eq!(r["requests"], json!({"memory": "256Mi", "cpu": "1"}));
        assert_eq!(
            note.as_deref(),
            Some(
                "LimitRanger plugin set: cpu, memory request for container app; memory limit for container app"
            )
        );
    }

    #[test]
    fn no_container_items_change_nothing() {
        let lr = limit_range(json!({"type": "Pod", "max": {"cpu": "2"}}));
        let mut p = pod(json!({}));
        assert_eq!(apply_defaults(&mut p, &lr), None);
        assert_eq!(p, pod(json!({})));
    }

    #[test]
    fn max_and_min_per_container_as_upstream_words_them() {
        let lr = limit_range(json!({"type": "Container",
            "max": {"memory": "1Gi"}, "min": {"memory": "500Mi"}}));
        let p = pod(json!({"limits": {"memory": "2Gi"}, "requests": {"memory": "100Mi"}}));
        assert_eq!(
            violations(&p, &lr),
            [
                "minimum memory usage per Container is 500Mi, but request is 100Mi",
                "maximum memory usage per Container is 1Gi, but limit is 2Gi",
            ]
        );
        let missing = pod(json!({}));
        assert_eq!(
            violations(&missing, &lr),
            [
                "minimum memory usage per Container is 500Mi.  No request is specified",
                "maximum memory usage per Container is 1Gi.  No limit is specified",
            ]
        );
        let fits = pod(json!({"limits": {"memory": "1Gi"}, "requests": {"memory": "600Mi"}}));
        assert!(violations(&fits, &lr).is_empty());
    }

    #[test]
    fn quantities_print_canonically() {
        for (given, shown) in [
            ("1.5Gi", "1536Mi"),
            ("1Gi", "1Gi"),
            ("1024Mi", "1Gi"),
            ("0.5", "500m"),
            ("2000", "2k"),
            ("1500", "1500"),
            ("250m", "250m"),
            ("0", "0"),
        ] {
            assert_eq!(text(&json!(given)), shown, "{given}");
        }
    }

    #[test]
    fn ratio_and_pod_totals() {
        let lr = limit_range(json!({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}));
        let p = pod(json!({"limits": {"cpu": "1"}, "requests": {"cpu": "250m"}}));
        assert_eq!(
            violations(&p, &lr),
            ["cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"]
        );
        let pod_max = limit_range(json!({"type": "Pod", "max": {"cpu": "1"}}));
        let two = json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "600m"}}},
            {"name": "b", "resources": {"limits": {"cpu": "600m"}}}]}});
        assert_eq!(
            violations(&two, &pod_max),
            ["maximum cpu usage per Pod is 1, but limit is 1200m"]
        );
    }
}

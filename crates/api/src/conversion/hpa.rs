//! autoscaling/v1 HorizontalPodAutoscaler ↔ autoscaling/v2 (the stored form).
//!
//! v1 has a single CPU utilization target. Everything else v2 carries travels in four
//! annotations on the v1 object, as upstream does (`pkg/apis/autoscaling/v1/conversion.go`
//! and the constants of `pkg/apis/autoscaling/annotations.go`), so a v1 client's
//! read-modify-write (PUT, merge or JSON patch of the v1 form) keeps them:
//!
//! - [`METRICS`]: the spec metrics other than the one shown as
//!   `targetCPUUtilizationPercentage`, in the autoscaling/v1 `MetricSpec` shape (the
//!   v2beta1-like one: `targetAverageValue`, `metricName`, ...).
//! - [`CURRENT_METRICS`]: every `status.currentMetrics` entry (the CPU one included, for its
//!   raw value), in the v1 `MetricStatus` shape.
//! - [`BEHAVIOR`]: `spec.behavior`. Upstream marshals its internal Go type there, which has
//!   no json tags, so the keys are the Go field names (`ScaleUp`, `StabilizationWindowSeconds`,
//!   ...); we write the same, and read keys case-insensitively as Go's `encoding/json` does
//!   (so the v2 camelCase names are accepted too).
//! - [`CONDITIONS`]: `status.conditions` (the v1 condition shape is the v2 one).
//!
//! v1 → v2 reads the annotations back and removes them; v2 → v1 first removes any that
//! the stored object carries itself, so a v1 reader only ever sees ones made from the
//! v2 fields.
//!
//! Where we differ from upstream, to lose less:
//! - Only the CPU metric shown as `targetCPUUtilizationPercentage` is left out of
//!   [`METRICS`] (upstream leaves out every CPU utilization metric, losing duplicates).
//! - Absent quantities stay absent (upstream's v1 shape has non-pointer quantities, so an
//!   Object metric comes back with `value: "0"` next to its `averageValue`, a Resource
//!   status with `averageValue: "0"`).
//!
//! As upstream, the CPU metric comes back after the annotation's metrics: a v2 list with
//! the CPU metric first is reordered by a v1 write.

use serde_json::{Map, Value, json};

type Obj = Map<String, Value>;

/// `autoscaling.MetricSpecsAnnotation`.
pub(crate) const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// `autoscaling.MetricStatusesAnnotation`.
pub(crate) const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// `autoscaling.BehaviorSpecsAnnotation`.
pub(crate) const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
/// `autoscaling.HorizontalPodAutoscalerConditionsAnnotation`.
pub(crate) const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

/// One metric source member: its field name (the same in v1 and v2), the v1 fields of its
/// spec and of its status with the v2 path each comes from, and how v1 → v2 picks the
/// spec's `target.type` (v1 has no type: it follows from which target field is set).
struct Source {
    member: &'static str,
    spec: &'static [(&'static str, &'static [&'static str])],
    status: &'static [(&'static str, &'static [&'static str])],
    target_type: fn(&Obj) -> &'static str,
}

const SOURCES: [Source; 5] = [
    Source {
        member: "resource",
        spec: &[
            ("name", &["name"]),
            (
                "targetAverageUtilization",
                &["target", "averageUtilization"],
            ),
            ("targetAverageValue", &["target", "averageValue"]),
        ],
        status: &[
            ("name", &["name"]),
            (
                "currentAverageUtilization",
                &["current", "averageUtilization"],
            ),
            ("currentAverageValue", &["current", "averageValue"]),
        ],
        target_type: utilization_or_average_value,
    },
    Source {
        member: "containerResource",
        spec: &[
            ("name", &["name"]),
            ("container", &["container"]),
            (
                "targetAverageUtilization",
                &["target", "averageUtilization"],
            ),
            ("targetAverageValue", &["target", "averageValue"]),
        ],
        status: &[
            ("name", &["name"]),
            ("container", &["container"]),
            (
                "currentAverageUtilization",
                &["current", "averageUtilization"],
            ),
            ("currentAverageValue", &["current", "averageValue"]),
        ],
        target_type: utilization_or_average_value,
    },
    Source {
        member: "pods",
        spec: &[
            ("metricName", &["metric", "name"]),
            ("selector", &["metric", "selector"]),
            ("targetAverageValue", &["target", "averageValue"]),
        ],
        status: &[
            ("metricName", &["metric", "name"]),
            ("selector", &["metric", "selector"]),
            ("currentAverageValue", &["current", "averageValue"]),
        ],
        target_type: |_| "AverageValue",
    },
    Source {
        member: "object",
        spec: &[
            ("target", &["describedObject"]),
            ("metricName", &["metric", "name"]),
            ("selector", &["metric", "selector"]),
            ("targetValue", &["target", "value"]),
            ("averageValue", &["target", "averageValue"]),
        ],
        status: &[
            ("target", &["describedObject"]),
            ("metricName", &["metric", "name"]),
            ("selector", &["metric", "selector"]),
            ("currentValue", &["current", "value"]),
            ("averageValue", &["current", "averageValue"]),
        ],
        target_type: |v1| {
            if present(v1, "averageValue") {
                "AverageValue"
            } else {
                "Value"
            }
        },
    },
    Source {
        member: "external",
        spec: &[
            ("metricName", &["metric", "name"]),
            ("metricSelector", &["metric", "selector"]),
            ("targetValue", &["target", "value"]),
            ("targetAverageValue", &["target", "averageValue"]),
        ],
        status: &[
            ("metricName", &["metric", "name"]),
            ("metricSelector", &["metric", "selector"]),
            ("currentValue", &["current", "value"]),
            ("currentAverageValue", &["current", "averageValue"]),
        ],
        target_type: |v1| {
            if present(v1, "targetValue") {
                "Value"
            } else {
                "AverageValue"
            }
        },
    },
];

fn utilization_or_average_value(v1: &Obj) -> &'static str {
    if present(v1, "targetAverageUtilization") {
        "Utilization"
    } else {
        "AverageValue"
    }
}

/// Whether `key` is set: JSON `null` is an unset Go pointer.
fn present(m: &Obj, key: &str) -> bool {
    m.get(key).is_some_and(|v| !v.is_null())
}

/// A stored autoscaling/v2 HPA → its autoscaling/v1 form.
pub(crate) fn to_v1(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    map.insert("apiVersion".into(), json!("autoscaling/v1"));
    // Round-trip annotations the stored object carries itself are not ours to show.
    take_annotations(map);
    let mut add = Vec::new();
    if let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) {
        spec_to_v1(spec, &mut add);
    }
    if let Some(status) = map.get_mut("status").and_then(Value::as_object_mut) {
        status_to_v1(status, &mut add);
    }
    if add.is_empty() {
        return;
    }
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    if let Some(annotations) = annotations.as_object_mut() {
        for (key, value) in add {
            annotations.insert(key.into(), Value::String(value));
        }
    }
}

/// An autoscaling/v1 HPA → its stored autoscaling/v2 form.
///
/// A malformed annotation (not JSON, or not of the expected shape) is ignored: the fields
/// it would have restored come from the v1 fields alone, and the annotation is removed
/// like a good one. Upstream fails the conversion on a malformed metrics, current-metrics
/// or conditions annotation (a malformed behavior one it ignores too); we ignore them all,
/// since a write should not fail over a derived annotation any client can edit. What a
/// well-formed annotation restores is validated as v2 afterwards, like any v2 write.
pub(crate) fn to_v2(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    map.insert("apiVersion".into(), json!("autoscaling/v2"));
    let saved = take_annotations(map);

    let spec = map.get_mut("spec").and_then(Value::as_object_mut);
    let target = spec.and_then(|s| {
        // v2 fields in a v1 body are not v1 data (the schema check prunes them anyway).
        s.remove("metrics");
        s.remove("behavior");
        s.remove("targetCPUUtilizationPercentage")
    });
    let mut metrics = saved
        .metrics
        .and_then(|m| metrics_from_v1(&m, false))
        .unwrap_or_default();
    if let Some(t) = target.filter(|t| !t.is_null()) {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": t}}}));
    }
    let behavior = saved.behavior.as_ref().and_then(behavior_from_go);
    if (!metrics.is_empty() || behavior.is_some())
        && let Some(spec) = section(map, "spec")
    {
        if !metrics.is_empty() {
            spec.insert("metrics".into(), Value::Array(metrics));
        }
        if let Some(b) = behavior {
            spec.insert("behavior".into(), b);
        }
    }

    let status = map.get_mut("status").and_then(Value::as_object_mut);
    let current_cpu = status.and_then(|s| {
        s.remove("currentMetrics");
        s.remove("conditions");
        s.remove("currentCPUUtilizationPercentage")
    });
    // The annotation, when there is one, has more than the CPU figure: it wins.
    let current = match saved
        .current_metrics
        .and_then(|m| metrics_from_v1(&m, true))
    {
        Some(current) => current,
        None => current_cpu
            .filter(|c| !c.is_null())
            .map(|c| {
                vec![json!({"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": c}}})]
            })
            .unwrap_or_default(),
    };
    let conditions = saved
        .conditions
        .and_then(|c| conditions_from_v1(&c))
        .unwrap_or_default();
    if (!current.is_empty() || !conditions.is_empty())
        && let Some(status) = section(map, "status")
    {
        if !current.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(current));
        }
        if !conditions.is_empty() {
            status.insert("conditions".into(), Value::Array(conditions));
        }
    }
}

/// The round-trip annotations of an object, parsed (`None` when absent or not JSON).
#[derive(Default)]
struct Saved {
    metrics: Option<Value>,
    current_metrics: Option<Value>,
    behavior: Option<Value>,
    conditions: Option<Value>,
}

/// Remove the round-trip annotations (and `annotations` itself if that empties it).
fn take_annotations(map: &mut Obj) -> Saved {
    let mut saved = Saved::default();
    let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) else {
        return saved;
    };
    let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) else {
        return saved;
    };
    let mut removed = false;
    for (key, slot) in [
        (METRICS, &mut saved.metrics),
        (CURRENT_METRICS, &mut saved.current_metrics),
        (BEHAVIOR, &mut saved.behavior),
        (CONDITIONS, &mut saved.conditions),
    ] {
        if let Some(v) = annotations.remove(key) {
            removed = true;
            *slot = v.as_str().and_then(|s| serde_json::from_str(s).ok());
        }
    }
    if removed && annotations.is_empty() {
        meta.remove("annotations");
    }
    saved
}

/// `map[key]` as an object, inserting an empty one if absent (`None` if it is not one).
fn section<'a>(map: &'a mut Obj, key: &str) -> Option<&'a mut Obj> {
    map.entry(key).or_insert_with(|| json!({})).as_object_mut()
}

fn is_cpu_resource(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("Resource")
        && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
}

fn spec_to_v1(spec: &mut Obj, add: &mut Vec<(&'static str, String)>) {
    let metrics = match spec.remove("metrics") {
        Some(Value::Array(metrics)) => metrics,
        _ => Vec::new(),
    };
    let behavior = spec.remove("behavior");
    // As upstream: the first CPU Resource metric is the v1 target, if it is a utilization.
    let cpu = metrics.iter().position(is_cpu_resource).and_then(|i| {
        let t = metrics
            .get(i)?
            .pointer("/resource/target/averageUtilization")?;
        (!t.is_null()).then(|| (i, t.clone()))
    });
    let others: Vec<Value> = metrics
        .iter()
        .enumerate()
        .filter(|(i, _)| cpu.as_ref().is_none_or(|(c, _)| c != i))
        .map(|(_, m)| metric_to_v1(m, false))
        .collect();
    if let Some((_, t)) = cpu {
        spec.insert("targetCPUUtilizationPercentage".into(), t);
    }
    if !others.is_empty() {
        add.push((METRICS, Value::Array(others).to_string()));
    }
    if let Some(b) = behavior.filter(|b| !b.is_null()) {
        add.push((BEHAVIOR, behavior_to_go(&b).to_string()));
    }
}

fn status_to_v1(status: &mut Obj, add: &mut Vec<(&'static str, String)>) {
    let current = match status.remove("currentMetrics") {
        Some(Value::Array(current)) => current,
        _ => Vec::new(),
    };
    let conditions = match status.remove("conditions") {
        Some(Value::Array(conditions)) => conditions,
        _ => Vec::new(),
    };
    let cpu = current.iter().filter(|m| is_cpu_resource(m)).find_map(|m| {
        m.pointer("/resource/current/averageUtilization")
            .filter(|u| !u.is_null())
    });
    if let Some(c) = cpu {
        status.insert("currentCPUUtilizationPercentage".into(), c.clone());
    }
    if !current.is_empty() {
        let v1: Vec<Value> = current.iter().map(|m| metric_to_v1(m, true)).collect();
        add.push((CURRENT_METRICS, Value::Array(v1).to_string()));
    }
    if !conditions.is_empty() {
        add.push((CONDITIONS, Value::Array(conditions).to_string()));
    }
}

/// A v2 `MetricSpec` (or `MetricStatus`, if `status`) → the v1 shape. Every source member
/// present is converted, whatever `type` says (as upstream's generated conversion does).
fn metric_to_v1(m: &Value, status: bool) -> Value {
    let Some(m) = m.as_object() else {
        return m.clone();
    };
    let mut out = Obj::new();
    if let Some(t) = m.get("type") {
        out.insert("type".into(), t.clone());
    }
    for source in &SOURCES {
        let Some(src) = m.get(source.member).and_then(Value::as_object) else {
            continue;
        };
        let fields = if status { source.status } else { source.spec };
        let mut v1 = Obj::new();
        for (name, path) in fields {
            if let Some(v) = lookup(src, path).filter(|v| !v.is_null()) {
                v1.insert((*name).into(), v.clone());
            }
        }
        out.insert(source.member.into(), Value::Object(v1));
    }
    Value::Object(out)
}

/// The v1 metrics of an annotation → v2 ones; `None` if it is not a list of metric
/// objects whose sources are objects.
fn metrics_from_v1(list: &Value, status: bool) -> Option<Vec<Value>> {
    list.as_array()?
        .iter()
        .map(|m| {
            let m = m.as_object()?;
            let mut out = Obj::new();
            if let Some(t) = m.get("type").filter(|t| !t.is_null()) {
                out.insert("type".into(), t.clone());
            }
            for source in &SOURCES {
                let src = match m.get(source.member) {
                    None | Some(Value::Null) => continue,
                    Some(src) => src.as_object()?,
                };
                let fields = if status { source.status } else { source.spec };
                let mut v2 = Obj::new();
                if !status {
                    v2.insert("target".into(), json!({"type": (source.target_type)(src)}));
                }
                for (name, path) in fields {
                    if let Some(v) = src.get(*name).filter(|v| !v.is_null()) {
                        insert_at(&mut v2, path, v.clone());
                    }
                }
                out.insert(source.member.into(), Value::Object(v2));
            }
            Some(Value::Object(out))
        })
        .collect()
}

/// The fields of a condition, alike in v1 and v2.
const CONDITION_FIELDS: [&str; 5] = ["type", "status", "lastTransitionTime", "reason", "message"];

/// The conditions of an annotation; `None` if it is not a list of objects. Unknown fields
/// are dropped, and so are `null` ones (Go writes an unset time as `null`).
fn conditions_from_v1(list: &Value) -> Option<Vec<Value>> {
    list.as_array()?
        .iter()
        .map(|c| {
            let c = c.as_object()?;
            Some(Value::Object(
                CONDITION_FIELDS
                    .iter()
                    .filter_map(|f| {
                        Some((
                            (*f).to_string(),
                            c.get(*f).filter(|v| !v.is_null())?.clone(),
                        ))
                    })
                    .collect(),
            ))
        })
        .collect()
}

fn lookup<'a>(m: &'a Obj, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let v = m.get(*first)?;
    if rest.is_empty() {
        Some(v)
    } else {
        lookup(v.as_object()?, rest)
    }
}

fn insert_at(m: &mut Obj, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = m;
    for p in parents {
        let Some(next) = section(cur, p) else {
            return;
        };
        cur = next;
    }
    cur.insert((*last).into(), value);
}

/// The fields of upstream's internal `HorizontalPodAutoscalerBehavior`, `HPAScalingRules`
/// and `HPAScalingPolicy`, by their v2 (json) names; the Go names capitalize them.
const BEHAVIOR_FIELDS: [&str; 2] = ["scaleUp", "scaleDown"];
const RULES_FIELDS: [&str; 4] = [
    "stabilizationWindowSeconds",
    "selectPolicy",
    "policies",
    "tolerance",
];
const POLICY_FIELDS: [&str; 3] = ["type", "value", "periodSeconds"];

/// `spec.behavior` → the annotation's Go field names (every key capitalized).
fn behavior_to_go(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (capitalize(k), behavior_to_go(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(behavior_to_go).collect()),
        _ => v.clone(),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().chain(chars).collect::<String>()
    })
}

/// The behavior annotation → `spec.behavior`; `None` if malformed or empty (upstream
/// ignores an empty one too). Unknown keys are dropped, as Go's decoder does.
fn behavior_from_go(v: &Value) -> Option<Value> {
    let m = v.as_object()?;
    let mut out = Obj::new();
    for name in BEHAVIOR_FIELDS {
        if let Some(rules) = go_field(m, name) {
            out.insert(name.into(), rules_from_go(rules)?);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn rules_from_go(v: &Value) -> Option<Value> {
    let m = v.as_object()?;
    let mut out = Obj::new();
    for name in RULES_FIELDS {
        let Some(f) = go_field(m, name) else {
            continue;
        };
        let f = if name == "policies" {
            let policies = f.as_array()?.iter().map(|p| {
                let p = p.as_object()?;
                Some(Value::Object(
                    POLICY_FIELDS
                        .iter()
                        .filter_map(|n| Some(((*n).to_string(), go_field(p, n)?.clone())))
                        .collect(),
                ))
            });
            Value::Array(policies.collect::<Option<_>>()?)
        } else {
            f.clone()
        };
        out.insert(name.into(), f);
    }
    Some(Value::Object(out))
}

/// A field as Go's `encoding/json` finds it: the exact key, else one equal ignoring
/// case; `null` is unset.
fn go_field<'a>(m: &'a Obj, name: &str) -> Option<&'a Value> {
    m.get(name)
        .or_else(|| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotation(obj: &Value, key: &str) -> Value {
        let s = obj["metadata"]["annotations"][key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing in {obj}"));
        serde_json::from_str(s).expect("annotation JSON")
    }

    fn behavior() -> Value {
        json!({
            "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                             {"type": "Percent", "value": 100, "periodSeconds": 15}]},
            "scaleDown": {"selectPolicy": "Min", "tolerance": "50m",
                "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}
        })
    }

    /// Every metric kind and every v2-only field; the CPU utilization metric last, where
    /// a v1 round trip puts it.
    fn full_v2() -> Value {
        let selector = json!({"matchLabels": {"queue": "jobs"}});
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "d", "annotations": {"team": "a"}},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                    {"type": "Resource", "resource": {"name": "memory",
                        "target": {"type": "Utilization", "averageUtilization": 70}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps", "selector": selector},
                        "target": {"type": "AverageValue", "averageValue": "10"}}},
                    {"type": "External", "external": {"metric": {"name": "queue", "selector": selector},
                        "target": {"type": "Value", "value": "30"}}},
                    {"type": "External", "external": {"metric": {"name": "lag"},
                        "target": {"type": "AverageValue", "averageValue": "5"}}},
                    {"type": "Object", "object": {
                        "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                        "metric": {"name": "rps"}, "target": {"type": "Value", "value": "1k"}}},
                    {"type": "Object", "object": {
                        "describedObject": {"apiVersion": "v1", "kind": "Service", "name": "s"},
                        "metric": {"name": "rps", "selector": selector},
                        "target": {"type": "AverageValue", "averageValue": "200"}}},
                    {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
                        "target": {"type": "Utilization", "averageUtilization": 60}}},
                    {"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50}}}
                ],
                "behavior": behavior()
            },
            "status": {
                "observedGeneration": 3, "lastScaleTime": "2024-01-01T00:00:00Z",
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [
                    {"type": "Resource", "resource": {"name": "cpu",
                        "current": {"averageUtilization": 40, "averageValue": "200m"}}},
                    {"type": "Resource", "resource": {"name": "memory",
                        "current": {"averageValue": "80Mi"}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"},
                        "current": {"averageValue": "12"}}},
                    {"type": "External", "external": {"metric": {"name": "queue", "selector": selector},
                        "current": {"value": "31", "averageValue": "10"}}},
                    {"type": "Object", "object": {
                        "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                        "metric": {"name": "rps"}, "current": {"value": "900"}}},
                    {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
                        "current": {"averageUtilization": 55, "averageValue": "110m"}}}
                ],
                "conditions": [
                    {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale",
                     "message": "recommended size matches current size",
                     "lastTransitionTime": "2024-01-01T00:00:00Z"},
                    {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound",
                     "lastTransitionTime": "2024-01-01T00:00:00Z"}
                ]
            }
        })
    }

    #[test]
    fn v2_round_trips_through_v1() {
        let mut hpa = full_v2();
        to_v1(&mut hpa);
        assert_eq!(hpa["apiVersion"], "autoscaling/v1");
        assert_eq!(hpa["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(hpa["status"]["currentCPUUtilizationPercentage"], 40);
        for gone in ["metrics", "behavior"] {
            assert!(hpa["spec"].get(gone).is_none(), "spec.{gone} in v1");
        }
        for gone in ["currentMetrics", "conditions"] {
            assert!(hpa["status"].get(gone).is_none(), "status.{gone} in v1");
        }
        assert_eq!(hpa["metadata"]["annotations"]["team"], "a");
        assert_eq!(annotation(&hpa, METRICS).as_array().map(Vec::len), Some(8));
        assert_eq!(
            annotation(&hpa, CURRENT_METRICS).as_array().map(Vec::len),
            Some(6)
        );
        assert_eq!(
            annotation(&hpa, CONDITIONS),
            full_v2()["status"]["conditions"]
        );
        to_v2(&mut hpa);
        assert_eq!(hpa, full_v2());
    }

    #[test]
    fn annotations_have_upstreams_v1_shapes() {
        let mut hpa = full_v2();
        to_v1(&mut hpa);
        let selector = json!({"matchLabels": {"queue": "jobs"}});
        assert_eq!(
            annotation(&hpa, METRICS),
            json!([
                {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}},
                {"type": "Resource", "resource": {"name": "memory", "targetAverageUtilization": 70}},
                {"type": "Pods", "pods": {"metricName": "qps", "selector": selector, "targetAverageValue": "10"}},
                {"type": "External", "external": {"metricName": "queue", "metricSelector": selector, "targetValue": "30"}},
                {"type": "External", "external": {"metricName": "lag", "targetAverageValue": "5"}},
                {"type": "Object", "object": {"metricName": "rps", "targetValue": "1k",
                    "target": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"}}},
                {"type": "Object", "object": {"metricName": "rps", "selector": selector, "averageValue": "200",
                    "target": {"apiVersion": "v1", "kind": "Service", "name": "s"}}},
                {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
                    "targetAverageUtilization": 60}}
            ])
        );
        assert_eq!(
            annotation(&hpa, CURRENT_METRICS),
            json!([
                {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 40,
                    "currentAverageValue": "200m"}},
                {"type": "Resource", "resource": {"name": "memory", "currentAverageValue": "80Mi"}},
                {"type": "Pods", "pods": {"metricName": "qps", "currentAverageValue": "12"}},
                {"type": "External", "external": {"metricName": "queue", "metricSelector": selector,
                    "currentValue": "31", "currentAverageValue": "10"}},
                {"type": "Object", "object": {"metricName": "rps", "currentValue": "900",
                    "target": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"}}},
                {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
                    "currentAverageUtilization": 55, "currentAverageValue": "110m"}}
            ])
        );
        // Upstream marshals its internal (tag-less) Go type: Go field names.
        assert_eq!(
            annotation(&hpa, BEHAVIOR),
            json!({
                "ScaleUp": {"StabilizationWindowSeconds": 0, "SelectPolicy": "Max",
                    "Policies": [{"Type": "Pods", "Value": 4, "PeriodSeconds": 15},
                                 {"Type": "Percent", "Value": 100, "PeriodSeconds": 15}]},
                "ScaleDown": {"SelectPolicy": "Min", "Tolerance": "50m",
                    "Policies": [{"Type": "Percent", "Value": 10, "PeriodSeconds": 60}]}
            })
        );
    }

    #[test]
    fn a_v1_merge_patch_keeps_the_v2_fields() {
        let mut hpa = full_v2();
        to_v1(&mut hpa);
        json_patch::merge(
            &mut hpa,
            &json!({"spec": {"targetCPUUtilizationPercentage": 75, "maxReplicas": 12}}),
        );
        to_v2(&mut hpa);
        let mut want = full_v2();
        want["spec"]["maxReplicas"] = json!(12);
        want["spec"]["metrics"][8]["resource"]["target"]["averageUtilization"] = json!(75);
        assert_eq!(hpa, want);

        // Dropping the CPU target through v1 drops only that metric.
        to_v1(&mut hpa);
        json_patch::merge(
            &mut hpa,
            &json!({"spec": {"targetCPUUtilizationPercentage": null}}),
        );
        to_v2(&mut hpa);
        let metrics = hpa["spec"]["metrics"].as_array().expect("metrics");
        assert_eq!(metrics.len(), 8);
        assert!(!metrics.iter().any(|m| m["resource"]["name"] == "cpu"));
        assert_eq!(hpa["spec"]["behavior"], behavior());
    }

    #[test]
    fn the_cpu_metric_comes_back_last_as_upstream() {
        let memory = json!({"type": "Resource", "resource": {"name": "memory",
            "target": {"type": "AverageValue", "averageValue": "1Gi"}}});
        let cpu = json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}});
        let mut hpa = json!({"spec": {"maxReplicas": 2, "metrics": [cpu, memory]}});
        to_v1(&mut hpa);
        to_v2(&mut hpa);
        assert_eq!(hpa["spec"]["metrics"], json!([memory, cpu]));
    }

    #[test]
    fn a_second_cpu_metric_is_kept() {
        let cpu = |t| {
            json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": t}}})
        };
        let mut hpa = json!({"spec": {"metrics": [cpu(50), cpu(90)]}});
        to_v1(&mut hpa);
        assert_eq!(hpa["spec"]["targetCPUUtilizationPercentage"], 50);
        to_v2(&mut hpa);
        assert_eq!(hpa["spec"]["metrics"], json!([cpu(90), cpu(50)]));

        // A CPU AverageValue target is no v1 target: it travels in the annotation.
        let avg = json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "AverageValue", "averageValue": "500m"}}});
        let mut hpa = json!({"spec": {"metrics": [avg]}});
        to_v1(&mut hpa);
        assert!(hpa["spec"].get("targetCPUUtilizationPercentage").is_none());
        to_v2(&mut hpa);
        assert_eq!(hpa["spec"]["metrics"], json!([avg]));
    }

    #[test]
    fn only_a_cpu_target_needs_no_annotation() {
        let stored = json!({
            "metadata": {"name": "h"},
            "spec": {"maxReplicas": 3, "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}]},
            "status": {"currentReplicas": 1, "desiredReplicas": 1}
        });
        let mut hpa = stored.clone();
        to_v1(&mut hpa);
        assert_eq!(hpa["spec"]["targetCPUUtilizationPercentage"], 50);
        assert!(hpa["metadata"].get("annotations").is_none(), "{hpa}");
        to_v2(&mut hpa);
        let mut want = stored;
        want["apiVersion"] = json!("autoscaling/v2");
        assert_eq!(hpa, want);

        // A CPU status still gets one, for its raw value (as upstream).
        let mut hpa = json!({"spec": {}, "status": {"currentMetrics": [{"type": "Resource",
            "resource": {"name": "cpu", "current": {"averageUtilization": 30, "averageValue": "150m"}}}]}});
        to_v1(&mut hpa);
        assert_eq!(hpa["status"]["currentCPUUtilizationPercentage"], 30);
        assert!(hpa["metadata"]["annotations"].get(METRICS).is_none());
        assert_eq!(
            annotation(&hpa, CURRENT_METRICS)[0]["resource"]["currentAverageValue"],
            "150m"
        );
    }

    #[test]
    fn malformed_annotations_are_dropped_and_ignored() {
        let malformed = [
            "abc",
            "",
            "{",
            "null",
            "[1]",
            "{\"a\": 1}",
            "{\"ScaleUp\": []}",
            "{\"ScaleUp\": {\"Policies\": {}}}",
            "{\"ScaleUp\": {\"Policies\": [1]}}",
        ];
        for bad in malformed {
            let mut hpa = json!({
                "apiVersion": "autoscaling/v1",
                "metadata": {"name": "h", "annotations": {METRICS: bad, CURRENT_METRICS: bad,
                    BEHAVIOR: bad, CONDITIONS: bad, "keep": "me"}},
                "spec": {"maxReplicas": 2, "targetCPUUtilizationPercentage": 60},
                "status": {"currentCPUUtilizationPercentage": 20}
            });
            to_v2(&mut hpa);
            assert_eq!(
                hpa,
                json!({
                    "apiVersion": "autoscaling/v2",
                    "metadata": {"name": "h", "annotations": {"keep": "me"}},
                    "spec": {"maxReplicas": 2, "metrics": [{"type": "Resource", "resource":
                        {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]},
                    "status": {"currentMetrics": [{"type": "Resource", "resource":
                        {"name": "cpu", "current": {"averageUtilization": 20}}}]}
                }),
                "annotation {bad:?}"
            );
        }
        // A metric source that is no object spoils the list.
        let mut hpa = json!({"metadata": {"annotations": {
                METRICS: r#"[{"type":"Pods","pods":{"metricName":"a"}},{"type":"Pods","pods":"qps"}]"#,
                CURRENT_METRICS: r#"[{"type":"Pods","pods":[]}]"#}},
            "spec": {}, "status": {}});
        to_v2(&mut hpa);
        assert_eq!(
            hpa,
            json!({"apiVersion": "autoscaling/v2", "metadata": {}, "spec": {}, "status": {}})
        );
        // Not even a string.
        let mut hpa = json!({"metadata": {"annotations": {METRICS: 5, BEHAVIOR: {}}}, "spec": {}});
        to_v2(&mut hpa);
        assert_eq!(
            hpa,
            json!({"apiVersion": "autoscaling/v2", "metadata": {}, "spec": {}})
        );
    }

    #[test]
    fn annotations_written_by_upstream_are_read() {
        // As a Kubernetes API server writes them: non-pointer quantities as "0", Go field
        // names in the behavior with nil pointers as null, an unset time as null.
        let mut hpa = json!({
            "metadata": {"annotations": {
                METRICS: r#"[{"type":"Object","object":{"target":{"kind":"Service","name":"s","apiVersion":"v1"},"metricName":"rps","targetValue":"0","averageValue":"200"}}]"#,
                BEHAVIOR: r#"{"ScaleUp":null,"ScaleDown":{"StabilizationWindowSeconds":null,"SelectPolicy":"Min","Policies":[{"Type":"Pods","Value":1,"PeriodSeconds":60}],"Tolerance":null}}"#,
                CONDITIONS: r#"[{"type":"AbleToScale","status":"True","lastTransitionTime":null,"reason":"R"}]"#,
                CURRENT_METRICS: r#"[{"type":"Resource","resource":{"name":"cpu","currentAverageUtilization":40,"currentAverageValue":"0"}}]"#
            }},
            "spec": {"maxReplicas": 4}
        });
        to_v2(&mut hpa);
        assert_eq!(
            hpa["spec"],
            json!({"maxReplicas": 4,
                "metrics": [{"type": "Object", "object": {
                    "describedObject": {"kind": "Service", "name": "s", "apiVersion": "v1"},
                    "metric": {"name": "rps"},
                    "target": {"type": "AverageValue", "value": "0", "averageValue": "200"}}}],
                "behavior": {"scaleDown": {"selectPolicy": "Min",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}})
        );
        assert_eq!(
            hpa["status"],
            json!({
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 40, "averageValue": "0"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "R"}]
            })
        );
        assert!(hpa["metadata"].get("annotations").is_none());
    }

    #[test]
    fn behavior_keys_match_ignoring_case() {
        let mut hpa = json!({"metadata": {"annotations": {BEHAVIOR: behavior().to_string()}},
            "spec": {}});
        to_v2(&mut hpa);
        assert_eq!(hpa["spec"]["behavior"], behavior());
        // An empty behavior is none (as upstream).
        let mut hpa = json!({"metadata": {"annotations": {BEHAVIOR: "{}"}}, "spec": {}});
        to_v2(&mut hpa);
        assert!(hpa["spec"].get("behavior").is_none());
    }

    #[test]
    fn stale_round_trip_annotations_are_not_shown() {
        // A v2 client's own copy of an annotation is not what v1 shows, nor read back.
        let mut hpa = json!({
            "metadata": {"annotations": {METRICS: "[]", CONDITIONS: "[]"}},
            "spec": {"metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}]}
        });
        to_v1(&mut hpa);
        assert!(hpa["metadata"].get("annotations").is_none(), "{hpa}");
    }

    #[test]
    fn v2_fields_in_a_v1_body_are_not_kept() {
        let mut hpa = json!({"spec": {"targetCPUUtilizationPercentage": 10,
                "metrics": [{"type": "Pods"}], "behavior": {"scaleUp": {}}},
            "status": {"conditions": [{"type": "X"}], "currentMetrics": [{"type": "Pods"}]}});
        to_v2(&mut hpa);
        assert_eq!(
            hpa,
            json!({"apiVersion": "autoscaling/v2",
                "spec": {"metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 10}}}]},
                "status": {}})
        );
    }

    #[test]
    fn non_objects_are_left_alone() {
        for mut junk in [json!([1]), json!("x"), json!(null)] {
            let before = junk.clone();
            to_v1(&mut junk);
            to_v2(&mut junk);
            assert_eq!(junk, before);
        }
    }
}

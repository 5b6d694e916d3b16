//! ResourceQuota accounting, shared by the API server's `ResourceQuota` admission plugin
//! (which charges a create against its namespace's quotas) and the resource quota
//! controller (which recounts `status.used` from the objects that exist), so both count
//! the same way — upstream's quota evaluators:
//!
//! - pods: `pods` (pods not yet Succeeded/Failed), `cpu`/`memory` (= `requests.*`),
//!   `requests.*`, `limits.*`, `ephemeral-storage`, `hugepages-*`, extended
//!   `requests.<name>`;
//! - services: `services`, `services.nodeports`, `services.loadbalancers`;
//! - persistentvolumeclaims: `persistentvolumeclaims`, `requests.storage` and their
//!   `<class>.storageclass.storage.k8s.io/…` forms;
//! - every kind: `count/<resource>[.<group>]`, and the legacy names `configmaps`,
//!   `secrets`, `replicationcontrollers`, `resourcequotas`.
//!
//! Scopes (`spec.scopes`, `spec.scopeSelector`) apply to pods only: a scoped quota
//! counts nothing else, as upstream.

use crate::strategy::json::str_list;
use crate::strategy::quantity::{format_canonical, is_binary, parse_quantity};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

#[cfg(test)]
mod tests;

/// An amount of one resource, in milli-units; `binary` keeps upstream's printing of
/// quantities first written with binary suffixes (`Mi`, `Gi`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Amount {
    pub milli: i128,
    pub binary: bool,
}

impl Amount {
    /// A whole count (`pods: 1`).
    pub fn count(n: i128) -> Amount {
        Amount {
            milli: n * 1000,
            binary: false,
        }
    }

    /// A quantity from JSON (`"500m"`, `"1Gi"`, `2`); `None` when malformed.
    pub fn from_value(v: &Value) -> Option<Amount> {
        match v {
            Value::String(s) => Some(Amount {
                milli: parse_quantity(s).ok()?,
                binary: is_binary(s),
            }),
            Value::Number(n) => Some(Amount {
                milli: (n.as_f64()? * 1000.0).ceil() as i128,
                binary: false,
            }),
            _ => None,
        }
    }

    /// Upstream's canonical text (`500m`, `1Gi`, `3`).
    pub fn text(&self) -> String {
        format_canonical(self.milli, self.binary)
    }

    fn plus(self, other: Amount) -> Amount {
        Amount {
            milli: self.milli.saturating_add(other.milli),
            binary: self.binary || other.binary,
        }
    }
}

/// Amounts by resource name, sorted as upstream prints them.
pub type ResourceList = BTreeMap<String, Amount>;

/// A `hard`/`used`/`requests` map from JSON; malformed entries are skipped.
pub fn parse_list(v: Option<&Value>) -> ResourceList {
    v.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), Amount::from_value(q)?)))
        .collect()
}

/// A resource list as JSON, in canonical quantities.
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, a)| (k.clone(), Value::String(a.text())))
            .collect::<Map<String, Value>>(),
    )
}

/// `a + b`, per resource.
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, v) in b {
        let slot = out.entry(k.clone()).or_default();
        *slot = slot.plus(*v);
    }
    out
}

/// The entries of `list` whose names are in `names`.
pub fn mask<'a>(list: &ResourceList, names: impl IntoIterator<Item = &'a String>) -> ResourceList {
    names
        .into_iter()
        .filter_map(|k| Some((k.clone(), *list.get(k)?)))
        .collect()
}

/// `cpu=500m,memory=1Gi`, upstream's `prettyPrint` of a resource list in messages.
pub fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, a)| format!("{k}={}", a.text()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The object-count resource name of a kind: `count/pods`, `count/deployments.apps`.
pub fn object_count_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// The kind a `count/<resource>[.<group>]` name counts, as (group, plural).
pub fn counted_kind(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix("count/")?;
    Some(match rest.split_once('.') {
        Some((plural, group)) => (group, plural),
        None => ("", rest),
    })
}

/// Core kinds with a legacy count name (`configmaps: 10` counts ConfigMaps).
const LEGACY_COUNTS: [&str; 7] = [
    "pods",
    "services",
    "persistentvolumeclaims",
    "configmaps",
    "secrets",
    "replicationcontrollers",
    "resourcequotas",
];

const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// Whether the quota resource `name` is one that objects of `group`/`plural` use.
pub fn tracks(name: &str, group: &str, plural: &str) -> bool {
    if name == object_count_name(group, plural) {
        return true;
    }
    if !group.is_empty() {
        return false;
    }
    match plural {
        "pods" => {
            matches!(
                name,
                "pods"
                    | "cpu"
                    | "memory"
                    | "ephemeral-storage"
                    | "requests.cpu"
                    | "requests.memory"
                    | "requests.ephemeral-storage"
                    | "limits.cpu"
                    | "limits.memory"
                    | "limits.ephemeral-storage"
            ) || name.starts_with("hugepages-")
                || name
                    .strip_prefix("requests.")
                    .is_some_and(|r| r.starts_with("hugepages-") || is_extended(r))
        }
        "services" => matches!(
            name,
            "services" | "services.nodeports" | "services.loadbalancers"
        ),
        "persistentvolumeclaims" => {
            matches!(name, "persistentvolumeclaims" | "requests.storage")
                || name.ends_with(&format!("{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"))
                || name.ends_with(&format!("{STORAGE_CLASS_SUFFIX}requests.storage"))
        }
        other => name == other && LEGACY_COUNTS.contains(&other),
    }
}

/// The kinds (group, plural) whose objects a quota with these hard resources counts.
pub fn counted_kinds<'a>(hard: impl IntoIterator<Item = &'a String>) -> BTreeSet<(String, String)> {
    let mut kinds = BTreeSet::new();
    for name in hard {
        if let Some((group, plural)) = counted_kind(name) {
            kinds.insert((group.to_string(), plural.to_string()));
            continue;
        }
        for plural in LEGACY_COUNTS {
            if tracks(name, "", plural) {
                kinds.insert((String::new(), plural.to_string()));
            }
        }
    }
    kinds
}

/// Everything one object of `group`/`plural` uses (only resources some quota could
/// name; callers mask to the quota's `hard`).
pub fn usage(group: &str, plural: &str, obj: &Value) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert(object_count_name(group, plural), Amount::count(1));
    if !group.is_empty() {
        return out;
    }
    match plural {
        "pods" => pod_usage(obj, &mut out),
        "services" => service_usage(obj, &mut out),
        "persistentvolumeclaims" => claim_usage(obj, &mut out),
        other if LEGACY_COUNTS.contains(&other) => {
            out.insert(other.to_string(), Amount::count(1));
        }
        _ => {}
    }
    out
}

/// A pod charges compute resources until it reaches a terminal phase.
fn pod_usage(pod: &Value, out: &mut ResourceList) {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return;
    }
    out.insert("pods".into(), Amount::count(1));
    for (name, amount) in pod_totals(pod, "requests") {
        match name.as_str() {
            "cpu" | "memory" | "ephemeral-storage" => {
                out.insert(format!("requests.{name}"), amount);
                out.insert(name, amount);
            }
            n if n.starts_with("hugepages-") => {
                out.insert(format!("requests.{n}"), amount);
                out.insert(name, amount);
            }
            n if is_extended(n) => {
                // Extended resources are quota'd only as `requests.<name>`.
                out.insert(format!("requests.{n}"), amount);
            }
            _ => {}
        }
    }
    for (name, amount) in pod_totals(pod, "limits") {
        if matches!(name.as_str(), "cpu" | "memory" | "ephemeral-storage") {
            out.insert(format!("limits.{name}"), amount);
        }
    }
}

/// A pod's effective `requests` or `limits`: the sum over its containers, but at least
/// the largest single init container (init containers run one at a time before them),
/// plus `spec.overhead`.
pub fn pod_totals(pod: &Value, field: &str) -> ResourceList {
    let quantities = |list: &str| {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.pointer(&format!("/resources/{field}"))?.as_object())
            .flatten()
            .filter_map(|(k, q)| Some((k, Amount::from_value(q)?)))
    };
    let mut totals = ResourceList::new();
    for (k, a) in quantities("containers") {
        let slot = totals.entry(k.clone()).or_default();
        *slot = slot.plus(a);
    }
    for (k, a) in quantities("initContainers") {
        let slot = totals.entry(k.clone()).or_default();
        slot.milli = slot.milli.max(a.milli);
        slot.binary |= a.binary;
    }
    let overhead = parse_list(pod.pointer("/spec/overhead"));
    add(&totals, &overhead)
}

fn service_usage(svc: &Value, out: &mut ResourceList) {
    out.insert("services".into(), Amount::count(1));
    let kind = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let (node_ports, balancers) = match kind {
        "NodePort" => (ports, 0),
        "LoadBalancer" => (ports, 1),
        _ => (0, 0),
    };
    out.insert(
        "services.nodeports".into(),
        Amount::count(node_ports as i128),
    );
    out.insert("services.loadbalancers".into(), Amount::count(balancers));
}

fn claim_usage(pvc: &Value, out: &mut ResourceList) {
    out.insert("persistentvolumeclaims".into(), Amount::count(1));
    let class = pvc
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty());
    if let Some(class) = class {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            Amount::count(1),
        );
    }
    let Some(storage) = pvc
        .pointer("/spec/resources/requests/storage")
        .and_then(Amount::from_value)
    else {
        return;
    };
    out.insert("requests.storage".into(), storage);
    if let Some(class) = class {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"),
            storage,
        );
    }
}

/// Whether updates of `group`/`plural` are charged, as upstream's evaluators charge
/// them: Services (type and ports) and PersistentVolumeClaims (resizes).
pub fn charges_updates(group: &str, plural: &str) -> bool {
    group.is_empty() && matches!(plural, "services" | "persistentvolumeclaims")
}

/// What `new` uses beyond `old`, per resource (only the resources that grew).
pub fn growth(new: &ResourceList, old: &ResourceList) -> ResourceList {
    new.iter()
        .filter_map(|(k, a)| {
            let before = old.get(k).map_or(0, |o| o.milli);
            (a.milli > before).then(|| {
                (
                    k.clone(),
                    Amount {
                        milli: a.milli - before,
                        binary: a.binary,
                    },
                )
            })
        })
        .collect()
}

/// The resources a quota limits (`spec.hard`).
pub fn hard(quota: &Value) -> ResourceList {
    parse_list(quota.pointer("/spec/hard"))
}

/// Whether `quota` counts this object: it limits a resource the kind uses and, for a
/// scoped quota, the object is a pod in every scope.
pub fn matches(quota: &Value, group: &str, plural: &str, obj: &Value) -> bool {
    let limits_kind = quota
        .pointer("/spec/hard")
        .and_then(Value::as_object)
        .is_some_and(|h| h.keys().any(|k| tracks(k, group, plural)));
    limits_kind && in_scopes(quota, group, plural, obj)
}

/// Every scope of the quota (`spec.scopes` and `spec.scopeSelector`) holds for `obj`.
fn in_scopes(quota: &Value, group: &str, plural: &str, obj: &Value) -> bool {
    let scopes = str_list(quota.pointer("/spec/scopes"));
    let selectors: Vec<&Value> = quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if scopes.is_empty() && selectors.is_empty() {
        return true;
    }
    if !(group.is_empty() && plural == "pods") {
        return false;
    }
    let by_name = scopes.iter().all(|s| pod_in_scope(obj, s, None, &[]));
    by_name
        && selectors.iter().all(|sel| {
            let scope = sel.get("scopeName").and_then(Value::as_str).unwrap_or("");
            let op = sel.get("operator").and_then(Value::as_str);
            let values = str_list(sel.get("values"));
            pod_in_scope(obj, scope, op, &values)
        })
}

/// One scope for a pod; `op`/`values` come from a scope selector (`None`: a plain scope).
fn pod_in_scope(pod: &Value, scope: &str, op: Option<&str>, values: &[&str]) -> bool {
    let holds = match scope {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => {
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            return match (op, class) {
                (Some("Exists") | None, c) => c.is_some(),
                (Some("DoesNotExist"), c) => c.is_none(),
                (Some("In"), Some(c)) => values.contains(&c),
                (Some("NotIn"), Some(c)) => !values.contains(&c),
                (Some("NotIn"), None) => true,
                _ => false,
            };
        }
        _ => false,
    };
    match op {
        Some("DoesNotExist") | Some("NotIn") => !holds,
        _ => holds,
    }
}

fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0)
}

/// No container (init included) requests or limits cpu or memory.
fn is_best_effort(pod: &Value) -> bool {
    ["containers", "initContainers"].iter().all(|list| {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .all(|c| {
                ["requests", "limits"].iter().all(|f| {
                    c.pointer(&format!("/resources/{f}"))
                        .and_then(Value::as_object)
                        .is_none_or(|m| !m.contains_key("cpu") && !m.contains_key("memory"))
                })
            })
    })
}

/// Resources every container must set when a quota limits them (a historical rule
/// upstream keeps for cpu and memory only).
const MUST_SPECIFY: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Upstream's pod constraint: when the quota limits cpu or memory, every container must
/// state the matching request or limit. `Err` is the message after `failed quota: NAME: `.
pub fn pod_constraints(hard: &ResourceList, pod: &Value) -> Result<(), String> {
    let required: Vec<&str> = MUST_SPECIFY
        .into_iter()
        .filter(|r| hard.contains_key(*r))
        .collect();
    if required.is_empty() {
        return Ok(());
    }
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for list in ["containers", "initContainers"] {
        for c in pod
            .pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let has = |field: &str, name: &str| {
                c.pointer(&format!("/resources/{field}/{name}")).is_some()
            };
            let name = c.get("name").and_then(Value::as_str).unwrap_or("");
            for r in &required {
                let present = match *r {
                    "cpu" | "requests.cpu" => has("requests", "cpu"),
                    "memory" | "requests.memory" => has("requests", "memory"),
                    "limits.cpu" => has("limits", "cpu"),
                    _ => has("limits", "memory"),
                };
                if !present {
                    missing.entry(r).or_default().insert(name.to_string());
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!(
                "{r} for: {}",
                names.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}

/// A quota's `status.used` recounted from `objects` (every object of the namespace of
/// each kind [`counted_kinds`] names, as (group, plural, object)): zero for every hard
/// resource some kind tracks, plus the usage of each object the quota matches.
pub fn recount<'a>(
    quota: &Value,
    objects: impl IntoIterator<Item = (&'a str, &'a str, &'a Value)>,
) -> ResourceList {
    let hard = hard(quota);
    let mut used: ResourceList = counted_kinds(hard.keys())
        .iter()
        .flat_map(|(g, p)| hard.keys().filter(|k| tracks(k, g, p)))
        .map(|k| (k.clone(), Amount::count(0)))
        .collect();
    for (group, plural, obj) in objects {
        if matches(quota, group, plural, obj) {
            used = add(&used, &mask(&usage(group, plural, obj), hard.keys()));
        }
    }
    used
}

/// An extended resource (`example.com/gpu`): outside the `kubernetes.io` domain.
fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/")
}

//! Matching a typed `metav1.LabelSelector` (k8s-openapi's struct) without converting it:
//! matchLabels AND matchExpressions. Used where selectors come from typed caches
//! (controllers, the node agent's NetworkPolicy rules).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as TypedSelector;
use std::collections::BTreeMap;

/// Whether `labels` satisfy `sel`. An empty selector matches everything; an unknown
/// operator matches nothing (as an invalid selector would).
pub fn matches_typed(sel: &TypedSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    let get = |k: &str| labels.and_then(|l| l.get(k));
    sel.match_labels
        .iter()
        .flatten()
        .all(|(k, v)| get(k) == Some(v))
        && sel.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let have = get(&e.key);
            match e.operator.as_str() {
                "In" => have.is_some_and(|v| values.contains(v)),
                "NotIn" => have.is_none_or(|v| !values.contains(v)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
}

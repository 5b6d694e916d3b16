//! Upstream's `ResourceQuota` admission plugin, the pure part: whether a create fits a
//! quota, and the quota's `status` once it is charged for it. The plugin charges every
//! matching quota of the namespace before the object is stored (so concurrent creates
//! cannot overrun it); the quota controller later recounts usage from what exists, which
//! also gives back what deletes free.
//!
//! Unlike upstream, a quota counts from `spec.hard` at once, and usage the controller has
//! not recorded yet is counted from the store by the caller, so a create right after a
//! quota is bound by it (upstream lets it through until the controller ran).

use r8s_api::quota::{self, ResourceList};
use serde_json::{Value, json};

/// The quota's `status` after charging `delta`; `Ok(None)` if the quota limits none of
/// the resources `delta` uses. `used` is the quota's usage before the create (its
/// `status.used`, completed by the caller where that lacks a resource). `Err` is the
/// refusal, in upstream's words.
pub fn charge(
    quota: &Value,
    delta: &ResourceList,
    used: &ResourceList,
) -> Result<Option<Value>, String> {
    let hard = quota::hard(quota);
    let requested = quota::mask(delta, hard.keys());
    if requested.is_empty() {
        return Ok(None);
    }
    let after = quota::add(&quota::mask(used, requested.keys()), &requested);
    let exceeded: Vec<&String> = after
        .iter()
        .filter(|(k, a)| hard.get(*k).is_some_and(|h| a.milli > h.milli))
        .map(|(k, _)| k)
        .collect();
    if !exceeded.is_empty() {
        let name = crate::meta::name(quota);
        return Err(format!(
            "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
            quota::pretty(&quota::mask(&requested, exceeded.iter().copied())),
            quota::pretty(&quota::mask(used, exceeded.iter().copied())),
            quota::pretty(&quota::mask(&hard, exceeded.iter().copied())),
        ));
    }
    let mut new_used = used.clone();
    new_used.extend(after);
    let hard_json = quota
        .pointer("/spec/hard")
        .cloned()
        .unwrap_or_else(|| json!({}));
    Ok(Some(
        json!({"hard": hard_json, "used": quota::to_json(&new_used)}),
    ))
}

/// The resources of `delta` the quota limits but has no recorded usage for: the caller
/// counts those from the store.
pub fn unrecorded(quota: &Value, delta: &ResourceList) -> bool {
    let hard = quota::hard(quota);
    let used = recorded(quota);
    delta
        .keys()
        .any(|k| hard.contains_key(k) && !used.contains_key(k))
}

/// The quota's `status.used`.
pub fn recorded(quota: &Value) -> ResourceList {
    quota::parse_list(quota.pointer("/status/used"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use r8s_api::quota::Amount;

    fn q(hard: Value, used: Value) -> Value {
        json!({"metadata": {"name": "compute"}, "spec": {"hard": hard}, "status": {"hard": hard, "used": used}})
    }

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Amount::from_value(&json!(v)).unwrap()))
            .collect()
    }

    #[test]
    fn charges_what_fits() {
        let quota = q(
            json!({"pods": "2", "requests.memory": "1Gi"}),
            json!({"pods": "1", "requests.memory": "512Mi"}),
        );
        let delta = list(&[
            ("pods", "1"),
            ("count/pods", "1"),
            ("requests.memory", "256Mi"),
            ("cpu", "1"),
        ]);
        let status = charge(&quota, &delta, &recorded(&quota)).unwrap().unwrap();
        assert_eq!(
            status["used"],
            json!({"pods": "2", "requests.memory": "768Mi"})
        );
        assert_eq!(
            status["hard"],
            json!({"pods": "2", "requests.memory": "1Gi"})
        );
    }

    #[test]
    fn refuses_with_upstreams_message() {
        let quota = q(
            json!({"pods": "2", "requests.memory": "1Gi"}),
            json!({"pods": "2", "requests.memory": "512Mi"}),
        );
        let delta = list(&[("pods", "1"), ("requests.memory", "600Mi")]);
        assert_eq!(
            charge(&quota, &delta, &recorded(&quota)),
            Err("exceeded quota: compute, requested: pods=1,requests.memory=600Mi, used: pods=2,requests.memory=512Mi, limited: pods=2,requests.memory=1Gi".to_string())
        );
        let delta = list(&[("count/configmaps", "1")]);
        assert_eq!(
            charge(&quota, &delta, &recorded(&quota)),
            Ok(None),
            "not limited"
        );
    }

    #[test]
    fn unrecorded_usage_is_noticed() {
        let fresh = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}});
        assert!(unrecorded(&fresh, &list(&[("pods", "1")])));
        assert!(!unrecorded(&fresh, &list(&[("services", "1")])));
        let counted = q(json!({"pods": "1"}), json!({"pods": "0"}));
        assert!(!unrecorded(&counted, &list(&[("pods", "1")])));
    }
}

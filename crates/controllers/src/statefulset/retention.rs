//! PersistentVolumeClaim retention (`spec.persistentVolumeClaimRetentionPolicy`), expressed as
//! owner references on the claims so the garbage collector does the deleting:
//!
//! | whenScaled | whenDeleted | claim owned by |
//! |---|---|---|
//! | Retain | Retain | nobody |
//! | Retain | Delete | the set |
//! | Delete | Retain | the pod, once it is scaled down |
//! | Delete | Delete | the set; the pod instead once it is scaled down |
//!
//! Claims with stale references (same name, other UID) or another controller are left alone.

use super::utils::in_ordinal_range;
use crate::util::podutil::controller_ref;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;

/// A retention choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    Retain,
    Delete,
}

/// `(whenScaled, whenDeleted)`, Retain for anything unset or unknown.
pub fn policy(set: &StatefulSet) -> (Retention, Retention) {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let parse = |v: Option<&String>| match v.map(String::as_str) {
        Some("Delete") => Retention::Delete,
        _ => Retention::Retain,
    };
    (
        parse(p.and_then(|p| p.when_scaled.as_ref())),
        parse(p.and_then(|p| p.when_deleted.as_ref())),
    )
}

fn refs(claim: &PersistentVolumeClaim) -> &[OwnerReference] {
    claim.metadata.owner_references.as_deref().unwrap_or(&[])
}

/// Same API version, kind and name as `obj`.
fn matches_ref<K: Resource<DynamicType = ()>>(r: &OwnerReference, obj: &K) -> bool {
    r.api_version == K::api_version(&())
        && r.kind == K::kind(&())
        && Some(&r.name) == obj.meta().name.as_ref()
}

fn uid<K: Resource>(obj: &K) -> &str {
    obj.meta().uid.as_deref().unwrap_or("")
}

/// An owner reference to `owner` by UID (controller or not).
pub fn has_owner_ref<K: Resource>(claim: &PersistentVolumeClaim, owner: &K) -> bool {
    refs(claim).iter().any(|r| r.uid == uid(owner))
}

/// A reference that names `obj` but with another UID (left by a previous incarnation).
pub fn has_stale_owner_ref<K: Resource<DynamicType = ()>>(
    claim: &PersistentVolumeClaim,
    obj: &K,
) -> bool {
    refs(claim)
        .iter()
        .find(|r| matches_ref(r, obj))
        .is_some_and(|r| r.uid != uid(obj))
}

/// Some controller other than our set or pod (only matters with a Delete policy).
fn has_unexpected_controller(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    if policy(set) == (Retention::Retain, Retention::Retain) {
        return false;
    }
    for r in refs(claim) {
        if matches_ref(r, set) {
            if r.uid != uid(set) {
                return true;
            }
            continue;
        }
        if matches_ref(r, pod) {
            if r.uid != uid(pod) {
                return true;
            }
            continue;
        }
        if r.controller == Some(true) {
            return true;
        }
    }
    false
}

/// Our set or pod owns the claim without being its controller.
fn has_non_controller_owner(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    refs(claim)
        .iter()
        .any(|r| (r.uid == uid(set) || r.uid == uid(pod)) && r.controller != Some(true))
}

/// Whether the claim's owner references already agree with the retention policy.
pub fn claim_owner_up_to_date(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    if has_stale_owner_ref(claim, set) || has_stale_owner_ref(claim, pod) {
        return true;
    }
    if has_unexpected_controller(claim, set, pod) {
        return !(has_owner_ref(claim, set) || has_owner_ref(claim, pod));
    }
    if has_non_controller_owner(claim, set, pod) {
        return false;
    }
    let scaled_down = !in_ordinal_range(pod, set);
    let (set_ref, pod_ref) = (has_owner_ref(claim, set), has_owner_ref(claim, pod));
    match policy(set) {
        (Retention::Retain, Retention::Retain) => !set_ref && !pod_ref,
        (Retention::Retain, Retention::Delete) => set_ref && !pod_ref,
        (Retention::Delete, Retention::Retain) => !set_ref && scaled_down == pod_ref,
        (Retention::Delete, Retention::Delete) => scaled_down != set_ref && scaled_down == pod_ref,
    }
}

/// Rewrite the claim's owner references to agree with the policy.
pub fn update_claim_owner_refs(claim: &mut PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) {
    let unexpected = has_unexpected_controller(claim, set, pod);
    let mut new: Vec<OwnerReference> = refs(claim)
        .iter()
        .filter(|r| !matches_ref(r, set) && !matches_ref(r, pod))
        .cloned()
        .collect();
    if !unexpected {
        let scaled_down = !in_ordinal_range(pod, set);
        let mut add = |r: OwnerReference| {
            if !new.iter().any(|x| x.uid == r.uid) {
                new.push(r);
            }
        };
        match policy(set) {
            (Retention::Retain, Retention::Retain) => {}
            (Retention::Retain, Retention::Delete) => add(controller_ref(set)),
            (Retention::Delete, Retention::Retain) => {
                if scaled_down {
                    add(controller_ref(pod));
                }
            }
            (Retention::Delete, Retention::Delete) => {
                if scaled_down {
                    add(controller_ref(pod));
                } else {
                    add(controller_ref(set));
                }
            }
        }
    }
    claim.metadata.owner_references = if new.is_empty() { None } else { Some(new) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(when_scaled: &str, when_deleted: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "set-uid"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}, "template": {},
                     "serviceName": "s",
                     "persistentVolumeClaimRetentionPolicy": {"whenScaled": when_scaled, "whenDeleted": when_deleted}}
        }))
        .unwrap()
    }

    fn pod(ord: i64) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": format!("web-{ord}"), "namespace": "ns", "uid": format!("pod-{ord}")}}))
            .unwrap()
    }

    fn fixed(s: &StatefulSet, p: &Pod) -> PersistentVolumeClaim {
        let mut c = PersistentVolumeClaim::default();
        c.metadata.name = Some("www-web-0".into());
        update_claim_owner_refs(&mut c, s, p);
        assert!(claim_owner_up_to_date(&c, s, p));
        c
    }

    fn owners(c: &PersistentVolumeClaim) -> Vec<String> {
        refs(c).iter().map(|r| r.uid.clone()).collect()
    }

    #[test]
    fn policies_map_to_owners() {
        let live = pod(0);
        let gone = pod(5);
        let s = set("Retain", "Retain");
        assert!(owners(&fixed(&s, &live)).is_empty());
        let s = set("Retain", "Delete");
        assert_eq!(owners(&fixed(&s, &live)), vec!["set-uid"]);
        assert_eq!(owners(&fixed(&s, &gone)), vec!["set-uid"]);
        let s = set("Delete", "Retain");
        assert!(owners(&fixed(&s, &live)).is_empty());
        assert_eq!(owners(&fixed(&s, &gone)), vec!["pod-5"]);
        let s = set("Delete", "Delete");
        assert_eq!(owners(&fixed(&s, &live)), vec!["set-uid"]);
        assert_eq!(owners(&fixed(&s, &gone)), vec!["pod-5"]);
    }

    #[test]
    fn stale_and_foreign_owners_are_left_alone() {
        let s = set("Delete", "Delete");
        let p = pod(0);
        let mut c = PersistentVolumeClaim::default();
        let mut stale = controller_ref(&s);
        stale.uid = "old".into();
        c.metadata.owner_references = Some(vec![stale]);
        assert!(has_stale_owner_ref(&c, &s));
        assert!(claim_owner_up_to_date(&c, &s, &p));
        let mut foreign = PersistentVolumeClaim::default();
        foreign.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: "Other".into(),
            name: "x".into(),
            uid: "x".into(),
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        assert!(claim_owner_up_to_date(&foreign, &s, &p));
        update_claim_owner_refs(&mut foreign, &s, &p);
        assert_eq!(owners(&foreign), vec!["x"]);
    }

    #[test]
    fn non_controller_reference_needs_fixing() {
        let s = set("Retain", "Delete");
        let p = pod(0);
        let mut c = PersistentVolumeClaim::default();
        let mut r = controller_ref(&s);
        r.controller = None;
        c.metadata.owner_references = Some(vec![r]);
        assert!(!claim_owner_up_to_date(&c, &s, &p));
        update_claim_owner_refs(&mut c, &s, &p);
        assert_eq!(refs(&c)[0].controller, Some(true));
    }
}

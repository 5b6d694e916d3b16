//! Pod helpers shared by the workload controllers: readiness and availability as upstream's
//! `pkg/api/v1/pod`, controller references, and building a pod from a template as upstream's
//! `controller.GetPodFromTemplate`.

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource;

/// The pod's phase, `""` if unset (the API server always sets it, so `""` means "not created").
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The pod's Ready condition.
pub fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
}

/// Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Ready for at least `min_ready_seconds` as of `now`.
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(c) = ready_condition(pod).filter(|c| c.status == "True") else {
        return false;
    };
    if min_ready_seconds <= 0 {
        return true;
    }
    let Some(since) = c.last_transition_time.as_ref() else {
        return false;
    };
    since
        .0
        .checked_add(SignedDuration::from_secs(i64::from(min_ready_seconds)))
        .is_ok_and(|t| t < now)
}

/// Marked for deletion.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Failed or Succeeded.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Failed" | "Succeeded")
}

/// Every claim a pod's volumes name: `persistentVolumeClaim` volumes, and the
/// `<pod>-<volume>` claim of each generic `ephemeral` volume.
pub fn claim_names(pod: &Pod) -> Vec<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| match (&v.persistent_volume_claim, &v.ephemeral) {
            (Some(c), _) => Some(c.claim_name.clone()),
            (None, Some(_)) => Some(format!("{name}-{}", v.name)),
            _ => None,
        })
        .collect()
}

/// The controlling owner reference, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller reference (controller and blockOwnerDeletion set) to `owner`.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A pod from `template` owned by `owner`: labels, annotations and finalizers copied,
/// `generateName` `<owner name>-`, the template's spec.
pub fn pod_from_template(template: &PodTemplateSpec, owner: OwnerReference) -> Pod {
    let tm = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", owner.name)),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn pod(ready: bool, since: Timestamp) -> Pod {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            last_transition_time: Some(Time(since)),
            ..Default::default()
        }]);
        p
    }

    #[test]
    fn readiness_and_availability() {
        let now = Timestamp::now();
        let ten_ago = now.checked_sub(SignedDuration::from_secs(10)).unwrap();
        let p = pod(true, ten_ago);
        assert!(is_pod_ready(&p));
        assert!(is_pod_available(&p, 0, now));
        assert!(is_pod_available(&p, 5, now));
        assert!(!is_pod_available(&p, 30, now));
        assert!(!is_pod_ready(&pod(false, now)));
        assert_eq!(phase(&p), "Running");
        assert!(!is_terminal(&p));
    }

    #[test]
    fn refs_and_templates() {
        let mut set = StatefulSet::default();
        set.metadata.name = Some("web".into());
        set.metadata.uid = Some("u".into());
        let r = controller_ref(&set);
        assert_eq!(r.kind, "StatefulSet");
        assert_eq!(r.api_version, "apps/v1");
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c"}]}
        }))
        .unwrap();
        let p = pod_from_template(&t, r);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(controller_of(&p.metadata).unwrap().uid, "u");
    }
}

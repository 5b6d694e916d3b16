//! Deleting everything inside a terminating namespace: every namespaced resource that can be
//! deleted (found through discovery), pods first; then checking what is left and estimating
//! how long it will take to go (graceful pod termination, finalizers).

use super::NamespaceError;
use crate::util::discovery::{Discovered, preferred_resources};
use crate::util::is_not_found;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, DynamicObject, ListParams};
use kube::discovery::{ApiResource, Scope};
use std::collections::BTreeMap;

/// Seconds to allow for finalizers on remaining objects (upstream's default estimate).
const FINALIZER_ESTIMATE_SECS: i64 = 15;
/// A terminating pod still present this long after its deletion deadline is removed with
/// grace period 0 (no kubelet is going to finish it, e.g. its node is gone).
const FORCE_DELETE_AFTER_SECS: i64 = 5;

/// What a deletion pass found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Seconds until remaining content should be gone (0: nothing remains).
    pub estimate_secs: i64,
    /// Discovery failed (no content was deleted).
    pub discovery_failed: Option<String>,
    /// Resources whose deletion failed, with the error.
    pub delete_failures: Vec<String>,
    /// Remaining object counts by `resource.group`.
    pub remaining: BTreeMap<String, usize>,
    /// Remaining objects per finalizer.
    pub finalizers_remaining: BTreeMap<String, usize>,
    /// The first hard error, if any.
    pub error: Option<NamespaceError>,
}

fn is_pods(ar: &ApiResource) -> bool {
    ar.group.is_empty() && ar.plural == "pods"
}

fn resource_key(ar: &ApiResource) -> String {
    if ar.group.is_empty() {
        ar.plural.clone()
    } else {
        format!("{}.{}", ar.plural, ar.group)
    }
}

/// Delete all content of namespace `ns` (pods first; the rest only once no pod remains).
pub async fn delete_all(client: &kube::Client, ns: &str) -> Outcome {
    let mut out = Outcome::default();
    let resources = match preferred_resources(client).await {
        Ok(r) => r,
        Err(e) => {
            out.discovery_failed = Some(e.to_string());
            out.error = Some(NamespaceError::Discovery(e));
            return out;
        }
    };
    let deletable: Vec<Discovered> = resources
        .into_iter()
        .filter(|(_, caps)| caps.scope == Scope::Namespaced && caps.supports_operation("delete"))
        .collect();
    let (pods, others): (Vec<_>, Vec<_>) = deletable.into_iter().partition(|(ar, _)| is_pods(ar));
    for (ar, caps) in &pods {
        delete_resource(client, ns, ar, caps, &mut out).await;
    }
    // Ordered deletion: other content (e.g. network policies, secrets) stays until the pods
    // that may use it are gone.
    if out.remaining.is_empty() && out.delete_failures.is_empty() {
        for (ar, caps) in &others {
            delete_resource(client, ns, ar, caps, &mut out).await;
        }
    }
    if !out.remaining.is_empty() && out.estimate_secs == 0 {
        out.estimate_secs = 1;
    }
    if !out.delete_failures.is_empty() && out.error.is_none() {
        out.error = Some(NamespaceError::Content(out.delete_failures.join("; ")));
    }
    out
}

async fn delete_resource(
    client: &kube::Client,
    ns: &str,
    ar: &ApiResource,
    caps: &kube::discovery::ApiCapabilities,
    out: &mut Outcome,
) {
    let key = resource_key(ar);
    match delete_resource_inner(client, ns, ar, caps, out).await {
        Ok(estimate) => out.estimate_secs = out.estimate_secs.max(estimate),
        Err(e) => out.delete_failures.push(format!("{key}: {e}")),
    }
}

/// Delete every object of one resource in `ns`; returns the estimate for what remains.
async fn delete_resource_inner(
    client: &kube::Client,
    ns: &str,
    ar: &ApiResource,
    caps: &kube::discovery::ApiCapabilities,
    out: &mut Outcome,
) -> Result<i64, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    let mut estimate = 0;
    if is_pods(ar) {
        estimate = pods_estimate(client, ns).await?;
    }
    let mut collection_done = false;
    if caps.supports_operation("deletecollection") {
        match api
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await
        {
            Ok(_) => collection_done = true,
            // Not really supported after all: delete one by one.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 405 => {}
            Err(e) => return Err(e),
        }
    }
    if !collection_done {
        if !caps.supports_operation("list") {
            return Ok(0);
        }
        for item in api.list_metadata(&ListParams::default()).await?.items {
            let Some(name) = item.metadata.name.as_deref() else {
                continue;
            };
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    if !caps.supports_operation("list") {
        return Ok(0);
    }
    let left = api.list_metadata(&ListParams::default()).await?.items;
    if left.is_empty() {
        return Ok(0);
    }
    *out.remaining.entry(resource_key(ar)).or_default() += left.len();
    let mut has_finalizers = false;
    for item in &left {
        for f in item.metadata.finalizers.iter().flatten() {
            has_finalizers = true;
            *out.finalizers_remaining.entry(f.clone()).or_default() += 1;
        }
    }
    if has_finalizers {
        estimate = estimate.max(FINALIZER_ESTIMATE_SECS);
    }
    Ok(estimate)
}

/// The longest graceful termination among the namespace's running pods; pods stuck past
/// their deletion deadline are force-deleted.
async fn pods_estimate(client: &kube::Client, ns: &str) -> Result<i64, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let now = Timestamp::now();
    let mut estimate = 0;
    for pod in api.list(&ListParams::default()).await?.items {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded") | Some("Failed")) {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        if let Some(ts) = &pod.metadata.deletion_timestamp {
            let overdue = now.duration_since(ts.0).as_secs();
            if overdue > FORCE_DELETE_AFTER_SECS {
                match api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            estimate = estimate.max((-overdue).max(0) + FORCE_DELETE_AFTER_SECS + 1);
            continue;
        }
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        estimate = estimate.max(grace);
    }
    Ok(estimate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_keys() {
        let pods = ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Pod".into(),
            plural: "pods".into(),
        };
        assert!(is_pods(&pods));
        assert_eq!(resource_key(&pods), "pods");
        let deps = ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            plural: "deployments".into(),
        };
        assert!(!is_pods(&deps));
        assert_eq!(resource_key(&deps), "deployments.apps");
    }
}

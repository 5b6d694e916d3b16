//! The scale target: `spec.scaleTargetRef` resolved to a resource, and its `scale`
//! subresource read and written (upstream's scale client, any kind with a Scale).

use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::CrossVersionObjectReference;
use kube::Api;
use kube::api::{DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use std::collections::HashMap;
use std::sync::Mutex;

/// A client error as upstream prints it: the API's message for a `Status`
/// (`deployments.apps "web" not found`), else the error itself.
pub fn error_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Upstream `schema.ParseGroupVersion`: `""`, `v1`, or `group/version`.
pub fn parse_group_version(api_version: &str) -> Result<(String, String), String> {
    match api_version.split('/').collect::<Vec<_>>().as_slice() {
        [""] => Ok((String::new(), String::new())),
        [version] => Ok((String::new(), (*version).to_string())),
        [group, version] => Ok(((*group).to_string(), (*version).to_string())),
        _ => Err(format!("unexpected GroupVersion string: {api_version}")),
    }
}

/// The plural of a built-in scalable kind of `group`.
fn builtin_plural(group: &str, kind: &str) -> Option<&'static str> {
    Some(match (group, kind) {
        ("apps", "Deployment") => "deployments",
        ("apps", "ReplicaSet") => "replicasets",
        ("apps", "StatefulSet") => "statefulsets",
        ("", "ReplicationController") => "replicationcontrollers",
        _ => return None,
    })
}

/// Resolves targets to resources, remembering what discovery said about custom kinds.
#[derive(Default)]
pub struct Resolver {
    discovered: Mutex<HashMap<(String, String, String), ApiResource>>,
}

impl Resolver {
    /// The resource of `target`: built-in workloads by table; other kinds (custom
    /// resources with a scale subresource) through discovery, else guessed as the
    /// lowercase plural of the kind.
    pub async fn resolve(
        &self,
        client: &kube::Client,
        target: &CrossVersionObjectReference,
    ) -> Result<ApiResource, String> {
        let (group, version) = parse_group_version(target.api_version.as_deref().unwrap_or(""))?;
        let version = if version.is_empty() {
            "v1".to_string()
        } else {
            version
        };
        let gvk = GroupVersionKind::gvk(&group, &version, &target.kind);
        if let Some(plural) = builtin_plural(&group, &target.kind) {
            return Ok(ApiResource::from_gvk_with_plural(&gvk, plural));
        }
        let key = (group, version, target.kind.clone());
        if let Some(ar) = self.lock().get(&key) {
            return Ok(ar.clone());
        }
        match kube::discovery::pinned_kind(client, &gvk).await {
            Ok((ar, _)) => {
                self.lock().insert(key, ar.clone());
                Ok(ar)
            }
            // Not cached: the kind may be defined later.
            Err(_) => Ok(ApiResource::from_gvk_with_plural(
                &gvk,
                &format!("{}s", target.kind.to_lowercase()),
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String, String), ApiResource>> {
        self.discovered.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn api(client: &kube::Client, namespace: &str, ar: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, ar)
}

/// GET the target's scale.
pub async fn get_scale(
    client: &kube::Client,
    namespace: &str,
    ar: &ApiResource,
    name: &str,
) -> Result<Scale, kube::Error> {
    api(client, namespace, ar).get_scale(name).await
}

/// PUT the target's scale (with the resourceVersion read, so a concurrent change is a
/// conflict, as upstream's update is).
pub async fn update_scale(
    client: &kube::Client,
    namespace: &str,
    ar: &ApiResource,
    scale: &Scale,
) -> Result<Scale, kube::Error> {
    let name = scale.metadata.name.clone().unwrap_or_default();
    api(client, namespace, ar)
        .replace_scale(&name, &PostParams::default(), scale)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_versions() {
        assert_eq!(
            parse_group_version("apps/v1"),
            Ok(("apps".into(), "v1".into()))
        );
        assert_eq!(parse_group_version("v1"), Ok(("".into(), "v1".into())));
        assert_eq!(parse_group_version(""), Ok(("".into(), "".into())));
        assert_eq!(
            parse_group_version("a/b/c"),
            Err("unexpected GroupVersion string: a/b/c".into())
        );
        assert_eq!(builtin_plural("apps", "StatefulSet"), Some("statefulsets"));
        assert_eq!(builtin_plural("example.com", "Deployment"), None);
    }
}

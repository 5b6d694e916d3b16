//! `status.loadBalancer.ingress` of the Ingresses: this node's address is listed on those
//! it serves (so `kubectl get ingress` shows an ADDRESS) and taken off those it no longer
//! serves. Other nodes' addresses are left alone, so several servers each list their own.

use super::class::Classes;
use k8s_openapi::api::networking::v1::{Ingress, IngressLoadBalancerIngress};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use std::sync::Arc;

/// The field manager of the status this controller writes.
const MANAGER: &str = "r8s-ingress";

/// The address list `current` should become (None: it is right already).
pub fn wanted(
    current: &[IngressLoadBalancerIngress],
    ip: &str,
    served: bool,
) -> Option<Vec<IngressLoadBalancerIngress>> {
    let listed = current.iter().any(|e| e.ip.as_deref() == Some(ip));
    match (served, listed) {
        (true, false) => {
            let mut next = current.to_vec();
            next.push(IngressLoadBalancerIngress {
                ip: Some(ip.to_string()),
                ..Default::default()
            });
            next.sort_by(|a, b| (&a.ip, &a.hostname).cmp(&(&b.ip, &b.hostname)));
            Some(next)
        }
        (false, true) => Some(
            current
                .iter()
                .filter(|e| e.ip.as_deref() != Some(ip))
                .cloned()
                .collect(),
        ),
        _ => None,
    }
}

/// Bring every Ingress's status in line with whether it is served; false if a write
/// failed (the caller retries).
pub async fn sync(
    client: &kube::Client,
    ip: &str,
    ingresses: &[Arc<Ingress>],
    classes: &Classes,
) -> bool {
    let mut ok = true;
    for ing in ingresses {
        let current = ing
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_deref())
            .unwrap_or_default();
        let Some(next) = wanted(current, ip, classes.serves(ing)) else {
            continue;
        };
        let (Some(ns), Some(name)) = (&ing.metadata.namespace, &ing.metadata.name) else {
            continue;
        };
        let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
        let patch = json!({"status": {"loadBalancer": {"ingress": next}}});
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        match api.patch_status(name, &params, &Patch::Merge(&patch)).await {
            Ok(_) => {}
            // Deleted meanwhile: nothing to report on.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                tracing::warn!("ingress {ns}/{name} status: {e}");
                ok = false;
            }
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ip: &str) -> IngressLoadBalancerIngress {
        IngressLoadBalancerIngress {
            ip: Some(ip.into()),
            ..Default::default()
        }
    }

    #[test]
    fn our_address_is_added_and_removed() {
        assert_eq!(wanted(&[], "10.0.0.1", true), Some(vec![entry("10.0.0.1")]));
        assert_eq!(wanted(&[entry("10.0.0.1")], "10.0.0.1", true), None);
        assert_eq!(
            wanted(&[entry("10.0.0.9")], "10.0.0.1", true),
            Some(vec![entry("10.0.0.1"), entry("10.0.0.9")])
        );
        assert_eq!(
            wanted(&[entry("10.0.0.1"), entry("10.0.0.9")], "10.0.0.1", false),
            Some(vec![entry("10.0.0.9")])
        );
        assert_eq!(wanted(&[entry("10.0.0.9")], "10.0.0.1", false), None);
    }
}

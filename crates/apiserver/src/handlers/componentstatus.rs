//! `componentstatuses` (core/v1, deprecated upstream since 1.19 and still served, so
//! `kubectl get cs` works): the health of the datastore (`etcd-0`), the scheduler and the
//! controller manager, computed on each request rather than stored.
//!
//! The scheduler and the controller manager run in the server process under leader
//! election; one counts as healthy while its Lease in `kube-system` is held and renewed.

use super::resource::{Call, with_warnings};
use super::response;
use crate::error::{ApiError, ApiResult};
use crate::registry::ListPage;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use r8s_api::catalog;
use serde_json::{Value, json};

/// Upstream's deprecation warning on every request.
const DEPRECATED: &str = "v1 ComponentStatus is deprecated in v1.19+";

/// Components in upstream's order; the leader Lease each one holds (`None`: the store).
const COMPONENTS: [(&str, Option<&str>); 3] = [
    ("controller-manager", Some("kube-controller-manager")),
    ("scheduler", Some("kube-scheduler")),
    ("etcd-0", None),
];

fn object(name: &str, healthy: Result<(), String>) -> Value {
    let condition = match healthy {
        Ok(()) => json!({"type": "Healthy", "status": "True", "message": "ok"}),
        Err(error) => json!({"type": "Healthy", "status": "False", "error": error}),
    };
    json!({
        "apiVersion": "v1",
        "kind": "ComponentStatus",
        "metadata": {"name": name},
        "conditions": [condition],
    })
}

/// Whether a leader Lease is held and was renewed within its duration.
fn lease_current(lease: &Value, now: DateTime<Utc>) -> Result<(), String> {
    let holder = lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str);
    let renewed = lease
        .pointer("/spec/renewTime")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let duration = lease
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    match (holder.filter(|h| !h.is_empty()), renewed) {
        (Some(_), Some(at)) if at + chrono::Duration::seconds(duration) >= now => Ok(()),
        (Some(_), _) => Err("its leader lease has expired".into()),
        _ => Err("no instance holds its leader lease".into()),
    }
}

async fn status_of(call: &Call, name: &str, lease: Option<&str>) -> Value {
    let registry = &call.state.registry;
    let health = match lease {
        None => registry
            .store()
            .health()
            .await
            .map_err(|e| format!("datastore: {e}")),
        Some(lease) => {
            let leases = catalog::find("coordination.k8s.io", "v1", "leases");
            match leases {
                Some(info) => match registry.get(info, Some("kube-system"), lease).await {
                    Ok(l) => lease_current(&l, Utc::now()),
                    Err(_) => Err("no instance holds its leader lease".into()),
                },
                None => Err("leases missing from the catalog".into()),
            }
        }
    };
    object(name, health)
}

/// GET of one component.
pub async fn get(call: Call, name: &str) -> ApiResult<Response> {
    let Some((name, lease)) = COMPONENTS.iter().find(|(n, _)| *n == name) else {
        return Err(ApiError::not_found("", "componentstatuses", name));
    };
    let obj = status_of(&call, name, *lease).await;
    Ok(with_warnings(
        call.respond(StatusCode::OK, obj),
        &[DEPRECATED.into()],
    ))
}

/// LIST of all components.
pub async fn list(call: Call) -> ApiResult<Response> {
    let mut items = Vec::with_capacity(COMPONENTS.len());
    for (name, lease) in COMPONENTS {
        items.push(status_of(&call, name, lease).await);
    }
    let page = ListPage {
        items,
        resource_version: 0,
        continue_token: None,
        remaining: None,
    };
    let resp = response::list(call.info, page, call.rep, call.include);
    Ok(with_warnings(resp, &[DEPRECATED.into()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_current_while_held_and_renewed() {
        let now = Utc::now();
        let lease = |holder: &str, ago: i64| {
            json!({"spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                "renewTime": (now - chrono::Duration::seconds(ago)).to_rfc3339()}})
        };
        assert_eq!(lease_current(&lease("a", 5), now), Ok(()));
        assert!(lease_current(&lease("a", 60), now).is_err());
        assert!(lease_current(&lease("", 5), now).is_err());
        assert!(lease_current(&json!({}), now).is_err());
    }
}

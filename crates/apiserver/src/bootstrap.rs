//! What exists from the first start: the system namespaces and the `kubernetes` Service.

use crate::error::{ApiError, ApiResult};
use crate::registry::{Registry, WriteOptions};
use axum::http::StatusCode;
use r8s_api::catalog;
use serde_json::json;

/// Namespaces every cluster has.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Create what is missing (idempotent). `endpoint` is the address clients inside the
/// cluster reach the API server at; it goes into the `kubernetes` Endpoints.
pub async fn run(registry: &Registry, endpoint: std::net::SocketAddr) -> ApiResult<()> {
    // Custom resources are served before the server reports ready.
    registry.serve_custom_resources().await?;
    crate::bootstrap_rbac::run(registry).await?;
    let ns_info = catalog::find("", "v1", "namespaces")
        .ok_or_else(|| ApiError::internal("namespaces not in catalog"))?;
    for ns in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        ignore_exists(
            registry
                .create(ns_info, None, obj, &WriteOptions::default())
                .await,
        )?;
    }
    let svc_info = catalog::find("", "v1", "services")
        .ok_or_else(|| ApiError::internal("services not in catalog"))?;
    ensure_endpoints(registry, endpoint).await?;
    match registry.get(svc_info, Some("default"), "kubernetes").await {
        Ok(_) => return Ok(()),
        Err(e) if e.code == StatusCode::NOT_FOUND => {}
        Err(e) => return Err(e),
    }
    // A reservation left by an interrupted earlier start would block the fixed address.
    registry.allocators().release_first_ip().await;
    let ip = registry.allocators().first_ip().to_string();
    let svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": ip, "type": "ClusterIP", "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": endpoint.port()}]},
    });
    ignore_exists(
        registry
            .create(svc_info, Some("default"), svc, &WriteOptions::default())
            .await,
    )?;
    Ok(())
}

/// The `kubernetes` Service has no selector: its Endpoints (and EndpointSlice) name the
/// API server itself, as upstream's apiserver maintains them.
async fn ensure_endpoints(registry: &Registry, endpoint: std::net::SocketAddr) -> ApiResult<()> {
    let ip = endpoint.ip().to_string();
    let port = endpoint.port();
    let ep_info = catalog::find("", "v1", "endpoints")
        .ok_or_else(|| ApiError::internal("endpoints not in catalog"))?;
    let desired_subsets = json!([{"addresses": [{"ip": ip}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]);
    let opts = WriteOptions::default();
    match registry.get(ep_info, Some("default"), "kubernetes").await {
        Ok(current) if current.get("subsets") == Some(&desired_subsets) => {}
        Ok(_) => {
            let subsets = desired_subsets.clone();
            registry
                .update_with(
                    ep_info,
                    Some("default"),
                    "kubernetes",
                    None,
                    &opts,
                    move |cur| {
                        let mut next = cur.clone();
                        next["subsets"] = subsets.clone();
                        if let Some(m) = next.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                            m.remove("resourceVersion");
                        }
                        Ok(next)
                    },
                )
                .await?;
        }
        Err(e) if e.code == StatusCode::NOT_FOUND => {
            let ep = json!({"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                "subsets": desired_subsets});
            ignore_exists(registry.create(ep_info, Some("default"), ep, &opts).await)?;
        }
        Err(e) => return Err(e),
    }
    let slice_info = catalog::find("discovery.k8s.io", "v1", "endpointslices")
        .ok_or_else(|| ApiError::internal("endpointslices not in catalog"))?;
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes", "endpointslice.kubernetes.io/managed-by": "r8s-apiserver"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}]});
    match registry
        .get(slice_info, Some("default"), "kubernetes")
        .await
    {
        Ok(current)
            if current.get("endpoints") == slice.get("endpoints")
                && current.get("ports") == slice.get("ports") =>
        {
            Ok(())
        }
        Ok(_) => {
            registry
                .delete(
                    slice_info,
                    Some("default"),
                    "kubernetes",
                    &Default::default(),
                )
                .await?;
            ignore_exists(
                registry
                    .create(slice_info, Some("default"), slice, &opts)
                    .await,
            )
        }
        Err(e) if e.code == StatusCode::NOT_FOUND => ignore_exists(
            registry
                .create(slice_info, Some("default"), slice, &opts)
                .await,
        ),
        Err(e) => Err(e),
    }
}

fn ignore_exists<T>(r: ApiResult<T>) -> ApiResult<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code == StatusCode::CONFLICT => Ok(()),
        Err(e) => Err(e),
    }
}

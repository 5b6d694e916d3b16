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
    ensure_api_services(registry).await?;
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

/// Upstream's discovery priorities (kube-aggregator's table) of the groups r8s serves:
/// (group, version, groupPriorityMinimum, versionPriority). Unlisted (custom resource)
/// groups get 1000/100, as upstream's CRD registration;
/// the resource metrics API takes metrics-server's 100/100.
const PRIORITIES: &[(&str, &str, i64, i64)] = &[
    ("", "v1", 18000, 1),
    ("apiregistration.k8s.io", "v1", 18000, 15),
    ("apps", "v1", 17800, 15),
    ("events.k8s.io", "v1", 17750, 15),
    ("authentication.k8s.io", "v1", 17700, 15),
    ("authorization.k8s.io", "v1", 17600, 15),
    ("autoscaling", "v2", 17500, 30),
    ("autoscaling", "v1", 17500, 15),
    ("batch", "v1", 17400, 15),
    ("certificates.k8s.io", "v1", 17300, 15),
    ("networking.k8s.io", "v1", 17200, 15),
    ("policy", "v1", 17100, 15),
    ("rbac.authorization.k8s.io", "v1", 17000, 15),
    ("storage.k8s.io", "v1", 16800, 15),
    ("admissionregistration.k8s.io", "v1", 16700, 15),
    ("apiextensions.k8s.io", "v1", 16700, 15),
    ("scheduling.k8s.io", "v1", 16600, 15),
    ("coordination.k8s.io", "v1", 16500, 15),
    ("node.k8s.io", "v1", 16300, 15),
    ("discovery.k8s.io", "v1", 16200, 15),
    ("metrics.k8s.io", "v1beta1", 100, 100),
];

/// One `Local` APIService per served group version (upstream's autoregistration), with
/// its availability (local ones always are).
async fn ensure_api_services(registry: &Registry) -> ApiResult<()> {
    let info = catalog::find("apiregistration.k8s.io", "v1", "apiservices")
        .ok_or_else(|| ApiError::internal("apiservices not in catalog"))?;
    let mut versions: Vec<(&str, &str)> = vec![("", "v1")];
    for g in catalog::groups() {
        versions.extend(g.versions.iter().map(|v| (g.name, *v)));
    }
    for (group, version) in versions {
        let (group_priority, version_priority) = PRIORITIES
            .iter()
            .find(|(g, v, _, _)| *g == group && *v == version)
            .map_or((1000, 100), |(_, _, g, v)| (*g, *v));
        let name = format!("{version}.{group}");
        let obj = json!({
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": name,
                         "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
            "spec": {"group": group, "version": version,
                     "groupPriorityMinimum": group_priority, "versionPriority": version_priority},
        });
        ignore_exists(
            registry
                .create(info, None, obj, &WriteOptions::default())
                .await,
        )?;
        let available = json!({"conditions": [{
            "type": "Available", "status": "True", "reason": "Local",
            "message": "Local APIServices are always available",
            "lastTransitionTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }]});
        registry
            .update_with(
                info,
                None,
                &name,
                Some("status"),
                &WriteOptions::default(),
                |cur| {
                    let mut next = cur.clone();
                    if next.pointer("/status/conditions").is_none() {
                        next["status"] = available.clone();
                    }
                    Ok(next)
                },
            )
            .await?;
    }
    Ok(())
}

fn ignore_exists<T>(r: ApiResult<T>) -> ApiResult<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code == StatusCode::CONFLICT => Ok(()),
        Err(e) => Err(e),
    }
}

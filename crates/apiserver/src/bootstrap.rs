//! What exists from the first start: the system namespaces and the `kubernetes` Service.

use crate::error::{ApiError, ApiResult};
use crate::registry::{Registry, WriteOptions};
use axum::http::StatusCode;
use r8s_api::catalog;
use serde_json::json;

/// Namespaces every cluster has.
pub const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Create what is missing (idempotent).
pub async fn run(registry: &Registry) -> ApiResult<()> {
    let ns_info = catalog::find("", "v1", "namespaces").ok_or_else(|| ApiError::internal("namespaces not in catalog"))?;
    for ns in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        ignore_exists(registry.create(ns_info, None, obj, &WriteOptions::default()).await)?;
    }
    let svc_info = catalog::find("", "v1", "services").ok_or_else(|| ApiError::internal("services not in catalog"))?;
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
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
    });
    ignore_exists(registry.create(svc_info, Some("default"), svc, &WriteOptions::default()).await)?;
    Ok(())
}

fn ignore_exists<T>(r: ApiResult<T>) -> ApiResult<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if e.code == StatusCode::CONFLICT => Ok(()),
        Err(e) => Err(e),
    }
}

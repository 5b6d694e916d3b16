//! The scraper: every `resolution`, GET `/metrics/resource` from the kubelet of every
//! Ready node, concurrently, over the same mutually authenticated TLS as logs and exec.

use super::parse::{Scrape, parse};
use crate::proxy::kubelet::{self, KubeletAddr};
use crate::registry::ListParams;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

/// Upper bound on one kubelet's answer (thousands of containers fit well below it).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Upper bound on one scrape, so a hung kubelet cannot stall the others' next round.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// Scrape forever (until the task is dropped with the server's runtime).
pub async fn run(state: AppState, resolution: Duration) {
    let mut tick = tokio::time::interval(resolution.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = scrape_all(&state, resolution.min(SCRAPE_TIMEOUT)).await {
            tracing::debug!(error = %e.message, "resource metrics: listing nodes");
        }
    }
}

async fn scrape_all(state: &AppState, timeout: Duration) -> crate::error::ApiResult<()> {
    let info = r8s_api::catalog::find("", "v1", "nodes")
        .ok_or_else(|| crate::error::ApiError::internal("nodes are not served"))?;
    let nodes = state
        .registry
        .list(info, None, &ListParams::default())
        .await?
        .items;
    let targets: Vec<(String, KubeletAddr)> = nodes
        .iter()
        .filter(|n| is_ready(n) && publishes_kubelet(n))
        .filter_map(|n| {
            let name = n.pointer("/metadata/name")?.as_str()?.to_string();
            Some((name, KubeletAddr::from_node(n)?))
        })
        .collect();
    let keep: HashSet<String> = targets.iter().map(|(n, _)| n.clone()).collect();
    let scrapes = targets.into_iter().map(|(name, addr)| async move {
        let result = tokio::time::timeout(timeout, scrape(state, &addr))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")));
        (name, result)
    });
    for (name, result) in futures::future::join_all(scrapes).await {
        match result {
            Ok(scrape) => state.resource_metrics.record(&name, scrape),
            Err(e) => {
                tracing::debug!(node = %name, error = %e, "resource metrics: scrape failed");
                state.resource_metrics.forget(&name);
            }
        }
    }
    state.resource_metrics.retain(&keep);
    Ok(())
}

/// A node whose kubelet publishes its port (simulated nodes publish none: nothing
/// answers at their addresses).
fn publishes_kubelet(node: &Value) -> bool {
    node.pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .is_some_and(|p| p > 0)
}

/// A node whose Ready condition is True.
fn is_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

async fn scrape(state: &AppState, addr: &KubeletAddr) -> Result<Scrape, String> {
    let req = Request::get("/metrics/resource")
        .header(header::HOST, addr.authority())
        .header(header::ACCEPT, "text/plain")
        .body(Body::empty())
        .map_err(|e| e.to_string())?;
    let resp = kubelet::send(&state.kubelet_tls, addr, req, false)
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != StatusCode::OK {
        return Err(format!("kubelet answered {}", resp.status()));
    }
    let body = axum::body::to_bytes(Body::new(resp.into_body()), MAX_BODY)
        .await
        .map_err(|e| e.to_string())?;
    Ok(parse(&String::from_utf8_lossy(&body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_ready_nodes_are_scraped() {
        let node = |status: &str| {
            json!({"status": {"conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": status}]}})
        };
        assert!(is_ready(&node("True")));
        assert!(!is_ready(&node("Unknown")));
        assert!(!is_ready(&json!({"status": {}})));
        let port =
            |p: Value| json!({"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": p}}}});
        assert!(publishes_kubelet(&port(json!(10250))));
        assert!(!publishes_kubelet(&port(json!(0))));
        assert!(!publishes_kubelet(&json!({"status": {}})));
    }
}

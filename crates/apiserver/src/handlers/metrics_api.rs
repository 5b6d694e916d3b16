//! `metrics.k8s.io/v1beta1` nodes and pods (NodeMetrics, PodMetrics): answered from the
//! scraped usage in [`crate::resource_metrics`] joined with the Node or Pod objects, as
//! metrics-server answers from its informers. Labels and field selectors apply to the
//! Nodes/Pods; objects without a measurement are left out of lists and are NotFound on
//! GET (`podmetrics.metrics.k8s.io "ns/name" not found`, metrics-server's wording).

use super::resource::{Call, list_params};
use super::response;
use crate::error::{ApiError, ApiResult};
use crate::registry::ListPage;
use crate::resource_metrics::{PodUsage, Usage};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use r8s_api::catalog;
use r8s_api::duration::go_duration;
use r8s_api::resource_metrics::{API_VERSION, cpu_quantity, memory_quantity};
use serde_json::{Value, json};

/// GET of one NodeMetrics or PodMetrics.
pub async fn get(call: Call, name: &str) -> ApiResult<Response> {
    let (core, is_pods) = core_info(&call)?;
    let ns = call.namespace();
    let not_found = || {
        let shown = match ns {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_string(),
        };
        let resource = if is_pods { "podmetrics" } else { "nodemetrics" };
        ApiError::not_found(r8s_api::resource_metrics::GROUP, resource, &shown)
    };
    let obj = match call.state.registry.get(core, ns, name).await {
        Ok(obj) => obj,
        Err(e) if e.code == StatusCode::NOT_FOUND => return Err(not_found()),
        Err(e) => return Err(e),
    };
    let metrics = metrics_of(&call, &obj, is_pods, Utc::now()).ok_or_else(not_found)?;
    Ok(call.respond(StatusCode::OK, metrics))
}

/// LIST of NodeMetrics or PodMetrics (one namespace, or all).
pub async fn list(call: Call) -> ApiResult<Response> {
    let (core, is_pods) = core_info(&call)?;
    let mut params = list_params(&call)?;
    // Every match is measured and returned at once, as metrics-server does.
    params.limit = 0;
    params.continue_token = None;
    let objects = call
        .state
        .registry
        .list(core, call.namespace(), &params)
        .await?
        .items;
    let now = Utc::now();
    let items = objects
        .iter()
        .filter_map(|o| metrics_of(&call, o, is_pods, now))
        .map(|mut item| {
            // List items carry no type meta, as in upstream's lists.
            if let Value::Object(m) = &mut item {
                m.remove("kind");
                m.remove("apiVersion");
            }
            item
        })
        .collect();
    let page = ListPage {
        items,
        resource_version: 0,
        continue_token: None,
        remaining: None,
    };
    Ok(response::list(call.info, page, call.rep, call.include))
}

/// The core resource measured (`nodes` or `pods`), and whether it is pods.
fn core_info(call: &Call) -> ApiResult<(&'static catalog::ResourceInfo, bool)> {
    let is_pods = call.info.plural == "pods";
    let plural = if is_pods { "pods" } else { "nodes" };
    let info = catalog::find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))?;
    Ok((info, is_pods))
}

fn metrics_of(call: &Call, obj: &Value, is_pods: bool, now: DateTime<Utc>) -> Option<Value> {
    let name = obj.pointer("/metadata/name")?.as_str()?;
    let labels = obj.pointer("/metadata/labels").cloned();
    let store = &call.state.resource_metrics;
    if is_pods {
        // Only running pods are measured, as metrics-server.
        if obj.pointer("/status/phase").and_then(Value::as_str) != Some("Running") {
            return None;
        }
        let ns = obj.pointer("/metadata/namespace")?.as_str()?;
        store
            .pod(ns, name)
            .map(|u| pod_metrics(ns, name, labels, &u, now))
    } else {
        store
            .node(name)
            .map(|u| node_metrics(name, labels, &u, now))
    }
}

fn metadata(
    name: &str,
    namespace: Option<&str>,
    labels: Option<Value>,
    now: DateTime<Utc>,
) -> Value {
    let mut meta = json!({
        "name": name,
        "creationTimestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    if let Some(labels) = labels {
        meta["labels"] = labels;
    }
    meta
}

fn timestamp(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A window in seconds as a Duration (`as` saturates, so no float can panic here).
fn window(seconds: f64) -> std::time::Duration {
    std::time::Duration::from_millis((seconds * 1000.0).round() as u64)
}

fn usage_json(u: &Usage) -> Value {
    json!({"cpu": cpu_quantity(u.cpu_cores), "memory": memory_quantity(u.memory_bytes)})
}

fn node_metrics(name: &str, labels: Option<Value>, u: &Usage, now: DateTime<Utc>) -> Value {
    json!({
        "kind": "NodeMetrics",
        "apiVersion": API_VERSION,
        "metadata": metadata(name, None, labels, now),
        "timestamp": timestamp(u.timestamp_ms),
        "window": go_duration(window(u.window_seconds)),
        "usage": usage_json(u),
    })
}

fn pod_metrics(
    ns: &str,
    name: &str,
    labels: Option<Value>,
    u: &PodUsage,
    now: DateTime<Utc>,
) -> Value {
    let containers: Vec<Value> = u
        .containers
        .iter()
        .map(|(c, usage)| json!({"name": c, "usage": usage_json(usage)}))
        .collect();
    json!({
        "kind": "PodMetrics",
        "apiVersion": API_VERSION,
        "metadata": metadata(name, Some(ns), labels, now),
        "timestamp": timestamp(u.timestamp_ms),
        "window": go_duration(window(u.window_seconds)),
        "containers": containers,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn objects_have_metrics_server_shape() {
        let now = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let u = Usage {
            cpu_cores: 0.25,
            memory_bytes: 4 << 20,
            timestamp_ms: 1_700_000_010_000,
            window_seconds: 10.5,
        };
        let n = node_metrics("n1", Some(json!({"a": "b"})), &u, now);
        assert_eq!(n["usage"], json!({"cpu": "250m", "memory": "4Mi"}));
        assert_eq!(n["window"], "10.5s");
        assert_eq!(n["timestamp"], "2023-11-14T22:13:30Z");
        assert_eq!(n["metadata"]["labels"], json!({"a": "b"}));
        assert!(n["metadata"].get("namespace").is_none());
        let p = pod_metrics(
            "default",
            "web",
            None,
            &PodUsage {
                timestamp_ms: u.timestamp_ms,
                window_seconds: 10.5,
                containers: vec![("app".into(), u)],
            },
            now,
        );
        assert_eq!(p["kind"], "PodMetrics");
        assert_eq!(p["metadata"]["namespace"], "default");
        assert_eq!(
            p["containers"],
            json!([{"name": "app", "usage": {"cpu": "250m", "memory": "4Mi"}}])
        );
    }
}

//! Where the autoscaler gets pod usage from: the resource metrics API
//! (`metrics.k8s.io/v1beta1`, as metrics-server serves it) behind [`MetricsSource`], so
//! tests can inject a fake. Usage is kept in milli-units for every resource (millicores,
//! milli-bytes), as upstream's metrics client reads every quantity with `MilliValue()`.

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use r8s_api::strategy::quantity::parse_quantity;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// One container's usage: resource name → milli-units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerMetrics {
    pub name: String,
    pub usage: BTreeMap<String, i64>,
}

impl ContainerMetrics {
    /// A container using `cpu_milli` millicores and `memory_bytes` bytes.
    pub fn new(name: &str, cpu_milli: i64, memory_bytes: i64) -> Self {
        let usage = [
            ("cpu".to_string(), cpu_milli),
            ("memory".to_string(), memory_bytes.saturating_mul(1000)),
        ];
        ContainerMetrics {
            name: name.to_string(),
            usage: usage.into_iter().collect(),
        }
    }
}

/// One pod's sample (a metrics-server `PodMetrics`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodMetrics {
    pub name: String,
    /// When the sample was taken (the end of its window).
    pub timestamp: Timestamp,
    /// How long the sample was averaged over.
    pub window: Duration,
    pub containers: Vec<ContainerMetrics>,
}

/// Why metrics could not be had (upstream's message texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MetricsError(pub String);

/// A source of pod metrics: the resource metrics API in production, a fake in tests.
pub trait MetricsSource: Send + Sync {
    /// The samples of the pods in `namespace` matching `selector` (label selector syntax).
    fn pod_metrics<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PodMetrics>, MetricsError>>;
}

/// The resource metrics API through the controller's client.
pub struct ApiMetricsSource {
    client: kube::Client,
}

impl ApiMetricsSource {
    pub fn new(client: kube::Client) -> Self {
        ApiMetricsSource { client }
    }

    async fn fetch(&self, namespace: &str, selector: &str) -> Result<Value, kube::Error> {
        let path = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods");
        let req = kube::core::Request::new(path)
            .list(&ListParams::default().labels(selector))
            .map_err(kube::Error::BuildRequest)?;
        self.client.request::<Value>(req).await
    }
}

impl MetricsSource for ApiMetricsSource {
    fn pod_metrics<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PodMetrics>, MetricsError>> {
        Box::pin(async move {
            let list = self
                .fetch(namespace, selector)
                .await
                .map_err(|e| MetricsError(super::target::error_message(&e)))?;
            parse_pod_metrics_list(&list)
        })
    }
}

/// Parse a `PodMetricsList`.
pub fn parse_pod_metrics_list(list: &Value) -> Result<Vec<PodMetrics>, MetricsError> {
    let items = list.get("items").and_then(Value::as_array);
    items.into_iter().flatten().map(parse_pod_metrics).collect()
}

fn parse_pod_metrics(item: &Value) -> Result<PodMetrics, MetricsError> {
    let bad = |what: &str| MetricsError(format!("malformed PodMetrics: {what}"));
    let name = item
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no metadata.name"))?;
    let timestamp = item
        .get("timestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok())
        .ok_or_else(|| bad("no valid timestamp"))?;
    let window = match item.get("window").and_then(Value::as_str) {
        Some(w) => parse_go_duration(w).ok_or_else(|| bad(&format!("window {w:?}")))?,
        None => Duration::ZERO,
    };
    let mut containers = Vec::new();
    for c in item
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let mut usage = BTreeMap::new();
        for (res, q) in c
            .get("usage")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let q = q.as_str().unwrap_or_default();
            usage.insert(res.clone(), milli_value(q)?);
        }
        containers.push(ContainerMetrics {
            name: cname.to_string(),
            usage,
        });
    }
    Ok(PodMetrics {
        name: name.to_string(),
        timestamp,
        window,
        containers,
    })
}

/// A quantity in milli-units, rounded up (apimachinery's `MilliValue`).
pub fn milli_value(q: &str) -> Result<i64, MetricsError> {
    parse_quantity(q)
        .map(|m| i64::try_from(m).unwrap_or(if m < 0 { i64::MIN } else { i64::MAX }))
        .map_err(|e| MetricsError(format!("quantity {q:?}: {e}")))
}

/// A Go `time.Duration` string (`10.5s`, `1m0s`, `500ms`), as metav1.Duration renders one.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() || rest.starts_with('-') {
        return None;
    }
    let mut secs = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        secs += num * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// One pod's usage of one resource (upstream `PodMetric`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodMetric {
    pub timestamp: Timestamp,
    pub window: Duration,
    /// Milli-units.
    pub value: i64,
}

/// Usage per pod name (upstream `PodMetricsInfo`).
pub type PodMetricsInfo = HashMap<String, PodMetric>;

/// Usage of `resource` per pod, as upstream's resource metrics client reads it: with no
/// `container`, the sum over the pod's containers (a pod with a container not reporting
/// the resource is left out, so it counts as missing); with one, that container's usage
/// (an error if a pod's sample lacks the container).
pub fn resource_usage(
    items: &[PodMetrics],
    namespace: &str,
    resource: &str,
    container: Option<&str>,
) -> Result<PodMetricsInfo, MetricsError> {
    if items.is_empty() {
        return Err(MetricsError(
            "no metrics returned from resource metrics API".into(),
        ));
    }
    let mut out = PodMetricsInfo::new();
    for m in items {
        let sample = |value| PodMetric {
            timestamp: m.timestamp,
            window: m.window,
            value,
        };
        match container {
            Some(want) => {
                let Some(c) = m.containers.iter().find(|c| c.name == want) else {
                    return Err(MetricsError(format!(
                        "failed to get container metrics: container {want} not present in metrics for pod {namespace}/{}",
                        m.name
                    )));
                };
                if let Some(v) = c.usage.get(resource) {
                    out.insert(m.name.clone(), sample(*v));
                }
            }
            None => {
                let values: Option<Vec<i64>> = m
                    .containers
                    .iter()
                    .map(|c| c.usage.get(resource).copied())
                    .collect();
                match values {
                    Some(v) if !v.is_empty() => {
                        let sum = v.iter().fold(0i64, |a, b| a.saturating_add(*b));
                        out.insert(m.name.clone(), sample(sum));
                    }
                    _ => tracing::debug!(pod = %m.name, resource, "missing resource metric"),
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;

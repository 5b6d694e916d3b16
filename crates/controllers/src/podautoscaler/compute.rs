//! The count each metric asks for and the status reported for it (upstream
//! `computeReplicasForMetric[s]`). Resource and ContainerResource metrics come from the
//! resource metrics API; Pods, Object and External metrics need the custom and external
//! metrics APIs, which r8s does not serve, so they fail as upstream's do without them.

use super::metrics::{MetricsSource, PodMetrics, resource_usage};
use super::replicas::{Calculator, Tolerances};
use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, MetricSpec, MetricStatus, MetricTarget, MetricValueStatus,
    ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use r8s_api::strategy::quantity::{format_canonical, parse_quantity};
use std::sync::Arc;

/// Why one metric gave no count: the ScalingActive=False reason, the error as the
/// condition and event show it, and as the controller reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub inner: String,
    pub outer: String,
}

/// What a metric proposes: the count and its name for messages.
pub type Proposal = (i32, String);

const NO_CUSTOM_METRICS: &str = "unable to fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered";
const NO_EXTERNAL_METRICS: &str = "unable to fetch metrics from external metrics API: the server could not find the requested resource";

/// Everything one sync's metrics are computed from.
pub struct Computer<'a> {
    pub calc: &'a Calculator,
    pub source: &'a dyn MetricsSource,
    pub namespace: &'a str,
    pub selector: &'a str,
    pub pods: &'a [Arc<Pod>],
    pub spec_replicas: i32,
    pub tolerances: Tolerances,
    pub now: Timestamp,
    /// The pods' samples, fetched once per sync for every resource metric.
    fetched: Option<Result<Arc<Vec<PodMetrics>>, String>>,
}

fn milli(q: &Quantity) -> i64 {
    parse_quantity(&q.0)
        .ok()
        .and_then(|m| i64::try_from(m).ok())
        .unwrap_or(0)
}

fn quantity(milli: i64) -> Quantity {
    Quantity(format_canonical(i128::from(milli), false))
}

impl<'a> Computer<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        calc: &'a Calculator,
        source: &'a dyn MetricsSource,
        namespace: &'a str,
        selector: &'a str,
        pods: &'a [Arc<Pod>],
        spec_replicas: i32,
        tolerances: Tolerances,
        now: Timestamp,
    ) -> Self {
        Computer {
            calc,
            source,
            namespace,
            selector,
            pods,
            spec_replicas,
            tolerances,
            now,
            fetched: None,
        }
    }

    async fn samples(&mut self) -> Result<Arc<Vec<PodMetrics>>, String> {
        if self.fetched.is_none() {
            let got = self
                .source
                .pod_metrics(self.namespace, self.selector)
                .await
                .map(Arc::new)
                .map_err(|e| format!("unable to fetch metrics from resource metrics API: {e}"));
            self.fetched = Some(got);
        }
        self.fetched
            .clone()
            .unwrap_or_else(|| Err("no samples".into()))
    }

    /// The count `spec` asks for, writing its current value into `status`.
    pub async fn metric(
        &mut self,
        spec: &MetricSpec,
        status: &mut MetricStatus,
    ) -> Result<Proposal, Failure> {
        match spec.type_.as_str() {
            "Resource" => {
                let Some(src) = spec.resource.as_ref() else {
                    return Err(invalid("FailedGetResourceMetric", "resource"));
                };
                let got = self.resource(&src.name, None, &src.target).await;
                let (replicas, name, current) = got.map_err(|e| Failure {
                    reason: "FailedGetResourceMetric",
                    outer: format!("failed to get {} resource metric value: {e}", src.name),
                    inner: e,
                })?;
                *status = MetricStatus {
                    type_: "Resource".into(),
                    resource: Some(ResourceMetricStatus {
                        name: src.name.clone(),
                        current,
                    }),
                    ..Default::default()
                };
                Ok((replicas, name))
            }
            "ContainerResource" => {
                let Some(src) = spec.container_resource.as_ref() else {
                    return Err(invalid(
                        "FailedGetContainerResourceMetric",
                        "container resource",
                    ));
                };
                let got = self
                    .resource(&src.name, Some(&src.container), &src.target)
                    .await;
                let (replicas, name, current) = got.map_err(|e| Failure {
                    reason: "FailedGetContainerResourceMetric",
                    outer: format!(
                        "failed to get {} container metric value: {e}",
                        src.container
                    ),
                    inner: e,
                })?;
                *status = MetricStatus {
                    type_: "ContainerResource".into(),
                    container_resource: Some(ContainerResourceMetricStatus {
                        name: src.name.clone(),
                        container: src.container.clone(),
                        current,
                    }),
                    ..Default::default()
                };
                Ok((replicas, name))
            }
            "Pods" => Err(pods_failure(spec)),
            "Object" => Err(object_failure(spec, self.namespace)),
            "External" => Err(external_failure(spec, self.namespace)),
            other => {
                let e = format!("unknown metric source type {other:?}");
                Err(Failure {
                    reason: "InvalidMetricSourceType",
                    inner: e.clone(),
                    outer: e,
                })
            }
        }
    }

    /// Upstream `computeStatusForResourceMetricGeneric`.
    async fn resource(
        &mut self,
        resource: &str,
        container: Option<&str>,
        target: &MetricTarget,
    ) -> Result<(i32, String, MetricValueStatus), String> {
        let usage = self
            .samples()
            .await
            .and_then(|s| resource_usage(&s, self.namespace, resource, container).map_err(|e| e.0));
        let usage =
            usage.map_err(|e| format!("unable to get metrics for resource {resource}: {e}"));
        if let Some(avg) = &target.average_value {
            let (replicas, raw) = usage
                .and_then(|m| {
                    self.calc.average_value_replicas(
                        self.spec_replicas,
                        milli(avg),
                        resource,
                        self.tolerances,
                        self.pods,
                        m,
                        self.now,
                    )
                })
                .map_err(|e| format!("failed to get {resource} usage: {e}"))?;
            let current = MetricValueStatus {
                average_value: Some(quantity(raw)),
                ..Default::default()
            };
            return Ok((replicas, format!("{resource} resource"), current));
        }
        let Some(utilization) = target.average_utilization else {
            return Err("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set".into());
        };
        let p = usage
            .and_then(|m| {
                self.calc.utilization_replicas(
                    self.spec_replicas,
                    utilization,
                    resource,
                    container,
                    self.tolerances,
                    self.pods,
                    m,
                    self.now,
                )
            })
            .map_err(|e| format!("failed to get {resource} utilization: {e}"))?;
        let kind = if container.is_some() {
            "container resource"
        } else {
            "resource"
        };
        let current = MetricValueStatus {
            average_utilization: Some(p.utilization),
            average_value: Some(quantity(p.raw_average)),
            ..Default::default()
        };
        Ok((
            p.replicas,
            format!("{resource} {kind} utilization (percentage of request)"),
            current,
        ))
    }
}

fn invalid(reason: &'static str, what: &str) -> Failure {
    let e = format!("invalid {what} metric source: the source is not set");
    Failure {
        reason,
        inner: e.clone(),
        outer: e,
    }
}

fn pods_failure(spec: &MetricSpec) -> Failure {
    let name = spec
        .pods
        .as_ref()
        .map(|p| p.metric.name.as_str())
        .unwrap_or_default();
    let inner = format!("unable to get metric {name}: {NO_CUSTOM_METRICS}");
    Failure {
        reason: "FailedGetPodsMetric",
        outer: format!("failed to get pods metric value: {inner}"),
        inner,
    }
}

fn object_failure(spec: &MetricSpec, namespace: &str) -> Failure {
    let Some(src) = spec.object.as_ref() else {
        return invalid("FailedGetObjectMetric", "object");
    };
    let name = &src.metric.name;
    let t = &src.target;
    let value = t.type_ == "Value" && t.value.is_some();
    let average = t.type_ == "AverageValue" && t.average_value.is_some();
    let inner = if value || average {
        // Upstream's own (odd) argument order.
        format!(
            "unable to get metric {name}: {} on {namespace} {}/{NO_CUSTOM_METRICS}",
            src.described_object.kind, src.described_object.name
        )
    } else {
        "invalid object metric source: neither a value target nor an average value target was set"
            .into()
    };
    let outer = if average {
        format!("failed to get object metric value: failed to get {name} object metric: {inner}")
    } else {
        format!("failed to get object metric value: {inner}")
    };
    Failure {
        reason: "FailedGetObjectMetric",
        inner,
        outer,
    }
}

fn external_failure(spec: &MetricSpec, namespace: &str) -> Failure {
    let Some(src) = spec.external.as_ref() else {
        return invalid("FailedGetExternalMetric", "external");
    };
    let name = &src.metric.name;
    let selector = src
        .metric
        .selector
        .as_ref()
        .and_then(|s| serde_json::to_string(s).ok())
        .unwrap_or_else(|| "<nil>".into());
    let t = &src.target;
    let cause = format!(
        "unable to get external metric {namespace}/{name}/{selector}: {NO_EXTERNAL_METRICS}"
    );
    let (inner, outer) = if t.average_value.is_some() {
        let e = format!("failed to get {name} external metric: {cause}");
        (cause, e)
    } else if t.value.is_some() {
        let e = format!("failed to get external metric {name}: {cause}");
        (cause, e)
    } else {
        let e = "invalid external metric source: neither a value target nor an average value target was set".to_string();
        (e.clone(), e)
    };
    Failure {
        reason: "FailedGetExternalMetric",
        outer: format!("failed to get {name} external metric value: {outer}"),
        inner,
    }
}

/// What all metrics together say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Combined {
    /// Scale on the highest proposal; `error` names failed metrics that did not prevent it.
    Scale {
        replicas: i32,
        metric: String,
        error: Option<String>,
    },
    /// No usable count: the first failure sets the condition.
    Fail { first: Failure, error: String },
}

/// Upstream's choice: the highest proposal wins; failures stop scaling when every metric
/// failed, or when some failed and the others would scale down (they might not).
pub fn combine(results: &[Result<Proposal, Failure>], spec_replicas: i32) -> Combined {
    let (mut replicas, mut metric) = (0, String::new());
    let mut failures = results.iter().filter_map(|r| r.as_ref().err());
    let first = failures.next().cloned();
    let invalid = usize::from(first.is_some()) + failures.count();
    for (proposal, name) in results.iter().filter_map(|r| r.as_ref().ok()) {
        if replicas == 0 || *proposal > replicas {
            replicas = *proposal;
            metric = name.clone();
        }
    }
    let error = first.as_ref().map(|f| {
        format!(
            "invalid metrics ({invalid} invalid out of {}), first error is: {}",
            results.len(),
            f.outer
        )
    });
    match (first, error) {
        (Some(first), Some(error)) if invalid >= results.len() || replicas < spec_replicas => {
            Combined::Fail { first, error }
        }
        (_, error) => Combined::Scale {
            replicas,
            metric,
            error,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(reason: &'static str) -> Failure {
        Failure {
            reason,
            inner: "boom".into(),
            outer: "outer boom".into(),
        }
    }

    #[test]
    fn several_metrics_take_the_highest_proposal() {
        let results = vec![
            Ok((
                3,
                "cpu resource utilization (percentage of request)".to_string(),
            )),
            Ok((5, "memory resource".to_string())),
            Ok((4, "x".to_string())),
        ];
        assert_eq!(
            combine(&results, 3),
            Combined::Scale {
                replicas: 5,
                metric: "memory resource".into(),
                error: None
            }
        );
    }

    #[test]
    fn failures_block_only_what_they_might_change() {
        // Some failed, the rest scale up: scale, but report the failure.
        let up = vec![Err(fail("FailedGetPodsMetric")), Ok((6, "cpu".to_string()))];
        let Combined::Scale {
            replicas, error, ..
        } = combine(&up, 3)
        else {
            panic!("expected a scale");
        };
        assert_eq!(replicas, 6);
        assert_eq!(
            error.as_deref(),
            Some("invalid metrics (1 invalid out of 2), first error is: outer boom")
        );
        // Some failed, the rest scale down: no scaling.
        let down = vec![Ok((1, "cpu".to_string())), Err(fail("FailedGetPodsMetric"))];
        assert!(matches!(combine(&down, 3), Combined::Fail { .. }));
        // All failed: the first one's condition.
        let all = vec![
            Err(fail("FailedGetObjectMetric")),
            Err(fail("FailedGetPodsMetric")),
        ];
        let Combined::Fail { first, error } = combine(&all, 3) else {
            panic!("expected a failure");
        };
        assert_eq!(first.reason, "FailedGetObjectMetric");
        assert!(error.starts_with("invalid metrics (2 invalid out of 2)"));
    }

    #[test]
    fn unsupported_metric_apis_fail_like_upstream_without_them() {
        let spec: MetricSpec = serde_json::from_value(serde_json::json!({
            "type": "Pods", "pods": {"metric": {"name": "rps"},
                "target": {"type": "AverageValue", "averageValue": "10"}}}))
        .unwrap();
        let f = pods_failure(&spec);
        assert_eq!(f.reason, "FailedGetPodsMetric");
        assert_eq!(
            f.inner,
            "unable to get metric rps: unable to fetch metrics from custom metrics API: no custom metrics API (custom.metrics.k8s.io) registered"
        );
        let spec: MetricSpec = serde_json::from_value(serde_json::json!({
            "type": "External", "external": {"metric": {"name": "queue"},
                "target": {"type": "Value", "value": "10"}}}))
        .unwrap();
        let f = external_failure(&spec, "default");
        assert_eq!(f.reason, "FailedGetExternalMetric");
        assert!(f.outer.starts_with("failed to get queue external metric value: failed to get external metric queue: unable to get external metric default/queue/<nil>:"));
        assert_eq!(quantity(250), Quantity("250m".into()));
        assert_eq!(quantity(2000), Quantity("2".into()));
    }
}

//! The replica count a metric asks for (upstream `replica_calculator.go`): pods are sorted
//! into ready, unready, missing (no sample) and ignored ones; the usage ratio over the
//! ready pods decides the direction, and, when some pods are unready or missing, is
//! recomputed pessimistically (missing pods at 100 % of their request when scaling down,
//! 0 % when scaling up; unready pods at 0 % when scaling up) so that a change is made only
//! if it still holds.

use super::metrics::{PodMetric, PodMetricsInfo};
use crate::util::podutil;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use r8s_api::strategy::quantity::parse_quantity;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How far from 1.0 a usage ratio must be before the count changes, each way.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerances {
    pub down: f64,
    pub up: f64,
}

impl Tolerances {
    /// The same tolerance both ways.
    pub fn both(t: f64) -> Self {
        Tolerances { down: t, up: t }
    }

    fn within(&self, ratio: f64) -> bool {
        1.0 - self.down <= ratio && ratio <= 1.0 + self.up
    }
}

/// The readiness rules for CPU samples (upstream's `--horizontal-pod-autoscaler-cpu-*`).
#[derive(Clone, Copy, Debug)]
pub struct Calculator {
    /// Samples of pods started less than this ago count only once taken a full window
    /// after the pod became ready.
    pub cpu_initialization_period: Duration,
    /// A pod not ready within this of its start counts as never ready yet.
    pub initial_readiness_delay: Duration,
}

/// What a utilization target yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UtilizationProposal {
    pub replicas: i32,
    /// Percent of the requests used by the ready pods.
    pub utilization: i32,
    /// Average usage per ready pod, milli-units.
    pub raw_average: i64,
}

/// How the pods sort out for one metric.
#[derive(Debug, Default)]
struct Groups {
    ready: usize,
    unready: HashSet<String>,
    missing: HashSet<String>,
    ignored: HashSet<String>,
}

fn time_plus(t: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX);
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

impl Calculator {
    /// Upstream `groupPods`. Ignored: being deleted or finished (Failed or Succeeded);
    /// unready: Pending, or (CPU only) not ready or ready too recently for the sample.
    fn group(
        &self,
        pods: &[Arc<Pod>],
        metrics: &PodMetricsInfo,
        resource: &str,
        now: Timestamp,
    ) -> Groups {
        let mut g = Groups::default();
        for pod in pods {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if podutil::is_terminating(pod) || podutil::is_terminal(pod) {
                g.ignored.insert(name);
                continue;
            }
            if podutil::phase(pod) == "Pending" {
                g.unready.insert(name);
                continue;
            }
            let Some(metric) = metrics.get(&name) else {
                g.missing.insert(name);
                continue;
            };
            if resource == "cpu" && self.cpu_unready(pod, metric, now) {
                g.unready.insert(name);
                continue;
            }
            g.ready += 1;
        }
        g
    }

    fn cpu_unready(&self, pod: &Pod, metric: &PodMetric, now: Timestamp) -> bool {
        let start = pod.status.as_ref().and_then(|s| s.start_time.as_ref());
        let (Some(cond), Some(start)) = (podutil::ready_condition(pod), start) else {
            return true;
        };
        let changed = cond
            .last_transition_time
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
        if time_plus(start.0, self.cpu_initialization_period) > now {
            // Still starting: a sample counts once a whole window was taken while ready.
            cond.status == "False" || metric.timestamp < time_plus(changed, metric.window)
        } else {
            // Not ready and never was.
            cond.status == "False" && time_plus(start.0, self.initial_readiness_delay) > changed
        }
    }

    /// Upstream `GetResourceReplicas`: replicas for a target utilization (percent of
    /// the pods' requests of `resource`, or of one `container`'s).
    #[allow(clippy::too_many_arguments)]
    pub fn utilization_replicas(
        &self,
        current: i32,
        target: i32,
        resource: &str,
        container: Option<&str>,
        tolerances: Tolerances,
        pods: &[Arc<Pod>],
        mut metrics: PodMetricsInfo,
        now: Timestamp,
    ) -> Result<UtilizationProposal, String> {
        if pods.is_empty() {
            return Err("no pods returned by selector while calculating replica count".into());
        }
        let g = self.group(pods, &metrics, resource, now);
        metrics.retain(|p, _| !g.ignored.contains(p) && !g.unready.contains(p));
        if metrics.is_empty() {
            return Err("did not receive metrics for targeted pods (pods might be unready)".into());
        }
        let requests = requests(pods, container, resource)?;
        let (ratio, utilization, raw_average) = utilization_ratio(&metrics, &requests, target)?;
        let proposal = |replicas| UtilizationProposal {
            replicas,
            utilization,
            raw_average,
        };
        let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && g.missing.is_empty() {
            if tolerances.within(ratio) {
                return Ok(proposal(current));
            }
            return Ok(proposal(ceil(ratio * g.ready as f64)));
        }
        let fallback = i64::from(target.max(100));
        for pod in &g.missing {
            let value = if ratio < 1.0 {
                requests
                    .get(pod)
                    .copied()
                    .unwrap_or(0)
                    .saturating_mul(fallback)
                    / 100
            } else {
                0
            };
            if ratio != 1.0 {
                metrics.insert(pod.clone(), zero_sample(value));
            }
        }
        if scale_up_with_unready {
            for pod in &g.unready {
                metrics.insert(pod.clone(), zero_sample(0));
            }
        }
        let (new_ratio, _, _) = utilization_ratio(&metrics, &requests, target)?;
        Ok(proposal(settle(
            current,
            ratio,
            new_ratio,
            metrics.len(),
            tolerances,
        )))
    }

    /// Upstream `calcPlainMetricReplicas`: replicas for a target average value per pod
    /// (milli-units). Returns the count and the current average.
    #[allow(clippy::too_many_arguments)]
    pub fn average_value_replicas(
        &self,
        current: i32,
        target: i64,
        resource: &str,
        tolerances: Tolerances,
        pods: &[Arc<Pod>],
        mut metrics: PodMetricsInfo,
        now: Timestamp,
    ) -> Result<(i32, i64), String> {
        if pods.is_empty() {
            return Err("no pods returned by selector while calculating replica count".into());
        }
        let g = self.group(pods, &metrics, resource, now);
        metrics.retain(|p, _| !g.ignored.contains(p) && !g.unready.contains(p));
        if metrics.is_empty() {
            return Err("did not receive metrics for targeted pods (pods might be unready)".into());
        }
        let (ratio, usage) = usage_ratio(&metrics, target);
        let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
        if !scale_up_with_unready && g.missing.is_empty() {
            if tolerances.within(ratio) {
                return Ok((current, usage));
            }
            return Ok((ceil(ratio * g.ready as f64), usage));
        }
        for pod in &g.missing {
            // Scaling down, a missing pod uses exactly the target; scaling up, nothing.
            if ratio != 1.0 {
                let value = if ratio < 1.0 { target } else { 0 };
                metrics.insert(pod.clone(), zero_sample(value));
            }
        }
        if scale_up_with_unready {
            for pod in &g.unready {
                metrics.insert(pod.clone(), zero_sample(0));
            }
        }
        let (new_ratio, _) = usage_ratio(&metrics, target);
        Ok((
            settle(current, ratio, new_ratio, metrics.len(), tolerances),
            usage,
        ))
    }
}

/// The count after the pessimistic recomputation: unchanged if the new ratio is within
/// tolerance or points the other way, or if the count would move against the ratio.
fn settle(current: i32, ratio: f64, new_ratio: f64, counted: usize, t: Tolerances) -> i32 {
    if t.within(new_ratio) || (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0) {
        return current;
    }
    let replicas = ceil(new_ratio * counted as f64);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return current;
    }
    replicas
}

fn zero_sample(value: i64) -> PodMetric {
    PodMetric {
        timestamp: Timestamp::UNIX_EPOCH,
        window: Duration::ZERO,
        value,
    }
}

fn ceil(x: f64) -> i32 {
    // `as` saturates, as the count is clamped to maxReplicas later anyway.
    x.ceil() as i32
}

/// Upstream `GetResourceUtilizationRatio`: (ratio to target, utilization percent, average
/// raw usage) over the pods that have both a sample and a request.
fn utilization_ratio(
    metrics: &PodMetricsInfo,
    requests: &HashMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut n) = (0i128, 0i128, 0i128);
    for (pod, m) in metrics {
        if let Some(r) = requests.get(pod) {
            used += i128::from(m.value);
            requested += i128::from(*r);
            n += 1;
        }
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = i32::try_from(used * 100 / requested).unwrap_or(i32::MAX);
    let average = i64::try_from(used / n).unwrap_or(i64::MAX);
    Ok((
        f64::from(utilization) / f64::from(target.max(1)),
        utilization,
        average,
    ))
}

/// Upstream `GetMetricUsageRatio`: (ratio to target, average usage).
fn usage_ratio(metrics: &PodMetricsInfo, target: i64) -> (f64, i64) {
    let total: i128 = metrics.values().map(|m| i128::from(m.value)).sum();
    let n = i128::try_from(metrics.len().max(1)).unwrap_or(1);
    let usage = i64::try_from(total / n).unwrap_or(i64::MAX);
    (usage as f64 / target.max(1) as f64, usage)
}

/// Upstream `calculatePodRequestsFromContainers`: each pod's request of `resource`
/// (milli-units), summed over its containers and restartable init containers, or of one
/// container. A container without the request is an error.
fn requests(
    pods: &[Arc<Pod>],
    container: Option<&str>,
    resource: &str,
) -> Result<HashMap<String, i64>, String> {
    let mut out = HashMap::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let sidecars = spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let containers = spec.map(|s| s.containers.iter()).into_iter().flatten();
        let mut sum = 0i64;
        let mut found = false;
        for c in containers.chain(sidecars) {
            if container.is_some_and(|want| want != c.name) {
                continue;
            }
            let request = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(|q| parse_quantity(&q.0).ok());
            let Some(request) = request else {
                return Err(format!(
                    "missing request for {resource} in container {} of Pod {name}",
                    c.name
                ));
            };
            sum = sum.saturating_add(i64::try_from(request).unwrap_or(i64::MAX));
            found = true;
            if container.is_some() {
                break;
            }
        }
        if let (Some(want), false) = (container, found) {
            return Err(format!("container {want} not found in Pod {name}"));
        }
        out.insert(name, sum);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "replicas_tests.rs"]
mod tests;

//! One HPA's sync (upstream `reconcileAutoscaler`): read the target's scale, compute the
//! desired count, write it, and report the outcome in the status.

use super::behavior::{Normalized, Rules};
use super::compute::{Combined, Computer, Proposal};
use super::replicas::Tolerances;
use super::status::{self, ABLE_TO_SCALE, SCALING_ACTIVE, SCALING_LIMITED};
use super::target::{self, error_message};
use super::{Key, State, lock};
use crate::events::EventType;
use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, HorizontalPodAutoscalerStatus,
    MetricSpec, MetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use kube::discovery::ApiResource;
use r8s_api::selector::LabelSelector;
use r8s_api::strategy::quantity::parse_quantity;
use std::sync::Arc;
use std::time::Instant;

/// Reconcile the HPA `key` if it still exists, else forget it.
pub(super) async fn sync(state: &State, key: &Key) -> Result<(), String> {
    let Some(hpa) = state.hpas.get(Some(&key.0), &key.1) else {
        state.forget(key);
        return Ok(());
    };
    let mut run = Run::new(state, &hpa, key);
    let result = run.reconcile().await;
    let written = run.write_status().await;
    result.and(written)
}

/// One reconciliation in progress: the status being built.
struct Run<'a> {
    state: &'a State,
    hpa: &'a HorizontalPodAutoscaler,
    spec: HorizontalPodAutoscalerSpec,
    key: &'a Key,
    original: Option<HorizontalPodAutoscalerStatus>,
    status: HorizontalPodAutoscalerStatus,
    now: Timestamp,
    instant: Instant,
}

/// The default metric of an HPA without any (CPU at 80 %, as upstream defaults v1 and
/// v2 objects).
fn default_metrics() -> Vec<MetricSpec> {
    let v = serde_json::json!([{"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    serde_json::from_value(v).unwrap_or_default()
}

impl<'a> Run<'a> {
    fn new(state: &'a State, hpa: &'a HorizontalPodAutoscaler, key: &'a Key) -> Self {
        let mut status = hpa.status.clone().unwrap_or_default();
        status.observed_generation = hpa.metadata.generation;
        Run {
            state,
            hpa,
            spec: hpa.spec.clone().unwrap_or_default(),
            key,
            original: hpa.status.clone(),
            status,
            now: Timestamp::now(),
            instant: Instant::now(),
        }
    }

    fn condition(&mut self, type_: &str, value: bool, reason: &str, message: &str) {
        status::set_condition(&mut self.status, type_, value, reason, message, self.now);
    }

    fn event(&self, type_: EventType, reason: &str, message: &str) {
        self.state
            .recorder
            .publish_for(self.hpa, type_, reason, message);
    }

    /// Upstream `setStatus`: counts and metrics replaced, conditions and lastScaleTime
    /// kept (the latter moved to now on a rescale).
    fn set_status(
        &mut self,
        current: i32,
        desired: i32,
        metrics: Option<Vec<MetricStatus>>,
        rescaled: bool,
    ) {
        self.status.current_replicas = Some(current);
        self.status.desired_replicas = desired;
        self.status.current_metrics = metrics;
        if rescaled {
            self.status.last_scale_time = Some(Time(self.now));
        }
    }

    /// Write the status if it changed.
    async fn write_status(&self) -> Result<(), String> {
        if self.original.as_ref() == Some(&self.status) {
            return Ok(());
        }
        let api: kube::Api<HorizontalPodAutoscaler> =
            kube::Api::namespaced(self.state.client.clone(), &self.key.0);
        let patch = Patch::Merge(status::status_patch(&self.status));
        match api
            .patch_status(&self.key.1, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let msg = error_message(&e);
                self.event(EventType::Warning, "FailedUpdateStatus", &msg);
                Err(format!("failed to update status for {}: {msg}", self.key.1))
            }
        }
    }

    fn fail_get_scale(&mut self, err: &str) {
        self.event(EventType::Warning, "FailedGetScale", err);
        let msg = format!("the HPA controller was unable to get the target's current scale: {err}");
        self.condition(ABLE_TO_SCALE, false, "FailedGetScale", &msg);
    }

    async fn reconcile(&mut self) -> Result<(), String> {
        let target_ref = self.spec.scale_target_ref.clone();
        let reference = format!("{}/{}/{}", target_ref.kind, self.key.0, target_ref.name);
        let client = self.state.client.clone();
        let resource = match self.state.resolver.resolve(&client, &target_ref).await {
            Ok(r) => r,
            Err(e) => {
                self.fail_get_scale(&e);
                return Err(format!(
                    "invalid API version in scale target reference: {e}"
                ));
            }
        };
        let scale = target::get_scale(&client, &self.key.0, &resource, &target_ref.name).await;
        let scale = match scale {
            Ok(s) => s,
            Err(e) => {
                let e = error_message(&e);
                self.fail_get_scale(&e);
                return Err(format!(
                    "failed to query scale subresource for {reference}: {e}"
                ));
            }
        };
        self.condition(
            ABLE_TO_SCALE,
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale",
        );
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        lock(&self.state.histories)
            .entry(self.key.clone())
            .or_default()
            .record_initial(current, self.instant);
        let min = self.spec.min_replicas.unwrap_or(1);
        let max = self.spec.max_replicas;

        let mut metric_statuses = None;
        let mut ret = Ok(());
        let (desired, reason) = if current == 0 && min != 0 {
            self.condition(
                SCALING_ACTIVE,
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero",
            );
            self.set_status(current, 0, None, false);
            return Ok(());
        } else if current > max {
            (
                max,
                "Current number of replicas above Spec.MaxReplicas".to_string(),
            )
        } else if current < min {
            (
                min,
                "Current number of replicas below Spec.MinReplicas".to_string(),
            )
        } else {
            let (proposal, statuses, error) = match self.compute(&scale, current).await {
                Ok(v) => v,
                Err((statuses, e)) => {
                    let desired = self.status.desired_replicas;
                    self.set_status(current, desired, statuses, false);
                    self.event(EventType::Warning, "FailedComputeMetricsReplicas", &e);
                    return Err(format!(
                        "failed to compute desired number of replicas based on listed metrics for {reference}: {e}"
                    ));
                }
            };
            metric_statuses = Some(statuses);
            if let Some(e) = error {
                // Scale on the metrics that worked, but report the others.
                ret = Err(e);
            }
            let (metric_desired, metric) = proposal;
            let desired = metric_desired.max(0);
            let reason = if desired > current {
                format!("{metric} above target")
            } else if desired < current {
                "All metrics below target".to_string()
            } else {
                String::new()
            };
            (self.normalize(current, desired, (min, max)), reason)
        };

        let rescale = desired != current;
        if rescale {
            if let Err(e) = self.write_scale(&resource, scale, desired, &reason).await {
                let kept = self.status.desired_replicas;
                self.set_status(current, kept, metric_statuses, false);
                return Err(format!("failed to rescale {reference}: {e}"));
            }
            self.record_scale(current, desired);
            tracing::info!(hpa = %reference, current, desired, reason, "rescaled");
        }
        let desired = if rescale { desired } else { current };
        self.set_status(current, desired, metric_statuses, rescale);
        ret
    }

    /// Set the target's scale to `desired`, with upstream's event and AbleToScale
    /// condition either way.
    async fn write_scale(
        &mut self,
        resource: &ApiResource,
        mut scale: Scale,
        desired: i32,
        reason: &str,
    ) -> Result<(), String> {
        scale.spec.get_or_insert_with(Default::default).replicas = Some(desired);
        let client = &self.state.client;
        if let Err(e) = target::update_scale(client, &self.key.0, resource, &scale).await {
            let e = error_message(&e);
            let msg = format!("New size: {desired}; reason: {reason}; error: {e}");
            self.event(EventType::Warning, "FailedRescale", &msg);
            let cond = format!("the HPA controller was unable to update the target scale: {e}");
            self.condition(ABLE_TO_SCALE, false, "FailedUpdateScale", &cond);
            return Err(e);
        }
        let cond = format!("the HPA controller was able to update the target scale to {desired}");
        self.condition(ABLE_TO_SCALE, true, "SucceededRescale", &cond);
        let msg = format!("New size: {desired}; reason: {reason}");
        self.event(EventType::Normal, "SuccessfulRescale", &msg);
        Ok(())
    }

    /// The rules of `spec.behavior`, defaults filled in; `None` without a behavior.
    fn rules(&self) -> Option<(Rules, Rules)> {
        let b = self.spec.behavior.as_ref()?;
        Some((
            Rules::scale_up(b.scale_up.as_ref()),
            Rules::scale_down(
                b.scale_down.as_ref(),
                self.state.cfg.downscale_stabilization,
            ),
        ))
    }

    /// Stabilize, rate-limit and clamp, setting AbleToScale and ScalingLimited.
    fn normalize(&mut self, current: i32, desired: i32, bounds: (i32, i32)) -> i32 {
        let rules = self.rules();
        let n: Normalized = {
            let mut histories = lock(&self.state.histories);
            let h = histories.entry(self.key.clone()).or_default();
            match &rules {
                None => h.normalize(
                    self.state.cfg.downscale_stabilization,
                    current,
                    desired,
                    bounds,
                    self.instant,
                ),
                Some((up, down)) => {
                    h.normalize_with_behaviors(up, down, current, desired, bounds, self.instant)
                }
            }
        };
        self.condition(ABLE_TO_SCALE, true, n.able.0, n.able.1);
        let (limited, reason, message) = n.limited;
        self.condition(SCALING_LIMITED, limited, reason, message);
        n.replicas
    }

    fn record_scale(&self, from: i32, to: i32) {
        if let Some((up, down)) = self.rules() {
            lock(&self.state.histories)
                .entry(self.key.clone())
                .or_default()
                .record_scale(&up, &down, from, to, self.instant);
        }
    }

    /// Per-direction tolerances: `behavior.scale{Up,Down}.tolerance` where set, else the
    /// controller's.
    fn tolerances(&self) -> Tolerances {
        let mut t = Tolerances::both(self.state.cfg.tolerance);
        let b = self.spec.behavior.as_ref();
        let from = |r: Option<&k8s_openapi::api::autoscaling::v2::HPAScalingRules>| {
            let q = r?.tolerance.as_ref()?;
            parse_quantity(&q.0).ok().map(|m| m as f64 / 1000.0)
        };
        if let Some(v) = from(b.and_then(|b| b.scale_down.as_ref())) {
            t.down = v;
        }
        if let Some(v) = from(b.and_then(|b| b.scale_up.as_ref())) {
            t.up = v;
        }
        t
    }

    /// Upstream `validateAndParseSelector`: the scale's selector, parsed, selecting pods
    /// no other HPA selects; and those pods.
    fn selected_pods(&mut self, selector: &str) -> Result<(LabelSelector, Vec<Arc<Pod>>), String> {
        if selector.is_empty() {
            self.event(
                EventType::Warning,
                "SelectorRequired",
                "selector is required",
            );
            self.condition(
                SCALING_ACTIVE,
                false,
                "InvalidSelector",
                "the HPA target's scale is missing a selector",
            );
            return Err("selector is required".into());
        }
        let parsed = match LabelSelector::parse(selector) {
            Ok(s) => s,
            Err(e) => {
                let msg = format!(
                    "couldn't convert selector into a corresponding internal selector object: {e}"
                );
                self.event(EventType::Warning, "InvalidSelector", &msg);
                self.condition(SCALING_ACTIVE, false, "InvalidSelector", &msg);
                return Err(msg);
            }
        };
        let ns = self.key.0.as_str();
        let pods: Vec<Arc<Pod>> = self
            .state
            .pods
            .store()
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(ns))
            .filter(|p| parsed.matches(p.labels()))
            .collect();
        let mut claimants = {
            let mut selectors = lock(&self.state.selectors);
            selectors.insert(self.key.clone(), parsed.clone());
            selectors
                .iter()
                .filter(|(k, sel)| k.0 == ns && pods.iter().any(|p| sel.matches(p.labels())))
                .map(|(k, _)| format!("{}/{}", k.0, k.1))
                .collect::<Vec<_>>()
        };
        if claimants.len() > 1 {
            claimants.sort();
            let msg = format!(
                "pods by selector {selector} are controlled by multiple HPAs: [{}]",
                claimants.join(" ")
            );
            self.event(EventType::Warning, "AmbiguousSelector", &msg);
            self.condition(SCALING_ACTIVE, false, "AmbiguousSelector", &msg);
            return Err(msg);
        }
        Ok((parsed, pods))
    }

    /// Upstream `computeReplicasForMetrics`: the highest count any metric asks for,
    /// every metric's status, and the error of failed metrics that did not stop it. On
    /// failure, the statuses (if it got that far) and the error.
    async fn compute(
        &mut self,
        scale: &Scale,
        current: i32,
    ) -> Result<(Proposal, Vec<MetricStatus>, Option<String>), (Option<Vec<MetricStatus>>, String)>
    {
        let selector = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let (_, pods) = self.selected_pods(&selector).map_err(|e| (None, e))?;
        let specs = match self.spec.metrics.clone().filter(|m| !m.is_empty()) {
            Some(m) => m,
            None => default_metrics(),
        };
        let mut statuses = vec![MetricStatus::default(); specs.len()];
        let mut results = Vec::with_capacity(specs.len());
        {
            let state = self.state;
            let mut computer = Computer::new(
                &state.calc,
                state.source.as_ref(),
                &self.key.0,
                &selector,
                &pods,
                current,
                self.tolerances(),
                self.now,
            );
            for (spec, status) in specs.iter().zip(statuses.iter_mut()) {
                results.push(computer.metric(spec, status).await);
            }
        }
        for failure in results.iter().filter_map(|r| r.as_ref().err()) {
            self.event(EventType::Warning, failure.reason, &failure.inner);
        }
        match super::compute::combine(&results, current) {
            Combined::Fail { first, error } => {
                let msg = format!(
                    "the HPA was unable to compute the replica count: {}",
                    first.inner
                );
                self.condition(SCALING_ACTIVE, false, first.reason, &msg);
                Err((Some(statuses), error))
            }
            Combined::Scale {
                replicas,
                metric,
                error,
            } => {
                let msg = format!(
                    "the HPA was able to successfully calculate a replica count from {metric}"
                );
                self.condition(SCALING_ACTIVE, true, "ValidMetricFound", &msg);
                Ok(((replicas, metric), statuses, error))
            }
        }
    }
}

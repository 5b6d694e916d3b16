//! The HorizontalPodAutoscaler controller against an in-process API server, with pod
//! metrics from a fake source: a Deployment scaled up on high CPU utilization and back
//! down to minReplicas on low (no stabilization window), an HPA created through
//! autoscaling/v1 scaling a ReplicaSet, a Pods metric failing for want of a custom metrics
//! API, and targets that cannot be scaled (missing, or at zero replicas).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use r8s_controllers::podautoscaler::metrics::{
    ContainerMetrics, MetricsError, MetricsSource, PodMetrics,
};
use r8s_controllers::podautoscaler::{self, Config};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use support::{Running, namespace, run, start, wait_event, wait_for};

/// Reports every selected pod as using the same CPU.
struct FakeMetrics {
    client: Client,
    cpu_milli: AtomicI64,
}

impl MetricsSource for FakeMetrics {
    fn pod_metrics<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
    ) -> BoxFuture<'a, Result<Vec<PodMetrics>, MetricsError>> {
        Box::pin(async move {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            let list = pods
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(|e| MetricsError(e.to_string()))?;
            let cpu = self.cpu_milli.load(Ordering::SeqCst);
            Ok(list
                .items
                .into_iter()
                .map(|p| PodMetrics {
                    name: p.metadata.name.unwrap_or_default(),
                    timestamp: Timestamp::now(),
                    window: Duration::from_secs(15),
                    containers: vec![ContainerMetrics::new("c", cpu, 10 << 20)],
                })
                .collect())
        })
    }
}

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("manifest")
}

fn cfg() -> Config {
    Config {
        sync_period: Duration::from_secs(1),
        ..Config::default()
    }
}

/// Start the controller with a fake source whose pods each use `cpu_milli`.
fn autoscaler(client: &Client, cpu_milli: i64) -> (Running, Arc<FakeMetrics>) {
    let source = Arc::new(FakeMetrics {
        client: client.clone(),
        cpu_milli: AtomicI64::new(cpu_milli),
    });
    let s = source.clone();
    let running = run(client, move |ctx| {
        podautoscaler::run_with_source(ctx, cfg(), s)
    });
    (running, source)
}

fn template(app: &str) -> Value {
    json!({"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c",
        "image": "nginx:1.27", "resources": {"requests": {"cpu": "100m"}}}]}})
}

async fn deployment(client: &Client, ns: &str, name: &str, replicas: i32) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let d = obj(
        json!({"metadata": {"name": name}, "spec": {"replicas": replicas,
        "selector": {"matchLabels": {"app": name}}, "template": template(name)}}),
    );
    api.create(&PostParams::default(), &d).await.unwrap();
}

/// Running, Ready pods `<app>-<i>` requesting 100m CPU, started ten minutes ago (past the
/// CPU initialization period, so their samples count at once).
async fn ready_pods(client: &Client, ns: &str, app: &str, n: usize) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let now = Timestamp::now();
    let ago = |m: i64| (now - SignedDuration::from_mins(m)).to_string();
    for i in 0..n {
        let name = format!("{app}-{i}");
        let mut pod = template(app);
        pod["metadata"]["name"] = json!(name);
        api.create(&PostParams::default(), &obj(pod)).await.unwrap();
        let status = json!({"status": {"phase": "Running", "startTime": ago(10),
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ago(9)}]}});
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }
}

async fn create_hpa(client: &Client, ns: &str, hpa: Value) {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &obj(hpa)).await.unwrap();
}

fn hpa(name: &str, kind: &str, target: &str, metrics: Value, behavior: Value) -> Value {
    json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
            "minReplicas": 1, "maxReplicas": 4, "metrics": metrics, "behavior": behavior}})
}

fn cpu_50() -> Value {
    json!([{"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 50}}}])
}

fn condition<'a>(
    h: &'a HorizontalPodAutoscaler,
    type_: &str,
) -> Option<&'a HorizontalPodAutoscalerCondition> {
    h.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn is(c: Option<&HorizontalPodAutoscalerCondition>, status: &str, reason: &str) -> bool {
    c.is_some_and(|c| c.status == status && c.reason.as_deref() == Some(reason))
}

async fn wait_replicas(api: &Api<Deployment>, name: &str, want: i32) {
    wait_for(&format!("{name} at {want} replicas"), 30, || async {
        let d = api.get(name).await.ok()?;
        (d.spec?.replicas == Some(want)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn cpu_utilization_scales_a_deployment_up_then_down_to_min() {
    let (_s, client) = start().await;
    namespace(&client, "hpa").await;
    deployment(&client, "hpa", "web", 2).await;
    ready_pods(&client, "hpa", "web", 2).await;
    // 150m used of 100m requested: 300 % of the 50 % target asks for 6, capped at 4.
    let (_c, source) = autoscaler(&client, 150);
    let behavior = json!({"scaleDown": {"stabilizationWindowSeconds": 0}});
    create_hpa(
        &client,
        "hpa",
        hpa("web", "Deployment", "web", cpu_50(), behavior),
    )
    .await;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "hpa");
    wait_replicas(&deployments, "web", 4).await;
    let ev = wait_event(&client, "hpa", "web", "SuccessfulRescale").await;
    assert_eq!(
        ev.message.as_deref(),
        Some("New size: 4; reason: cpu resource utilization (percentage of request) above target")
    );
    assert_eq!(ev.type_.as_deref(), Some("Normal"));
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "hpa");
    let h = wait_for("HPA status after the scale-up", 20, || async {
        let h = hpas.get("web").await.ok()?;
        (h.status.as_ref()?.current_replicas == Some(4)).then_some(h)
    })
    .await;
    let st = h.status.clone().unwrap();
    assert_eq!(st.desired_replicas, 4);
    assert!(st.last_scale_time.is_some());
    let current = &st.current_metrics.unwrap()[0];
    assert_eq!(current.type_, "Resource");
    let res = current.resource.as_ref().unwrap();
    assert_eq!(res.name, "cpu");
    assert_eq!(res.current.average_utilization, Some(150));
    assert_eq!(res.current.average_value.as_ref().unwrap().0, "150m");
    assert!(is(condition(&h, "AbleToScale"), "True", "ReadyForNewScale"));
    assert!(is(
        condition(&h, "ScalingActive"),
        "True",
        "ValidMetricFound"
    ));
    assert_eq!(
        condition(&h, "ScalingActive").unwrap().message.as_deref(),
        Some(
            "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"
        )
    );
    assert!(is(
        condition(&h, "ScalingLimited"),
        "True",
        "TooManyReplicas"
    ));

    // 10 %: one pod is enough, and with no window the scale-down is immediate.
    source.cpu_milli.store(10, Ordering::SeqCst);
    wait_replicas(&deployments, "web", 1).await;
    let h = wait_for("HPA status after the scale-down", 20, || async {
        let h = hpas.get("web").await.ok()?;
        (h.status.as_ref()?.desired_replicas == 1).then_some(h)
    })
    .await;
    let util = h.status.unwrap().current_metrics.unwrap()[0]
        .resource
        .clone()
        .unwrap()
        .current
        .average_utilization;
    assert_eq!(util, Some(10));
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "hpa");
    wait_for("scale-down event", 20, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.message.as_deref() == Some("New size: 1; reason: All metrics below target"))
    })
    .await;
}

#[tokio::test]
async fn an_autoscaling_v1_hpa_scales_a_replicaset() {
    let (_s, client) = start().await;
    namespace(&client, "v1").await;
    let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "v1");
    let rs = obj(json!({"metadata": {"name": "api"}, "spec": {"replicas": 1,
        "selector": {"matchLabels": {"app": "api"}}, "template": template("api")}}));
    sets.create(&PostParams::default(), &rs).await.unwrap();
    ready_pods(&client, "v1", "api", 1).await;
    let (_c, _source) = autoscaler(&client, 90);
    let v1 = kube::api::ApiResource {
        group: "autoscaling".into(),
        version: "v1".into(),
        api_version: "autoscaling/v1".into(),
        kind: "HorizontalPodAutoscaler".into(),
        plural: "horizontalpodautoscalers".into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), "v1", &v1);
    let h = obj(
        json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "api"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api"},
            "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}}),
    );
    api.create(&PostParams::default(), &h).await.unwrap();

    // 90 % of a 50 % target: ceil(1.8) = 2.
    wait_for("ReplicaSet at 2", 30, || async {
        let rs = sets.get("api").await.ok()?;
        (rs.spec?.replicas == Some(2)).then_some(())
    })
    .await;
    let st = wait_for("v1 status", 20, || async {
        let h = api.get("api").await.ok()?;
        let st = h.data.get("status")?.clone();
        (st["desiredReplicas"] == 2).then_some(st)
    })
    .await;
    assert_eq!(st["currentCPUUtilizationPercentage"], 90);
}

#[tokio::test]
async fn a_pods_metric_needs_a_custom_metrics_api() {
    let (_s, client) = start().await;
    namespace(&client, "custom").await;
    deployment(&client, "custom", "web", 2).await;
    ready_pods(&client, "custom", "web", 2).await;
    let (_c, _source) = autoscaler(&client, 100);
    let metrics = json!([{"type": "Pods", "pods": {"metric": {"name": "requests_per_second"},
        "target": {"type": "AverageValue", "averageValue": "10"}}}]);
    create_hpa(
        &client,
        "custom",
        hpa("rps", "Deployment", "web", metrics, Value::Null),
    )
    .await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "custom");
    let h = wait_for("ScalingActive=False", 20, || async {
        let h = hpas.get("rps").await.ok()?;
        is(
            condition(&h, "ScalingActive"),
            "False",
            "FailedGetPodsMetric",
        )
        .then_some(h)
    })
    .await;
    assert!(is(
        condition(&h, "AbleToScale"),
        "True",
        "SucceededGetScale"
    ));
    let msg = condition(&h, "ScalingActive")
        .unwrap()
        .message
        .clone()
        .unwrap();
    assert!(
        msg.starts_with("the HPA was unable to compute the replica count: unable to get metric requests_per_second"),
        "{msg}"
    );
    let ev = wait_event(&client, "custom", "rps", "FailedGetPodsMetric").await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    wait_event(&client, "custom", "rps", "FailedComputeMetricsReplicas").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "custom");
    let d = deployments.get("web").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(2));
}

#[tokio::test]
async fn missing_or_zero_replica_targets_are_not_scaled() {
    let (_s, client) = start().await;
    namespace(&client, "idle").await;
    deployment(&client, "idle", "off", 0).await;
    let (_c, _source) = autoscaler(&client, 100);
    create_hpa(
        &client,
        "idle",
        hpa("gone", "Deployment", "nothing", cpu_50(), Value::Null),
    )
    .await;
    create_hpa(
        &client,
        "idle",
        hpa("off", "Deployment", "off", cpu_50(), Value::Null),
    )
    .await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "idle");
    let h = wait_for("AbleToScale=False", 20, || async {
        let h = hpas.get("gone").await.ok()?;
        is(condition(&h, "AbleToScale"), "False", "FailedGetScale").then_some(h)
    })
    .await;
    let msg = condition(&h, "AbleToScale")
        .unwrap()
        .message
        .clone()
        .unwrap();
    assert!(
        msg.starts_with("the HPA controller was unable to get the target's current scale: "),
        "{msg}"
    );
    let ev = wait_event(&client, "idle", "gone", "FailedGetScale").await;
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    let h = wait_for("ScalingDisabled", 20, || async {
        let h = hpas.get("off").await.ok()?;
        is(condition(&h, "ScalingActive"), "False", "ScalingDisabled").then_some(h)
    })
    .await;
    assert_eq!(
        condition(&h, "ScalingActive").unwrap().message.as_deref(),
        Some("scaling is disabled since the replica count of the target is zero")
    );
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "idle");
    assert_eq!(
        deployments.get("off").await.unwrap().spec.unwrap().replicas,
        Some(0)
    );
}

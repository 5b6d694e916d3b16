//! autoscaling/v1 and autoscaling/v2 HorizontalPodAutoscalers are one stored set of
//! objects: what v1 cannot express travels in upstream's `autoscaling.alpha.kubernetes.io/*`
//! annotations of the v1 view, so a v1 client's patch or read-modify-write PUT keeps the
//! v2-only fields.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, start};

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

const NS: &str = "default";
const V1: &str = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers";
const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";

fn memory() -> Value {
    json!({"type": "Resource", "resource": {"name": "memory",
        "target": {"type": "AverageValue", "averageValue": "100Mi"}}})
}

fn v2_hpa(name: &str) -> HorizontalPodAutoscaler {
    serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 60}}},
                memory()
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
        }
    }))
    .unwrap()
}

/// The annotation `key` of a v1 object, parsed.
fn annotation(obj: &Value, key: &str) -> Value {
    let text = obj["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {obj}"));
    serde_json::from_str(text).unwrap()
}

/// The v2-only fields of `h` are those `v2_hpa` created.
fn assert_v2_fields_kept(h: &HorizontalPodAutoscaler) {
    let spec = serde_json::to_value(h.spec.as_ref().unwrap()).unwrap();
    let metrics = spec["metrics"].as_array().unwrap();
    assert!(metrics.contains(&memory()), "{spec}");
    assert!(
        metrics.iter().any(|m| m["resource"]["name"] == "cpu"
            && m["resource"]["target"]["averageUtilization"] == 60),
        "{spec}"
    );
    assert_eq!(metrics.len(), 2, "{spec}");
    let down = &spec["behavior"]["scaleDown"];
    assert_eq!(down["stabilizationWindowSeconds"], 120, "{spec}");
    assert_eq!(
        down["policies"],
        json!([{"type": "Pods", "value": 1, "periodSeconds": 60}])
    );
    // The v2 view shows no round-trip annotations.
    let annotations = h.metadata.annotations.clone().unwrap_or_default();
    assert!(
        !annotations
            .keys()
            .any(|k| k.starts_with("autoscaling.alpha")),
        "{annotations:?}"
    );
}

#[tokio::test]
async fn v1_patch_keeps_v2_metrics_and_behavior() {
    let (_s, client) = start().await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), NS);
    hpas.create(&PostParams::default(), &v2_hpa("web"))
        .await
        .unwrap();

    let (code, v1) = send(&client, "GET", &format!("{V1}/web"), None).await;
    assert_eq!(code, 200, "{v1}");
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 60);
    assert!(v1["spec"].get("metrics").is_none(), "{v1}");
    assert!(v1["spec"].get("behavior").is_none(), "{v1}");
    assert_eq!(
        annotation(&v1, METRICS),
        json!([{"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}])
    );
    // Upstream's format: the Go field names of its internal type.
    assert_eq!(
        annotation(&v1, BEHAVIOR)["ScaleDown"]["StabilizationWindowSeconds"],
        120
    );

    // The list view is converted the same way.
    let (code, list) = send(&client, "GET", V1, None).await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(
        annotation(&list["items"][0], METRICS),
        annotation(&v1, METRICS)
    );

    let (code, patched) = send(
        &client,
        "PATCH",
        &format!("{V1}/web"),
        Some(json!({"spec": {"maxReplicas": 8}})),
    )
    .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["spec"]["maxReplicas"], 8);
    assert_eq!(annotation(&patched, METRICS), annotation(&v1, METRICS));

    let h = hpas.get("web").await.unwrap();
    assert_eq!(h.spec.as_ref().unwrap().max_replicas, 8);
    assert_v2_fields_kept(&h);
}

#[tokio::test]
async fn v1_read_modify_write_put_keeps_v2_fields() {
    let (_s, client) = start().await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), NS);
    hpas.create(&PostParams::default(), &v2_hpa("api"))
        .await
        .unwrap();

    let (code, mut v1) = send(&client, "GET", &format!("{V1}/api"), None).await;
    assert_eq!(code, 200, "{v1}");
    v1["spec"]["minReplicas"] = json!(2);
    let (code, put) = send(&client, "PUT", &format!("{V1}/api"), Some(v1)).await;
    assert_eq!(code, 200, "{put}");

    let h = hpas.get("api").await.unwrap();
    assert_eq!(h.spec.as_ref().unwrap().min_replicas, Some(2));
    assert_v2_fields_kept(&h);
}

#[tokio::test]
async fn v1_create_with_annotations_restores_v2_fields() {
    let (_s, client) = start().await;
    let body = json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "old", "annotations": {
            METRICS: r#"[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"100Mi"}}]"#,
            BEHAVIOR: r#"{"ScaleDown":{"StabilizationWindowSeconds":120,"Policies":[{"Type":"Pods","Value":1,"PeriodSeconds":60}]}}"#,
            "other": "kept"
        }},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60}
    });
    let (code, created) = send(&client, "POST", V1, Some(body)).await;
    assert_eq!(code, 201, "{created}");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), NS);
    let h = hpas.get("old").await.unwrap();
    assert_v2_fields_kept(&h);
    assert_eq!(
        h.metadata
            .annotations
            .unwrap()
            .get("other")
            .map(String::as_str),
        Some("kept")
    );
}

//! Graceful pod deletion as upstream: a bound pod lingers for its grace period, a later
//! delete may shorten that period but never lengthen it, and a pod held by a finalizer
//! goes away when the finalizer is dropped once its grace period is 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, start};
use serde_json::{Value, json};

const PODS: &str = "/api/v1/namespaces/default/pods";

fn bound_pod(name: &str, finalizers: &[&str]) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "finalizers": finalizers},
        "spec": {
            "nodeName": "node-a",
            "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "c", "image": "busybox:1.36"}]
        }
    })
}

fn delete_options(grace: i64) -> Value {
    json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace})
}

fn grace(obj: &Value) -> Option<i64> {
    obj["metadata"]["deletionGracePeriodSeconds"].as_i64()
}

#[tokio::test]
async fn later_deletes_shorten_the_grace_period_and_finalizers_hold_until_dropped() {
    let (_s, client) = start().await;
    let (code, created) = send(
        &client,
        "POST",
        PODS,
        Some(bound_pod("held", &["example.com/hold"])),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let url = format!("{PODS}/held");

    let (code, first) = send(&client, "DELETE", &url, None).await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(grace(&first), Some(30), "{first}");

    // A longer period never replaces a shorter one.
    let (code, longer) = send(&client, "DELETE", &url, Some(delete_options(60))).await;
    assert_eq!(code, 200, "{longer}");
    assert_eq!(grace(&longer), Some(30), "{longer}");
    assert_eq!(
        longer["metadata"]["deletionTimestamp"],
        first["metadata"]["deletionTimestamp"]
    );

    // The kubelet's final delete: 0 replaces 30, and the finalizer still holds the pod.
    let (code, last) = send(&client, "DELETE", &url, Some(delete_options(0))).await;
    assert_eq!(code, 200, "{last}");
    assert_eq!(grace(&last), Some(0), "{last}");
    let (code, still) = send(&client, "GET", &url, None).await;
    assert_eq!(code, 200, "{still}");

    // Dropping the finalizer removes it.
    let patch = json!({"metadata": {"finalizers": null}});
    let (code, body) = send(&client, "PATCH", &url, Some(patch)).await;
    assert_eq!(code, 200, "{body}");
    let (code, gone) = send(&client, "GET", &url, None).await;
    assert_eq!(code, 404, "{gone}");
}

#[tokio::test]
async fn dropping_the_finalizer_during_the_grace_period_keeps_the_pod_terminating() {
    let (_s, client) = start().await;
    let (code, created) = send(
        &client,
        "POST",
        PODS,
        Some(bound_pod("stopping", &["example.com/hold"])),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let url = format!("{PODS}/stopping");
    let (code, body) = send(&client, "DELETE", &url, None).await;
    assert_eq!(code, 200, "{body}");
    let patch = json!({"metadata": {"finalizers": null}});
    let (code, body) = send(&client, "PATCH", &url, Some(patch)).await;
    assert_eq!(code, 200, "{body}");
    // The kubelet still has to stop it: the pod stays until its final delete.
    let (code, pod) = send(&client, "GET", &url, None).await;
    assert_eq!(code, 200, "{pod}");
    assert_eq!(grace(&pod), Some(30), "{pod}");
    let (code, body) = send(&client, "DELETE", &url, Some(delete_options(0))).await;
    assert_eq!(code, 200, "{body}");
    let (code, gone) = send(&client, "GET", &url, None).await;
    assert_eq!(code, 404, "{gone}");
}

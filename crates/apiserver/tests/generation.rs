//! `metadata.generation` as upstream's strategies keep it: only the kinds whose controllers
//! report an observedGeneration have one (1 on create, +1 per change of what it counts);
//! every other kind has none, and no update gives it one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, start};
use serde_json::{Value, json};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn generation(obj: &Value) -> Option<i64> {
    obj["metadata"]["generation"].as_i64()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}
            }
        }
    })
}

/// A merge patch that must succeed; the patched object.
async fn merge_patch(client: &kube::Client, url: &str, patch: Value) -> Value {
    let (code, obj) = send(client, "PATCH", url, Some(patch)).await;
    assert_eq!(code, 200, "{obj}");
    obj
}

#[tokio::test]
async fn configmaps_have_no_generation() {
    let (_s, client) = start().await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "cfg"}, "data": {"a": "1"}});
    let (code, created) = send(&client, "POST", CONFIGMAPS, Some(cm)).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(generation(&created), None, "{created}");
    let url = format!("{CONFIGMAPS}/cfg");
    let changed = merge_patch(&client, &url, json!({"data": {"a": "2"}})).await;
    assert_eq!(changed["data"]["a"], "2");
    assert_eq!(generation(&changed), None, "{changed}");
}

#[tokio::test]
async fn deployments_count_spec_changes() {
    let (_s, client) = start().await;
    let (code, created) = send(&client, "POST", DEPLOYMENTS, Some(deployment())).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(generation(&created), Some(1));
    let url = format!("{DEPLOYMENTS}/web");
    let scaled = merge_patch(&client, &url, json!({"spec": {"replicas": 2}})).await;
    assert_eq!(generation(&scaled), Some(2));
    let labelled = merge_patch(&client, &url, json!({"metadata": {"labels": {"x": "y"}}})).await;
    assert_eq!(generation(&labelled), Some(2), "metadata does not count");
    let template =
        json!({"spec": {"template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}});
    let changed = merge_patch(&client, &url, template).await;
    assert_eq!(generation(&changed), Some(3));
}

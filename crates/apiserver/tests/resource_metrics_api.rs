//! The resource metrics API (`metrics.k8s.io/v1beta1`) as clients see it: discovery,
//! NodeMetrics/PodMetrics joined with the Node and Pod objects (labels, selectors, only
//! running pods), metrics-server's NotFound wording and table columns, and get/list
//! only. Usage is fed in as if scraped from a kubelet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, send_as, start};
use r8s_apiserver::resource_metrics::parse::parse;
use serde_json::{Value, json};

const PODS: &str = "/api/v1/namespaces/default/pods";
const METRICS: &str = "/apis/metrics.k8s.io/v1beta1";

/// A kubelet's `/metrics/resource` text: pod `web` (two containers) and `pending`.
fn kubelet_text(at_ms: i64, node_cpu: f64, web_cpu: f64) -> String {
    let c = |pod: &str, name: &str, cpu: f64| {
        format!(
            "container_cpu_usage_seconds_total{{container=\"{name}\",namespace=\"default\",pod=\"{pod}\"}} {cpu} {at_ms}\n\
             container_memory_working_set_bytes{{container=\"{name}\",namespace=\"default\",pod=\"{pod}\"}} 2.097152e+06 {at_ms}\n\
             container_start_time_seconds{{container=\"{name}\",namespace=\"default\",pod=\"{pod}\"}} 1.6e+09 {at_ms}\n"
        )
    };
    format!(
        "{}{}{}node_cpu_usage_seconds_total {node_cpu} {at_ms}\nnode_memory_working_set_bytes 1.073741824e+09 {at_ms}\nresource_scrape_error 0\n",
        c("web", "app", web_cpu),
        c("web", "side", 1.0),
        c("pending", "app", 1.0),
    )
}

async fn pod(client: &kube::Client, name: &str, phase: &str) {
    let body = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]}});
    let (code, created) = send(client, "POST", PODS, Some(body)).await;
    assert_eq!(code, 201, "{created}");
    let status = json!({"status": {"phase": phase}});
    let path = format!("{PODS}/{name}/status");
    let (code, patched) = send(client, "PATCH", &path, Some(status)).await;
    assert_eq!(code, 200, "{patched}");
}

#[tokio::test]
async fn usage_is_served_as_metrics_server_serves_it() {
    let (server, client) = start().await;
    let node = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "n1", "labels": {"zone": "a"}}});
    let (code, body) = send(&client, "POST", "/api/v1/nodes", Some(node)).await;
    assert_eq!(code, 201, "{body}");
    for (name, phase) in [
        ("web", "Running"),
        ("idle", "Running"),
        ("pending", "Pending"),
    ] {
        pod(&client, name, phase).await;
    }

    // Discovery lists the group and both resources, get/list only.
    let (_, groups) = send(&client, "GET", "/apis", None).await;
    let group = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "metrics.k8s.io")
        .expect("metrics.k8s.io in /apis")
        .clone();
    assert_eq!(group["preferredVersion"]["version"], "v1beta1");
    let (_, resources) = send(&client, "GET", METRICS, None).await;
    let kinds: Vec<(Value, Value, Value)> = resources["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].clone(), r["kind"].clone(), r["verbs"].clone()))
        .collect();
    assert!(kinds.contains(&(json!("nodes"), json!("NodeMetrics"), json!(["get", "list"]))));
    assert!(kinds.contains(&(json!("pods"), json!("PodMetrics"), json!(["get", "list"]))));

    // Nothing measured yet: empty lists and NotFound.
    let (code, list) = send(&client, "GET", &format!("{METRICS}/nodes"), None).await;
    assert_eq!(
        (code, list["kind"].clone()),
        (200, json!("NodeMetricsList"))
    );
    assert_eq!(list["items"], json!([]));

    // Two scrapes 10 s apart: the node used 5 CPU-seconds, container app 2.5.
    let metrics = &server.running.state.resource_metrics;
    let now = chrono::Utc::now().timestamp_millis();
    metrics.record("n1", parse(&kubelet_text(now - 10_000, 100.0, 1.0)));
    metrics.record("n1", parse(&kubelet_text(now, 105.0, 3.5)));

    let (code, n) = send(&client, "GET", &format!("{METRICS}/nodes/n1"), None).await;
    assert_eq!(code, 200, "{n}");
    assert_eq!(n["kind"], "NodeMetrics");
    assert_eq!(n["apiVersion"], "metrics.k8s.io/v1beta1");
    assert_eq!(n["usage"], json!({"cpu": "500m", "memory": "1Gi"}));
    assert_eq!(n["window"], "10s");
    assert_eq!(n["metadata"]["labels"], json!({"zone": "a"}));

    let (code, p) = send(
        &client,
        "GET",
        &format!("{METRICS}/namespaces/default/pods/web"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{p}");
    assert_eq!(
        p["containers"],
        json!([{"name": "app", "usage": {"cpu": "250m", "memory": "2Mi"}},
               {"name": "side", "usage": {"cpu": "0", "memory": "2Mi"}}])
    );
    assert_eq!(p["metadata"]["labels"], json!({"app": "web"}));

    // Lists: only running pods with a measurement; selectors apply to the pods.
    let (_, all) = send(&client, "GET", &format!("{METRICS}/pods"), None).await;
    let names: Vec<&Value> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["metadata"]["name"])
        .collect();
    assert_eq!(names, [&json!("web")]);
    let path = format!("{METRICS}/namespaces/default/pods?labelSelector=app%3Didle");
    let (_, none) = send(&client, "GET", &path, None).await;
    assert_eq!(none["items"], json!([]));
    let path = format!("{METRICS}/namespaces/default/pods?fieldSelector=metadata.name%3Dweb");
    let (_, one) = send(&client, "GET", &path, None).await;
    assert_eq!(one["items"].as_array().unwrap().len(), 1);

    // metrics-server's NotFound wording.
    for (path, message) in [
        (
            "namespaces/default/pods/idle",
            "podmetrics.metrics.k8s.io \"default/idle\" not found",
        ),
        (
            "namespaces/default/pods/pending",
            "podmetrics.metrics.k8s.io \"default/pending\" not found",
        ),
        (
            "namespaces/default/pods/nope",
            "podmetrics.metrics.k8s.io \"default/nope\" not found",
        ),
        (
            "nodes/nope",
            "nodemetrics.metrics.k8s.io \"nope\" not found",
        ),
    ] {
        let (code, status) = send(&client, "GET", &format!("{METRICS}/{path}"), None).await;
        assert_eq!(
            (code, status["reason"].clone()),
            (404, json!("NotFound")),
            "{path}"
        );
        assert_eq!(status["message"], message);
    }

    // get and list only.
    let (code, _) = send(&client, "GET", &format!("{METRICS}/pods?watch=true"), None).await;
    assert_eq!(code, 405);
    let (code, _) = send(&client, "DELETE", &format!("{METRICS}/nodes/n1"), None).await;
    assert_eq!(code, 405);

    // `kubectl get podmetrics`: metrics-server's columns.
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let (code, table) = send_as(
        &client,
        "GET",
        &format!("{METRICS}/namespaces/default/pods"),
        None,
        &[("accept", accept)],
    )
    .await;
    assert_eq!(code, 200, "{table}");
    let columns: Vec<&Value> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(
        columns,
        [
            &json!("Name"),
            &json!("cpu"),
            &json!("memory"),
            &json!("Window")
        ]
    );
    assert_eq!(
        table["rows"][0]["cells"],
        json!(["web", "250m", "4Mi", "10s"])
    );
}

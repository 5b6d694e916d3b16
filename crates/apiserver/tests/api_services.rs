//! APIServices (apiregistration.k8s.io/v1): one `Local`, Available APIService per served
//! group version from the first start (`kubectl get apiservices`), user-made ones stored
//! and validated as upstream (a chart installing an aggregated API server applies).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, send_as, start};
use serde_json::{Value, json};

const API_SERVICES: &str = "/apis/apiregistration.k8s.io/v1/apiservices";

#[tokio::test]
async fn served_group_versions_are_local_api_services() {
    let (_s, client) = start().await;
    let (code, list) = send(&client, "GET", API_SERVICES, None).await;
    assert_eq!(code, 200, "{list}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .collect();
    for want in [
        "v1.",
        "v1.apps",
        "v2.autoscaling",
        "v1.autoscaling",
        "v1beta1.metrics.k8s.io",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let (_, apps) = send(&client, "GET", &format!("{API_SERVICES}/v1.apps"), None).await;
    assert_eq!(
        apps["spec"],
        json!({"group": "apps", "version": "v1",
        "groupPriorityMinimum": 17800, "versionPriority": 15})
    );
    assert_eq!(apps["status"]["conditions"][0]["type"], "Available");
    assert_eq!(apps["status"]["conditions"][0]["status"], "True");

    // A chart's APIService for an aggregated server: stored, the port defaulted.
    let remote = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1beta1.custom.metrics.k8s.io"},
        "spec": {"group": "custom.metrics.k8s.io", "version": "v1beta1",
                 "groupPriorityMinimum": 100, "versionPriority": 100,
                 "insecureSkipTLSVerify": true,
                 "service": {"namespace": "monitoring", "name": "prometheus-adapter"}}});
    let (code, created) = send(&client, "POST", API_SERVICES, Some(remote)).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["service"]["port"], 443);

    // `kubectl get apiservices` columns: SERVICE and AVAILABLE.
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io";
    let (_, table) = send_as(&client, "GET", API_SERVICES, None, &[("accept", accept)]).await;
    let row = |name: &str| -> Vec<Value> {
        table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["cells"][0] == name)
            .map(|r| r["cells"].as_array().unwrap().clone())
            .unwrap()
    };
    assert_eq!(row("v1.apps")[1..3], [json!("Local"), json!("True")]);
    assert_eq!(
        row("v1beta1.custom.metrics.k8s.io")[1..3],
        [json!("monitoring/prometheus-adapter"), json!("Unknown")]
    );

    // The name must be version.group.
    let bad = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "custom.example.com"},
        "spec": {"group": "example.com", "version": "v1",
                 "groupPriorityMinimum": 100, "versionPriority": 100}});
    let (code, status) = send(&client, "POST", API_SERVICES, Some(bad)).await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("must be `spec.version+\".\"+spec.group`: \"v1.example.com\""),
        "{status}"
    );
}

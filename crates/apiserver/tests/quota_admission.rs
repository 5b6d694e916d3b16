//! The `ResourceQuota` admission plugin, with no quota controller running: a create is
//! charged to every quota that limits what it uses (usage the controller has not
//! recorded is counted from the store) or refused with upstream's 403 messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, start};
use serde_json::{Value, json};

const QUOTAS: &str = "/api/v1/namespaces/default/resourcequotas";
const PODS: &str = "/api/v1/namespaces/default/pods";
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

fn pod(name: &str, resources: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": "app", "image": "busybox:1.36", "resources": resources}]}})
}

fn quota(name: &str, hard: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name},
           "spec": {"hard": hard}})
}

async fn used(client: &kube::Client, name: &str) -> Value {
    let (code, q) = send(client, "GET", &format!("{QUOTAS}/{name}"), None).await;
    assert_eq!(code, 200, "{q}");
    q["status"]["used"].clone()
}

#[tokio::test]
async fn pods_are_charged_and_refused_past_the_quota() {
    let (_s, client) = start().await;
    let q = quota(
        "compute",
        json!({"pods": "2", "requests.memory": "1Gi", "limits.memory": "2Gi"}),
    );
    let (code, body) = send(&client, "POST", QUOTAS, Some(q)).await;
    assert_eq!(code, 201, "{body}");

    // cpu/memory limited by the quota must be stated by every container.
    let (code, body) = send(&client, "POST", PODS, Some(pod("bare", json!({})))).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "pods \"bare\" is forbidden: failed quota: compute: must specify limits.memory for: app; requests.memory for: app"
    );
    assert_eq!(body["reason"], "Forbidden");

    let sized = json!({"requests": {"memory": "600Mi"}, "limits": {"memory": "600Mi"}});
    let (code, body) = send(&client, "POST", PODS, Some(pod("one", sized.clone()))).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        used(&client, "compute").await,
        json!({"limits.memory": "600Mi", "pods": "1", "requests.memory": "600Mi"})
    );

    // A dry run is checked but not charged.
    let (code, body) = send(
        &client,
        "POST",
        &format!("{PODS}?dryRun=All"),
        Some(pod(
            "dry",
            json!({"requests": {"memory": "1Mi"}, "limits": {"memory": "1Mi"}}),
        )),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(used(&client, "compute").await["pods"], "1");

    let (code, body) = send(&client, "POST", PODS, Some(pod("two", sized))).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "pods \"two\" is forbidden: exceeded quota: compute, requested: requests.memory=600Mi, used: requests.memory=600Mi, limited: requests.memory=1Gi"
    );
    assert_eq!(body["details"], json!({"name": "two", "kind": "pods"}));
    let (code, _) = send(&client, "GET", &format!("{PODS}/two"), None).await;
    assert_eq!(code, 404, "a refused pod is not stored");
}

#[tokio::test]
async fn object_counts_limit_any_kind() {
    let (_s, client) = start().await;
    for i in 0..2 {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("pre-{i}")}});
        assert_eq!(send(&client, "POST", CONFIGMAPS, Some(cm)).await.0, 201);
    }
    let q = quota(
        "objects",
        json!({"count/configmaps": "3", "count/deployments.apps": "0"}),
    );
    assert_eq!(send(&client, "POST", QUOTAS, Some(q)).await.0, 201);

    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "third"}});
    let (code, body) = send(&client, "POST", CONFIGMAPS, Some(cm)).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        used(&client, "objects").await["count/configmaps"],
        "3",
        "counted from the store, then charged"
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fourth"}});
    let (code, body) = send(&client, "POST", CONFIGMAPS, Some(cm)).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "configmaps \"fourth\" is forbidden: exceeded quota: objects, requested: count/configmaps=1, used: count/configmaps=3, limited: count/configmaps=3"
    );

    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}});
    let (code, body) = send(
        &client,
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        Some(deploy),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("deployments.apps \"web\" is forbidden: exceeded quota: objects"),
        "{body}"
    );
    assert_eq!(body["details"]["group"], "apps");
}

#[tokio::test]
async fn concurrent_creates_never_overrun_the_quota() {
    let (_s, client) = start().await;
    let q = quota("five", json!({"pods": "5"}));
    assert_eq!(send(&client, "POST", QUOTAS, Some(q)).await.0, 201);
    let creates = (0..12).map(|i| {
        let client = client.clone();
        async move {
            send(
                &client,
                "POST",
                PODS,
                Some(pod(&format!("p{i}"), json!({}))),
            )
            .await
        }
    });
    let results = futures::future::join_all(creates).await;
    let created = results.iter().filter(|(code, _)| *code == 201).count();
    for (code, body) in &results {
        assert!(*code == 201 || *code == 403, "{code} {body}");
        if *code == 403 {
            assert!(
                body["message"].as_str().unwrap().contains(
                    "exceeded quota: five, requested: pods=1, used: pods=5, limited: pods=5"
                ),
                "{body}"
            );
        }
    }
    assert_eq!(created, 5);
    assert_eq!(used(&client, "five").await, json!({"pods": "5"}));
}

#[tokio::test]
async fn custom_resources_are_counted() {
    let (_s, client) = start().await;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.quota-test.example.com"},
        "spec": {"group": "quota-test.example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let (code, body) = send(
        &client,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        Some(crd),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let widgets = "/apis/quota-test.example.com/v1/namespaces/default/widgets";
    let widget = |name: &str| json!({"apiVersion": "quota-test.example.com/v1", "kind": "Widget", "metadata": {"name": name}});
    assert_eq!(
        send(&client, "POST", widgets, Some(widget("before")))
            .await
            .0,
        201
    );
    let q = quota(
        "widgets",
        json!({"count/widgets.quota-test.example.com": "2"}),
    );
    assert_eq!(send(&client, "POST", QUOTAS, Some(q)).await.0, 201);
    assert_eq!(
        send(&client, "POST", widgets, Some(widget("second")))
            .await
            .0,
        201
    );
    let (code, body) = send(&client, "POST", widgets, Some(widget("third"))).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains(
            "widgets.quota-test.example.com \"third\" is forbidden: exceeded quota: widgets, requested: count/widgets.quota-test.example.com=1, used: count/widgets.quota-test.example.com=2"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn service_updates_are_charged_for_what_grows() {
    let (_s, client) = start().await;
    let q = quota("ports", json!({"services.nodeports": "1"}));
    assert_eq!(send(&client, "POST", QUOTAS, Some(q)).await.0, 201);
    let services = "/api/v1/namespaces/default/services";
    let svc = |name: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}})
    };
    for name in ["a", "b"] {
        assert_eq!(
            send(&client, "POST", services, Some(svc(name))).await.0,
            201
        );
    }
    let to_node_port = json!({"spec": {"type": "NodePort"}});
    let (code, body) = send(
        &client,
        "PATCH",
        &format!("{services}/a"),
        Some(to_node_port.clone()),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(used(&client, "ports").await["services.nodeports"], "1");
    let (code, body) = send(
        &client,
        "PATCH",
        &format!("{services}/b"),
        Some(to_node_port),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "services \"b\" is forbidden: exceeded quota: ports, requested: services.nodeports=1, used: services.nodeports=1, limited: services.nodeports=1"
    );
    let (_, b) = send(&client, "GET", &format!("{services}/b"), None).await;
    assert_eq!(
        b["spec"]["type"], "ClusterIP",
        "the refused update left it as it was"
    );
    // Unrelated updates of a charged service are not charged again.
    let (code, body) = send(
        &client,
        "PATCH",
        &format!("{services}/a"),
        Some(json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

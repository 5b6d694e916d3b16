//! Dispatch through a real registry to an HTTPS webhook served by the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::registry::WriteOptions;
use crate::registry::test_registry::{info, registry_with};
use base64::Engine;
use std::collections::HashMap;

type Hooked = crate::testing::webhook::TestWebhook;

fn patch(ops: Value) -> Value {
    json!({"allowed": true, "patchType": "JSONPatch",
        "patch": base64::engine::general_purpose::STANDARD.encode(ops.to_string())})
}

async fn registry() -> (Registry, tempfile::TempDir) {
    registry_with(&[("default", json!({}))]).await
}

/// Stores a configuration (outside any request, as configurations are never admitted).
async fn configure(registry: &Registry, plural: &str, name: &str, webhooks: Value) {
    registry
        .create(
            info("admissionregistration.k8s.io", "v1", plural),
            None,
            json!({"metadata": {"name": name}, "webhooks": webhooks}),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
}

fn hook(
    name: &str,
    client: Value,
    ops: &[&str],
    groups: &[&str],
    versions: &[&str],
    resources: &[&str],
) -> Value {
    json!({"name": name, "clientConfig": client, "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "rules": [{"operations": ops, "apiGroups": groups, "apiVersions": versions,
                   "resources": resources}]})
}

/// Runs `write` as the API request for `group`/`resource` made by alice.
async fn as_request<F>(group: &str, resource: &str, write: F) -> ApiResult<Value>
where
    F: Future<Output = ApiResult<Value>>,
{
    crate::registry::test_registry::as_request(group, resource, write)
        .await
        .result
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
}

async fn create_cm(registry: &Registry, ns: &str, name: &str) -> ApiResult<Value> {
    let cms = info("", "v1", "configmaps");
    as_request(
        "",
        "configmaps",
        registry.create(cms, Some(ns), configmap(name), &WriteOptions::default()),
    )
    .await
}

#[tokio::test]
async fn reinvokes_if_needed_webhooks_once_after_a_later_change() {
    let calls: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counted = calls.clone();
    let server = Hooked::start(move |path, _| {
        let mut calls = counted.lock().unwrap();
        let n = calls.entry(path.to_string()).or_insert(0);
        *n += 1;
        match path {
            // Records how often it ran; changes the object every time.
            "/a" => patch(json!([{"op": "add", "path": "/metadata/annotations",
                "value": {"a": n.to_string()}}])),
            // Adds a label once.
            "/b" => patch(json!([{"op": "add", "path": "/metadata/labels", "value": {"b": "1"}}])),
            _ => json!({"allowed": true}),
        }
    })
    .await;
    let (registry, _dir) = registry().await;
    let mut a = hook(
        "a.test",
        server.url("/a"),
        &["CREATE"],
        &[""],
        &["v1"],
        &["configmaps"],
    );
    a["reinvocationPolicy"] = json!("IfNeeded");
    let b = hook(
        "b.test",
        server.url("/b"),
        &["CREATE"],
        &[""],
        &["v1"],
        &["configmaps"],
    );
    configure(
        &registry,
        "mutatingwebhookconfigurations",
        "order",
        json!([a, b]),
    )
    .await;
    let cm = create_cm(&registry, "default", "one").await.unwrap();
    assert_eq!(server.paths(), ["/a", "/b", "/a"]);
    assert_eq!(cm["metadata"]["annotations"]["a"], "2");
    assert_eq!(cm["metadata"]["labels"]["b"], "1");
    // The review names the request.
    let review = &server.requests("/b")[0];
    assert_eq!(review["operation"], "CREATE");
    assert_eq!(review["userInfo"]["username"], "alice");
    assert_eq!(review["namespace"], "default");
    assert_eq!(review["name"], "one");
    assert_eq!(review["options"]["kind"], "CreateOptions");
    assert_eq!(review["options"]["fieldManager"], "tests");
    assert_eq!(review["object"]["kind"], "ConfigMap");
}

#[tokio::test]
async fn only_the_write_a_request_addresses_is_admitted() {
    let server = Hooked::start(|_, _| json!({"allowed": false, "status": {"message": "no"}})).await;
    let (registry, _dir) = registry().await;
    let all = hook("all.test", server.url("/v"), &["*"], &["*"], &["*"], &["*"]);
    configure(
        &registry,
        "validatingwebhookconfigurations",
        "all",
        json!([all]),
    )
    .await;
    let cms = info("", "v1", "configmaps");
    // The server's own writes (no request).
    registry
        .create(
            cms,
            Some("default"),
            configmap("internal"),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    // A request for another resource.
    as_request(
        "",
        "secrets",
        registry.create(
            cms,
            Some("default"),
            configmap("nested"),
            &WriteOptions::default(),
        ),
    )
    .await
    .unwrap();
    assert!(server.paths().is_empty());
    let err = create_cm(&registry, "default", "denied").await.unwrap_err();
    assert_eq!(
        err.message,
        "admission webhook \"all.test\" denied the request: no"
    );
    assert_eq!(err.code, axum::http::StatusCode::BAD_REQUEST);
    // Configurations are never sent to webhooks.
    let mwc = info(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
    );
    as_request(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        registry.create(
            mwc,
            None,
            json!({"metadata": {"name": "x"}}),
            &WriteOptions::default(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(server.paths(), ["/v"]);
}

#[tokio::test]
async fn namespaces_are_selected_by_their_own_labels() {
    let server = Hooked::start(|_, _| json!({"allowed": true})).await;
    let (registry, _dir) = registry().await;
    let mut h = hook(
        "ns.test",
        server.url("/ns"),
        &["CREATE"],
        &[""],
        &["v1"],
        &["namespaces", "configmaps"],
    );
    h["namespaceSelector"] = json!({"matchLabels": {"team": "a"}});
    configure(
        &registry,
        "validatingwebhookconfigurations",
        "ns",
        json!([h]),
    )
    .await;
    let nss = info("", "v1", "namespaces");
    for (name, labels) in [
        ("team-a", json!({"team": "a"})),
        ("team-b", json!({"team": "b"})),
    ] {
        let ns = json!({"metadata": {"name": name, "labels": labels}});
        as_request(
            "",
            "namespaces",
            registry.create(nss, None, ns, &WriteOptions::default()),
        )
        .await
        .unwrap();
    }
    create_cm(&registry, "team-a", "in-a").await.unwrap();
    create_cm(&registry, "team-b", "in-b").await.unwrap();
    let seen = server.requests("/ns");
    let names: Vec<&str> = seen.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["team-a", "in-a"]);
    // A namespace create carries no namespace; a configmap its own.
    assert!(seen[0].get("namespace").is_none());
    assert_eq!(seen[1]["namespace"], "team-a");
}

#[tokio::test]
async fn equivalent_versions_are_sent_converted_and_patched_back() {
    let server = Hooked::start(|_, _| {
        patch(json!([{"op": "add", "path": "/metadata/labels", "value": {"seen": "v1"}}]))
    })
    .await;
    let (registry, _dir) = registry().await;
    let h = hook(
        "hpa.test",
        server.url("/hpa"),
        &["CREATE"],
        &["autoscaling"],
        &["v1"],
        &["horizontalpodautoscalers"],
    );
    configure(
        &registry,
        "mutatingwebhookconfigurations",
        "hpa",
        json!([h]),
    )
    .await;
    let v2 = info("autoscaling", "v2", "horizontalpodautoscalers");
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "maxReplicas": 3}});
    let created = as_request(
        "autoscaling",
        "horizontalpodautoscalers",
        registry.create(v2, Some("default"), hpa, &WriteOptions::default()),
    )
    .await
    .unwrap();
    assert_eq!(created["metadata"]["labels"]["seen"], "v1");
    assert_eq!(created["apiVersion"], "autoscaling/v2");
    let review = &server.requests("/hpa")[0];
    assert_eq!(review["kind"]["version"], "v1");
    assert_eq!(review["resource"]["version"], "v1");
    assert_eq!(review["requestKind"]["version"], "v2");
    assert_eq!(review["object"]["apiVersion"], "autoscaling/v1");
}

#[tokio::test]
async fn deletes_reach_webhooks_but_may_not_be_patched() {
    let server = Hooked::start(|path, _| match path {
        "/patch" => patch(json!([{"op": "add", "path": "/metadata/labels", "value": {}}])),
        _ => json!({"allowed": true}),
    })
    .await;
    let (registry, _dir) = registry().await;
    create_cm(&registry, "default", "gone").await.unwrap();
    create_cm(&registry, "default", "kept").await.unwrap();
    let mut h = hook(
        "del.test",
        server.url("/del"),
        &["DELETE"],
        &[""],
        &["v1"],
        &["configmaps"],
    );
    h["objectSelector"] = json!({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]});
    configure(
        &registry,
        "validatingwebhookconfigurations",
        "del",
        json!([h]),
    )
    .await;
    let cms = info("", "v1", "configmaps");
    let opts = DeleteOptions {
        propagation_policy: Some("Background".into()),
        ..Default::default()
    };
    as_request("", "configmaps", async {
        registry.delete(cms, Some("default"), "gone", &opts).await?;
        Ok(Value::Null)
    })
    .await
    .unwrap();
    let review = &server.requests("/del")[0];
    assert_eq!(review["operation"], "DELETE");
    assert_eq!(review["object"], Value::Null);
    assert_eq!(review["oldObject"]["metadata"]["name"], "gone");
    assert_eq!(review["options"]["kind"], "DeleteOptions");
    assert_eq!(review["options"]["propagationPolicy"], "Background");

    let p = hook(
        "patch.test",
        server.url("/patch"),
        &["DELETE"],
        &[""],
        &["v1"],
        &["configmaps"],
    );
    configure(
        &registry,
        "mutatingwebhookconfigurations",
        "patch",
        json!([p]),
    )
    .await;
    let err = as_request("", "configmaps", async {
        registry
            .delete(cms, Some("default"), "kept", &DeleteOptions::default())
            .await?;
        Ok(Value::Null)
    })
    .await
    .unwrap_err();
    assert_eq!(err.code, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        err.message.contains("attempted to modify the object"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn unusable_webhooks_fail_per_failure_policy() {
    let server = Hooked::start(|_, _| json!({"allowed": true})).await;
    let (registry, _dir) = registry().await;
    let mut h = hook(
        "v2only.test",
        server.url("/x"),
        &["CREATE"],
        &[""],
        &["v1"],
        &["configmaps"],
    );
    h["admissionReviewVersions"] = json!(["v2"]);
    configure(
        &registry,
        "validatingwebhookconfigurations",
        "fail",
        json!([h.clone()]),
    )
    .await;
    let err = create_cm(&registry, "default", "a").await.unwrap_err();
    assert_eq!(err.code, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        err.message.starts_with("Internal error occurred: failed calling webhook \"v2only.test\": could not create admission objects"),
        "{}",
        err.message
    );
    let vwc = info(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
    );
    registry
        .update_with(vwc, None, "fail", None, &WriteOptions::default(), |cur| {
            let mut next = cur.clone();
            next["webhooks"][0]["failurePolicy"] = json!("Ignore");
            Ok(next)
        })
        .await
        .unwrap();
    create_cm(&registry, "default", "b").await.unwrap();
    assert!(server.paths().is_empty());
}

#[tokio::test]
async fn match_conditions_decide_whether_a_webhook_is_called() {
    let server = Hooked::start(|_, _| json!({"allowed": true})).await;
    let (registry, _dir) = registry().await;
    let mut skipping = hook(
        "skip.test",
        server.url("/skip"),
        &["CREATE"],
        &[""],
        &["v1"],
        &["configmaps"],
    );
    skipping["matchConditions"] = json!([
        {"name": "not-skipped", "expression": "object.metadata.name != 'skipped'"},
        {"name": "by-alice", "expression": "request.userInfo.username == 'alice'"}]);
    let mut erroring = hook(
        "error.test",
        server.url("/error"),
        &["CREATE"],
        &[""],
        &["v1"],
        &["configmaps"],
    );
    erroring["matchConditions"] =
        json!([{"name": "labelled", "expression": "object.metadata.labels.team == 'a'"}]);
    erroring["failurePolicy"] = json!("Ignore");
    configure(
        &registry,
        "validatingwebhookconfigurations",
        "conditions",
        json!([skipping, erroring.clone()]),
    )
    .await;
    create_cm(&registry, "default", "called").await.unwrap();
    create_cm(&registry, "default", "skipped").await.unwrap();
    // The erroring condition (no labels) skips its webhook under Ignore.
    assert_eq!(server.paths(), ["/skip"]);

    // Under Fail the error is the answer, as upstream's 403.
    erroring["failurePolicy"] = json!("Fail");
    erroring["name"] = json!("error-fail.test");
    configure(
        &registry,
        "validatingwebhookconfigurations",
        "failing",
        json!([erroring]),
    )
    .await;
    let err = create_cm(&registry, "default", "x").await.unwrap_err();
    assert_eq!(err.code, axum::http::StatusCode::FORBIDDEN);
    assert_eq!(
        err.message,
        "configmaps \"x\" is forbidden: expression 'object.metadata.labels.team == 'a'' resulted in error: no such key: labels"
    );
}

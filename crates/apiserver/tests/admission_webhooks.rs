//! Admission webhooks as upstream's MutatingAdmissionWebhook and
//! ValidatingAdmissionWebhook call them: an HTTPS webhook served by the test on
//! 127.0.0.1 (certificate from a test CA, trusted through `caBundle`) is sent
//! AdmissionReviews for matching writes; its patches, denials and warnings apply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use common::{send, start};
use serde_json::{Value, json};

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const MUTATING: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
const VALIDATING: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";

type Webhook = r8s_apiserver::testing::webhook::TestWebhook;

/// The test webhook's behaviour by path.
fn answer(path: &str, req: &Value) -> Value {
    let labels = req
        .pointer("/object/metadata/labels")
        .cloned()
        .unwrap_or(Value::Null);
    match path {
        // Adds `mutated: "yes"` (a JSONPatch that works with or without labels).
        "/mutate" if req["operation"] != "DELETE" => {
            let ops = if labels.is_object() {
                json!([{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}])
            } else {
                json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}])
            };
            json!({"allowed": true, "patchType": "JSONPatch",
                "patch": base64::engine::general_purpose::STANDARD.encode(ops.to_string())})
        }
        // Refuses objects labelled `deny`, with the code of label `code` if any.
        "/validate" if labels.get("deny").is_some() => {
            let mut status = json!({"message": "objects labelled deny are refused"});
            if let Some(code) = labels
                .get("code")
                .and_then(Value::as_str)
                .and_then(|c| c.parse::<u16>().ok())
            {
                status["code"] = json!(code);
                status["reason"] = json!("Forbidden");
            }
            json!({"allowed": false, "status": status, "warnings": ["denied by the test webhook"]})
        }
        "/validate" => json!({"allowed": true, "warnings": ["checked by the test webhook"]}),
        _ => json!({"allowed": true}),
    }
}

fn webhook(name: &str, client: Value, ops: &[&str], resources: &[&str]) -> Value {
    json!({"name": name, "clientConfig": client, "sideEffects": "None",
        "admissionReviewVersions": ["v1"], "timeoutSeconds": 5,
        "rules": [{"operations": ops, "apiGroups": [""], "apiVersions": ["v1"],
                   "resources": resources}]})
}

async fn configure(client: &kube::Client, path: &str, name: &str, webhooks: Value) {
    let kind = if path == MUTATING {
        "MutatingWebhookConfiguration"
    } else {
        "ValidatingWebhookConfiguration"
    };
    let (code, body) = send(
        client,
        "POST",
        path,
        Some(
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": name}, "webhooks": webhooks}),
        ),
    )
    .await;
    assert_eq!(code, 201, "{body}");
}

fn configmap(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

async fn create_cm(client: &kube::Client, ns: &str, name: &str, labels: Value) -> (u16, Value) {
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    send(client, "POST", &path, Some(configmap(name, labels))).await
}

/// A request answered with its `Warning` headers.
async fn send_with_warnings(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Vec<String>) {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    (resp.status().as_u16(), warnings)
}

#[tokio::test]
async fn mutating_webhook_patches_and_sees_the_request() {
    let (_s, client) = start().await;
    let hook = Webhook::start(answer).await;
    configure(
        &client,
        MUTATING,
        "label-configmaps",
        json!([webhook(
            "mutate.test",
            hook.url("/mutate"),
            &["CREATE", "UPDATE", "DELETE"],
            &["configmaps"]
        )]),
    )
    .await;

    let (code, cm) = create_cm(&client, "default", "plain", Value::Null).await;
    assert_eq!(code, 201, "{cm}");
    assert_eq!(cm["metadata"]["labels"]["mutated"], "yes");
    let (code, cm) = create_cm(&client, "default", "labelled", json!({"app": "x"})).await;
    assert_eq!(code, 201, "{cm}");
    assert_eq!(
        cm["metadata"]["labels"],
        json!({"app": "x", "mutated": "yes"})
    );
    // Stored so.
    let (_, stored) = send(&client, "GET", &format!("{CONFIGMAPS}/plain"), None).await;
    assert_eq!(stored["metadata"]["labels"]["mutated"], "yes");

    let created = &hook.requests("/mutate")[0];
    assert_eq!(created["operation"], "CREATE");
    assert_eq!(
        created["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(
        created["resource"],
        json!({"group": "", "version": "v1", "resource": "configmaps"})
    );
    assert_eq!(created["requestKind"], created["kind"]);
    assert_eq!(created["namespace"], "default");
    assert_eq!(created["name"], "plain");
    assert_eq!(created["userInfo"]["username"], "system:admin");
    let groups = created["userInfo"]["groups"].as_array().unwrap();
    assert!(groups.contains(&json!("system:masters")), "{groups:?}");
    assert_eq!(created["oldObject"], Value::Null);
    assert_eq!(created["dryRun"], false);
    assert_eq!(created["options"]["kind"], "CreateOptions");
    assert!(created["uid"].as_str().is_some_and(|u| !u.is_empty()));

    // An update carries the old object too.
    let mut changed = stored.clone();
    changed["data"]["k"] = json!("changed");
    let (code, body) = send(
        &client,
        "PUT",
        &format!("{CONFIGMAPS}/plain"),
        Some(changed),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let updated = hook.requests("/mutate").pop().unwrap();
    assert_eq!(updated["operation"], "UPDATE");
    assert_eq!(updated["oldObject"]["data"]["k"], "v");
    assert_eq!(updated["object"]["data"]["k"], "changed");
    assert_eq!(updated["options"]["kind"], "UpdateOptions");
    assert_eq!(updated["userInfo"]["username"], "system:admin");

    // A patch is an update as well.
    let (code, body) = send(
        &client,
        "PATCH",
        &format!("{CONFIGMAPS}/plain"),
        Some(json!({"data": {"k": "patched"}})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let patched = hook.requests("/mutate").pop().unwrap();
    assert_eq!(patched["operation"], "UPDATE");
    assert_eq!(patched["oldObject"]["data"]["k"], "changed");

    // Deletes reach the webhook with the object being deleted.
    let (code, body) = send(&client, "DELETE", &format!("{CONFIGMAPS}/plain"), None).await;
    assert_eq!(code, 200, "{body}");
    let deleted = hook.requests("/mutate").pop().unwrap();
    assert_eq!(deleted["operation"], "DELETE");
    assert_eq!(deleted["name"], "plain");
    assert_eq!(deleted["object"], Value::Null);
    assert_eq!(deleted["oldObject"]["data"]["k"], "patched");
    assert_eq!(deleted["options"]["kind"], "DeleteOptions");
}

#[tokio::test]
async fn validating_webhook_denies_with_the_upstream_error() {
    let (_s, client) = start().await;
    let hook = Webhook::start(answer).await;
    configure(
        &client,
        VALIDATING,
        "deny-labelled",
        json!([webhook(
            "deny.test",
            hook.url("/validate"),
            &["CREATE", "UPDATE"],
            &["configmaps"]
        )]),
    )
    .await;

    let (code, status) = create_cm(&client, "default", "refused", json!({"deny": "1"})).await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(
        status["message"],
        "admission webhook \"deny.test\" denied the request: objects labelled deny are refused"
    );
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["status"], "Failure");
    let (_, missing) = send(&client, "GET", &format!("{CONFIGMAPS}/refused"), None).await;
    assert_eq!(missing["reason"], "NotFound");

    // The webhook's code and reason are kept.
    let (code, status) = create_cm(
        &client,
        "default",
        "forbidden",
        json!({"deny": "1", "code": "403"}),
    )
    .await;
    assert_eq!(code, 403, "{status}");
    assert_eq!(status["reason"], "Forbidden");

    // Warnings reach the client with a denial too.
    let (code, warnings) = send_with_warnings(
        &client,
        "POST",
        CONFIGMAPS,
        configmap("warned", json!({"deny": "1"})),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(warnings, ["299 - \"denied by the test webhook\""]);

    // Allowed, with a warning for the client.
    let (code, warnings) = send_with_warnings(
        &client,
        "POST",
        CONFIGMAPS,
        configmap("allowed", json!({"ok": "1"})),
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(warnings, ["299 - \"checked by the test webhook\""]);

    // Validation sees the final object: an update adding the label is refused.
    let (_, current) = send(&client, "GET", &format!("{CONFIGMAPS}/allowed"), None).await;
    let mut next = current.clone();
    next["metadata"]["labels"]["deny"] = json!("1");
    let (code, status) = send(&client, "PUT", &format!("{CONFIGMAPS}/allowed"), Some(next)).await;
    assert_eq!(code, 400, "{status}");
    let update = hook.requests("/validate").pop().unwrap();
    assert_eq!(update["operation"], "UPDATE");
    assert_eq!(
        update["oldObject"]["metadata"]["labels"],
        json!({"ok": "1"})
    );
}

#[tokio::test]
async fn namespace_and_object_selectors_skip_webhooks() {
    let (_s, client) = start().await;
    let hook = Webhook::start(answer).await;
    let mut by_namespace = webhook("ns.test", hook.url("/mutate"), &["CREATE"], &["configmaps"]);
    by_namespace["namespaceSelector"] = json!({"matchLabels": {"webhooks": "on"}});
    let mut by_object = webhook(
        "obj.test",
        hook.url("/record"),
        &["CREATE"],
        &["configmaps"],
    );
    by_object["objectSelector"] =
        json!({"matchExpressions": [{"key": "record", "operator": "In", "values": ["yes"]}]});
    configure(
        &client,
        MUTATING,
        "selective",
        json!([by_namespace, by_object]),
    )
    .await;
    for (ns, labels) in [("on", json!({"webhooks": "on"})), ("off", json!({}))] {
        let (code, body) = send(
            &client,
            "POST",
            "/api/v1/namespaces",
            Some(json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": labels}})),
        )
        .await;
        assert_eq!(code, 201, "{body}");
    }
    let (_, cm) = create_cm(&client, "on", "a", Value::Null).await;
    assert_eq!(cm["metadata"]["labels"]["mutated"], "yes");
    let (_, cm) = create_cm(&client, "off", "b", Value::Null).await;
    assert_eq!(cm["metadata"]["labels"], Value::Null);
    create_cm(&client, "off", "c", json!({"record": "yes"})).await;
    create_cm(&client, "off", "d", json!({"record": "no"})).await;
    let names = |path: &str| -> Vec<String> {
        hook.requests(path)
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["namespace"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(names("/mutate"), ["on/a"]);
    assert_eq!(names("/record"), ["off/c"]);
}

#[tokio::test]
async fn failure_policy_decides_when_the_webhook_is_down() {
    let (_s, client) = start().await;
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = json!({"url": format!("https://127.0.0.1:{port}/down")});
    configure(
        &client,
        VALIDATING,
        "down",
        json!([webhook(
            "down.test",
            down.clone(),
            &["CREATE"],
            &["configmaps"]
        )]),
    )
    .await;
    let (code, status) = create_cm(&client, "default", "blocked", Value::Null).await;
    assert_eq!(code, 500, "{status}");
    assert_eq!(status["reason"], "InternalError");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Internal error occurred: failed calling webhook \"down.test\": failed to call webhook: Post \"https://127.0.0.1:"
        ),
        "{message}"
    );

    // The same webhook with failurePolicy Ignore lets the request through.
    let (code, body) = send(&client, "DELETE", &format!("{VALIDATING}/down"), None).await;
    assert_eq!(code, 200, "{body}");
    let mut ignored = webhook("down.test", down, &["CREATE"], &["configmaps"]);
    ignored["failurePolicy"] = json!("Ignore");
    configure(&client, VALIDATING, "down-ignored", json!([ignored])).await;
    let (code, body) = create_cm(&client, "default", "through", Value::Null).await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn dry_run_reaches_only_webhooks_without_side_effects() {
    let (_s, client) = start().await;
    let hook = Webhook::start(answer).await;
    let mut unknown = webhook(
        "unknown.test",
        hook.url("/record"),
        &["CREATE"],
        &["configmaps"],
    );
    unknown["sideEffects"] = json!("Unknown");
    unknown["objectSelector"] = json!({"matchLabels": {"effects": "unknown"}});
    let mut none = webhook("none.test", hook.url("/none"), &["CREATE"], &["configmaps"]);
    none["objectSelector"] = json!({"matchLabels": {"effects": "none"}});
    configure(&client, VALIDATING, "effects", json!([unknown, none])).await;

    let dry = format!("{CONFIGMAPS}?dryRun=All");
    let (code, status) = send(
        &client,
        "POST",
        &dry,
        Some(configmap("dry", json!({"effects": "unknown"}))),
    )
    .await;
    assert_eq!(code, 400, "{status}");
    assert_eq!(
        status["message"],
        "admission webhook \"unknown.test\" does not support dry run"
    );
    assert!(hook.requests("/record").is_empty());
    // Not a dry run: called.
    let (code, _) = create_cm(&client, "default", "real", json!({"effects": "unknown"})).await;
    assert_eq!(code, 201);
    assert_eq!(hook.requests("/record").len(), 1);

    let (code, body) = send(
        &client,
        "POST",
        &dry,
        Some(configmap("dry", json!({"effects": "none"}))),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let review = hook.requests("/none").pop().unwrap();
    assert_eq!(review["dryRun"], true);
    assert_eq!(review["options"]["dryRun"], json!(["All"]));
}

#[tokio::test]
async fn configurations_are_never_sent_to_webhooks() {
    let (_s, client) = start().await;
    let hook = Webhook::start(answer).await;
    let everything = json!({"name": "everything.test", "clientConfig": hook.url("/record"),
        "sideEffects": "None", "admissionReviewVersions": ["v1"],
        "rules": [{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"],
                   "resources": ["*"]}]});
    configure(
        &client,
        VALIDATING,
        "everything",
        json!([everything.clone()]),
    )
    .await;
    configure(
        &client,
        MUTATING,
        "everything-mutating",
        json!([everything]),
    )
    .await;
    configure(
        &client,
        VALIDATING,
        "other",
        json!([webhook(
            "other.test",
            hook.url("/record"),
            &["CREATE"],
            &["secrets"]
        )]),
    )
    .await;
    let (code, body) = send(
        &client,
        "PATCH",
        &format!("{VALIDATING}/other"),
        Some(json!({"metadata": {"labels": {"a": "b"}}})),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = send(&client, "DELETE", &format!("{VALIDATING}/other"), None).await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = create_cm(&client, "default", "seen", Value::Null).await;
    assert_eq!(code, 201);
    let groups: Vec<Value> = hook
        .all()
        .iter()
        .map(|r| r["resource"]["group"].clone())
        .collect();
    assert!(
        !groups.contains(&json!("admissionregistration.k8s.io")),
        "{groups:?}"
    );
    // The configmap went to both (mutating, then validating).
    let cms: Vec<Value> = hook
        .all()
        .into_iter()
        .filter(|r| r["resource"]["resource"] == "configmaps")
        .collect();
    assert_eq!(cms.len(), 2, "{cms:?}");
}

#[tokio::test]
async fn service_webhooks_are_reached_through_their_endpoints() {
    let (_s, client) = start().await;
    let hook = Webhook::start(answer).await;
    let (code, body) = send(
        &client,
        "POST",
        "/api/v1/namespaces/default/services",
        Some(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "hook"},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": hook.port}]}}),
        ),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, body) = send(
        &client,
        "POST",
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        Some(
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "hook-1", "labels": {"kubernetes.io/service-name": "hook"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": hook.port, "protocol": "TCP"}]}),
        ),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let client_config = json!({"service": {"namespace": "default", "name": "hook",
        "path": "/mutate"}, "caBundle": hook.ca});
    configure(
        &client,
        MUTATING,
        "by-service",
        json!([webhook(
            "svc.test",
            client_config,
            &["CREATE"],
            &["configmaps"]
        )]),
    )
    .await;
    let (code, cm) = create_cm(&client, "default", "via-service", Value::Null).await;
    assert_eq!(code, 201, "{cm}");
    assert_eq!(cm["metadata"]["labels"]["mutated"], "yes");
}

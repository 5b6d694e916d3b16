//! ValidatingAdmissionPolicies as upstream's kube-apiserver evaluates them, following the
//! Kubernetes docs page "Validating Admission Policy": a policy limiting Deployments to 5
//! replicas, bound with `Deny` in namespaces labelled `environment: test`, then `Warn`,
//! match conditions, variable composition with `namespaceObject`, and failure policies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, start};
use serde_json::{Value, json};

const POLICIES: &str = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies";
const BINDINGS: &str = "/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings";

async fn namespace(client: &kube::Client, name: &str, labels: Value) {
    let (code, body) = send(
        client,
        "POST",
        "/api/v1/namespaces",
        Some(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels}})),
    )
    .await;
    assert_eq!(code, 201, "{body}");
}

async fn create(client: &kube::Client, path: &str, kind: &str, name: &str, spec: Value) {
    let (code, body) = send(
        client,
        "POST",
        path,
        Some(
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
            "metadata": {"name": name}, "spec": spec}),
        ),
    )
    .await;
    assert_eq!(code, 201, "{body}");
}

async fn policy(client: &kube::Client, name: &str, spec: Value) {
    create(client, POLICIES, "ValidatingAdmissionPolicy", name, spec).await;
}

async fn binding(client: &kube::Client, name: &str, spec: Value) {
    create(
        client,
        BINDINGS,
        "ValidatingAdmissionPolicyBinding",
        name,
        spec,
    )
    .await;
}

/// The docs' `demo-policy.example.com`.
fn demo_policy() -> Value {
    json!({"failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
        "validations": [{"expression": "object.spec.replicas <= 5"}]})
}

fn deployment(name: &str, replicas: i64, image: &str, labels: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}}}})
}

/// Creates a Deployment: (status code, body, `Warning` headers).
async fn create_deployment(
    client: &kube::Client,
    ns: &str,
    body: Value,
) -> (u16, Value, Vec<String>) {
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(format!("/apis/apps/v1/namespaces/{ns}/deployments"))
        .header("content-type", "application/json")
        .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let code = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (
        code,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        warnings,
    )
}

#[tokio::test]
async fn the_docs_policy_denies_in_test_namespaces() {
    let (_s, client) = start().await;
    namespace(&client, "test", json!({"environment": "test"})).await;
    namespace(&client, "other", json!({})).await;
    policy(&client, "demo-policy.example.com", demo_policy()).await;
    binding(
        &client,
        "demo-binding-test.example.com",
        json!({"policyName": "demo-policy.example.com", "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"environment": "test"}}}}),
    )
    .await;

    // Stored with upstream's defaults.
    let (code, stored) = send(
        &client,
        "GET",
        &format!("{POLICIES}/demo-policy.example.com"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        stored["spec"]["matchConstraints"]["matchPolicy"],
        "Equivalent"
    );
    assert_eq!(stored["metadata"]["generation"], 1);

    let (code, status, _) = create_deployment(
        &client,
        "test",
        deployment("nginx", 6, "nginx", json!({"app": "nginx"})),
    )
    .await;
    let message = "ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied request: failed expression: object.spec.replicas <= 5";
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        format!("deployments.apps \"nginx\" is forbidden: {message}")
    );
    assert_eq!(
        status["details"],
        json!({"name": "nginx", "group": "apps", "kind": "deployments",
            "causes": [{"message": message}]})
    );

    let (code, body, _) = create_deployment(
        &client,
        "test",
        deployment("nginx", 3, "nginx", json!({"app": "nginx"})),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    // Updates are validated too.
    let (code, status) = send(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/test/deployments/nginx",
        Some(json!({"spec": {"replicas": 7}})),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        format!("deployments.apps \"nginx\" is forbidden: {message}")
    );
    // Namespaces the binding does not select are not checked.
    let (code, body, _) = create_deployment(
        &client,
        "other",
        deployment("nginx", 6, "nginx", json!({"app": "nginx"})),
    )
    .await;
    assert_eq!(code, 201, "{body}");

    // Without the binding the policy does nothing.
    let (code, _) = send(
        &client,
        "DELETE",
        &format!("{BINDINGS}/demo-binding-test.example.com"),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, body, _) = create_deployment(
        &client,
        "test",
        deployment("big", 6, "nginx", json!({"app": "big"})),
    )
    .await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn warn_bindings_answer_with_a_warning() {
    let (_s, client) = start().await;
    namespace(&client, "test", json!({"environment": "test"})).await;
    policy(&client, "demo-policy.example.com", demo_policy()).await;
    binding(
        &client,
        "demo-binding-warn.example.com",
        json!({"policyName": "demo-policy.example.com", "validationActions": ["Warn", "Audit"]}),
    )
    .await;
    let (code, body, warnings) = create_deployment(
        &client,
        "test",
        deployment("nginx", 6, "nginx", json!({"app": "nginx"})),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        warnings,
        [
            "299 - \"Validation failed for ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-warn.example.com': failed expression: object.spec.replicas <= 5\""
        ]
    );
    let (code, _, warnings) = create_deployment(
        &client,
        "test",
        deployment("small", 2, "nginx", json!({"app": "small"})),
    )
    .await;
    assert_eq!(code, 201);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[tokio::test]
async fn match_conditions_exclude_what_they_do_not_match() {
    let (_s, client) = start().await;
    namespace(&client, "test", json!({"environment": "test"})).await;
    let mut spec = demo_policy();
    spec["matchConditions"] = json!([
        {"name": "exclude-exempt",
         "expression": "!('policy.example.com/exempt' in object.metadata.labels)"},
        {"name": "exclude-kubelet-requests",
         "expression": "!('system:nodes' in request.userInfo.groups)"}]);
    policy(&client, "demo-policy.example.com", spec).await;
    binding(
        &client,
        "demo-binding.example.com",
        json!({"policyName": "demo-policy.example.com", "validationActions": ["Deny"]}),
    )
    .await;
    let (code, _, _) = create_deployment(
        &client,
        "test",
        deployment("nginx", 6, "nginx", json!({"app": "nginx"})),
    )
    .await;
    assert_eq!(code, 422);
    let (code, body, _) = create_deployment(
        &client,
        "test",
        deployment(
            "exempt",
            6,
            "nginx",
            json!({"app": "exempt", "policy.example.com/exempt": "true"}),
        ),
    )
    .await;
    assert_eq!(code, 201, "{body}");
}

#[tokio::test]
async fn variables_compose_with_the_namespace_object() {
    let (_s, client) = start().await;
    namespace(&client, "test", json!({"environment": "test"})).await;
    // The docs' variable composition example.
    policy(
        &client,
        "image-matches-namespace-environment.policy.example.com",
        json!({"failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"],
                "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                "resources": ["deployments"]}]},
            "variables": [
                {"name": "environment",
                 "expression": "'environment' in namespaceObject.metadata.labels ? namespaceObject.metadata.labels['environment'] : 'prod'"},
                {"name": "exempt",
                 "expression": "'exempt' in object.metadata.labels && object.metadata.labels['exempt'] == 'true'"},
                {"name": "containers", "expression": "object.spec.template.spec.containers"},
                {"name": "containersToCheck",
                 "expression": "variables.containers.filter(c, c.image.contains('example.com/'))"}],
            "validations": [{
                "expression": "variables.exempt || variables.containersToCheck.all(c, c.image.startsWith(variables.environment + '.'))",
                "messageExpression": "'only ' + variables.environment + ' images are allowed in namespace ' + namespaceObject.metadata.name"}]}),
    )
    .await;
    binding(
        &client,
        "image-matches-namespace-environment.binding.example.com",
        json!({"policyName": "image-matches-namespace-environment.policy.example.com",
            "validationActions": ["Deny"]}),
    )
    .await;
    let (code, status, _) = create_deployment(
        &client,
        "test",
        deployment(
            "prod-image",
            1,
            "prod.example.com/nginx",
            json!({"app": "x"}),
        ),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .ends_with("denied request: only test images are allowed in namespace test"),
        "{status}"
    );
    for (name, image, labels) in [
        ("test-image", "test.example.com/nginx", json!({"app": "a"})),
        ("elsewhere", "registry.k8s.io/nginx", json!({"app": "b"})),
        (
            "exempted",
            "prod.example.com/nginx",
            json!({"app": "c", "exempt": "true"}),
        ),
    ] {
        let (code, body, _) =
            create_deployment(&client, "test", deployment(name, 1, image, labels)).await;
        assert_eq!(code, 201, "{name}: {body}");
    }
}

#[tokio::test]
async fn failure_policy_decides_about_evaluation_errors() {
    let (_s, client) = start().await;
    namespace(&client, "test", json!({})).await;
    let mut spec = demo_policy();
    spec["validations"] = json!([{"expression": "object.spec.doesNotExist > 1"}]);
    spec["failurePolicy"] = json!("Ignore");
    policy(&client, "lenient.example.com", spec.clone()).await;
    binding(
        &client,
        "lenient.example.com",
        json!({"policyName": "lenient.example.com", "validationActions": ["Deny"]}),
    )
    .await;
    let (code, body, _) = create_deployment(
        &client,
        "test",
        deployment("a", 1, "nginx", json!({"app": "a"})),
    )
    .await;
    assert_eq!(code, 201, "{body}");

    spec["failurePolicy"] = json!("Fail");
    policy(&client, "strict.example.com", spec).await;
    binding(
        &client,
        "strict.example.com",
        json!({"policyName": "strict.example.com", "validationActions": ["Deny"]}),
    )
    .await;
    let (code, status, _) = create_deployment(
        &client,
        "test",
        deployment("b", 1, "nginx", json!({"app": "b"})),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "deployments.apps \"b\" is forbidden: ValidatingAdmissionPolicy 'strict.example.com' with binding 'strict.example.com' denied request: expression 'object.spec.doesNotExist > 1' resulted in error: no such key: doesNotExist"
    );
}

#[tokio::test]
async fn policies_that_do_not_compile_are_refused() {
    let (_s, client) = start().await;
    let mut spec = demo_policy();
    spec["validations"] = json!([{"expression": "object.spec.replicas <"},
        {"expression": "object.spec.paused"}]);
    let (code, status) = send(
        &client,
        "POST",
        POLICIES,
        Some(json!({"apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy", "metadata": {"name": "broken"}, "spec": spec})),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    let causes = status["details"]["causes"].as_array().unwrap();
    assert_eq!(causes.len(), 2, "{status}");
    assert_eq!(causes[0]["field"], "spec.validations[0].expression");
    assert!(
        causes[0]["message"]
            .as_str()
            .unwrap()
            .contains("compilation failed: ERROR: <input>:1:"),
        "{status}"
    );
    assert_eq!(
        causes[1]["message"],
        "Invalid value: \"object.spec.paused\": must evaluate to bool but got dyn"
    );
}

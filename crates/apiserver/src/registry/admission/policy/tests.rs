//! Policies evaluated through a real registry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::registry::test_registry::{Answer, info, registry_with};
use crate::registry::{DeleteOptions, WriteOptions};
use std::future::Future;

/// Runs `write` as alice's API request for the core `resource`.
async fn as_request<F>(resource: &str, write: F) -> Answer
where
    F: Future<Output = ApiResult<Value>>,
{
    crate::registry::test_registry::as_request("", resource, write).await
}

async fn registry() -> (Registry, tempfile::TempDir) {
    registry_with(&[
        ("default", json!({})),
        ("test", json!({"environment": "test"})),
    ])
    .await
}

/// Stores a policy (outside any request, as configurations are never admitted).
async fn policy(registry: &Registry, name: &str, spec: Value) {
    registry
        .create(
            info(
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicies",
            ),
            None,
            json!({"metadata": {"name": name}, "spec": spec}),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
}

async fn binding(registry: &Registry, name: &str, spec: Value) {
    registry
        .create(
            info(
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicybindings",
            ),
            None,
            json!({"metadata": {"name": name}, "spec": spec}),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
}

/// Constraints matching ConfigMap creates, updates and deletes.
fn configmaps() -> Value {
    json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["configmaps"]}]})
}

fn configmap(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "demo"}}, "data": data})
}

async fn create_cm(registry: &Registry, ns: &str, name: &str, data: Value) -> Answer {
    let cms = info("", "v1", "configmaps");
    as_request(
        "configmaps",
        registry.create(
            cms,
            Some(ns),
            configmap(name, data),
            &WriteOptions::default(),
        ),
    )
    .await
}

#[tokio::test]
async fn bound_policies_deny_in_selected_namespaces_only() {
    let (registry, _dir) = registry().await;
    let mut spec = json!({"matchConstraints": configmaps(), "validations": [
        {"expression": "size(object.data) <= 2"}]});
    spec["failurePolicy"] = json!("Fail");
    policy(&registry, "small.example.com", spec).await;
    binding(
        &registry,
        "small-test.example.com",
        json!({"policyName": "small.example.com", "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"environment": "test"}}}}),
    )
    .await;
    let big = json!({"a": "1", "b": "2", "c": "3"});
    let err = create_cm(&registry, "test", "big", big.clone())
        .await
        .result
        .unwrap_err();
    let message = "ValidatingAdmissionPolicy 'small.example.com' with binding 'small-test.example.com' denied request: failed expression: size(object.data) <= 2";
    assert_eq!(
        err.message,
        format!("configmaps \"big\" is forbidden: {message}")
    );
    assert_eq!(err.code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err.reason, "Invalid");
    assert_eq!(
        err.details,
        Some(json!({"name": "big", "kind": "configmaps", "causes": [{"message": message}]}))
    );
    create_cm(&registry, "test", "small", json!({"a": "1"}))
        .await
        .result
        .unwrap();
    create_cm(&registry, "default", "big", big)
        .await
        .result
        .unwrap();
}

#[tokio::test]
async fn warn_and_audit_actions_do_not_deny() {
    let (registry, _dir) = registry().await;
    policy(
        &registry,
        "named",
        json!({"matchConstraints": configmaps(), "validations": [
            {"expression": "object.metadata.name.startsWith('ok-')",
             "messageExpression": "'name ' + object.metadata.name + ' lacks the ok- prefix'"}]}),
    )
    .await;
    binding(
        &registry,
        "named-warn",
        json!({"policyName": "named", "validationActions": ["Warn", "Audit"]}),
    )
    .await;
    let answer = create_cm(&registry, "default", "bad", json!({})).await;
    answer.result.unwrap();
    assert_eq!(
        answer.warnings,
        [
            "299 - \"Validation failed for ValidatingAdmissionPolicy 'named' with binding 'named-warn': name bad lacks the ok- prefix\""
        ]
    );
    let answer = create_cm(&registry, "default", "ok-fine", json!({})).await;
    answer.result.unwrap();
    assert!(answer.warnings.is_empty());
}

#[tokio::test]
async fn match_conditions_variables_and_reasons() {
    let (registry, _dir) = registry().await;
    policy(
        &registry,
        "limits",
        json!({"matchConstraints": configmaps(),
            "variables": [{"name": "keys", "expression": "object.data.size()"},
                          {"name": "tooMany", "expression": "variables.keys > 1"}],
            "matchConditions": [{"name": "not-exempt",
                "expression": "!('exempt' in object.metadata.labels)"}],
            "validations": [{"expression": "!variables.tooMany", "reason": "Forbidden",
                "message": "too many keys"}]}),
    )
    .await;
    binding(
        &registry,
        "limits",
        json!({"policyName": "limits", "validationActions": ["Deny"]}),
    )
    .await;
    let err = create_cm(&registry, "default", "two", json!({"a": "1", "b": "2"}))
        .await
        .result
        .unwrap_err();
    assert_eq!(err.code, StatusCode::FORBIDDEN);
    assert_eq!(err.reason, "Forbidden");
    assert!(err.message.ends_with(
        "ValidatingAdmissionPolicy 'limits' with binding 'limits' denied request: too many keys"
    ));
    // The match condition excludes labelled objects.
    let mut exempt = configmap("exempt", json!({"a": "1", "b": "2"}));
    exempt["metadata"]["labels"]["exempt"] = json!("yes");
    as_request(
        "configmaps",
        registry.create(
            info("", "v1", "configmaps"),
            Some("default"),
            exempt,
            &WriteOptions::default(),
        ),
    )
    .await
    .result
    .unwrap();
}

#[tokio::test]
async fn failure_policy_decides_about_errors() {
    let (registry, _dir) = registry().await;
    for (name, failure_policy) in [("fails", "Fail"), ("ignores", "Ignore")] {
        policy(
            &registry,
            name,
            json!({"failurePolicy": failure_policy, "matchConstraints": configmaps(),
                "validations": [{"expression": "object.data.missing == 'x'"}]}),
        )
        .await;
    }
    binding(
        &registry,
        "ignores",
        json!({"policyName": "ignores", "validationActions": ["Deny"]}),
    )
    .await;
    create_cm(&registry, "default", "a", json!({"k": "v"}))
        .await
        .result
        .unwrap();
    binding(
        &registry,
        "fails",
        json!({"policyName": "fails", "validationActions": ["Deny"]}),
    )
    .await;
    let err = create_cm(&registry, "default", "b", json!({"k": "v"}))
        .await
        .result
        .unwrap_err();
    assert_eq!(
        err.message,
        "configmaps \"b\" is forbidden: ValidatingAdmissionPolicy 'fails' with binding 'fails' denied request: expression 'object.data.missing == 'x'' resulted in error: no such key: missing"
    );
    assert_eq!(err.code, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn deletes_see_the_old_object_and_excluded_names_pass() {
    let (registry, _dir) = registry().await;
    let mut constraints = configmaps();
    constraints["excludeResourceRules"] = json!([{"apiGroups": [""], "apiVersions": ["*"],
        "operations": ["*"], "resources": ["configmaps"], "resourceNames": ["kept"]}]);
    policy(
        &registry,
        "no-deletes",
        json!({"matchConstraints": constraints, "validations": [
            {"expression": "request.operation != 'DELETE' || (object == null && oldObject.metadata.name != '')",
             "message": "checked"},
            {"expression": "request.operation != 'DELETE'", "message": "deletes are not allowed"}]}),
    )
    .await;
    binding(
        &registry,
        "no-deletes",
        json!({"policyName": "no-deletes", "validationActions": ["Deny"]}),
    )
    .await;
    for name in ["gone", "kept"] {
        create_cm(&registry, "default", name, json!({}))
            .await
            .result
            .unwrap();
    }
    let cms = info("", "v1", "configmaps");
    let opts = DeleteOptions::default();
    let err = as_request("configmaps", async {
        registry
            .delete(cms, Some("default"), "gone", &opts)
            .await
            .map(|_| Value::Null)
    })
    .await
    .result
    .unwrap_err();
    assert!(
        err.message
            .ends_with("denied request: deletes are not allowed"),
        "{}",
        err.message
    );
    as_request("configmaps", async {
        registry
            .delete(cms, Some("default"), "kept", &opts)
            .await
            .map(|_| Value::Null)
    })
    .await
    .result
    .unwrap();
}

#[tokio::test]
async fn parameters_come_from_the_bindings_param_ref() {
    let (registry, _dir) = registry().await;
    policy(
        &registry,
        "max-keys",
        json!({"matchConstraints": configmaps(),
            "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
            "matchConditions": [{"name": "not-params", "expression": "!has(object.data.maxKeys)"}],
            "validations": [{"expression": "size(object.data) <= int(params.data.maxKeys)",
                "messageExpression": "'at most ' + params.data.maxKeys + ' keys'"}]}),
    )
    .await;
    registry
        .create(
            info("", "v1", "configmaps"),
            Some("default"),
            json!({"metadata": {"name": "limits"}, "data": {"maxKeys": "1"}}),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    binding(
        &registry,
        "max-keys",
        json!({"policyName": "max-keys", "validationActions": ["Deny"],
            "paramRef": {"name": "limits", "parameterNotFoundAction": "Deny"}}),
    )
    .await;
    let err = create_cm(&registry, "default", "two", json!({"a": "1", "b": "2"}))
        .await
        .result
        .unwrap_err();
    assert!(
        err.message.ends_with("denied request: at most 1 keys"),
        "{}",
        err.message
    );
    create_cm(&registry, "default", "one", json!({"a": "1"}))
        .await
        .result
        .unwrap();
    // In `test` there is no `limits` ConfigMap: Deny.
    let err = create_cm(&registry, "test", "one", json!({"a": "1"}))
        .await
        .result
        .unwrap_err();
    assert!(
        err.message.ends_with(
            "ValidatingAdmissionPolicy 'max-keys' with binding 'max-keys' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
        ),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn writes_stop_paying_once_nothing_is_configured() {
    let (registry, _dir) = registry().await;
    assert!(registry.webhooks_configured(), "unsure before listing");
    // The first admitted write starts following every configuration kind.
    create_cm(&registry, "default", "first", json!({}))
        .await
        .result
        .unwrap();
    for _ in 0..500 {
        if !registry.webhooks_configured() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(!registry.webhooks_configured());
    // A binding alone makes requests carry their scope again.
    binding(
        &registry,
        "b",
        json!({"policyName": "p", "validationActions": ["Deny"]}),
    )
    .await;
    assert!(registry.webhooks_configured());
}

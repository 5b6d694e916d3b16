//! CRD validation rules (`x-kubernetes-validations`) through the API: custom objects that
//! fail a rule are refused with upstream's 422, transition rules see the stored object on
//! updates, and CRDs whose rules do not compile are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, start};
use serde_json::{Value, json};

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const WIDGETS: &str = "/apis/rules.example.com/v1/namespaces/default/widgets";

fn crd(spec_schema: Value) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.rules.example.com"},
    "spec": {"group": "rules.example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [{"name": "v1", "served": true, "storage": true,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": spec_schema,
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
            }}}}]}})
}

fn widget(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "rules.example.com/v1", "kind": "Widget",
        "metadata": {"name": name}, "spec": spec})
}

fn causes(status: &Value) -> Vec<(String, String, String)> {
    status["details"]["causes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (s("reason"), s("field"), s("message"))
        })
        .collect()
}

#[tokio::test]
async fn rules_refuse_bad_objects_and_transitions() {
    let (_s, client) = start().await;
    let schema = json!({"type": "object",
    "x-kubernetes-validations": [
        {"rule": "self.replicas <= self.maxReplicas"},
        {"rule": "self.mode in ['fast', 'slow']", "message": "mode must be fast or slow",
         "fieldPath": ".mode"}],
    "properties": {
        "replicas": {"type": "integer"},
        "maxReplicas": {"type": "integer"},
        "mode": {"type": "string", "x-kubernetes-validations": [
            {"rule": "self == oldSelf", "message": "mode is immutable"}]},
        "ports": {"type": "array", "items": {"type": "integer",
            "x-kubernetes-validations": [{"rule": "self > 0 && self < 65536",
                "messageExpression": "'port ' + string(self) + ' is out of range'"}]}},
    }});
    let (code, body) = send(&client, "POST", CRDS, Some(crd(schema))).await;
    assert_eq!(code, 201, "{body}");

    // A bad create: 422 Invalid, upstream's causes and message.
    let bad = widget(
        "bad",
        json!({"replicas": 5, "maxReplicas": 3, "mode": "warp", "ports": [80, 0]}),
    );
    let (code, status) = send(&client, "POST", WIDGETS, Some(bad)).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        causes(&status),
        [
            (
                "FieldValueInvalid".into(),
                "spec".into(),
                "Invalid value: \"object\": failed rule: self.replicas <= self.maxReplicas".into()
            ),
            (
                "FieldValueInvalid".into(),
                "spec.mode".into(),
                "Invalid value: \"object\": mode must be fast or slow".into()
            ),
            (
                "FieldValueInvalid".into(),
                "spec.ports[1]".into(),
                "Invalid value: \"integer\": port 0 is out of range".into()
            ),
        ]
    );
    assert_eq!(
        status["message"],
        "Widget.rules.example.com \"bad\" is invalid: [spec: Invalid value: \"object\": failed rule: self.replicas <= self.maxReplicas, spec.mode: Invalid value: \"object\": mode must be fast or slow, spec.ports[1]: Invalid value: \"integer\": port 0 is out of range]"
    );

    // A missing field the rule reads is an evaluation error.
    let (code, status) = send(
        &client,
        "POST",
        WIDGETS,
        Some(widget("partial", json!({"replicas": 1, "mode": "fast"}))),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        status["message"],
        "Widget.rules.example.com \"partial\" is invalid: spec: Invalid value: \"object\": no such key: maxReplicas evaluating rule: self.replicas <= self.maxReplicas"
    );

    // A good one is stored.
    let good = widget(
        "good",
        json!({"replicas": 2, "maxReplicas": 3, "mode": "fast", "ports": [80]}),
    );
    let (code, created) = send(&client, "POST", WIDGETS, Some(good)).await;
    assert_eq!(code, 201, "{created}");

    // Updates: the transition rule compares with the stored value.
    let url = format!("{WIDGETS}/good");
    let (code, status) = send(
        &client,
        "PATCH",
        &url,
        Some(json!({"spec": {"mode": "slow"}})),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        [(
            "FieldValueInvalid".into(),
            "spec.mode".into(),
            "Invalid value: \"string\": mode is immutable".into()
        )]
    );
    let (code, patched) = send(
        &client,
        "PATCH",
        &url,
        Some(json!({"spec": {"replicas": 3}})),
    )
    .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["spec"]["replicas"], 3);
    let mut replaced = patched.clone();
    replaced["spec"]["replicas"] = json!(4);
    let (code, status) = send(&client, "PUT", &url, Some(replaced)).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(causes(&status)[0].1, "spec");

    // Status writes are validated too (the whole object), and pass here.
    let mut with_status = patched.clone();
    with_status["status"] = json!({"ready": true});
    let (code, body) = send(&client, "PUT", &format!("{url}/status"), Some(with_status)).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn schema_errors_hold_back_the_rules() {
    let (_s, client) = start().await;
    let schema = json!({"type": "object", "required": ["size"],
        "x-kubernetes-validations": [{"rule": "self.size > 1"}],
        "properties": {"size": {"type": "integer"}}});
    let (code, body) = send(&client, "POST", CRDS, Some(crd(schema))).await;
    assert_eq!(code, 201, "{body}");
    let (code, status) = send(
        &client,
        "POST",
        WIDGETS,
        Some(widget("w", json!({"other": 1}))),
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        [
            ("FieldValueRequired".into(), "spec.size".into(), "Required value".into()),
            (
                "FieldValueInvalid".into(),
                "<nil>".into(),
                "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation".into()
            ),
        ]
    );
}

#[tokio::test]
async fn crds_with_rules_that_do_not_compile_are_refused() {
    let (_s, client) = start().await;
    let schema = json!({"type": "object",
        "x-kubernetes-validations": [{"rule": "self.replicas <"}],
        "properties": {"replicas": {"type": "integer"}}});
    let (code, status) = send(&client, "POST", CRDS, Some(crd(schema))).await;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        causes(&status),
        [(
            "FieldValueInvalid".into(),
            "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule".into(),
            "Invalid value: apiextensions.ValidationRule{Rule:\"self.replicas <\", Message:\"\", MessageExpression:\"\", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:\"\", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:16: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n | self.replicas <\n | ...............^".into()
        )]
    );
    // A misspelled field is caught too; a fixed CRD is accepted.
    let typo = json!({"type": "object",
        "x-kubernetes-validations": [{"rule": "self.replicsa > 0"}],
        "properties": {"replicas": {"type": "integer"}}});
    let (code, status) = send(&client, "POST", CRDS, Some(crd(typo))).await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("compilation failed: ERROR: <input>:1:5: undefined field 'replicsa'"),
        "{status}"
    );
    let fixed = json!({"type": "object",
        "x-kubernetes-validations": [{"rule": "self.replicas > 0"}],
        "properties": {"replicas": {"type": "integer"}}});
    let (code, body) = send(&client, "POST", CRDS, Some(crd(fixed))).await;
    assert_eq!(code, 201, "{body}");
    let (code, _) = send(
        &client,
        "POST",
        WIDGETS,
        Some(widget("zero", json!({"replicas": 0}))),
    )
    .await;
    assert_eq!(code, 422);
}

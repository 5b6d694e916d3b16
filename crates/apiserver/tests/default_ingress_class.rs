//! Upstream's `DefaultIngressClass` admission: an Ingress that names no class gets the
//! default IngressClass; an explicit `spec.ingressClassName` or the legacy
//! `kubernetes.io/ingress.class` annotation is kept as it is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, start};
use serde_json::{Value, json};

const CLASSES: &str = "/apis/networking.k8s.io/v1/ingressclasses";
const INGRESSES: &str = "/apis/networking.k8s.io/v1/namespaces/default/ingresses";

fn class(name: &str, default: bool) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
           "metadata": {"name": name, "annotations": {
               "ingressclass.kubernetes.io/is-default-class": default.to_string()}},
           "spec": {"controller": "example.com/ingress"}})
}

fn ingress(name: &str) -> Value {
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name},
        "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}})
}

/// Create `ing`; its class afterwards.
async fn class_of(client: &kube::Client, ing: Value) -> Value {
    let (code, body) = send(client, "POST", INGRESSES, Some(ing)).await;
    assert_eq!(code, 201, "{body}");
    body["spec"]["ingressClassName"].clone()
}

#[tokio::test]
async fn ingresses_without_a_class_get_the_default_one() {
    let (_s, client) = start().await;
    // No default class yet: nothing is filled in.
    assert_eq!(class_of(&client, ingress("before")).await, Value::Null);
    for c in [class("other", false), class("main", true)] {
        let (code, body) = send(&client, "POST", CLASSES, Some(c)).await;
        assert_eq!(code, 201, "{body}");
    }
    assert_eq!(class_of(&client, ingress("plain")).await, json!("main"));
    let mut chosen = ingress("chosen");
    chosen["spec"]["ingressClassName"] = json!("other");
    assert_eq!(class_of(&client, chosen).await, json!("other"));
    // The legacy annotation names a class too: no default is added next to it.
    let mut legacy = ingress("legacy");
    legacy["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": "other"});
    assert_eq!(class_of(&client, legacy).await, Value::Null);
    // Only "true" marks a default.
    let mut loose = class("loose", false);
    loose["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] = json!("True");
    let (code, body) = send(&client, "POST", CLASSES, Some(loose)).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(class_of(&client, ingress("again")).await, json!("main"));
}

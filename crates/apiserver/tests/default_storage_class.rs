//! Upstream's `DefaultStorageClass` admission: a claim that names no class gets the
//! default one (the newest when several are marked); `storageClassName: ""` asks for no
//! class and is kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, start};
use serde_json::{Value, json};

const CLASSES: &str = "/apis/storage.k8s.io/v1/storageclasses";
const CLAIMS: &str = "/api/v1/namespaces/default/persistentvolumeclaims";

fn class(name: &str, default: bool) -> Value {
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
           "metadata": {"name": name, "annotations": {
               "storageclass.kubernetes.io/is-default-class": default.to_string()}},
           "provisioner": "example.com/p"})
}

fn claim(name: &str, class: Option<&str>) -> Value {
    let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    if let Some(cl) = class {
        c["spec"]["storageClassName"] = json!(cl);
    }
    c
}

async fn class_of(client: &kube::Client, c: Value) -> Value {
    let (code, body) = send(client, "POST", CLAIMS, Some(c)).await;
    assert_eq!(code, 201, "{body}");
    body["spec"]["storageClassName"].clone()
}

#[tokio::test]
async fn claims_without_a_class_get_the_default_one() {
    let (_s, client) = start().await;
    // No default class yet: nothing is filled in.
    assert_eq!(class_of(&client, claim("before", None)).await, Value::Null);
    for c in [class("slow", false), class("fast", true)] {
        let (code, body) = send(&client, "POST", CLASSES, Some(c)).await;
        assert_eq!(code, 201, "{body}");
    }
    assert_eq!(class_of(&client, claim("plain", None)).await, json!("fast"));
    assert_eq!(class_of(&client, claim("none", Some(""))).await, json!(""));
    assert_eq!(
        class_of(&client, claim("chosen", Some("slow"))).await,
        json!("slow")
    );
}

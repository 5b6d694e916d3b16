//! Upstream's NamespaceLifecycle admission through HTTPS: creating into a missing namespace
//! is 404, into a terminating one 403 — right after the namespace changed (before any
//! watch could catch up) and once the server's namespace cache has caught up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{send, start};
use kube::Client;
use serde_json::{Value, json};
use std::time::Duration;

async fn create_namespace(client: &Client, name: &str) {
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let (code, out) = send(client, "POST", "/api/v1/namespaces", Some(body)).await;
    assert_eq!(code, 201, "{out}");
}

async fn create_configmap(client: &Client, ns: &str, name: &str) -> (u16, Value) {
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
    let path = format!("/api/v1/namespaces/{ns}/configmaps");
    send(client, "POST", &path, Some(body)).await
}

async fn delete_namespace(client: &Client, name: &str) {
    let (code, out) = send(
        client,
        "DELETE",
        &format!("/api/v1/namespaces/{name}"),
        None,
    )
    .await;
    assert_eq!(code, 200, "{out}");
    assert_eq!(out["status"]["phase"], "Terminating", "{out}");
}

fn assert_refused_terminating(code: u16, out: &Value, ns: &str) {
    assert_eq!(code, 403, "{out}");
    assert_eq!(out["reason"], "Forbidden", "{out}");
    assert_eq!(
        out["message"],
        format!("unable to create new content in namespace {ns} because it is being terminated"),
    );
}

#[tokio::test]
async fn creates_follow_the_namespace_at_once() {
    let (_server, client) = start().await;
    let (code, out) = create_configmap(&client, "missing", "cm").await;
    assert_eq!(code, 404, "{out}");
    assert_eq!(out["reason"], "NotFound", "{out}");
    assert_eq!(out["details"]["kind"], "namespaces", "{out}");

    // No pause anywhere: each request sees the previous one's effect.
    create_namespace(&client, "fresh").await;
    let (code, out) = create_configmap(&client, "fresh", "cm").await;
    assert_eq!(code, 201, "{out}");
    delete_namespace(&client, "fresh").await;
    let (code, out) = create_configmap(&client, "fresh", "cm2").await;
    assert_refused_terminating(code, &out, "fresh");
}

#[tokio::test]
async fn creates_follow_the_namespace_once_cached() {
    let (_server, client) = start().await;
    create_namespace(&client, "warm").await;
    // Let the namespace watch deliver, so the next create is admitted from the cache.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3 {
        let (code, out) = create_configmap(&client, "warm", &format!("cm{i}")).await;
        assert_eq!(code, 201, "{out}");
    }
    delete_namespace(&client, "warm").await;
    let (code, out) = create_configmap(&client, "warm", "late").await;
    assert_refused_terminating(code, &out, "warm");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, out) = create_configmap(&client, "warm", "later").await;
    assert_refused_terminating(code, &out, "warm");
}

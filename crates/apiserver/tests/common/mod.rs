//! Shared by the API server's integration tests: an in-process server with a kube-rs
//! client for its admin kubeconfig, and raw requests for what typed clients cannot send.
// Each test binary uses a different part of this module.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use kube::Client;
use r8s_apiserver::testing::TestServer;
use serde_json::Value;

/// A kube-rs client for `server`'s admin kubeconfig.
pub async fn client(server: &TestServer) -> Client {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(cfg).unwrap()
}

/// A fresh server and a client for it.
pub async fn start() -> (TestServer, Client) {
    let server = TestServer::start().await;
    let client = client(&server).await;
    (server, client)
}

/// A raw request with extra headers: (status code, JSON body or `Null`). PATCH bodies are
/// sent as merge patches.
pub async fn send_as(
    client: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let content_type = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    let resp = client
        .send(req.body(kube::client::Body::from(body)).unwrap())
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect_bytes().await.unwrap();
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// [`send_as`] without extra headers.
pub async fn send(client: &Client, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    send_as(client, method, path, body, &[]).await
}

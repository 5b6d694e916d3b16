//! Test plumbing: an in-process API server, an admin client, controllers running in the
//! background for the duration of a test, and bounded polling.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::PostParams;
use kube::{Api, Client};
use r8s_apiserver::testing::TestServer;
use r8s_controllers::Context;
use serde_json::json;
use std::future::Future;
use std::time::Duration;

/// A test server and an admin client for it.
pub async fn start() -> (TestServer, Client) {
    let server = TestServer::start().await;
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("client config");
    let client = Client::try_from(cfg).expect("client");
    (server, client)
}

/// Aborts the task when dropped, so a controller stops with its test.
pub struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Run a controller's `run(ctx)` in the background.
pub fn run<F, Fut>(client: &Client, f: F) -> Running
where
    F: FnOnce(Context) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let fut = f(Context::new(client.clone()));
    Running(tokio::spawn(async move {
        if let Err(e) = fut.await {
            panic!("controller failed: {e}");
        }
    }))
}

/// Create namespace `name`.
pub async fn namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

/// Poll `check` until it returns `Some`, failing the test after `secs` seconds.
pub async fn wait_for<T, F, Fut>(what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! Memory of a real `r8s server --disable-agent` process: resident set size once it is
//! ready and idle, and again after it holds many pods created through the API.

use crate::client::{Client, request};
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use r8s_bench::{Measurement, run_concurrent};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Kills the child process when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A spawned server; killed (and its data removed) on drop.
pub struct Spawned {
    child: ChildGuard,
    pub client: Client,
    _dir: tempfile::TempDir,
}

/// The `r8s` binary next to this one (`target/release/r8s`).
pub fn default_server_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("r8s")))
        .unwrap_or_else(|| PathBuf::from("r8s"))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Start `bin server` on a loopback port with a fresh data dir; wait until `/readyz`.
pub async fn spawn(bin: &Path, base: &Path) -> Result<Spawned> {
    let dir = tempfile::Builder::new()
        .prefix("r8s-api-bench-server")
        .tempdir_in(base)?;
    let port = free_port()?;
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let child = Command::new(bin)
        .args(["server", "--data-dir"])
        .arg(dir.path())
        .args([
            "--bind-address",
            "127.0.0.1",
            "--node-ip",
            "127.0.0.1",
            "--disable-agent",
        ])
        .args(["--https-listen-port", &port.to_string()])
        .env("R8S_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("run {}", bin.display()))?;
    let mut child = ChildGuard(child);
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            bail!("r8s server exited early: {status}");
        }
        if Instant::now() > deadline {
            bail!("r8s server not ready in 60s");
        }
        if let Ok(client) = Client::from_kubeconfig(&kubeconfig)
            && let Ok(mut conn) = client.http1().await
            && conn.call("GET", "/readyz", None, 200).await.is_ok()
        {
            return Ok(Spawned {
                child,
                client,
                _dir: dir,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Spawned {
    /// VmRSS of the server process in KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        rss_kib_of(&self.child.0.id().to_string())
    }
}

/// VmRSS of a process (`self` for this one) in KiB.
pub fn rss_kib_of(pid: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

/// Create `count` pods in a new namespace through `clients` connections.
pub async fn create_pods(client: &Client, count: usize, clients: usize) -> Result<Measurement> {
    let mut setup = client.http1().await?;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "rss"}});
    setup
        .call(
            "POST",
            "/api/v1/namespaces",
            Some(Bytes::from(serde_json::to_vec(&ns)?)),
            201,
        )
        .await?;
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Mutex::new(client.http1().await?));
    }
    let conns = Arc::new(conns);
    run_concurrent(clients, count, move |c, i| {
        let conns = conns.clone();
        async move {
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("pod-{i}"), "namespace": "rss", "labels": {"app": "bench", "shard": (i % 16).to_string()}},
                "spec": {"containers": [{
                    "name": "app", "image": "nginx:1.25",
                    "ports": [{"containerPort": 80}],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}
                }]}
            });
            let body = Bytes::from(serde_json::to_vec(&pod)?);
            let req = request("POST", "/api/v1/namespaces/rss/pods", Some(body))?;
            let status = conns[c].lock().await.send(req).await?;
            if status != 201 {
                bail!("create pod-{i}: {status}");
            }
            Ok(())
        }
    })
    .await
}

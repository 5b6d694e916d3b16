//! An in-process API server for other crates' integration tests (controllers, scheduler,
//! kubelet): embedded SQLite in a temp dir, HTTPS on a free loopback port, admin
//! kubeconfig written. Not for production use.

pub mod webhook;

use crate::server::{self, Config, Running};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// A running test server; stops when dropped.
pub struct TestServer {
    pub running: Running,
    /// Admin kubeconfig (client certificate for system:admin).
    pub kubeconfig: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Start a fresh server.
    pub async fn start() -> TestServer {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let db = dir.path().join("server").join("db").join("state.db");
        let store = match r8s_store::open("", &db).await {
            Ok(s) => s,
            Err(e) => panic!("store: {e}"),
        };
        let cfg = Config {
            data_dir: dir.path().to_path_buf(),
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            advertise_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            service_cidr: "10.43.0.0/16".into(),
            write_kubeconfig: None,
            tls_sans: Vec::new(),
            // Tests feed usage in themselves (`state.resource_metrics`); a scrape finding
            // their fake nodes unreachable would drop it, so there is one, at start.
            metric_resolution: std::time::Duration::from_secs(24 * 3600),
        };
        let running = match server::start(cfg, store).await {
            Ok(r) => r,
            Err(e) => panic!("start: {e}"),
        };
        // No serviceaccount controller runs next to a bare test server, so pods would
        // wait for a `default` ServiceAccount that never comes: like upstream's
        // integration tests, run without the ServiceAccount admission plugin. Tests that
        // want it call `running.state.registry.set_service_account_admission(true)`.
        running.state.registry.set_service_account_admission(false);
        // Wait for bootstrap (system namespaces).
        for _ in 0..200 {
            if running
                .state
                .ready
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let url = format!("https://127.0.0.1:{}", running.local_addr.port());
        TestServer {
            kubeconfig: running.kubeconfig.clone(),
            running,
            url,
            dir,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.running.abort();
    }
}

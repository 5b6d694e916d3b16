//! A spawned `r8s server --disable-agent` (fresh data dir, loopback port) for benchmarks
//! that measure the real binary: its controller manager and scheduler run as they do in
//! production, and its memory is its own process's.

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::Api;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("r8s server exited early ({0}); see {1}")]
    Exited(std::process::ExitStatus, PathBuf),
    #[error("r8s server not ready in {0:?}; see {1}")]
    NotReady(Duration, PathBuf),
}

/// A running server; killed (and its data removed) when dropped.
pub struct SpawnedServer {
    child: Child,
    /// Admin kubeconfig the server wrote.
    pub kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

/// The `r8s` binary next to the running one (`target/release/r8s` for a release bench).
pub fn default_server_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("r8s")))
        .unwrap_or_else(|| PathBuf::from("r8s"))
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl SpawnedServer {
    /// Run `bin server --disable-agent` on a free loopback port with a fresh data dir
    /// under `base`, plus `extra` arguments; return once the controllers have created the
    /// `default` ServiceAccount of the `default` namespace (pods can be created then:
    /// the real server runs the ServiceAccount admission plugin).
    pub async fn start(bin: &Path, base: &Path, extra: &[&str]) -> Result<Self, SpawnError> {
        let dir = tempfile::Builder::new()
            .prefix("r8s-bench-server")
            .tempdir_in(base)?;
        let port = free_port()?;
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path)?;
        let child = Command::new(bin)
            .args(["server", "--data-dir"])
            .arg(dir.path())
            .args(["--bind-address", "127.0.0.1", "--node-ip", "127.0.0.1"])
            .args(["--disable-agent", "--https-listen-port", &port.to_string()])
            .args(extra)
            .env("R8S_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let mut server = SpawnedServer {
            child,
            kubeconfig: dir.path().join("kubeconfig.yaml"),
            dir,
        };
        let limit = Duration::from_secs(120);
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = server.child.try_wait()? {
                return Err(SpawnError::Exited(status, log_path));
            }
            if Instant::now() > deadline {
                return Err(SpawnError::NotReady(limit, log_path));
            }
            if server.has_default_service_account().await {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn has_default_service_account(&self) -> bool {
        let Ok(kc) = kube::config::Kubeconfig::read_from(&self.kubeconfig) else {
            return false;
        };
        let Ok(cfg) = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await else {
            return false;
        };
        let Ok(client) = kube::Client::try_from(cfg) else {
            return false;
        };
        Api::<ServiceAccount>::namespaced(client, "default")
            .get_opt("default")
            .await
            .is_ok_and(|sa| sa.is_some())
    }

    /// The server's data directory (its log is `server.log` there).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// VmRSS and VmHWM (peak) of the server process, in KiB.
    pub fn rss_kib(&self) -> Option<(u64, u64)> {
        rss_kib_of(&self.child.id().to_string())
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS and VmHWM (peak) of a process (`self` for this one), in KiB.
pub fn rss_kib_of(pid: &str) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_rss(&status)
}

fn parse_rss(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rss_and_peak() {
        let s = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_rss(s), Some((1024, 2048)));
        assert_eq!(parse_rss("Name:\tx\n"), None);
        assert!(rss_kib_of("self").is_some_and(|(rss, peak)| rss > 0 && peak >= rss));
    }
}

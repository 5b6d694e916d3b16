//! A private, throw-away etcd server for tests and benchmarks (not for production use).
//!
//! The server runs under a small `sh` wrapper whose stdin is a pipe owned by
//! [`EtcdProcess`]: when the owner is dropped — or the whole process exits, even with the
//! handle in a `static` that is never dropped — the pipe closes and the wrapper stops etcd
//! and removes its data directory. No stray etcd outlives the test process.

use crate::{Error, Result};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Environment variable naming the etcd binary (default: `etcd` on `PATH`).
pub const ETCD_BIN_ENV: &str = "R8S_ETCD_BIN";

/// Environment variable with the etcd endpoints tests should use instead of a private etcd.
pub const TEST_ENDPOINTS_ENV: &str = "R8S_TEST_ETCD_ENDPOINTS";

const WRAPPER: &str = r#"
dir="$1"; shift
"$@" </dev/null >"$dir.log" 2>&1 &
pid=$!
read -r line
kill "$pid" 2>/dev/null
wait "$pid"
rm -rf "$dir" "$dir.log"
"#;

/// A running private etcd; stopped (and its data removed) when dropped.
#[derive(Debug)]
pub struct EtcdProcess {
    wrapper: Child,
    endpoint: String,
    data_dir: PathBuf,
}

impl EtcdProcess {
    /// Start an etcd with its data under the system temp directory.
    pub async fn spawn() -> Result<Self> {
        Self::spawn_in(&std::env::temp_dir()).await
    }

    /// Start an etcd with its data in a fresh directory under `base`, listening on free
    /// loopback ports, and wait until it serves requests.
    pub async fn spawn_in(base: &Path) -> Result<Self> {
        let mut last = String::new();
        // Free ports are found by binding and releasing them; another process may grab
        // one in between, so retry with new ports a few times.
        for _ in 0..3 {
            match Self::try_spawn(base).await {
                Ok(p) => return Ok(p),
                Err(Error::Unavailable(m)) => last = m,
                Err(e) => last = e.to_string(),
            }
        }
        Err(Error::Unavailable(format!(
            "could not start a private etcd: {last}"
        )))
    }

    async fn try_spawn(base: &Path) -> Result<Self> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let bin = std::env::var(ETCD_BIN_ENV).unwrap_or_else(|_| "etcd".to_string());
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let data_dir = base.join(format!(
            "r8s-etcd-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let client = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let dir_arg = data_dir.to_string_lossy().into_owned();
        let wrapper = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .arg("r8s-etcd")
            .arg(&dir_arg)
            .arg(&bin)
            .args(["--name", "default", "--data-dir", &dir_arg])
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .arg("--initial-cluster")
            .arg(format!("default={peer}"))
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Unavailable(format!("cannot run sh to start {bin}: {e}")))?;
        let mut proc = Self {
            wrapper,
            endpoint: client,
            data_dir,
        };
        proc.wait_ready(&bin).await?;
        Ok(proc)
    }

    /// Poll until etcd answers a request; fail early if it exited.
    async fn wait_ready(&mut self, bin: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let opts = super::Options {
            connect_timeout: Duration::from_millis(500),
            ..Default::default()
        };
        loop {
            let endpoints = [self.endpoint.clone()];
            if super::EtcdStore::connect(&endpoints, opts.clone())
                .await
                .is_ok()
            {
                return Ok(());
            }
            let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
            let exited = log.contains("\"level\":\"fatal\"")
                || log.contains("not found")
                || log.contains("No such file")
                || matches!(self.wrapper.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(Error::Unavailable(format!(
                    "{bin} at {} did not become ready (is etcd installed? set {ETCD_BIN_ENV}): {tail}",
                    self.endpoint
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_path(&self) -> PathBuf {
        let mut p = self.data_dir.clone().into_os_string();
        p.push(".log");
        PathBuf::from(p)
    }

    /// The client URL, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The data directory (removed when the process is stopped).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        // Closing the wrapper's stdin makes it stop etcd and clean up.
        if let Some(mut stdin) = self.wrapper.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.wrapper.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.wrapper.kill();
        let _ = self.wrapper.wait();
    }
}

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Unavailable(format!("no free loopback port: {e}")))
}

/// The etcd endpoints for tests: `R8S_TEST_ETCD_ENDPOINTS` if set, else a private etcd
/// started once for this process (and stopped when it exits). Fails if neither works.
pub async fn test_endpoints() -> Result<Vec<String>> {
    if let Ok(eps) = std::env::var(TEST_ENDPOINTS_ENV) {
        let eps: Vec<String> = eps
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if !eps.is_empty() {
            return Ok(eps);
        }
    }
    private_endpoints().await
}

/// A private etcd for this process (started on first use), regardless of the environment:
/// for checks that must not share etcd with other processes (compaction is cluster-wide).
pub async fn private_endpoints() -> Result<Vec<String>> {
    static PRIVATE: tokio::sync::OnceCell<EtcdProcess> = tokio::sync::OnceCell::const_new();
    let p = PRIVATE.get_or_try_init(EtcdProcess::spawn).await?;
    Ok(vec![p.endpoint().to_string()])
}

/// A root prefix no other store (in any process) uses, for isolating tests in one etcd.
pub fn unique_prefix(tag: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "/r8s-test/{tag}-{}-{nanos}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh store under a unique prefix in the test etcd (see [`test_endpoints`]).
pub async fn test_store(tag: &str) -> Result<super::EtcdStore> {
    let endpoints = test_endpoints().await?;
    let opts = super::Options {
        prefix: unique_prefix(tag),
        ..Default::default()
    };
    super::EtcdStore::connect(&endpoints, opts).await
}

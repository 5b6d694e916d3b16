//! Test harness: an in-process API server, a kubelet with its own containerd in a temp
//! dir, a per-test pod network (bridge `r8stN`, subnet 10.199.N.0/24), and cleanup of
//! every process, mount, sandbox and interface the test created.
#![allow(dead_code)]

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use r8s_apiserver::testing::TestServer;
use r8s_kubelet::{Kubelet, KubeletConfig};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

pub struct Env {
    pub server: TestServer,
    pub client: kube::Client,
    pub kubelet: tokio::sync::Mutex<Option<Kubelet>>,
    pub cri: r8s_kubelet::cri::Cri,
    pub dir: tempfile::TempDir,
    pub node: String,
    pub bridge: String,
    pub config: KubeletConfig,
}

/// Whether this machine can run the tests (root, containerd, runc, CNI plugins).
pub fn supported() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let have = |b: &str| {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(b).is_file()))
            .unwrap_or(false)
    };
    let ok = root
        && have("containerd")
        && have("runc")
        && have("ctr")
        && std::path::Path::new("/usr/lib/cni/bridge").exists();
    if !ok {
        eprintln!("skipping: needs root, containerd, runc, ctr and /usr/lib/cni");
    }
    ok
}

impl Env {
    /// `n` must be unique per test (it picks the bridge and subnet).
    pub async fn start(n: u8) -> Env {
        let server = TestServer::start().await;
        let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        let client = kube::Client::try_from(cfg).expect("client");
        let dir = tempfile::Builder::new()
            .prefix("r8s-kubelet-test")
            .tempdir()
            .expect("tempdir");
        let node = format!("node-{n}");
        let bridge = format!("r8st{n}");
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &bridge])
            .output();
        let mut kcfg = KubeletConfig::new(
            &node,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            dir.path().to_path_buf(),
        );
        kcfg.cluster_cidr = format!("10.199.{n}.0/24");
        kcfg.cni_bridge = bridge.clone();
        let kubelet = Kubelet::start(client.clone(), kcfg.clone())
            .await
            .expect("kubelet start");
        let cri = kubelet.cri.clone();
        Env {
            server,
            client,
            kubelet: tokio::sync::Mutex::new(Some(kubelet)),
            cri,
            dir,
            node,
            bridge,
            config: kcfg,
        }
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a pod bound to this node from JSON (`spec.nodeName` is filled in).
    pub async fn create_pod(&self, mut v: serde_json::Value) -> Pod {
        v["apiVersion"] = "v1".into();
        v["kind"] = "Pod".into();
        v["spec"]["nodeName"] = self.node.clone().into();
        let pod: Pod = serde_json::from_value(v).expect("pod json");
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod")
    }

    /// Waits until `pred` holds for the pod (polling the API every 50 ms).
    pub async fn wait_pod(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Pod) -> bool,
    ) -> Pod {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(p) = self.pods().get(name).await {
                if pred(&p) {
                    return p;
                }
                last = Some(p);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for pod {name} to be {what}; last status: {}",
            serde_json::to_string_pretty(&last.and_then(|p| p.status)).unwrap_or_default()
        );
    }

    /// Waits until the pod object is gone.
    pub async fn wait_gone(&self, name: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.pods().get_opt(name).await.expect("get").is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pod {name} still exists after {timeout:?}");
    }

    pub async fn delete_pod(&self, name: &str) {
        self.pods()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }

    pub fn cri(&self) -> r8s_kubelet::cri::Cri {
        self.cri.clone()
    }

    /// Interfaces attached to this test's bridge (one veth per running sandbox).
    pub fn bridge_ports(&self) -> usize {
        let out = std::process::Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    }

    /// Stops the kubelet and its containerd, leaving pods running, and starts them again.
    pub async fn restart_kubelet(&self, while_down: impl std::future::Future<Output = ()>) {
        let mut k = self.kubelet.lock().await;
        if let Some(old) = k.take() {
            old.shutdown(false).await;
        }
        while_down.await;
        *k = Some(
            Kubelet::start(self.client.clone(), self.config.clone())
                .await
                .expect("kubelet restart"),
        );
    }

    /// Runs a command in a container through CRI; returns (exit code, stdout+stderr).
    pub async fn exec(&self, pod: &Pod, container: &str, cmd: &[&str]) -> (i32, String) {
        let id = container_status(pod, container)
            .and_then(|c| c.container_id.clone())
            .expect("container id");
        let id = id.trim_start_matches("containerd://");
        let out = self
            .cri
            .exec_sync(id, cmd.iter().map(|s| s.to_string()).collect(), 10)
            .await
            .expect("exec");
        let mut text = String::from_utf8_lossy(&out.stdout).to_string();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.exit_code, text)
    }

    /// Stops everything and removes what the test created.
    pub async fn stop(&self) {
        if let Some(k) = self.kubelet.lock().await.take() {
            k.shutdown(true).await;
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        unmount_under(self.dir.path());
    }
}

/// Runs a test body against a fresh environment and always cleans up, also when the
/// body panics (the panic is re-raised afterwards).
pub async fn run_test<F, Fut>(n: u8, body: F)
where
    F: FnOnce(std::sync::Arc<Env>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::FutureExt;
    if !supported() {
        return;
    }
    let env = std::sync::Arc::new(Env::start(n).await);
    let result = std::panic::AssertUnwindSafe(body(env.clone()))
        .catch_unwind()
        .await;
    env.stop().await;
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

/// Lazily detaches every mount below `root` (deepest first).
pub fn unmount_under(root: &std::path::Path) {
    let prefix = root.to_string_lossy().to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut targets: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| t.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = std::process::Command::new("umount")
            .args(["-l", t])
            .output();
    }
}

pub fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn container_status<'a>(
    p: &'a Pod,
    name: &str,
) -> Option<&'a k8s_openapi::api::core::v1::ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

pub fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

/// A plain HTTP/1.0 GET; returns the whole response.
pub async fn http_get(ip: &str, port: u16, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect((ip, port)),
    )
    .await
    .map_err(|_| std::io::Error::other("connect timeout"))??;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n").as_bytes())
        .await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out))
        .await
        .map_err(|_| std::io::Error::other("read timeout"))??;
    Ok(String::from_utf8_lossy(&out).to_string())
}

//! The r8s node agent (kubelet): supervises containerd (or uses an external CRI
//! endpoint), imports air-gap image archives, registers the Node and keeps its status and
//! Lease fresh, writes the CNI config for the node's pod CIDR, and runs the pods bound to
//! the node through CRI. It is a kube-rs client of the API server, like every component.

pub mod cni;
pub mod command;
pub mod containerd;
pub mod cri;
pub mod dns;
pub mod error;
pub mod images;
pub mod ingress;
pub mod mirror;
pub mod netpol;
pub mod node;
pub mod pod;
pub mod proxy;
pub mod server;
pub mod stats;
pub mod sysinfo;

pub use error::{Error, Result};
pub use server::ServerTls;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::info;

/// Node agent settings.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    pub node_name: String,
    /// InternalIP of the node (pods' hostIP).
    pub node_ip: IpAddr,
    /// `--data-dir`; the agent uses `DATA_DIR/agent`.
    pub data_dir: PathBuf,
    /// External CRI endpoint (`unix:///run/containerd/containerd.sock`); None = start and
    /// supervise containerd under `DATA_DIR/agent/containerd`.
    pub runtime_endpoint: Option<String>,
    /// Cluster pod CIDR the node's /24 is taken from when `spec.podCIDR` is empty.
    pub cluster_cidr: String,
    /// Allocate `spec.podCIDR` when the Node has none (standalone use, no controller
    /// manager). False: wait for the controller manager's node IPAM to set it, as
    /// upstream's kubelet does.
    pub allocate_pod_cidr: bool,
    /// Cluster DNS service IP (None: pods get the host's resolv.conf).
    pub cluster_dns: Option<IpAddr>,
    pub cluster_domain: String,
    /// Adds the `node-role.kubernetes.io/control-plane` label.
    pub control_plane: bool,
    /// Linux bridge of the pod network.
    pub cni_bridge: String,
    /// CNI plugin binaries.
    pub cni_bin_dir: PathBuf,
    /// Pod capacity reported for the node.
    pub max_pods: u32,
    /// Build and import the built-in images (pause sandbox, `nginx:1.14.2`,
    /// `busybox:1.36`) when they are missing.
    pub builtin_images: bool,
    /// Where the kubelet's HTTPS server (logs, exec, attach, port-forward) listens; None =
    /// no server. Port 0 picks a free port: [`Kubelet::config`] then holds the bound
    /// address, which is also the port the Node reports in
    /// `status.daemonEndpoints.kubeletEndpoint`.
    pub server_addr: Option<SocketAddr>,
    /// Serving certificate/key and client CA of that server (required with `server_addr`).
    pub server_tls: Option<ServerTls>,
}

impl KubeletConfig {
    /// Defaults: cluster CIDR 10.42.0.0/16, domain cluster.local, bridge r8s0.
    pub fn new(node_name: &str, node_ip: IpAddr, data_dir: PathBuf) -> Self {
        KubeletConfig {
            node_name: node_name.to_string(),
            node_ip,
            data_dir,
            runtime_endpoint: None,
            cluster_cidr: "10.42.0.0/16".into(),
            allocate_pod_cidr: true,
            cluster_dns: None,
            cluster_domain: "cluster.local".into(),
            control_plane: false,
            cni_bridge: "r8s0".into(),
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            max_pods: 110,
            builtin_images: true,
            server_addr: None,
            server_tls: None,
        }
    }

    pub fn agent_dir(&self) -> PathBuf {
        self.data_dir.join("agent")
    }

    /// Where air-gap image archives are picked up at start.
    pub fn images_dir(&self) -> PathBuf {
        self.agent_dir().join("images")
    }

    /// The CRI socket in use.
    pub fn runtime_socket(&self) -> PathBuf {
        match &self.runtime_endpoint {
            Some(e) => cri::socket_path(e),
            None => containerd::ContainerdConfig::new(&self.data_dir).socket(),
        }
    }
}

/// The CRI socket of the agent's own containerd under `data_dir`.
pub fn default_socket(data_dir: &Path) -> PathBuf {
    containerd::ContainerdConfig::new(data_dir).socket()
}

/// Imports image archives into the runtime at `socket` (e.g. for `r8s images import`).
pub async fn import_images(socket: &Path, files: &[PathBuf]) -> Result<()> {
    images::import_all(socket, files).await
}

/// Builds (into `DATA_DIR/agent/builtin-images`) and imports the built-in images that the
/// runtime does not have yet. The sandbox image is always ensured.
pub async fn ensure_builtin_images(cfg: &KubeletConfig, cri: &cri::Cri) -> Result<()> {
    let dir = cfg.agent_dir().join("builtin-images");
    type Builder = fn(&Path) -> Result<images::ArchiveInfo>;
    let mut wanted: Vec<(&str, &str, Builder)> =
        vec![(images::PAUSE_IMAGE, "pause.tar", images::build_pause_image)];
    if cfg.builtin_images {
        wanted.push((images::NGINX_IMAGE, "nginx.tar", images::build_nginx_image));
        wanted.push((images::BUSYBOX_IMAGE, "busybox.tar", |p| {
            images::build_busybox_image(images::BUSYBOX_IMAGE, &["sh"], p)
        }));
    }
    for (name, file, build) in wanted {
        if cri.image_status(name).await?.is_some() {
            continue;
        }
        let path = dir.join(file);
        let p = path.clone();
        tokio::task::spawn_blocking(move || build(&p))
            .await
            .map_err(|e| Error::Runtime(format!("image build task: {e}")))??;
        images::import(cri.socket(), &path).await?;
        info!(image = name, "imported built-in image");
    }
    Ok(())
}

/// Waits (bounded) until the runtime reports NetworkReady, i.e. it loaded the CNI config
/// just written, so the first sandbox does not fail and back off.
async fn wait_network_ready(cri: &cri::Cri, timeout: std::time::Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Ok(s) = cri.status().await {
            let conds = s.status.map(|s| s.conditions).unwrap_or_default();
            if conds.iter().any(|c| c.r#type == "NetworkReady" && c.status) {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tracing::warn!("container runtime network not ready after {timeout:?}; pods will retry");
}

/// A running agent. Dropping it stops the background tasks (and the supervised
/// containerd, by SIGKILL); prefer [`Kubelet::shutdown`].
pub struct Kubelet {
    pub cri: cri::Cri,
    pub config: Arc<KubeletConfig>,
    containerd: Option<containerd::Containerd>,
    tasks: tokio::task::JoinSet<anyhow::Result<()>>,
}

impl Kubelet {
    /// Starts everything and returns once the node is registered and pod sync runs.
    pub async fn start(client: kube::Client, mut cfg: KubeletConfig) -> anyhow::Result<Kubelet> {
        // Bind first: the Node must report the real port.
        let server = match (cfg.server_addr, &cfg.server_tls) {
            (Some(addr), Some(tls)) => {
                let s = server::Server::bind(addr, tls).await?;
                cfg.server_addr = Some(s.local_addr());
                Some(s)
            }
            (Some(_), None) => {
                return Err(Error::Config("server_addr is set without server_tls".into()).into());
            }
            (None, _) => None,
        };
        let cfg = Arc::new(cfg);
        std::fs::create_dir_all(cfg.images_dir())?;
        let cluster_cidr: cni::Cidr = cfg.cluster_cidr.parse()?;
        let containerd = match &cfg.runtime_endpoint {
            Some(_) => {
                containerd::wait_ready(&cfg.runtime_socket(), std::time::Duration::from_secs(60))
                    .await?;
                None
            }
            None => {
                let mut cc = containerd::ContainerdConfig::new(&cfg.data_dir);
                cc.cni_bin_dir = cfg.cni_bin_dir.clone();
                Some(containerd::Containerd::start(cc).await?)
            }
        };
        let cri = cri::Cri::new(&cfg.runtime_socket())?;
        // Dropping the set (also on an early error return) stops every task in it.
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(s) = server {
            let (c, r, n) = (client.clone(), cri.clone(), cfg.node_name.clone());
            tasks.spawn(async move {
                s.serve(c, r, n).await;
                Ok(())
            });
        }
        // Registration and images are independent: overlap them.
        let images_fut = async {
            let files = images::archives_in(&cfg.images_dir())?;
            images::import_all(cri.socket(), &files).await?;
            ensure_builtin_images(&cfg, &cri).await
        };
        let node_fut = async {
            let node = node::register(&client, &cfg).await?;
            let cidr = if cfg.allocate_pod_cidr {
                cni::ensure_pod_cidr(&client, &cfg.node_name, &cluster_cidr).await?
            } else {
                cni::wait_pod_cidr(&client, &cfg.node_name).await?
            };
            let agent = cfg.agent_dir();
            cni::write_conflist(
                &agent.join("cni").join("net.d"),
                &cfg.cni_bridge,
                &cidr,
                &agent.join("cni").join("ipam"),
            )?;
            Ok::<_, Error>((node, cidr))
        };
        let (imported, registered) = tokio::join!(images_fut, node_fut);
        imported?;
        let (node, cidr) = registered?;
        info!(node = %cfg.node_name, pod_cidr = %cidr, "node registered");
        wait_network_ready(&cri, std::time::Duration::from_secs(10)).await;
        let uid = node.metadata.uid.clone().unwrap_or_default();
        let host = sysinfo::HostInfo::read(&cfg.data_dir);
        let (services, services_fut) = pod::service_store(client.clone());
        tasks.spawn(async move {
            services_fut.await;
            Ok(())
        });
        let ctx = Arc::new(pod::PodContext {
            client: client.clone(),
            cfg: cfg.clone(),
            cri: cri.clone(),
            services,
            node_cpu_milli: i128::from(host.cpus) * 1000,
            node_memory: i128::from(host.memory_total_kib) * 1024,
        });
        let (c1, f1, r1) = (client.clone(), cfg.clone(), cri.clone());
        tasks.spawn(async move {
            node::status_loop(c1, f1, r1).await;
            Ok(())
        });
        let (c2, n2) = (client.clone(), cfg.node_name.clone());
        tasks.spawn(async move {
            node::lease_loop(c2, n2, uid).await;
            Ok(())
        });
        tasks.spawn(pod::run(ctx));
        Ok(Kubelet {
            cri,
            config: cfg,
            containerd,
            tasks,
        })
    }

    /// Waits until a background task ends (they run until shutdown).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        match self.tasks.join_next().await {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(anyhow::anyhow!("kubelet task failed: {e}")),
            None => Ok(()),
        }
    }

    /// Stops the agent. Pods keep running in containerd unless `remove_pods` is set (then
    /// every sandbox is stopped and removed first, e.g. for tests).
    pub async fn shutdown(mut self, remove_pods: bool) {
        self.tasks.shutdown().await;
        if remove_pods {
            self.remove_all_pods().await;
        }
        if let Some(c) = self.containerd.take() {
            c.stop().await;
        }
    }

    /// Stops and removes every sandbox and container in the runtime, and the pods'
    /// directories.
    pub async fn remove_all_pods(&self) {
        let Ok(sandboxes) = self.cri.list_pod_sandbox(None).await else {
            return;
        };
        for sb in sandboxes {
            let uid = sb
                .labels
                .get(pod::runtime::LABEL_POD_UID)
                .cloned()
                .unwrap_or_default();
            if let Ok(ctrs) = self
                .cri
                .list_containers(Some(cri::api::ContainerFilter {
                    pod_sandbox_id: sb.id.clone(),
                    ..Default::default()
                }))
                .await
            {
                for c in ctrs {
                    let _ = self.cri.stop_container(&c.id, 0).await;
                    let _ = self.cri.remove_container(&c.id).await;
                }
            }
            let _ = self.cri.stop_pod_sandbox(&sb.id).await;
            let _ = self.cri.remove_pod_sandbox(&sb.id).await;
            if !uid.is_empty() {
                pod::remove_pod_files(&self.config.data_dir, &uid);
            }
        }
    }
}

/// Runs the node agent until a fatal error.
pub async fn run(client: kube::Client, cfg: KubeletConfig) -> anyhow::Result<()> {
    let mut k = Kubelet::start(client, cfg).await?;
    let r = k.wait().await;
    k.shutdown(false).await;
    r
}

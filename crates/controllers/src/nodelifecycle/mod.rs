//! The node lifecycle controller (upstream `pkg/controller/nodelifecycle`), with its taint
//! eviction manager (`pkg/controller/tainteviction`) and node pod-CIDR allocation
//! (`pkg/controller/nodeipam`, range allocator).
//!
//! - [`monitor`]: a node whose kubelet stopped renewing its Lease and posting status for
//!   longer than the grace period gets its conditions set to `Unknown`; nodes are tainted
//!   from their conditions (`not-ready`/`unreachable` NoExecute and NoSchedule, pressure
//!   taints, `unschedulable`), and the taints go away when the node recovers.
//! - [`eviction`]: pods on a node with NoExecute taints they do not tolerate are deleted,
//!   at once or after their `tolerationSeconds`.
//! - [`ipam`]: every node gets a distinct `spec.podCIDR` from the cluster CIDR.

pub mod eviction;
pub mod health;
pub mod ipam;
pub mod monitor;
pub mod taints;

use crate::Context;
use std::time::Duration;

/// Why a node or pod sync failed; the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("api: {0}")]
    Api(#[from] kube::Error),
    #[error("encoding patch: {0}")]
    Json(#[from] serde_json::Error),
}

/// Controller settings (upstream kube-controller-manager flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// How long a node may go without a Lease renewal or status heartbeat before it is
    /// considered unreachable (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    /// Grace for a node that never posted status yet (`--node-startup-grace-period`).
    pub node_startup_grace_period: Duration,
    /// How often every node's health is checked (`--node-monitor-period`).
    pub node_monitor_period: Duration,
    /// Range pod CIDRs are carved from (`--cluster-cidr`).
    pub cluster_cidr: String,
    /// Prefix length of each node's pod CIDR (`--node-cidr-mask-size`).
    pub node_cidr_mask_size: u8,
    /// Whether to allocate pod CIDRs at all (`--allocate-node-cidrs`).
    pub allocate_node_cidrs: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_monitor_grace_period: Duration::from_secs(40),
            node_startup_grace_period: Duration::from_secs(60),
            node_monitor_period: Duration::from_secs(5),
            cluster_cidr: "10.42.0.0/16".to_string(),
            node_cidr_mask_size: 24,
            allocate_node_cidrs: true,
        }
    }
}

/// Run with the default [`Config`].
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    run_with(ctx, Config::default()).await
}

/// Run the node health monitor, the taint eviction manager and (if enabled) the CIDR
/// allocator until one of them fails fatally.
pub async fn run_with(ctx: Context, cfg: Config) -> anyhow::Result<()> {
    let mut set = tokio::task::JoinSet::new();
    set.spawn(monitor::run(ctx.clone(), cfg.clone()));
    set.spawn(eviction::run(ctx.clone()));
    if cfg.allocate_node_cidrs {
        let cidr = ipam::Ipv4Cidr::parse(&cfg.cluster_cidr)?;
        set.spawn(ipam::run(ctx.clone(), cidr, cfg.node_cidr_mask_size));
    }
    match set.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(anyhow::anyhow!("node lifecycle task failed: {e}")),
        None => Ok(()),
    }
}

//! Command-line flags (declared apart from what they do, as k3s does).

use clap::{Args, Parser, Subcommand};
use std::net::IpAddr;
use std::path::PathBuf;

/// r8s: a Kubernetes-compatible container orchestrator in one binary.
#[derive(Debug, Parser)]
#[command(name = "r8s", version, about)]
pub struct Cli {
    /// Debug logging (or set R8S_LOG, e.g. R8S_LOG=r8s_apiserver=debug).
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane (API server, …) and, unless --disable-agent, the node agent.
    Server(ServerArgs),
    /// Back up or restore the embedded datastore.
    Snapshot {
        #[command(subcommand)]
        action: SnapshotAction,
    },
    /// Datastore maintenance.
    Datastore {
        #[command(subcommand)]
        action: DatastoreAction,
    },
    /// Container image archives.
    Images {
        #[command(subcommand)]
        action: ImagesAction,
    },
    /// Register simulated nodes that play kubelet for their pods (like kwok), for tests and
    /// scale benchmarks.
    SimNodes(SimNodesArgs),
}

#[derive(Debug, Args)]
pub struct SimNodesArgs {
    /// API server URL (overrides the kubeconfig's).
    #[arg(long)]
    pub server: Option<String>,
    /// Kubeconfig to authenticate with.
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Number of nodes.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Node names are PREFIX-0 … PREFIX-(N-1).
    #[arg(long, default_value = "sim")]
    pub name_prefix: String,
    #[arg(long, default_value_t = 110)]
    pub pods_per_node: u32,
    /// CPU capacity per node (quantity).
    #[arg(long, default_value = "32")]
    pub cpu: String,
    /// Memory capacity per node (quantity).
    #[arg(long, default_value = "256Gi")]
    pub memory: String,
    /// Delay before a bound pod is reported Running and Ready, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub ready_delay_ms: u64,
    /// How often each node's Lease is renewed (upstream kubelet: 10s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub lease_interval: std::time::Duration,
    /// Global index of PREFIX-0, from which node and pod addresses derive. Default: claim a
    /// free block (shared with other groups through the API), or keep this prefix's block.
    #[arg(long)]
    pub index_offset: Option<usize>,
}

/// Flags shared by commands that find the data directory.
#[derive(Debug, Args, Clone)]
pub struct DataDirArg {
    /// Directory holding all state.
    #[arg(long, default_value = "/var/lib/r8s", env = "R8S_DATA_DIR")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub data: DataDirArg,
    /// Empty: embedded SQLite at DATA_DIR/server/db/state.db; http://h:2379[,http://h2:2379]: etcd.
    #[arg(long, default_value = "", env = "R8S_DATASTORE_ENDPOINT")]
    pub datastore_endpoint: String,
    /// Address the API server listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    pub https_listen_port: u16,
    /// This node's address (default: the default-route interface's address).
    #[arg(long)]
    pub node_ip: Option<IpAddr>,
    /// Also write the admin kubeconfig here.
    #[arg(long)]
    pub write_kubeconfig: Option<PathBuf>,
    /// ClusterIP range of Services.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// Pod IP range, split into one /24 per node.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// Extra names/addresses for the serving certificate.
    #[arg(long)]
    pub tls_san: Vec<String>,
    /// Do not run the node agent in this process.
    #[arg(long)]
    pub disable_agent: bool,
    /// Use this CRI runtime (unix:///path.sock) instead of the supervised containerd.
    #[arg(long)]
    pub container_runtime_endpoint: Option<String>,
    /// HTTPS port of the node agent's API (logs, exec, port-forward); 0 picks a free one.
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Do not run the built-in Ingress controller (k3s: `--disable traefik`).
    #[arg(long)]
    pub disable_ingress: bool,
    /// Do not enforce NetworkPolicies on this node (k3s: `--disable-network-policy`).
    #[arg(long)]
    pub disable_network_policy: bool,
    /// Port the Ingress controller serves plain HTTP on (all addresses).
    #[arg(long, default_value_t = 80)]
    pub ingress_http_port: u16,
    /// Port the Ingress controller serves HTTPS on (all addresses).
    #[arg(long, default_value_t = 443)]
    pub ingress_https_port: u16,
    /// Node name of the agent (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Keep this many revisions of history when compacting the embedded store.
    #[arg(long, default_value_t = 1000)]
    pub compact_keep: i64,
    /// How long a node may stay silent before it is marked unreachable (e.g. 40s, 2m).
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub node_monitor_grace_period: std::time::Duration,
    /// How often kubelets are scraped for the resource metrics API behind `kubectl top`
    /// and the HorizontalPodAutoscaler (metrics-server's --metric-resolution).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub metric_resolution: std::time::Duration,
    /// How often each HorizontalPodAutoscaler is reconciled.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_sync_period: std::time::Duration,
    /// How long an HPA keeps its highest recent recommendation before scaling in, unless
    /// its `behavior.scaleDown` sets a window.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_downscale_stabilization: std::time::Duration,
}

/// A Go-style duration of one unit: `500ms`, `40s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("duration {s:?} needs a unit (ms, s, m, h)"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        _ => return Err(format!("unknown unit {unit:?} in duration {s:?}")),
    };
    Ok(std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn units() {
        assert_eq!(parse_duration("40s"), Ok(Duration::from_secs(40)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("40").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("4d").is_err());
    }
}

#[derive(Debug, Subcommand)]
pub enum SnapshotAction {
    /// Write a consistent copy of the embedded store to FILE (works while the server runs).
    Save {
        #[command(flatten)]
        data: DataDirArg,
        file: PathBuf,
    },
    /// Install FILE as the embedded store of an empty data directory.
    Restore {
        #[command(flatten)]
        data: DataDirArg,
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImagesAction {
    /// Load OCI/docker image archives into the running agent's containerd.
    Import {
        #[command(flatten)]
        data: DataDirArg,
        /// CRI socket (default: DATA_DIR/agent/containerd/containerd.sock).
        #[arg(long)]
        socket: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatastoreAction {
    /// Copy the embedded store into an etcd cluster (one way; stop the server first).
    Migrate {
        #[command(flatten)]
        data: DataDirArg,
        /// etcd endpoints, e.g. http://127.0.0.1:2379[,http://h2:2379].
        #[arg(long)]
        to: String,
        /// Copy even if the target already holds keys (existing keys are overwritten).
        #[arg(long)]
        force: bool,
    },
}

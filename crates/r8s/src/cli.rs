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
    /// Node name of the agent (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Keep this many revisions of history when compacting the embedded store.
    #[arg(long, default_value_t = 1000)]
    pub compact_keep: i64,
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

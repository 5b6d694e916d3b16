//! `r8s sim-nodes`: hollow nodes for tests and scale benchmarks.

use crate::cli::SimNodesArgs;
use anyhow::Context;

/// Register the nodes and play kubelet for them until interrupted.
pub async fn run(args: SimNodesArgs) -> anyhow::Result<()> {
    let kc = kube::config::Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .context("building the API client config")?;
    if let Some(server) = &args.server {
        cfg.cluster_url = server
            .parse()
            .with_context(|| format!("invalid --server {server:?}"))?;
    }
    let client = kube::Client::try_from(cfg).context("building the API client")?;
    let opts = r8s_simnodes::SimOptions {
        count: args.count,
        name_prefix: args.name_prefix,
        pods_per_node: args.pods_per_node,
        cpu: args.cpu,
        memory: args.memory,
        ready_delay: std::time::Duration::from_millis(args.ready_delay_ms),
        lease_interval: args.lease_interval,
        index_offset: args.index_offset,
        ..Default::default()
    };
    tokio::select! {
        r = r8s_simnodes::run(client, opts) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

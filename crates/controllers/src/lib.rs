//! The controller manager: each controller is a kube-rs client of the API server
//! (watchers/reflectors, work queues with rate-limited retries), run in-process by
//! `r8s server` or standalone.

pub mod context;
pub mod cronjob;
pub mod csrsigning;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod events;
pub mod garbage_collector;
pub mod history;
pub mod job;
pub mod namespace;
pub mod nodelifecycle;
pub mod persistentvolume;
pub mod podautoscaler;
pub mod podgc;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacert;
pub mod serviceaccount;
pub mod servicelb;
pub mod statefulset;
pub mod util;
pub mod volumeprotection;

pub use context::Context;
pub use events::{EventType, Recorder};

/// Settings of the controller manager as a whole (upstream kube-controller-manager flags).
#[derive(Clone, Debug, Default)]
pub struct ManagerConfig {
    /// Node health monitoring, taint eviction and pod CIDR allocation.
    pub node_lifecycle: nodelifecycle::Config,
    /// The cluster CA published as `kube-root-ca.crt` in every namespace (upstream
    /// `--root-ca-file`); the publisher runs only when set.
    pub root_ca_pem: Option<String>,
    /// The CA that signs approved CertificateSigningRequests; the signer runs only when
    /// set.
    pub signing_ca: Option<csrsigning::SigningCa>,
    /// Volume binding and the local-path provisioner.
    pub persistent_volumes: persistentvolume::Config,
    /// The HorizontalPodAutoscaler controller's sync period, tolerance and windows.
    pub pod_autoscaler: podautoscaler::Config,
}

/// Run every controller with default settings.
pub async fn run_all(ctx: Context) -> anyhow::Result<()> {
    run_all_with(ctx, ManagerConfig::default()).await
}

/// Run every controller until one fails fatally (each retries its own transient errors).
pub async fn run_all_with(ctx: Context, cfg: ManagerConfig) -> anyhow::Result<()> {
    let mut set = tokio::task::JoinSet::new();
    set.spawn(namespace::run(ctx.clone()));
    set.spawn(garbage_collector::run(ctx.clone()));
    set.spawn(serviceaccount::run(ctx.clone()));
    set.spawn(endpoints::run(ctx.clone()));
    set.spawn(replicaset::run(ctx.clone()));
    set.spawn(deployment::run(ctx.clone()));
    set.spawn(job::run(ctx.clone()));
    set.spawn(cronjob::run(ctx.clone()));
    set.spawn(statefulset::run(ctx.clone()));
    set.spawn(disruption::run(ctx.clone()));
    set.spawn(daemonset::run(ctx.clone()));
    set.spawn(resourcequota::run(ctx.clone()));
    if let Some(ca) = cfg.root_ca_pem.clone() {
        set.spawn(rootcacert::run(ctx.clone(), ca));
    }
    if let Some(ca) = cfg.signing_ca.clone() {
        set.spawn(csrsigning::run(ctx.clone(), ca));
    }
    set.spawn(persistentvolume::run(
        ctx.clone(),
        cfg.persistent_volumes.clone(),
    ));
    set.spawn(podautoscaler::run(ctx.clone(), cfg.pod_autoscaler.clone()));
    set.spawn(volumeprotection::run(ctx.clone()));
    set.spawn(servicelb::run(ctx.clone()));
    set.spawn(nodelifecycle::run_with(ctx.clone(), cfg.node_lifecycle));
    set.spawn(podgc::run(ctx.clone()));
    match set.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(anyhow::anyhow!("controller task failed: {e}")),
        None => Ok(()),
    }
}

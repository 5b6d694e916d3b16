//! Simulated ("hollow") nodes, like kwok or kubemark: registers Node objects with a
//! believable status, renews their `kube-node-lease` Leases, and plays kubelet for the pods
//! bound to them (Running and Ready after a delay, finished on request, deleted once the
//! API server marks them for graceful deletion). Nothing runs: no containers, no network.
//!
//! One process scales to thousands of nodes and >100k pods: one pod watch (field selector
//! `spec.nodeName!=`), one lease loop spreading renewals over the interval, and a bounded
//! pool of status writers.
//!
//! Several groups (processes with different name prefixes) can run side by side: each
//! claims its own block of global node indices (see `claim`), from which node and pod
//! addresses derive, so no two simulated nodes or pods share an address.

mod claim;
mod ipam;
mod kubelet;
mod lease;
mod nodes;
mod status;

use k8s_openapi::api::core::v1::Taint;
use std::collections::BTreeMap;
use std::time::Duration;

pub use claim::{INDEX_ANNOTATION, REGISTRY_NAME};
pub use nodes::node_name;

/// Annotation that makes a pod with `restartPolicy: Never|OnFailure` finish with this exit
/// code (`"0"` → Succeeded) one `ready_delay` after it started running.
pub const EXIT_CODE_ANNOTATION: &str = "sim.r8s.io/exit-code";

/// The most simulated nodes across all groups: global node indices are `0..MAX_NODES`
/// (pod and node address ranges are sized for it).
pub const MAX_NODES: usize = 32_768;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// How many nodes: `PREFIX-0 … PREFIX-(count-1)`.
    pub count: usize,
    pub name_prefix: String,
    /// `status.capacity.pods` (and allocatable).
    pub pods_per_node: u32,
    /// CPU capacity (a Kubernetes quantity).
    pub cpu: String,
    /// Memory capacity (a Kubernetes quantity).
    pub memory: String,
    /// Ephemeral-storage capacity (a Kubernetes quantity).
    pub ephemeral_storage: String,
    /// How long a bound pod takes to become Running and Ready (and, with the exit-code
    /// annotation, how long it then runs).
    pub ready_delay: Duration,
    /// Extra node labels (on top of the standard kubelet ones and `type=sim`).
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    pub taints: Vec<Taint>,
    /// If > 0, label node i with `topology.kubernetes.io/zone=zone-(i % zones)` (and a
    /// common region), for topology-spread tests.
    pub zones: usize,
    /// Lease renewal period (kubelet default 10 s).
    pub lease_interval: Duration,
    /// Concurrent API writes for pod status updates, deletions and registrations.
    pub write_concurrency: usize,
    /// Play kubelet for pods bound to these nodes (off: nodes and leases only, like
    /// upstream's scheduler_perf nodes).
    pub kubelet: bool,
    /// Global index of node `PREFIX-0` (node i uses `index_offset + i` for its addresses).
    /// `None`: claim a free block through the API at start, or keep the one this prefix
    /// already has. [`run`] fills in the resolved value.
    pub index_offset: Option<usize>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            count: 1,
            name_prefix: "sim".into(),
            pods_per_node: 110,
            cpu: "32".into(),
            memory: "256Gi".into(),
            ephemeral_storage: "100Gi".into(),
            ready_delay: Duration::from_millis(200),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            zones: 0,
            lease_interval: Duration::from_secs(10),
            write_concurrency: 32,
            kubelet: true,
            index_offset: None,
        }
    }
}

/// Why simulated nodes could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    #[error("registering node {node}: {source}")]
    Register {
        node: String,
        #[source]
        source: kube::Error,
    },
    #[error("claiming node indices: {0}")]
    Claim(#[source] kube::Error),
    #[error(
        "no free block of {count} node indices left (at most {MAX_NODES} simulated nodes across \
         all groups; blocks are recorded in ConfigMap kube-node-lease/{REGISTRY_NAME})"
    )]
    Exhausted { count: usize },
    #[error(
        "node indices {want:?} of group {prefix:?} overlap {theirs:?} of group {other:?}; \
         pass an explicit index offset"
    )]
    Overlap {
        prefix: String,
        want: std::ops::Range<usize>,
        other: String,
        theirs: std::ops::Range<usize>,
    },
    #[error("{0} task ended unexpectedly")]
    TaskEnded(&'static str),
}

impl SimOptions {
    fn validate(&self) -> Result<(), SimError> {
        if self.count > MAX_NODES {
            return Err(SimError::InvalidOptions(format!(
                "count {} exceeds the maximum of {MAX_NODES}",
                self.count
            )));
        }
        if let Some(offset) = self.index_offset
            && offset
                .checked_add(self.count)
                .is_none_or(|end| end > MAX_NODES)
        {
            return Err(SimError::InvalidOptions(format!(
                "index offset {offset} + count {} exceeds the maximum of {MAX_NODES} simulated nodes",
                self.count
            )));
        }
        if self.name_prefix.is_empty() {
            return Err(SimError::InvalidOptions(
                "name prefix must not be empty".into(),
            ));
        }
        if self.pods_per_node == 0 || self.pods_per_node > ipam::MAX_PODS_PER_NODE {
            return Err(SimError::InvalidOptions(format!(
                "pods per node must be between 1 and {}",
                ipam::MAX_PODS_PER_NODE
            )));
        }
        if self.lease_interval.is_zero() {
            return Err(SimError::InvalidOptions(
                "lease interval must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The global index (addresses, pod range) of the group's node `local`.
    fn global_index(&self, local: usize) -> usize {
        self.index_offset.unwrap_or(0) + local
    }
}

/// Register the nodes and simulate them until an unrecoverable error (transient API errors
/// are retried). Dropping the future stops every background task.
pub async fn run(client: kube::Client, mut opts: SimOptions) -> anyhow::Result<()> {
    opts.validate()?;
    opts.index_offset = Some(claim::claim(&client, &opts).await?);
    let opts = std::sync::Arc::new(opts);
    let registered = nodes::register_all(&client, &opts).await?;
    tracing::info!(count = opts.count, prefix = %opts.name_prefix, index_offset = opts.global_index(0), "simulated nodes registered");
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(lease::run(client.clone(), opts.clone(), registered.clone()));
    tasks.spawn(nodes::refresh_status(client.clone(), opts.clone()));
    if opts.kubelet {
        tasks.spawn(kubelet::run(client, opts));
    }
    match tasks.join_next().await {
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(anyhow::anyhow!("simulated-node task failed: {e}")),
        None => Err(SimError::TaskEnded("every").into()),
    }
}

/// The HTTP status code of an API error, if it is one.
fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_offset_stays_below_the_global_limit() {
        let opts = |count, offset| SimOptions {
            count,
            index_offset: Some(offset),
            ..Default::default()
        };
        assert!(opts(10, MAX_NODES - 10).validate().is_ok());
        assert_eq!(opts(10, 5).global_index(3), 8);
        let err = opts(10, MAX_NODES - 9).validate().expect_err("too far");
        assert!(err.to_string().contains("exceeds the maximum"), "{err}");
        assert!(opts(1, usize::MAX).validate().is_err());
    }
}

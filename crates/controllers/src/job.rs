//! The Job controller (upstream `pkg/controller/job`, v1.33 behaviour) and the
//! TTL-after-finished controller.
//!
//! A Job runs pods from its template until `completions` of them succeeded (or, without
//! `completions`, until any succeeded and the rest finished), keeping at most
//! `parallelism` active. Pods carry the `batch.kubernetes.io/job-tracking` finalizer so a
//! finished pod cannot vanish before it was counted: finished pods are first recorded in
//! `status.uncountedTerminatedPods`, then their finalizer is removed, then they move to
//! the `succeeded`/`failed` counters. Failures beyond `backoffLimit` or running past
//! `activeDeadlineSeconds` fail the Job (interim `FailureTarget`, then `Failed` once no pod
//! is left terminating); success goes through `SuccessCriteriaMet` to `Complete`.
//! Replacements after failures wait an exponential backoff (10s × 2^n, capped at 10m).
//! Indexed Jobs give each pod a completion index (annotation, label, hostname, env).

pub(crate) mod apierrors;
mod backoff;
mod claim;
mod controller;
pub(crate) mod expectations;
mod handlers;
pub(crate) mod indexed;
pub(crate) mod informer;
mod manage;
pub(crate) mod pods;
pub(crate) mod queue;
pub(crate) mod status;
mod sync;
mod tracking;
pub mod ttl;

use crate::Context;
use std::time::Duration;

pub use controller::JobError;

/// Tunables; the defaults are upstream's.
#[derive(Clone, Debug)]
pub struct Config {
    /// Concurrent Job syncs (`--concurrent-job-syncs`).
    pub workers: usize,
    /// Delay that batches the syncs triggered by pod events and status updates.
    pub sync_batch_period: Duration,
    /// First delay before replacing a failed pod; doubles per consecutive failure.
    pub pod_failure_backoff: Duration,
    /// Cap of the pod-failure backoff.
    pub max_pod_failure_backoff: Duration,
    /// Retry backoff after a failed sync (base, cap).
    pub api_backoff: (Duration, Duration),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: 5,
            sync_batch_period: Duration::from_secs(1),
            pod_failure_backoff: Duration::from_secs(10),
            max_pod_failure_backoff: Duration::from_secs(600),
            api_backoff: (Duration::from_secs(1), Duration::from_secs(60)),
        }
    }
}

/// Run the Job and TTL-after-finished controllers with upstream defaults.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    run_with(ctx, Config::default()).await
}

/// Run the Job and TTL-after-finished controllers with `cfg`.
pub async fn run_with(ctx: Context, cfg: Config) -> anyhow::Result<()> {
    tokio::try_join!(controller::run(ctx.clone(), cfg), ttl::run(ctx))?;
    Ok(())
}

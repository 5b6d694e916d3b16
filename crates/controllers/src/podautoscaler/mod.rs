//! The HorizontalPodAutoscaler controller (upstream `pkg/controller/podautoscaler`): every
//! `sync_period`, and at once when an HPA is added or its spec changes, each
//! autoscaling/v2 HPA reads its target's `scale` subresource, asks the metrics what count
//! they want ([`replicas`]), stabilizes and rate-limits that ([`behavior`]), writes the
//! new count to the scale and reports everything in the HPA's status ([`status`]).
//!
//! Pod usage comes from a [`metrics::MetricsSource`]: the resource metrics API in
//! production ([`run`]), anything in tests ([`run_with_source`]).

pub mod behavior;
pub mod compute;
pub mod metrics;
mod reconcile;
pub mod replicas;
pub mod status;
pub mod target;

use crate::util::{AbortOnDrop, Informer, InformerEvent, WorkQueue, run_workers};
use crate::{Context, Recorder};
use behavior::History;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use metrics::{ApiMetricsSource, MetricsSource};
use r8s_api::selector::LabelSelector;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Upstream's default `--concurrent-horizontal-pod-autoscaler-syncs` is 5; two workers
/// keep a slow target from holding up the rest on a small server.
const WORKERS: usize = 2;

/// Settings of the controller (upstream's `--horizontal-pod-autoscaler-*` flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// How often every HPA is reconciled (`--horizontal-pod-autoscaler-sync-period`).
    pub sync_period: Duration,
    /// How far the usage ratio must be from 1.0 to change the count
    /// (`--horizontal-pod-autoscaler-tolerance`).
    pub tolerance: f64,
    /// The scale-down stabilization window when `behavior.scaleDown` does not set one
    /// (`--horizontal-pod-autoscaler-downscale-stabilization`).
    pub downscale_stabilization: Duration,
    /// How long after a pod starts its CPU samples are doubted
    /// (`--horizontal-pod-autoscaler-cpu-initialization-period`).
    pub cpu_initialization_period: Duration,
    /// How long after start a not-ready pod counts as not yet ready rather than unready
    /// (`--horizontal-pod-autoscaler-initial-readiness-delay`).
    pub initial_readiness_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sync_period: Duration::from_secs(15),
            tolerance: 0.1,
            downscale_stabilization: Duration::from_secs(300),
            cpu_initialization_period: Duration::from_secs(300),
            initial_readiness_delay: Duration::from_secs(30),
        }
    }
}

/// An HPA by namespace and name.
type Key = (String, String);

/// What the workers share.
struct State {
    client: kube::Client,
    hpas: Informer<HorizontalPodAutoscaler>,
    pods: Informer<Pod>,
    recorder: Recorder,
    source: Arc<dyn MetricsSource>,
    cfg: Config,
    calc: replicas::Calculator,
    resolver: target::Resolver,
    /// Recommendations and scale events per HPA (upstream keeps them in memory too).
    histories: Mutex<HashMap<Key, History>>,
    /// The pod selector each HPA last used, to find pods claimed by two HPAs.
    selectors: Mutex<HashMap<Key, LabelSelector>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    /// Drop what is remembered about a deleted HPA.
    fn forget(&self, key: &Key) {
        lock(&self.histories).remove(key);
        lock(&self.selectors).remove(key);
    }
}

/// Run the controller with pod metrics from the resource metrics API.
pub async fn run(ctx: Context, cfg: Config) -> anyhow::Result<()> {
    let source = Arc::new(ApiMetricsSource::new(ctx.client.clone()));
    run_with_source(ctx, cfg, source).await
}

/// Run the controller with pod metrics from `source`, until a fatal error.
pub async fn run_with_source(
    ctx: Context,
    cfg: Config,
    source: Arc<dyn MetricsSource>,
) -> anyhow::Result<()> {
    let queue: WorkQueue<Key> = WorkQueue::new();
    let state = Arc::new(State {
        client: ctx.client.clone(),
        hpas: ctx.informers.get::<HorizontalPodAutoscaler>(),
        pods: ctx.informers.get::<Pod>(),
        recorder: ctx.recorder("horizontal-pod-autoscaler"),
        source,
        calc: replicas::Calculator {
            cpu_initialization_period: cfg.cpu_initialization_period,
            initial_readiness_delay: cfg.initial_readiness_delay,
        },
        cfg,
        resolver: target::Resolver::default(),
        histories: Mutex::default(),
        selectors: Mutex::default(),
    });
    let q = queue.clone();
    let _hpas = state.hpas.add_handler(move |ev| {
        let hpa = match ev {
            // Status-only changes are mostly this controller's own writes; the periodic
            // resync covers everything else.
            InformerEvent::Apply {
                old: Some(old),
                new,
            } if old.spec == new.spec => return,
            InformerEvent::Apply { new, .. } => new,
            InformerEvent::Delete(old) => old,
        };
        q.add((hpa.namespace().unwrap_or_default(), hpa.name_any()));
    });
    state.hpas.wait_synced().await;
    state.pods.wait_synced().await;
    let _resync = AbortOnDrop(spawn_resync(state.clone(), queue.clone()).abort_handle());
    run_workers(queue, WORKERS, move |key: Key| {
        let state = state.clone();
        async move {
            if let Err(e) = reconcile::sync(&state, &key).await {
                // Retried at the next resync, as upstream requeues after its sync period;
                // the HPA's conditions and events already tell its owner.
                tracing::debug!(hpa = %format!("{}/{}", key.0, key.1), "{e}");
            }
            Ok::<_, std::convert::Infallible>(None)
        }
    })
    .await;
    Ok(())
}

/// Queue every HPA each sync period.
fn spawn_resync(state: Arc<State>, queue: WorkQueue<Key>) -> tokio::task::JoinHandle<()> {
    let period = state.cfg.sync_period.max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for hpa in state.hpas.store().state() {
                queue.add((hpa.namespace().unwrap_or_default(), hpa.name_any()));
            }
        }
    })
}

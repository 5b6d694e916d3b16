//! Mutating-API latency probe: while a benchmark loads the server, a separate client makes
//! single-object writes at a steady rate and records how long each one takes. This is the
//! client-side view of upstream's API call latency SLO (mutating calls on single objects,
//! p99 ≤ 1 s).
//!
//! Each round is four calls: create a ConfigMap, update it (PUT with its resourceVersion),
//! delete it, and merge-patch the labels of one of the benchmark's pods. Call `j` is due
//! `j / rate` seconds after the start. Rounds run concurrently, so a slow call does not
//! delay later rounds (no coordinated omission); within a round a call waits for the
//! previous one, since the update needs the created object.
//!
//! The probe runs on a thread and runtime of its own: in an in-process benchmark the
//! main runtime's queue is full of server, scheduler and node tasks, and a client task
//! waiting in it would add that wait to every latency.

use crate::stats::percentile;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// A call slower than this is abandoned and counted as an error with this latency.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The kinds of call a round makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Call {
    CreateConfigMap,
    UpdateConfigMap,
    DeleteConfigMap,
    PatchPod,
}

impl Call {
    /// `verb resource`, as the SLO groups calls.
    pub fn label(self) -> &'static str {
        match self {
            Call::CreateConfigMap => "POST configmaps",
            Call::UpdateConfigMap => "PUT configmaps",
            Call::DeleteConfigMap => "DELETE configmaps",
            Call::PatchPod => "PATCH pods",
        }
    }
}

/// One timed call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// The benchmark phase when the call started (see [`Probe::set_phase`]).
    pub phase: usize,
    pub call: Call,
    pub latency: Duration,
    pub ok: bool,
}

/// What the probe writes.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// Calls per second (all kinds together).
    pub rate: f64,
    /// Namespace of the probe's ConfigMaps (must exist).
    pub configmap_namespace: String,
    /// Namespace of the pods whose labels are patched.
    pub pod_namespace: String,
    /// Pods are named `{pod_prefix}{i}`.
    pub pod_prefix: String,
}

/// A running probe; [`Probe::stop`] ends it and returns the samples.
pub struct Probe {
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    done: tokio::sync::oneshot::Receiver<Vec<Sample>>,
}

/// Shared by the rounds of one probe.
struct Ctx {
    configmaps: Api<ConfigMap>,
    pods: Api<Pod>,
    pod_prefix: String,
    /// Pods `0..n` exist and may be patched.
    pods_ready: Arc<AtomicUsize>,
    phase: Arc<AtomicUsize>,
    samples: Mutex<Vec<Sample>>,
    start: tokio::time::Instant,
    interval: Duration,
}

/// Errors starting a probe.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("probe thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("probe client: {0}")]
    Client(String),
}

impl Probe {
    /// Start probing as the user of `kubeconfig`, with a client of its own on its own
    /// thread. `pods_ready` says how many of the pods exist (`0..n`); while it is zero
    /// the pod patch of a round is skipped. Returns once the client is built.
    pub async fn start(
        kubeconfig: &Path,
        cfg: ProbeConfig,
        pods_ready: Arc<AtomicUsize>,
    ) -> Result<Probe, ProbeError> {
        let phase = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let (kubeconfig, phase2, stop2) = (kubeconfig.to_path_buf(), phase.clone(), stop.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("api-probe".into())
            .spawn(move || {
                rt.block_on(async move {
                    let client = match client_for(&kubeconfig).await {
                        Ok(c) => c,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let ctx = Arc::new(Ctx {
                        configmaps: Api::namespaced(client.clone(), &cfg.configmap_namespace),
                        pods: Api::namespaced(client, &cfg.pod_namespace),
                        pod_prefix: cfg.pod_prefix,
                        pods_ready,
                        phase: phase2,
                        samples: Mutex::new(Vec::new()),
                        start: tokio::time::Instant::now(),
                        interval: Duration::from_secs_f64(1.0 / cfg.rate.max(0.001)),
                    });
                    let _ = done_tx.send(drive(ctx, stop2).await);
                });
            })?;
        match ready_rx.await {
            Ok(Ok(())) => Ok(Probe { phase, stop, done }),
            Ok(Err(e)) => Err(ProbeError::Client(e)),
            Err(_) => Err(ProbeError::Client("probe thread ended".into())),
        }
    }

    /// Tag calls started from now on with `phase`; phases only move forward, so a later
    /// phase that began first (e.g. every pod bound before the creates returned) stays.
    pub fn set_phase(&self, phase: usize) {
        self.phase.fetch_max(phase, Ordering::Relaxed);
    }

    /// Start no more rounds, wait for the ones in flight, and return every sample.
    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.done.await.unwrap_or_default()
    }
}

async fn client_for(kubeconfig: &Path) -> Result<kube::Client, String> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| e.to_string())?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| e.to_string())?;
    kube::Client::try_from(cfg).map_err(|e| e.to_string())
}

/// Start a round every four intervals until stopped; then wait for the rounds in flight.
async fn drive(ctx: Arc<Ctx>, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let mut rounds = JoinSet::new();
    let mut round: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep_until(ctx.start + ctx.interval * (4 * round)).await;
        rounds.spawn(run_round(ctx.clone(), round));
        round += 1;
        // Reap finished rounds so the set stays small in long runs.
        while rounds.try_join_next().is_some() {}
    }
    while rounds.join_next().await.is_some() {}
    ctx.samples
        .lock()
        .map(|mut s| std::mem::take(&mut *s))
        .unwrap_or_default()
}

async fn run_round(ctx: Arc<Ctx>, round: u32) {
    let name = format!("probe-{round}");
    let due = |slot: u32| ctx.start + ctx.interval * (4 * round + slot);

    tokio::time::sleep_until(due(0)).await;
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"round": round.to_string()}});
    let created = match serde_json::from_value::<ConfigMap>(cm) {
        Ok(cm) => {
            timed(&ctx, Call::CreateConfigMap, async {
                ctx.configmaps.create(&PostParams::default(), &cm).await
            })
            .await
        }
        Err(_) => None,
    };
    // The update and delete need the object; without it this round only patches a pod.
    if let Some(mut cm) = created {
        tokio::time::sleep_until(due(1)).await;
        cm.data
            .get_or_insert_with(BTreeMap::new)
            .insert("updated".into(), "true".into());
        let updated = timed(&ctx, Call::UpdateConfigMap, async {
            ctx.configmaps
                .replace(&name, &PostParams::default(), &cm)
                .await
        })
        .await;
        if updated.is_some() {
            tokio::time::sleep_until(due(2)).await;
            timed(&ctx, Call::DeleteConfigMap, async {
                ctx.configmaps.delete(&name, &DeleteParams::default()).await
            })
            .await;
        }
    }

    tokio::time::sleep_until(due(3)).await;
    let ready = ctx.pods_ready.load(Ordering::Relaxed);
    if ready > 0 {
        let pod = format!("{}{}", ctx.pod_prefix, round as usize % ready);
        let patch = json!({"metadata": {"labels": {"probe": round.to_string()}}});
        timed(&ctx, Call::PatchPod, async {
            ctx.pods
                .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        })
        .await;
    }
}

/// Run one call, record its latency, and return its result if it succeeded.
async fn timed<T, F>(ctx: &Ctx, call: Call, f: F) -> Option<T>
where
    F: std::future::Future<Output = kube::Result<T>>,
{
    let phase = ctx.phase.load(Ordering::Relaxed);
    let t = Instant::now();
    let res = tokio::time::timeout(CALL_TIMEOUT, f).await;
    let latency = t.elapsed();
    let out = match res {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            eprintln!("probe: {} failed: {e}", call.label());
            None
        }
        Err(_) => {
            eprintln!("probe: {} timed out", call.label());
            None
        }
    };
    if let Ok(mut s) = ctx.samples.lock() {
        s.push(Sample {
            phase,
            call,
            latency,
            ok: out.is_some(),
        });
    }
    out
}

/// Latency summary of a group of calls (failed calls count with their latency).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub calls: usize,
    pub errors: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

/// Summarize the samples that `keep` selects.
pub fn stats(samples: &[Sample], keep: impl Fn(&Sample) -> bool) -> Stats {
    let mut lat: Vec<Duration> = Vec::new();
    let mut errors = 0;
    for s in samples.iter().filter(|s| keep(s)) {
        lat.push(s.latency);
        errors += usize::from(!s.ok);
    }
    lat.sort_unstable();
    Stats {
        calls: lat.len(),
        errors,
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        max: lat.last().copied().unwrap_or_default(),
    }
}

/// Markdown table: every call per phase (`phases[i]` names phase `i`), then each kind of
/// call over the whole run.
pub fn table(samples: &[Sample], phases: &[&str]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "| phase | calls | n | errors | p50 ms | p99 ms | max ms |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    let mut row = |phase: &str, what: &str, st: Stats| {
        let ms = crate::stats::ms;
        let _ = writeln!(
            out,
            "| {phase} | {what} | {} | {} | {} | {} | {} |",
            st.calls,
            st.errors,
            ms(st.p50),
            ms(st.p99),
            ms(st.max)
        );
    };
    for (i, name) in phases.iter().enumerate() {
        let st = stats(samples, |s| s.phase == i);
        if st.calls > 0 {
            row(name, "all mutating", st);
        }
    }
    for call in [
        Call::CreateConfigMap,
        Call::UpdateConfigMap,
        Call::DeleteConfigMap,
        Call::PatchPod,
    ] {
        row(
            "whole run",
            call.label(),
            stats(samples, |s| s.call == call),
        );
    }
    row("whole run", "all mutating", stats(samples, |_| true));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(phase: usize, call: Call, ms: u64, ok: bool) -> Sample {
        Sample {
            phase,
            call,
            latency: Duration::from_millis(ms),
            ok,
        }
    }

    #[test]
    fn stats_count_errors_and_percentiles() {
        let mut s: Vec<Sample> = (1..=100)
            .map(|i| sample(0, Call::PatchPod, i, true))
            .collect();
        s.push(sample(1, Call::CreateConfigMap, 500, false));
        let all = stats(&s, |_| true);
        assert_eq!((all.calls, all.errors), (101, 1));
        assert_eq!(all.max, Duration::from_millis(500));
        let p0 = stats(&s, |x| x.phase == 0);
        assert_eq!(p0.p50, Duration::from_millis(50));
        assert_eq!(p0.p99, Duration::from_millis(99));
        assert_eq!(stats(&s, |x| x.phase == 7).calls, 0);
    }

    #[test]
    fn table_has_a_row_per_phase_with_calls_and_per_kind() {
        let s = vec![
            sample(0, Call::CreateConfigMap, 3, true),
            sample(1, Call::PatchPod, 5, true),
        ];
        let t = table(&s, &["creating pods", "scheduling", "kubelets"]);
        assert!(t.contains("| creating pods | all mutating | 1 | 0 | 3.00 |"));
        assert!(t.contains("| scheduling | all mutating | 1 | 0 | 5.00 |"));
        assert!(!t.contains("kubelets"));
        assert!(t.contains("| whole run | PATCH pods | 1 |"));
        assert!(t.contains("| whole run | all mutating | 2 | 0 |"));
    }

    #[tokio::test]
    async fn probe_calls_succeed_against_a_server() {
        let server = r8s_apiserver::testing::TestServer::start().await;
        let client = client_for(&server.kubeconfig).await.expect("client");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p-0"},
            "spec": {"containers": [{"name": "c", "image": "pause"}]},
        }))
        .expect("pod");
        Api::<Pod>::namespaced(client.clone(), "default")
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod");
        let probe = Probe::start(
            &server.kubeconfig,
            ProbeConfig {
                rate: 40.0,
                configmap_namespace: "default".into(),
                pod_namespace: "default".into(),
                pod_prefix: "p-".into(),
            },
            Arc::new(AtomicUsize::new(1)),
        )
        .await
        .expect("probe");
        tokio::time::sleep(Duration::from_millis(250)).await;
        probe.set_phase(1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let samples = probe.stop().await;
        assert!(samples.iter().all(|s| s.ok), "{samples:?}");
        for call in [
            Call::CreateConfigMap,
            Call::UpdateConfigMap,
            Call::DeleteConfigMap,
            Call::PatchPod,
        ] {
            assert!(samples.iter().any(|s| s.call == call), "no {call:?}");
        }
        assert!(samples.iter().any(|s| s.phase == 1));
    }
}

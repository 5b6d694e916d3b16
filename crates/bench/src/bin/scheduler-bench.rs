//! `scheduler-bench`: scheduling throughput of the r8s scheduler, in one process with an
//! in-process API server (embedded SQLite) and simulated nodes.
//!
//! Per variant: start a fresh server, register `--nodes` simulated nodes (leases renewed
//! every 10 s as real kubelets do), create `--pods` pending pods, then start the scheduler
//! and time the bindings as seen by a watch on `spec.nodeName!=` (a pod counts when it
//! enters that selection, i.e. when its binding is written). Variants: `basic` (100m /
//! 500Mi pods, as upstream scheduler_perf's SchedulingBasic) and `spread` (the same pods
//! with a zone topology spread constraint, maxSkew 1, DoNotSchedule, over `--zones` zones).
//!
//! From the first pod creation to the end, a probe with its own client makes mutating
//! calls at `--probe-rate` per second and records their latencies (upstream's SLO: p99 of
//! mutating API calls ≤ 1 s); the process RSS (server, scheduler and simulated nodes
//! together) is reported at the end, with its peak.
//!
//! `--spawn-server` measures the real binary instead: a spawned `r8s server
//! --disable-agent` with its own controller manager and scheduler (default settings), and
//! the simulated nodes in this process. Its scheduler binds pods while they are being
//! created, so bindings are timed from the first create, and the RSS reported is the
//! server process's own.

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use r8s_apiserver::testing::TestServer;
use r8s_bench::probe::{self, Probe, ProbeConfig};
use r8s_bench::server::{SpawnedServer, default_server_bin, rss_kib_of};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Variant {
    Basic,
    Spread,
    Both,
}

/// Benchmark the scheduler against simulated nodes.
#[derive(Debug, Parser)]
#[command(name = "scheduler-bench")]
struct Args {
    #[arg(long, value_enum, default_value = "both")]
    variant: Variant,
    /// Simulated nodes.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pending pods to schedule.
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Zones for the spread variant.
    #[arg(long, default_value_t = 10)]
    zones: usize,
    /// Also play kubelet (mark bound pods Running) while scheduling.
    #[arg(long)]
    kubelet: bool,
    /// Scheduler bindings in flight.
    #[arg(long, default_value_t = 128)]
    bind_concurrency: usize,
    /// Record a `Scheduled` event per pod (upstream does; costs one write per pod).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    scheduled_events: bool,
    /// Concurrent pod creations while preparing.
    #[arg(long, default_value_t = 64)]
    create_concurrency: usize,
    /// Give up after this many seconds of scheduling.
    #[arg(long, default_value_t = 240)]
    timeout: u64,
    /// Node lease renewal period in seconds (kubelet default 10; a large value takes the
    /// 500 writes/s of 5,000 nodes' heartbeats out of the measurement).
    #[arg(long, default_value_t = 10)]
    lease_interval: u64,
    /// Only the scheduling algorithm: the same nodes and pods in the scheduler's cache,
    /// no API server, no binding writes.
    #[arg(long)]
    offline: bool,
    /// Mutating calls per second of the latency probe (ConfigMap create/update/delete and
    /// pod label patches, from a client of its own); 0 turns it off.
    #[arg(long, default_value_t = 10.0)]
    probe_rate: f64,
    /// Run against a spawned `r8s server --disable-agent` (its own controllers and
    /// scheduler with default settings; `--bind-concurrency` and `--scheduled-events` do
    /// not apply) instead of an in-process API server and scheduler.
    #[arg(long)]
    spawn_server: bool,
    /// The `r8s` binary for `--spawn-server` (default: next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Pod range of the spawned server's node IPAM: one /24 per node, so the default
    /// 10.42.0.0/16 covers only 256 nodes.
    #[arg(long, default_value = "10.0.0.0/8")]
    cluster_cidr: String,
}

/// Names of the probe's phases, by index.
const PHASES: [&str; 3] = [
    "creating pods",
    "scheduling",
    "kubelets marking pods Running",
];

struct Outcome {
    variant: String,
    bound: usize,
    /// Scheduler start (with `--spawn-server`: first pod create) → last binding.
    total: Duration,
    /// First → last binding.
    active: Duration,
    first: Duration,
    /// Bindings per whole second of the active period.
    per_second: Vec<usize>,
    /// Mutating calls timed by the probe.
    probe: Vec<probe::Sample>,
    /// (process, VmRSS, VmHWM = peak) at the end, in KiB.
    memory: Vec<(&'static str, u64, u64)>,
}

/// The API server the run talks to.
enum Server {
    InProcess(Box<TestServer>),
    Spawned(SpawnedServer),
}

impl Server {
    async fn start(args: &Args) -> Result<Server> {
        if !args.spawn_server {
            return Ok(Server::InProcess(Box::new(TestServer::start().await)));
        }
        let bin = args.server_bin.clone().unwrap_or_else(default_server_bin);
        let extra = ["--cluster-cidr", args.cluster_cidr.as_str()];
        let s = SpawnedServer::start(&bin, &std::env::temp_dir(), &extra)
            .await
            .with_context(|| format!("spawn {} (build it with --release)", bin.display()))?;
        Ok(Server::Spawned(s))
    }

    fn kubeconfig(&self) -> &Path {
        match self {
            Server::InProcess(s) => &s.kubeconfig,
            Server::Spawned(s) => &s.kubeconfig,
        }
    }

    /// Memory of the processes involved, in KiB.
    fn memory(&self) -> Vec<(&'static str, u64, u64)> {
        let mut out = Vec::new();
        let this = rss_kib_of("self");
        match self {
            Server::InProcess(_) => {
                if let Some((rss, peak)) = this {
                    out.push((
                        "whole process (API server, scheduler, simulated nodes)",
                        rss,
                        peak,
                    ));
                }
            }
            Server::Spawned(s) => {
                if let Some((rss, peak)) = s.rss_kib() {
                    out.push(("r8s server process", rss, peak));
                }
                if let Some((rss, peak)) = this {
                    out.push((
                        "benchmark process (simulated nodes, watch, probe)",
                        rss,
                        peak,
                    ));
                }
            }
        }
        out
    }
}

/// Watch bindings: a pod enters `spec.nodeName!=` when its binding is written; with
/// simulated kubelets the same watch shows it turning Running. Sends (pod, Running, when).
fn watch_bindings(
    c: kube::Client,
) -> (
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<(String, bool, Instant)>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(String, bool, Instant)>();
    let watch_api: Api<Pod> = Api::namespaced(c, "default");
    let task = tokio::spawn(async move {
        let mut s = watcher(
            watch_api,
            watcher::Config::default().fields("spec.nodeName!="),
        )
        .default_backoff()
        .boxed();
        while let Some(ev) = s.next().await {
            if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = ev {
                let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                if tx
                    .send((p.metadata.name.unwrap_or_default(), running, Instant::now()))
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    (task, rx)
}

fn pod(i: usize, spread: bool) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p-{i}"), "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
            "ports": [{"containerPort": 80}],
            "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}, "limits": {"cpu": "100m", "memory": "500Mi"}}}]},
    });
    if spread {
        p["spec"]["topologySpreadConstraints"] = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "bench"}}}]);
    }
    p
}

async fn client(server: &Server) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(server.kubeconfig())?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}

async fn run_variant(args: &Args, spread: bool) -> Result<Outcome> {
    let variant = match (spread, args.spawn_server) {
        (false, false) => "basic",
        (true, false) => "spread",
        (false, true) => "basic, r8s server",
        (true, true) => "spread, r8s server",
    };
    let server = Server::start(args).await?;
    let c = client(&server).await?;
    let t = Instant::now();
    let sim = r8s_simnodes::SimOptions {
        count: args.nodes,
        name_prefix: "sim".into(),
        cpu: "4".into(),
        memory: "32Gi".into(),
        zones: if spread { args.zones } else { 0 },
        kubelet: args.kubelet,
        lease_interval: Duration::from_secs(args.lease_interval.max(1)),
        ready_delay: Duration::from_millis(100),
        ..Default::default()
    };
    let sim_task = tokio::spawn(r8s_simnodes::run(c.clone(), sim));
    let nodes: Api<Node> = Api::all(c.clone());
    loop {
        let n = nodes
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len();
        if n >= args.nodes {
            break;
        }
        if sim_task.is_finished() {
            bail!("simulated nodes stopped early");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "[{variant}] {} nodes registered in {:.1}s",
        args.nodes,
        t.elapsed().as_secs_f64()
    );

    // The probe patches pods `p-0..created`; in-order completion keeps that range exact.
    let created = Arc::new(AtomicUsize::new(0));
    let probe = if args.probe_rate > 0.0 {
        let cfg = ProbeConfig {
            rate: args.probe_rate,
            configmap_namespace: "default".into(),
            pod_namespace: "default".into(),
            pod_prefix: "p-".into(),
        };
        Some(Probe::start(server.kubeconfig(), cfg, created.clone()).await?)
    } else {
        None
    };
    // A spawned server's scheduler binds pods as they are created: watch from the start.
    let mut watch = None;
    if args.spawn_server {
        watch = Some(watch_bindings(c.clone()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pods: Api<Pod> = Api::namespaced(c.clone(), "default");
    let t = Instant::now();
    let mut creates = futures::stream::iter(0..args.pods)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let p: Pod = serde_json::from_value(pod(i, spread))?;
                pods.create(&PostParams::default(), &p)
                    .await
                    .context("create pod")?;
                anyhow::Ok(())
            }
        })
        .buffered(args.create_concurrency);
    let (mut progress, mut last_count) = (Instant::now(), 0);
    while let Some(r) = creates.next().await {
        r?;
        let n = created.fetch_add(1, Ordering::Relaxed) + 1;
        // Long creates (150,000 pods) show whether the rate falls as the store fills.
        if progress.elapsed() >= Duration::from_secs(30) {
            eprintln!(
                "[{variant}] {:.0}s: {n} pods created ({:.0}/s in the last {:.0}s)",
                t.elapsed().as_secs_f64(),
                (n - last_count) as f64 / progress.elapsed().as_secs_f64(),
                progress.elapsed().as_secs_f64()
            );
            (progress, last_count) = (Instant::now(), n);
        }
    }
    if let Some(p) = &probe {
        p.set_phase(1);
    }
    eprintln!(
        "[{variant}] {} pending pods created in {:.1}s",
        args.pods,
        t.elapsed().as_secs_f64()
    );

    let (watch_task, mut rx, start, sched) = match watch {
        Some((task, rx)) => (task, rx, t, None),
        None => {
            let (task, rx) = watch_bindings(c.clone());
            // Let the watch establish before the scheduler starts.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let cfg = r8s_scheduler::SchedulerConfig {
                bind_concurrency: args.bind_concurrency,
                record_scheduled_events: args.scheduled_events,
                ..Default::default()
            };
            let start = Instant::now();
            let sched = tokio::spawn(r8s_scheduler::run(c.clone(), cfg));
            (task, rx, start, Some(sched))
        }
    };
    let mut seen: HashSet<String> = HashSet::with_capacity(args.pods);
    let mut running: HashSet<String> = HashSet::new();
    let mut times: Vec<Instant> = Vec::with_capacity(args.pods);
    let mut last_running = start;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout);
    let mut progress = Instant::now();
    let done = |seen: &HashSet<String>, running: &HashSet<String>| {
        seen.len() >= args.pods && (!args.kubelet || running.len() >= args.pods)
    };
    while !done(&seen, &running) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((name, is_running, at))) => {
                if is_running && running.insert(name.clone()) {
                    last_running = at;
                }
                if seen.insert(name) {
                    times.push(at);
                    if seen.len() == args.pods
                        && let Some(p) = &probe
                    {
                        p.set_phase(2);
                    }
                }
            }
            Ok(None) => bail!("binding watch ended"),
            Err(_) => {
                eprintln!(
                    "[{variant}] timed out: {} of {} bound, {} running",
                    seen.len(),
                    args.pods,
                    running.len()
                );
                break;
            }
        }
        if progress.elapsed() >= Duration::from_secs(10) {
            progress = Instant::now();
            eprintln!(
                "[{variant}] {:.0}s: {} bound, {} running",
                start.elapsed().as_secs_f64(),
                seen.len(),
                running.len()
            );
        }
    }
    if args.kubelet {
        let last = times.last().copied().unwrap_or(start);
        eprintln!(
            "[{variant}] {} pods Running; the last {:.1}s after the last binding",
            running.len(),
            last_running.saturating_duration_since(last).as_secs_f64()
        );
    }
    let probe = match probe {
        Some(p) => p.stop().await,
        None => Vec::new(),
    };
    let memory = server.memory();
    if let Some(sched) = sched {
        sched.abort();
    }
    sim_task.abort();
    watch_task.abort();
    let first = times.first().copied().unwrap_or(start);
    let last = times.last().copied().unwrap_or(start);
    let secs = last.duration_since(first).as_secs() as usize + 1;
    let mut per_second = vec![0usize; secs];
    for t in &times {
        per_second[t.duration_since(first).as_secs() as usize] += 1;
    }
    drop(server);
    Ok(Outcome {
        variant: variant.to_string(),
        bound: times.len(),
        total: last.duration_since(start),
        active: last.duration_since(first),
        first: first.duration_since(start),
        per_second,
        probe,
        memory,
    })
}

fn report(args: &Args, o: &Outcome) {
    let rate = |d: Duration| {
        if d.as_secs_f64() > 0.0 {
            o.bound as f64 / d.as_secs_f64()
        } else {
            0.0
        }
    };
    let mut full: Vec<usize> = o.per_second.clone();
    // The last second is partial.
    if full.len() > 1 {
        full.pop();
    }
    full.sort_unstable();
    let median = full.get(full.len() / 2).copied().unwrap_or(0);
    let (min, max) = (
        full.first().copied().unwrap_or(0),
        full.last().copied().unwrap_or(0),
    );
    println!(
        "| {} | {} | {} | {} | {:.2} | {:.0} | {:.0} | {} / {} / {} |",
        o.variant,
        args.nodes,
        args.pods,
        o.bound,
        o.first.as_secs_f64(),
        rate(o.total),
        rate(o.active),
        min,
        median,
        max
    );
}

/// The algorithm alone: cycles against a cache holding the same nodes and pods.
fn run_offline(args: &Args, spread: bool) -> Result<Outcome> {
    use r8s_scheduler::cache::Cache;
    use r8s_scheduler::cycle::{Sampling, schedule};
    use r8s_scheduler::model::{NodeSpec, PodInfo};
    use rand::SeedableRng;
    let mut cache = Cache::default();
    for i in 0..args.nodes {
        let mut labels = json!({"kubernetes.io/hostname": format!("sim-{i}"), "kubernetes.io/os": "linux", "type": "sim"});
        if spread {
            labels["topology.kubernetes.io/zone"] = json!(format!("zone-{}", i % args.zones));
        }
        let n: Node = serde_json::from_value(
            json!({"metadata": {"name": format!("sim-{i}"), "labels": labels},
            "status": {"allocatable": {"cpu": "4", "memory": "32Gi", "pods": "110"}, "conditions": [{"type": "Ready", "status": "True"}]}}),
        )?;
        cache.upsert_node(NodeSpec::from_node(&n));
    }
    let pods: Vec<PodInfo> = (0..args.pods)
        .map(|i| {
            let mut v = pod(i, spread);
            v["metadata"]["namespace"] = json!("default");
            v["metadata"]["uid"] = json!(format!("uid-{i}"));
            serde_json::from_value::<Pod>(v).map(|p| PodInfo::from_pod(&p))
        })
        .collect::<Result<_, _>>()?;
    let mut sampling = Sampling {
        percentage: 0,
        next_start: 0,
    };
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let start = Instant::now();
    let mut per_second = vec![0usize];
    let mut bound = 0;
    for p in pods {
        if let Ok(node) = schedule(&mut cache, &p, &mut sampling, &mut rng) {
            let mut placed = p;
            placed.node_name = cache.nodes[node].name.clone();
            cache.assume(std::sync::Arc::new(placed), node);
            bound += 1;
        }
        let sec = start.elapsed().as_secs() as usize;
        if per_second.len() <= sec {
            per_second.resize(sec + 1, 0);
        }
        per_second[sec] += 1;
    }
    let total = start.elapsed();
    Ok(Outcome {
        variant: if spread {
            "spread (offline)"
        } else {
            "basic (offline)"
        }
        .to_string(),
        bound,
        total,
        active: total,
        first: Duration::ZERO,
        per_second,
        probe: Vec::new(),
        memory: Vec::new(),
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut outcomes = Vec::new();
    if args.offline {
        for spread in [false, true] {
            if (spread && args.variant == Variant::Basic)
                || (!spread && args.variant == Variant::Spread)
            {
                continue;
            }
            outcomes.push(run_offline(&args, spread)?);
        }
        print_table(&args, &outcomes);
        return Ok(());
    }
    if matches!(args.variant, Variant::Basic | Variant::Both) {
        outcomes.push(run_variant(&args, false).await?);
    }
    if matches!(args.variant, Variant::Spread | Variant::Both) {
        outcomes.push(run_variant(&args, true).await?);
    }
    print_table(&args, &outcomes);
    Ok(())
}

fn print_table(args: &Args, outcomes: &[Outcome]) {
    println!(
        "\n| variant | nodes | pods | bound | first bind s | pods/s (start→last) | pods/s (first→last) | per-second min / median / max |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for o in outcomes {
        report(args, o);
    }
    for o in outcomes {
        if !o.probe.is_empty() {
            println!(
                "\nMutating API calls during the {} run ({}/s, own client):\n",
                o.variant, args.probe_rate
            );
            let phases = if args.kubelet {
                &PHASES[..]
            } else {
                &PHASES[..2]
            };
            print!("{}", probe::table(&o.probe, phases));
            let p99 = probe::stats(&o.probe, |_| true).p99;
            println!(
                "\nmutating API p99 < 1 s (whole run): {:.2} ms — {}",
                p99.as_secs_f64() * 1000.0,
                if p99 < Duration::from_secs(1) {
                    "met"
                } else {
                    "**missed**"
                }
            );
        }
        for (what, rss, peak) in &o.memory {
            println!(
                "\n{}: RSS of the {what} at the end {:.1} MB, peak over the process lifetime {:.1} MB",
                o.variant,
                *rss as f64 / 1024.0,
                *peak as f64 / 1024.0
            );
        }
    }
}

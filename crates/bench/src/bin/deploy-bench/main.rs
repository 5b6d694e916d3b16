//! `deploy-bench`: how fast a large Deployment becomes available and rolls out, with the
//! whole control plane in one process — API server (embedded SQLite), controller
//! manager, scheduler and simulated nodes, each a kube-rs client without rate limits.
//!
//! Per run, two phases, each in a fresh child process (so neither inherits the other's
//! objects, caches or tasks):
//!
//! - **baseline**: `--replicas` pods created directly through the API by `--clients`
//!   concurrent clients; time until the pod watch sees all of them Ready;
//! - **deployment**: a Deployment of `--replicas` (default strategy: maxSurge 25 %,
//!   maxUnavailable 25 %); time until `status.availableReplicas` reaches it, then an image
//!   change and the time until the rollout completes (updated = available = replicas,
//!   status current, old ReplicaSets at 0). A pod watch recomputes the available pods
//!   (Ready, not terminating) at every event; its minimum is checked against
//!   `replicas − maxUnavailable`.
//!
//! Timing logs (progress every second, ReplicaSet resizes) go to stderr; `RUST_LOG`
//! turns on the components' own tracing.

mod env;
mod phases;
mod track;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use phases::Phase;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Child {
    Baseline,
    Deployment,
}

/// Benchmark a Deployment's scale-up and rolling update on simulated nodes.
#[derive(Debug, Parser)]
#[command(name = "deploy-bench")]
struct Args {
    /// Deployment replicas (and baseline pods).
    #[arg(long, default_value_t = 1000)]
    replicas: usize,
    /// Simulated nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Repetitions of both phases.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// How long a simulated node takes to make a bound pod Running and Ready.
    #[arg(long, default_value_t = 100)]
    ready_delay_ms: u64,
    /// Concurrent clients creating the baseline's pods.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Internal: run one phase in this process and print its result.
    #[arg(long, value_enum, hide = true)]
    child: Option<Child>,
}

/// Peak resident memory of this process, MiB (`VmHWM`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn run_child(args: &Args, which: Child) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout);
    let mut env = env::Env::start(args.nodes, Duration::from_millis(args.ready_delay_ms)).await?;
    let phases = match which {
        Child::Baseline => {
            vec![phases::baseline(&mut env, args.replicas, args.clients, timeout).await?]
        }
        Child::Deployment => {
            let (a, b) = phases::deployment(&mut env, args.replicas, timeout).await?;
            vec![a, b]
        }
    };
    let out: Vec<Value> = phases
        .iter()
        .map(|p| {
            let mut v = p.to_json();
            v["peak_rss_mib"] = peak_rss_mib().into();
            v
        })
        .collect();
    println!("RESULT {}", Value::Array(out));
    drop(env);
    Ok(())
}

/// Run one phase in a child process; its stderr (timing logs) passes through.
fn spawn_child(args: &Args, which: &str) -> Result<Vec<(Phase, f64)>> {
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .args([
            "--replicas",
            &args.replicas.to_string(),
            "--nodes",
            &args.nodes.to_string(),
            "--ready-delay-ms",
            &args.ready_delay_ms.to_string(),
            "--clients",
            &args.clients.to_string(),
            "--timeout",
            &args.timeout.to_string(),
            "--child",
            which,
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("run the {which} phase"))?;
    if !out.status.success() {
        bail!("the {which} phase failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .with_context(|| format!("the {which} phase printed no result"))?;
    let v: Value = serde_json::from_str(line)?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        Phase::from_json(p),
                        p["peak_rss_mib"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

fn secs(s: Option<f64>) -> String {
    s.map_or("timeout".into(), |s| format!("{s:.2}"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(which) = args.child {
        // Components' tracing only when asked for (RUST_LOG), to stderr.
        if std::env::var_os("RUST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .init();
        }
        return run_child(&args, which).await;
    }
    // Upstream's defaults: maxSurge rounds up, maxUnavailable down.
    let max_unavailable = args.replicas * 25 / 100;
    let bound = args.replicas - max_unavailable;
    let mut rows = Vec::new();
    for run in 1..=args.runs {
        eprintln!("=== run {run}: baseline");
        let base = spawn_child(&args, "baseline")?;
        eprintln!("=== run {run}: deployment");
        let dep = spawn_child(&args, "deployment")?;
        let base_secs = base.first().and_then(|(p, _)| p.secs);
        for (p, rss) in base.into_iter().chain(dep) {
            rows.push((run, p, rss, base_secs));
        }
    }
    println!(
        "\n{} replicas, {} simulated nodes, ready delay {} ms, baseline by {} clients; min available bound {} (replicas − maxUnavailable {})\n",
        args.replicas, args.nodes, args.ready_delay_ms, args.clients, bound, max_unavailable
    );
    println!(
        "| run | workload | time s | × baseline | first pod created s | last created s | last bound s | last Ready s | min available (pod watch / Deployment status) | peak RSS MiB |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---|---:|");
    for (run, p, rss, base) in &rows {
        let ratio = match (p.secs, base) {
            (Some(a), Some(b)) if *b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        let min = match (p.min_available, p.min_status_available) {
            (Some(m), Some(s)) => format!(
                "{m} / {s} ({})",
                if m >= bound { "≥ bound" } else { "VIOLATED" }
            ),
            _ => "-".into(),
        };
        let relists = if p.relists > 0 {
            format!(" ({} watch relists)", p.relists)
        } else {
            String::new()
        };
        println!(
            "| {run} | {}{relists} | {} | {ratio} | {:.2} | {:.2} | {:.2} | {:.2} | {min} | {rss:.0} |",
            p.name,
            secs(p.secs),
            p.first_created,
            p.last_created,
            p.last_bound,
            p.last_ready,
        );
    }
    Ok(())
}

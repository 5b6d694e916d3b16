//! `patch-bench`: latency of strategic merge patch and server-side apply on a Deployment
//! with `--containers` containers (each with env, ports, volumeMounts and resources).
//!
//! In process, through `r8s_api` (decode, patch, field ownership — what the PATCH handler
//! does before validation and storage): JSON patch and JSON merge patch as baselines, a
//! strategic patch of one image, strategic patches adding and removing a container with
//! `$setElementOrder`, and server-side apply (create, unchanged, one field changed). End
//! to end through the HTTPS API server with kube-rs: the strategic patch and an apply,
//! against the raw store reading and writing the same object in the same run.

mod breakdown;
mod e2e;
mod inproc;
mod object;

use anyhow::Result;
use clap::Parser;
use r8s_bench::stats::{ms, percentile};
use std::time::Duration;

/// Benchmark patches and apply on a large Deployment.
#[derive(Debug, Parser)]
#[command(name = "patch-bench")]
struct Args {
    /// Containers in the Deployment's pod template.
    #[arg(long, default_value_t = 200)]
    containers: usize,
    /// Timed iterations per in-process operation.
    #[arg(long, default_value_t = 2000)]
    iters: usize,
    /// Timed requests per end-to-end operation.
    #[arg(long, default_value_t = 2000)]
    e2e_iters: usize,
    /// Untimed iterations before each operation.
    #[arg(long, default_value_t = 50)]
    warmup: usize,
    /// Repeat everything this many times (a table per run, then p99s side by side).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Skip the end-to-end part.
    #[arg(long)]
    no_e2e: bool,
    /// Only the operations whose name contains one of these (comma-separated), e.g.
    /// `--only strategic,apply` (for profiling); the raw-store baseline always runs.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also time the building blocks (object copy, JSON, managed-field sets).
    #[arg(long)]
    breakdown: bool,
}

struct Stats {
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut s = samples.to_vec();
    s.sort_unstable();
    Stats {
        p50: percentile(&s, 50.0),
        p90: percentile(&s, 90.0),
        p99: percentile(&s, 99.0),
        max: s.last().copied().unwrap_or_default(),
    }
}

fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        "-".into()
    } else {
        format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
    }
}

/// p99 of every row of one run, for the summary.
type RunP99 = Vec<(String, Duration)>;

fn print_inproc(ops: &[inproc::Op]) -> RunP99 {
    println!(
        "\n| in process | body bytes | p50 ms | p90 ms | p99 ms | max ms | p50 / p99 ms without managedFields | p50 × JSON patch |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let base = ops
        .first()
        .map(|o| stats(&o.samples).p50)
        .unwrap_or_default();
    let mut out = Vec::new();
    for o in ops {
        let s = stats(&o.samples);
        let alone = o.alone.as_ref().map_or("-".to_string(), |a| {
            let a = stats(a);
            format!("{} / {}", ms(a.p50), ms(a.p99))
        });
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            o.name,
            o.body_bytes,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max),
            alone,
            ratio(s.p50, base)
        );
        out.push((o.name.clone(), s.p99));
    }
    out
}

fn print_breakdown(ops: &[inproc::Op]) {
    println!("\n| building block | size (bytes, or paths for sets) | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for o in ops {
        let s = stats(&o.samples);
        println!(
            "| {} | {} | {} | {} |",
            o.name,
            o.body_bytes,
            ms(s.p50),
            ms(s.p99)
        );
    }
}

fn print_e2e(rows: &[e2e::E2e]) -> RunP99 {
    println!(
        "\n| end to end (1 client) | body bytes | p50 ms | p90 ms | p99 ms | max ms | p50 × raw get+put |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let base = rows
        .first()
        .map(|r| stats(&r.samples).p50)
        .unwrap_or_default();
    let mut out = Vec::new();
    for r in rows {
        let s = stats(&r.samples);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.body_bytes,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max),
            ratio(s.p50, base)
        );
        out.push((format!("e2e: {}", r.name), s.p99));
    }
    out
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let name = "big";
    let mut runs: Vec<RunP99> = Vec::new();
    for run in 1..=args.runs {
        // The in-process operations start from the object exactly as the server stored it.
        let setup = e2e::setup(name, args.containers).await?;
        let stored_bytes = serde_json::to_vec(&setup.stored)?.len();
        let managed_bytes = setup
            .stored
            .pointer("/metadata/managedFields")
            .map(|m| m.to_string().len())
            .unwrap_or(0);
        println!(
            "\n### run {run}: Deployment with {} containers, stored {} bytes ({} of them managedFields); {} iterations, {} end to end",
            args.containers, stored_bytes, managed_bytes, args.iters, args.e2e_iters
        );
        let ops = inproc::run(
            &setup.stored,
            args.containers,
            args.warmup,
            args.iters,
            &args.only,
        )?;
        let mut p99 = print_inproc(&ops);
        if args.breakdown {
            print_breakdown(&breakdown::run(&setup.stored, args.warmup, args.iters)?);
        }
        if !args.no_e2e {
            let rows = e2e::run(
                &setup,
                name,
                args.containers,
                args.warmup,
                args.e2e_iters,
                &args.only,
            )
            .await?;
            p99.extend(print_e2e(&rows));
        }
        runs.push(p99);
    }
    if runs.len() > 1 {
        print!("\n| p99 ms |");
        for r in 1..=runs.len() {
            print!(" run {r} |");
        }
        print!("\n|---|");
        for _ in &runs {
            print!("---:|");
        }
        println!();
        for (i, (name, _)) in runs[0].iter().enumerate() {
            print!("| {name} |");
            for r in &runs {
                print!(" {} |", r.get(i).map_or("-".into(), |(_, d)| ms(*d)));
            }
            println!();
        }
    }
    Ok(())
}

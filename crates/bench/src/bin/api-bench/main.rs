//! `api-bench`: the API server end to end (HTTPS, JSON, validation, storage) against the
//! raw SQLite store it sits on, measured in the same run with the same object bytes.
//!
//! Workloads: create, get and full list of ConfigMaps at each client count (one HTTP/1.1
//! keep-alive connection per client); watch fan-out (N watchers on HTTP/2, 100 streams per
//! connection; each sample is one change until every watcher has it). Then the memory of a
//! spawned release `r8s server --disable-agent`: idle, and holding `--pods` pods created
//! through the API. Prints markdown tables and the targets of the API server issue.

mod client;
mod rss;
mod workloads;

use anyhow::{Context, Result};
use clap::Parser;
use r8s_bench::stats::ms;
use r8s_bench::{Measurement, Summary};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Benchmark the API server against the raw store.
#[derive(Debug, Parser)]
#[command(name = "api-bench")]
struct Args {
    /// Operations per create/get workload.
    #[arg(long, default_value_t = 3000)]
    ops: usize,
    /// Concurrent clients (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
    /// ConfigMap payload size in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Objects in the listed namespace.
    #[arg(long, default_value_t = 500)]
    list_keys: usize,
    /// Full lists per client count.
    #[arg(long, default_value_t = 100)]
    list_ops: usize,
    /// Watcher counts for the fan-out workload (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,64,1000")]
    watchers: Vec<usize>,
    /// Changes per fan-out run.
    #[arg(long, default_value_t = 100)]
    watch_changes: usize,
    /// Pods for the memory measurement (0 skips the spawned-server part).
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// The `r8s` binary to spawn (default: next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Workloads to run (comma-separated): apiserver-memory (the API server alone, in
    /// process, holding `--pods` pods), create, create-h2 (the same creates from all
    /// clients multiplexed on one HTTP/2 connection; not run by default), get, list,
    /// watch, memory (a spawned `r8s server` with its controllers and scheduler).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "apiserver-memory,create,get,list,watch,memory"
    )]
    only: Vec<String>,
    /// Where data goes (default: the temp directory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Watches of other resources held open during the create and get workloads, as a
    /// server's controllers hold them (0: none).
    #[arg(long, default_value_t = 0)]
    idle_watchers: usize,
}

/// One result line.
struct Row {
    /// Process CPU time (client and server together) per operation.
    cpu_per_op: Duration,
    target: &'static str,
    workload: String,
    clients: usize,
    summary: Summary,
}

struct Report {
    rows: Vec<Row>,
    /// Process CPU seconds when the current workload started.
    mark: f64,
}

/// CPU time (user + system) of this process so far, in seconds, from /proc (USER_HZ is
/// 100 on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at state (field 3).
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

impl Report {
    /// Start measuring the CPU of the next workload.
    fn mark(&mut self) {
        self.mark = cpu_seconds();
    }

    fn push(&mut self, target: &'static str, workload: &str, clients: usize, m: &Measurement) {
        let summary = m.summary();
        let cpu = (cpu_seconds() - self.mark).max(0.0);
        let cpu_per_op = Duration::from_secs_f64(cpu / summary.ops.max(1) as f64);
        eprintln!(
            "{target:>5} {workload:<22} clients={clients:<5} {:>9.0} ops/s  p50 {} ms  p99 {} ms",
            summary.ops_per_sec,
            ms(summary.p50),
            ms(summary.p99)
        );
        self.rows.push(Row {
            cpu_per_op,
            target,
            workload: workload.to_string(),
            clients,
            summary,
        });
    }

    fn find(&self, target: &str, workload: &str, clients: usize) -> Option<Summary> {
        self.rows
            .iter()
            .find(|r| r.target == target && r.workload == workload && r.clients == clients)
            .map(|r| r.summary)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let base = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let payload = "x".repeat(args.value_size);
    let mut report = Report {
        rows: Vec::new(),
        mark: 0.0,
    };

    let want = |w: &str| args.only.iter().any(|o| o == w);
    let mut memory = Vec::new();
    if args.pods > 0 && want("apiserver-memory") {
        // First, while this process is small: the API server alone (no controllers or
        // scheduler) holding the pods, as growth of this process's RSS.
        let alone = r8s_apiserver::testing::TestServer::start().await;
        let client = client::Client::from_kubeconfig(&alone.kubeconfig)?;
        let before = rss::rss_kib_of("self")?;
        report.mark();
        let m = rss::create_pods(&client, args.pods, 64).await?;
        report.push("api", &format!("create {} pods", args.pods), 64, &m);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let grown = rss::rss_kib_of("self")?.saturating_sub(before);
        let what = format!(
            "growth of the in-process API server alone holding {} pods",
            args.pods
        );
        memory.push((what, grown, None));
    }

    let server = r8s_apiserver::testing::TestServer::start().await;
    let client = client::Client::from_kubeconfig(&server.kubeconfig)?;
    let raw_dir = tempfile::Builder::new()
        .prefix("r8s-api-bench-raw")
        .tempdir_in(&base)?;
    let raw: r8s_store::DynStore = Arc::new(
        r8s_store::sqlite::SqliteStore::open(&raw_dir.path().join("state.db"), Default::default())
            .await?,
    );
    let mut setup = client.http1().await?;
    let mut namespaces: Vec<String> = args.clients.iter().map(|c| format!("bench-c{c}")).collect();
    namespaces.extend(["bench-list".to_string(), "bench-watch".to_string()]);
    for ns in &namespaces {
        let body =
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        setup
            .call(
                "POST",
                "/api/v1/namespaces",
                Some(serde_json::to_vec(&body)?.into()),
                201,
            )
            .await?;
    }

    let idle = workloads::idle_watches(&client, args.idle_watchers).await?;
    for &c in args
        .clients
        .iter()
        .filter(|_| want("create") || want("get") || want("create-h2"))
    {
        let ns = format!("bench-c{c}");
        report.mark();
        let m = workloads::raw_create(&raw, &ns, args.ops, c, &payload).await?;
        if want("create") {
            report.push("raw", "create", c, &m);
        }
        report.mark();
        let m = workloads::api_create(&client, &ns, args.ops, c, &payload).await?;
        if want("create") {
            report.push("api", "create", c, &m);
        }
        if want("create-h2") {
            report.mark();
            let m = workloads::api_create_h2(&client, &ns, args.ops, c, &payload).await?;
            report.push("api", "create h2", c, &m);
        }
        if want("get") {
            report.mark();
            let m = workloads::raw_get(&raw, &ns, args.ops, args.ops, c).await?;
            report.push("raw", "get", c, &m);
            report.mark();
            let m = workloads::api_get(&client, &ns, args.ops, args.ops, c).await?;
            report.push("api", "get", c, &m);
        }
    }
    idle.iter().for_each(tokio::task::JoinHandle::abort);
    if want("list") {
        list(&args, &client, &raw, &payload, &mut report).await?;
    }
    if want("watch") {
        watch(&args, &client, &raw, &payload, &mut setup, &mut report).await?;
    }
    drop(server);

    if args.pods > 0 && want("memory") {
        let bin = args
            .server_bin
            .clone()
            .unwrap_or_else(rss::default_server_bin);
        let spawned = rss::spawn(&bin, &base)
            .await
            .context("spawn r8s server (build it with --release)")?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let what = "of r8s server idle after bootstrap".to_string();
        memory.push((what, spawned.rss_kib()?, Some(50.0)));
        report.mark();
        let m = rss::create_pods(&spawned.client, args.pods, 64).await?;
        report.push("srv", &format!("create {} pods", args.pods), 64, &m);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let what = format!("of r8s server holding {} pods", args.pods);
        memory.push((what, spawned.rss_kib()?, Some(400.0)));
    }
    print_report(&args, &report, &memory);
    Ok(())
}

/// Full lists of a namespace holding `--list-keys` objects.
async fn list(
    args: &Args,
    client: &client::Client,
    raw: &r8s_store::DynStore,
    payload: &str,
    report: &mut Report,
) -> Result<()> {
    workloads::raw_create(raw, "bench-list", args.list_keys, 16, payload).await?;
    workloads::api_create(client, "bench-list", args.list_keys, 16, payload).await?;
    let list_name = format!("list {}", args.list_keys);
    for &c in &args.clients {
        report.mark();
        let m = workloads::raw_list(raw, "bench-list", args.list_ops, c).await?;
        report.push("raw", &list_name, c, &m);
        report.mark();
        let m = workloads::api_list(client, "bench-list", args.list_ops, c).await?;
        report.push("api", &list_name, c, &m);
    }
    Ok(())
}

/// Watch fan-out at each `--watchers` count.
async fn watch(
    args: &Args,
    client: &client::Client,
    raw: &r8s_store::DynStore,
    payload: &str,
    setup: &mut client::H1,
    report: &mut Report,
) -> Result<()> {
    let watched = workloads::configmap("bench-watch", "watched", payload);
    setup
        .call(
            "POST",
            "/api/v1/namespaces/bench-watch/configmaps",
            Some(serde_json::to_vec(&watched)?.into()),
            201,
        )
        .await?;
    for &w in &args.watchers {
        report.mark();
        let f = workloads::raw_watch(raw, "bench-watch", w, args.watch_changes, payload).await?;
        report.push("raw", "watch: all delivered", w, &f.all_delivered);
        report.push("raw", "watch: each delivery", w, &f.deliveries);
        report.mark();
        let f = workloads::api_watch(client, "bench-watch", w, args.watch_changes).await?;
        report.push("api", "watch: all delivered", w, &f.all_delivered);
        report.push("api", "watch: each delivery", w, &f.deliveries);
    }
    Ok(())
}

/// (what, KiB, limit in MB if it is a target).
type Memory = (String, u64, Option<f64>);

fn print_report(args: &Args, report: &Report, memory: &[Memory]) {
    println!(
        "| target | workload | clients | ops | ops/s | p50 ms | p99 ms | max ms | CPU µs/op |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &report.rows {
        let s = r.summary;
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} |",
            r.target,
            r.workload,
            r.clients,
            s.ops,
            s.ops_per_sec,
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            // The spawned server's CPU is not this process's.
            if r.target == "srv" {
                "-".to_string()
            } else {
                format!("{:.0}", r.cpu_per_op.as_secs_f64() * 1e6)
            }
        );
    }
    println!();
    println!("| API / raw store (ops/s) | clients | ratio |");
    println!("|---|---:|---:|");
    let list_name = format!("list {}", args.list_keys);
    for w in ["create", "get", list_name.as_str()] {
        for &c in &args.clients {
            if let (Some(a), Some(r)) = (report.find("api", w, c), report.find("raw", w, c)) {
                println!(
                    "| {w} | {c} | {:.2} |",
                    a.ops_per_sec / r.ops_per_sec.max(f64::MIN_POSITIVE)
                );
            }
        }
    }
    println!();
    println!("| target | measured | met |");
    println!("|---|---:|---|");
    let yes = |ok: bool| if ok { "yes" } else { "**no**" };
    for &c in &args.clients {
        if let (Some(a), Some(r)) = (
            report.find("api", "create", c),
            report.find("raw", "create", c),
        ) {
            let ratio = a.ops_per_sec / r.ops_per_sec.max(f64::MIN_POSITIVE);
            println!(
                "| API create ≥ 0.7× raw store, {c} clients | {ratio:.2}× | {} |",
                yes(ratio >= 0.7)
            );
        }
    }
    if let Some(g) = report.find("api", "get", 64) {
        println!(
            "| GET p99 < 10 ms at 64 clients | {} ms | {} |",
            ms(g.p99),
            yes(g.p99 < Duration::from_millis(10))
        );
    }
    if let Some(w) = report.find("api", "watch: all delivered", 1000) {
        println!(
            "| one change reaches 1,000 watchers, p99 < 100 ms | {} ms | {} |",
            ms(w.p99),
            yes(w.p99 < Duration::from_millis(100))
        );
    }
    for &(ref what, kib, limit) in memory {
        let mb = kib as f64 / 1024.0;
        let Some(limit) = limit else {
            println!("| RSS {what} (diagnostic) | {mb:.1} MB | - |");
            continue;
        };
        println!(
            "| RSS {what} < {limit:.0} MB | {mb:.1} MB | {} |",
            yes(mb < limit)
        );
    }
}

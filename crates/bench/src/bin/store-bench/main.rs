//! `store-bench`: throughput and latency of the r8s store backends against raw etcd.
//!
//! Runs the same workloads (create, update, get at each client count; full lists of
//! 1k/10k keys; watch fan-out) against embedded SQLite, r8s-on-etcd and raw etcd
//! (`etcd-client` Put/Get/Range) in one process, and prints a markdown table plus the
//! ratios the targets are stated in. Without `--etcd-endpoints` a private etcd is started
//! on loopback ports with its data in `--data-dir`.

mod target;
mod workloads;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use r8s_bench::Summary;
use r8s_bench::stats::ms;
use r8s_store::etcd::testing::EtcdProcess;
use r8s_store::etcd::{EtcdStore, Options};
use r8s_store::sqlite::SqliteStore;
use std::path::PathBuf;
use std::sync::Arc;
use target::Target;
use workloads::WriteSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Etcd,
    RawEtcd,
    /// Raw etcd writing with compare-and-put transactions (diagnostic; part of `all`).
    RawEtcdTxn,
    All,
}

/// Benchmark the r8s store backends against raw etcd.
#[derive(Debug, Parser)]
#[command(name = "store-bench")]
struct Args {
    /// Which system(s) to measure.
    #[arg(long, value_enum, default_value = "all")]
    backend: Backend,
    /// etcd client URLs (comma-separated); default: start a private etcd.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Operations per write/read workload.
    #[arg(long, default_value_t = 2000)]
    ops: usize,
    /// Concurrent clients for create/update/get (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
    /// Key counts for the list workload (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    keys: Vec<usize>,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Full lists per key count.
    #[arg(long, default_value_t = 30)]
    list_iters: usize,
    /// Watchers for the fan-out workload.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Writes for the fan-out workload.
    #[arg(long, default_value_t = 200)]
    watch_writes: usize,
    /// Where SQLite (and a private etcd) keep their data; default: the temp directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// The etcd a target runs against: the given endpoints or a fresh private etcd (stopped
/// when this is dropped).
struct Etcd {
    endpoints: Vec<String>,
    _private: Option<EtcdProcess>,
}

impl Etcd {
    async fn get(args: &Args, base: &std::path::Path) -> Result<Self> {
        if !args.etcd_endpoints.is_empty() {
            return Ok(Self {
                endpoints: args.etcd_endpoints.clone(),
                _private: None,
            });
        }
        let etcd = EtcdProcess::spawn_in(base)
            .await
            .context("start a private etcd")?;
        eprintln!(
            "private etcd at {} (data in {})",
            etcd.endpoint(),
            etcd.data_dir().display()
        );
        Ok(Self {
            endpoints: vec![etcd.endpoint().to_string()],
            _private: Some(etcd),
        })
    }
}

/// One result line.
struct Row {
    backend: &'static str,
    workload: String,
    clients: usize,
    summary: Summary,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let base = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let want = |b: Backend| args.backend == b || args.backend == Backend::All;

    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());

    let mut rows = Vec::new();
    // Raw etcd first, then r8s on etcd, then SQLite. Without --etcd-endpoints each etcd
    // target gets a fresh private etcd, so none pays for data the previous one left.
    if want(Backend::RawEtcd) {
        let etcd = Etcd::get(&args, &base).await?;
        let client = etcd_client::Client::connect(&etcd.endpoints, None).await?;
        let t = Target::raw(client, format!("/bench-raw-{run_id}"), false);
        bench(&args, "raw-etcd", &t, false, &mut rows).await?;
    }
    if want(Backend::RawEtcdTxn) {
        let etcd = Etcd::get(&args, &base).await?;
        let client = etcd_client::Client::connect(&etcd.endpoints, None).await?;
        let t = Target::raw(client, format!("/bench-rawtxn-{run_id}"), true);
        bench(&args, "raw-etcd-txn", &t, true, &mut rows).await?;
    }
    if want(Backend::Etcd) {
        let etcd = Etcd::get(&args, &base).await?;
        let opts = Options {
            prefix: format!("/bench-r8s-{run_id}"),
            ..Default::default()
        };
        let store = EtcdStore::connect(&etcd.endpoints, opts).await?;
        let t = Target::Store(Arc::new(store));
        bench(&args, "r8s-etcd", &t, false, &mut rows).await?;
    }
    let _sqlite_dir;
    if want(Backend::Sqlite) {
        let dir = tempfile::Builder::new()
            .prefix("r8s-bench-sqlite")
            .tempdir_in(&base)?;
        let store = SqliteStore::open(&dir.path().join("state.db"), Default::default()).await?;
        bench(
            &args,
            "sqlite",
            &Target::Store(Arc::new(store)),
            false,
            &mut rows,
        )
        .await?;
        _sqlite_dir = dir;
    }
    print_report(&args, &rows);
    Ok(())
}

/// Every workload against one target (only creates and updates if `writes_only`).
async fn bench(
    args: &Args,
    name: &'static str,
    t: &Target,
    writes_only: bool,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let mut push = |workload: String, clients: usize, m: r8s_bench::Measurement| {
        let summary = m.summary();
        eprintln!(
            "{name:>9} {workload:<12} clients={clients:<3} {:>9.0} ops/s  p50 {} ms  p99 {} ms",
            summary.ops_per_sec,
            ms(summary.p50),
            ms(summary.p99)
        );
        rows.push(Row {
            backend: name,
            workload,
            clients,
            summary,
        });
    };
    for &clients in &args.clients {
        let set = WriteSet::new(format!("/registry/bench/c{clients}/"), args.ops);
        let m = workloads::create(t, &set, clients, args.value_size).await?;
        push("create".into(), clients, m);
        let m = workloads::update(t, &set, clients, args.value_size).await?;
        push("update".into(), clients, m);
        if writes_only {
            continue;
        }
        let m = workloads::get(t, &set, clients).await?;
        push("get".into(), clients, m);
    }
    if writes_only {
        return Ok(());
    }
    for &keys in &args.keys {
        let prefix = format!("/registry/list{keys}/");
        workloads::preload(t, &prefix, keys, args.value_size).await?;
        let m = workloads::list(t, &prefix, keys, args.list_iters).await?;
        push(format!("list {}k", keys / 1000), 1, m);
    }
    if args.watchers > 0 && args.watch_writes > 0 {
        let m = workloads::watch_fanout(
            t,
            "/registry/fanout/",
            args.watchers,
            args.watch_writes,
            args.value_size,
        )
        .await?;
        push(format!("watch x{}", args.watchers), 1, m);
    }
    Ok(())
}

fn find<'a>(rows: &'a [Row], backend: &str, workload: &str, clients: usize) -> Option<&'a Summary> {
    rows.iter()
        .find(|r| r.backend == backend && r.workload == workload && r.clients == clients)
        .map(|r| &r.summary)
}

fn print_report(args: &Args, rows: &[Row]) {
    println!(
        "\n{} ops per workload, {}-byte values, lists of {:?} keys x{}, watch fan-out to {} watchers x{} writes\n",
        args.ops, args.value_size, args.keys, args.list_iters, args.watchers, args.watch_writes
    );
    println!("| backend | workload | clients | ops | ops/s | p50 ms | p99 ms | max ms |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let s = &r.summary;
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} |",
            r.backend,
            r.workload,
            r.clients,
            s.ops,
            s.ops_per_sec,
            ms(s.p50),
            ms(s.p99),
            ms(s.max)
        );
    }
    println!("\n| ratio (ops/s) | workload | clients | value |\n|---|---|---:|---:|");
    let pairs = [
        ("r8s-etcd", "raw-etcd"),
        ("sqlite", "raw-etcd"),
        ("r8s-etcd", "raw-etcd-txn"),
    ];
    for workload in ["create", "update", "get"] {
        for &c in &args.clients {
            for (num, den) in pairs {
                if let (Some(a), Some(b)) =
                    (find(rows, num, workload, c), find(rows, den, workload, c))
                    && b.ops_per_sec > 0.0
                {
                    println!(
                        "| {num} / {den} | {workload} | {c} | {:.2}x |",
                        a.ops_per_sec / b.ops_per_sec
                    );
                }
            }
        }
    }
    println!();
    for r in rows.iter().filter(|r| r.workload == "list 10k") {
        let ok = r.summary.p99.as_millis() < 100;
        println!(
            "list 10k p99 on {}: {} ms ({})",
            r.backend,
            ms(r.summary.p99),
            if ok {
                "meets < 100 ms"
            } else {
                "MISSES < 100 ms"
            }
        );
    }
}

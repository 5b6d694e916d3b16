//! `pod-bench`: pod startup latency of the r8s kubelet against the raw CRI floor, in one
//! process: an in-process API server (embedded SQLite) and a real kubelet with its own
//! containerd in a temporary data dir (needs root, containerd, runc, ctr and the CNI
//! plugins in /usr/lib/cni).
//!
//! For each batch size (1, 10, 100 by default) and repetition: (a) *raw CRI* — the same
//! work done directly, RunPodSandbox + CreateContainer + StartContainer per pod, all pods
//! of the batch concurrently, with the kubelet's own sandbox config; (b) *r8s* — the batch
//! is created through the API at once, and each pod counts from the start of its create
//! call until a watch sees it Running and Ready. The image (busybox:1.36, built in) is
//! already present. Reported per batch size: p50/p99 of the per-pod latency and the wall
//! time until the whole batch was up, for both, and the ratio of the p50s.

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use r8s_apiserver::testing::TestServer;
use r8s_bench::stats::{Measurement, ms};
use r8s_kubelet::cri::{Cri, api};
use r8s_kubelet::{Kubelet, KubeletConfig};
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const IMAGE: &str = "busybox:1.36";
const SCRIPT: &str = "trap 'exit 0' TERM; sleep 3600 & wait";

/// Pod startup latency: kubelet vs direct CRI calls.
#[derive(Debug, Parser)]
#[command(name = "pod-bench")]
struct Args {
    /// Batch sizes (pods created at once).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    pods: Vec<usize>,
    /// Repetitions per batch size (same order as --pods; the last value repeats).
    #[arg(long, value_delimiter = ',', default_value = "10,3,1")]
    reps: Vec<usize>,
    /// Linux bridge for the pod network (deleted before and after).
    #[arg(long, default_value = "r8sbench0")]
    bridge: String,
    /// Pod CIDR of the benchmark node (must hold the largest batch twice over).
    #[arg(long, default_value = "10.199.250.0/24")]
    cidr: String,
    /// Give up on a batch after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

/// Whether this machine can run pods (same checks as the kubelet's tests).
fn supported() -> Result<()> {
    let root = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        bail!("pod-bench needs root (it runs containerd and configures a bridge)");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for b in ["containerd", "runc", "ctr"] {
        if !std::env::split_paths(&path).any(|d| d.join(b).is_file()) {
            bail!("pod-bench needs `{b}` on PATH (scripts/install-deps.sh installs it)");
        }
    }
    if !Path::new("/usr/lib/cni/bridge").exists() {
        bail!("pod-bench needs the CNI plugins in /usr/lib/cni (containernetworking-plugins)");
    }
    Ok(())
}

struct Bench {
    _server: TestServer,
    client: kube::Client,
    kubelet: Option<Kubelet>,
    cri: Cri,
    cfg: KubeletConfig,
    dir: tempfile::TempDir,
    timeout: Duration,
}

impl Bench {
    async fn start(args: &Args) -> Result<Bench> {
        let server = TestServer::start().await;
        let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig)?;
        let kcfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        let client = kube::Client::try_from(kcfg)?;
        let dir = tempfile::Builder::new().prefix("r8s-pod-bench").tempdir()?;
        del_link(&args.bridge);
        let mut cfg = KubeletConfig::new(
            "bench-node",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            dir.path().to_path_buf(),
        );
        cfg.cluster_cidr = args.cidr.clone();
        cfg.cni_bridge = args.bridge.clone();
        cfg.max_pods = 1000;
        let kubelet = Kubelet::start(client.clone(), cfg.clone())
            .await
            .context("starting the kubelet")?;
        let cri = kubelet.cri.clone();
        Ok(Bench {
            _server: server,
            client,
            kubelet: Some(kubelet),
            cri,
            cfg,
            dir,
            timeout: Duration::from_secs(args.timeout),
        })
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// One batch through the kubelet: per-pod create → Ready latency.
    async fn r8s_batch(&self, batch: &str, n: usize) -> Result<Measurement> {
        let api = self.pods();
        // The watch runs before the first create so no transition is missed.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
        let wc = watcher::Config::default().labels(&format!("bench={batch}"));
        let stream = watcher::watcher(api.clone(), wc).applied_objects();
        let watch = tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(Ok(p)) = stream.next().await {
                if running_and_ready(&p) {
                    let _ = tx.send((p.metadata.name.unwrap_or_default(), Instant::now()));
                }
            }
        });
        // Give the watch its initial list before the clock starts.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let names: Vec<String> = (0..n).map(|i| format!("{batch}-{i}")).collect();
        let t0 = Instant::now();
        let creates = names.iter().map(|name| {
            let api = api.clone();
            let pod = bench_pod(name, batch);
            async move {
                let started = Instant::now();
                api.create(&PostParams::default(), &pod).await?;
                anyhow::Ok((name.clone(), started))
            }
        });
        let started: HashMap<String, Instant> = futures::future::try_join_all(creates)
            .await?
            .into_iter()
            .collect();
        let mut ready: HashMap<String, Instant> = HashMap::new();
        let deadline = tokio::time::Instant::now() + self.timeout;
        while ready.len() < n {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((name, at))) => {
                    ready.entry(name).or_insert(at);
                }
                Ok(None) => bail!("pod watch ended"),
                Err(_) => bail!("only {}/{n} pods of {batch} Ready in time", ready.len()),
            }
        }
        let wall = ready.values().max().map(|t| *t - t0).unwrap_or_default();
        watch.abort();
        let samples = ready
            .iter()
            .filter_map(|(name, at)| started.get(name).map(|s| *at - *s))
            .collect();
        self.delete_batch(batch, &names).await?;
        Ok(Measurement { samples, wall })
    }

    async fn delete_batch(&self, batch: &str, names: &[String]) -> Result<()> {
        let api = self.pods();
        futures::future::try_join_all(names.iter().map(|n| {
            let api = api.clone();
            async move { api.delete(n, &DeleteParams::default()).await }
        }))
        .await?;
        let deadline = Instant::now() + self.timeout;
        let lp = ListParams::default().labels(&format!("bench={batch}"));
        while !api.list(&lp).await?.items.is_empty() {
            if Instant::now() > deadline {
                bail!("pods of {batch} not gone in time");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// The same batch as direct CRI calls with the kubelet's sandbox config.
    async fn raw_batch(&self, batch: &str, n: usize) -> Result<Measurement> {
        let image = self
            .cri
            .image_status(IMAGE)
            .await?
            .context("built-in image missing")?
            .id;
        let image = Arc::new(image);
        let t0 = Instant::now();
        let runs = (0..n).map(|i| {
            let image = image.clone();
            async move { self.raw_pod(batch, i, &image).await }
        });
        let results = futures::future::join_all(runs).await;
        let wall = t0.elapsed();
        let mut samples = Vec::with_capacity(n);
        let mut first_err = None;
        for r in results {
            match r {
                Ok((d, _)) => samples.push(d),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        self.raw_cleanup(batch).await;
        if let Some(e) = first_err {
            return Err(e);
        }
        Ok(Measurement { samples, wall })
    }

    async fn raw_pod(&self, batch: &str, i: usize, image: &str) -> Result<(Duration, String)> {
        let name = format!("raw-{batch}-{i}");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid")},
            "spec": {"containers": [{"name": "c", "image": IMAGE}]}
        }))?;
        let logs = self.dir.path().join("raw-logs").join(&name);
        std::fs::create_dir_all(&logs)?;
        let mut sb_cfg = r8s_kubelet::pod::sandbox::sandbox_config(&pod, &self.cfg, &logs, 0);
        // Not the kubelet's: its orphan cleanup must leave these sandboxes alone.
        sb_cfg
            .labels
            .remove(r8s_kubelet::pod::runtime::LABEL_MANAGED);
        let cfg = api::ContainerConfig {
            metadata: Some(api::ContainerMetadata {
                name: "c".into(),
                attempt: 0,
            }),
            image: Some(api::ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            command: vec!["sh".into(), "-c".into(), SCRIPT.into()],
            log_path: "c.log".into(),
            ..Default::default()
        };
        let t0 = Instant::now();
        let sb = self.cri.run_pod_sandbox(sb_cfg.clone()).await?;
        let id = self.cri.create_container(&sb, cfg, sb_cfg).await?;
        self.cri.start_container(&id).await?;
        Ok((t0.elapsed(), sb))
    }

    /// Removes every sandbox of a raw batch (and the pod cgroups runc leaves).
    async fn raw_cleanup(&self, batch: &str) {
        let prefix = format!("raw-{batch}-");
        let Ok(list) = self.cri.list_pod_sandbox(None).await else {
            return;
        };
        let mine: Vec<_> = list
            .into_iter()
            .filter(|s| {
                s.metadata
                    .as_ref()
                    .is_some_and(|m| m.name.starts_with(&prefix))
            })
            .collect();
        futures::future::join_all(mine.iter().map(|s| async move {
            let _ = self.cri.stop_pod_sandbox(&s.id).await;
            let _ = self.cri.remove_pod_sandbox(&s.id).await;
            if let Some(m) = &s.metadata {
                r8s_kubelet::pod::remove_pod_files(self.dir.path(), &m.uid);
            }
        }))
        .await;
    }

    async fn stop(mut self, bridge: &str) {
        if let Some(k) = self.kubelet.take() {
            k.shutdown(true).await;
        }
        del_link(bridge);
        unmount_under(self.dir.path());
    }
}

fn bench_pod(name: &str, batch: &str) -> Pod {
    let v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": batch}},
        "spec": {"nodeName": "bench-node", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", SCRIPT]}]}
    });
    // The literal above always deserializes.
    serde_json::from_value(v).unwrap_or_default()
}

fn running_and_ready(p: &Pod) -> bool {
    let Some(st) = p.status.as_ref() else {
        return false;
    };
    st.phase.as_deref() == Some("Running")
        && st
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn del_link(name: &str) {
    let _ = std::process::Command::new("ip")
        .args(["link", "del", name])
        .output();
}

/// Lazily detaches every mount below `root` (deepest first).
fn unmount_under(root: &Path) {
    let prefix = root.to_string_lossy().to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut targets: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| t.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = std::process::Command::new("umount")
            .args(["-l", t])
            .output();
    }
}

#[derive(Default)]
struct Row {
    r8s: Measurement,
    raw: Measurement,
}

fn merge(into: &mut Measurement, m: Measurement) {
    into.samples.extend(m.samples);
    // Wall time: the worst batch, since each batch is one "all pods up" observation.
    into.wall = into.wall.max(m.wall);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Err(e) = supported() {
        eprintln!("pod-bench: {e}");
        std::process::exit(2);
    }
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
    let bench = Bench::start(&args).await?;
    let result = run(&bench, &args).await;
    bench.stop(&args.bridge).await;
    let rows = result?;
    println!(
        "\n| pods at once | r8s p50 ms | r8s p99 ms | r8s all Ready ms | raw CRI p50 ms | raw CRI p99 ms | raw CRI all started ms | p50 ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (n, row) in rows {
        let (r, w) = (row.r8s.summary(), row.raw.summary());
        let ratio = r.p50.as_secs_f64() / w.p50.as_secs_f64().max(1e-9);
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} | {ratio:.2}× |",
            ms(r.p50),
            ms(r.p99),
            ms(row.r8s.wall),
            ms(w.p50),
            ms(w.p99),
            ms(row.raw.wall)
        );
    }
    Ok(())
}

async fn run(bench: &Bench, args: &Args) -> Result<Vec<(usize, Row)>> {
    // Warm-up: the first pod sets up the bridge, host-local's state and the image cache.
    bench.raw_batch("warm", 1).await?;
    bench.r8s_batch("warm", 1).await?;
    let mut rows = Vec::new();
    for (k, &n) in args.pods.iter().enumerate() {
        let reps = args.reps.get(k).or(args.reps.last()).copied().unwrap_or(1);
        let mut row = Row::default();
        for rep in 0..reps {
            // Alternate the order so both see the same machine state on average.
            let batch = format!("b{n}r{rep}");
            if rep % 2 == 0 {
                merge(&mut row.raw, bench.raw_batch(&batch, n).await?);
                merge(&mut row.r8s, bench.r8s_batch(&batch, n).await?);
            } else {
                merge(&mut row.r8s, bench.r8s_batch(&batch, n).await?);
                merge(&mut row.raw, bench.raw_batch(&batch, n).await?);
            }
        }
        let (r, w) = (row.r8s.summary(), row.raw.summary());
        eprintln!(
            "{n} pods × {reps}: r8s p50 {:?} p99 {:?} (all Ready ≤ {:?}); raw CRI p50 {:?} p99 {:?} (≤ {:?})",
            r.p50, r.p99, row.r8s.wall, w.p50, w.p99, row.raw.wall
        );
        rows.push((n, row));
    }
    Ok(rows)
}

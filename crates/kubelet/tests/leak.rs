//! Leak test: 100 pod create/delete cycles (10 rounds of 10 pods), then nothing may be
//! left behind — no sandbox or container in CRI, no veth on the test bridge, no IP
//! allocation in host-local's directory, no pod directory, no mount below the agent's data
//! dir beyond the baseline, no pod cgroup, no containerd shim — and the file descriptors of
//! containerd and of this process (the kubelet) must not have grown.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const ROUNDS: usize = 10;
const PODS_PER_ROUND: usize = 10;
const WAIT: Duration = Duration::from_secs(90);
/// File descriptors may drift a little (connection pools, log files opened lazily).
const FD_SLACK: usize = 24;

/// Everything a pod can leave behind, counted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    counts: BTreeMap<&'static str, usize>,
    containerd_fds: usize,
    own_fds: usize,
}

fn count_dir(p: &Path) -> usize {
    std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0)
}

/// host-local keeps one file per allocated IP (named by the IP) under dataDir/<network>.
fn ipam_allocations(ipam: &Path) -> usize {
    let Ok(nets) = std::fs::read_dir(ipam) else {
        return 0;
    };
    nets.filter_map(|n| n.ok())
        .filter(|n| n.path().is_dir())
        .flat_map(|n| std::fs::read_dir(n.path()).into_iter().flatten())
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .parse::<std::net::IpAddr>()
                .is_ok()
        })
        .count()
}

fn mounts_under(root: &Path) -> usize {
    let prefix = root.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|t| t.starts_with(&prefix))
        .count()
}

/// Pod-level cgroups of the given pods (other tests may run pods at the same time).
fn pod_cgroups(uids: &[String]) -> usize {
    let mut n = 0;
    for base in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/cpu",
    ] {
        for qos in ["kubepods", "kubepods/burstable", "kubepods/besteffort"] {
            let Ok(d) = std::fs::read_dir(Path::new(base).join(qos)) else {
                continue;
            };
            n += d
                .filter_map(|e| e.ok())
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    uids.iter().any(|u| name == format!("pod{u}"))
                })
                .count();
        }
    }
    n
}

/// Shim processes serving this test's containerd (one per sandbox while pods run).
fn shims(socket: &Path) -> usize {
    let sock = socket.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("containerd-shim") && cmd.contains(&sock)
        })
        .count()
}

fn fds_of(pid: &str) -> usize {
    count_dir(&Path::new("/proc").join(pid).join("fd"))
}

async fn snapshot(env: &Env, uids: &[String]) -> Snapshot {
    let agent = env.dir.path().join("agent");
    let cri = env.cri();
    let sandboxes = cri.list_pod_sandbox(None).await.unwrap().len();
    let containers = cri.list_containers(None).await.unwrap().len();
    let pid = std::fs::read_to_string(agent.join("containerd/containerd.pid")).unwrap();
    let mut counts = BTreeMap::new();
    counts.insert("cri sandboxes", sandboxes);
    counts.insert("cri containers", containers);
    counts.insert("bridge veths", env.bridge_ports());
    counts.insert(
        "ipam allocations",
        ipam_allocations(&agent.join("cni/ipam")),
    );
    counts.insert("pod dirs", count_dir(&agent.join("pods")));
    counts.insert("mounts under data dir", mounts_under(env.dir.path()));
    counts.insert("pod cgroups", pod_cgroups(uids));
    counts.insert("shims", shims(&env.config.runtime_socket()));
    Snapshot {
        counts,
        containerd_fds: fds_of(pid.trim()),
        own_fds: fds_of("self"),
    }
}

fn pod(name: &str) -> serde_json::Value {
    json!({"metadata": {"name": name, "labels": {"app": "leak"}},
           "spec": {"terminationGracePeriodSeconds": 2,
                    "volumes": [{"name": "scratch", "emptyDir": {"medium": "Memory"}}],
                    "containers": [{"name": "c", "image": "busybox:1.36",
                        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
                        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_pod_cycles_leave_nothing_behind() {
    run_test(42, |env| async move {
        // Warm-up: the first pod creates the bridge and host-local's directory.
        env.create_pod(pod("warmup")).await;
        env.wait_pod("warmup", WAIT, "Ready", ready).await;
        env.delete_pod("warmup").await;
        env.wait_gone("warmup", WAIT).await;
        let mut uids: Vec<String> = Vec::new();
        let before = snapshot(&env, &uids).await;
        eprintln!("before: {before:?}");
        for (what, n) in &before.counts {
            // Mounts of the runtime itself (none expected) are the only tolerated baseline.
            if *what != "mounts under data dir" {
                assert_eq!(*n, 0, "{what} before the cycles");
            }
        }
        let t0 = Instant::now();
        let mut peak = 0;
        for round in 0..ROUNDS {
            let names: Vec<String> = (0..PODS_PER_ROUND)
                .map(|i| format!("leak-{round}-{i}"))
                .collect();
            for n in &names {
                let p = env.create_pod(pod(n)).await;
                uids.push(p.metadata.uid.unwrap());
            }
            for n in &names {
                env.wait_pod(n, WAIT, "Ready", ready).await;
            }
            peak = peak.max(env.bridge_ports());
            if round == 0 {
                // The counters must see running pods, or "nothing left" proves nothing.
                let during = snapshot(&env, &uids).await;
                eprintln!("with {PODS_PER_ROUND} pods running: {during:?}");
                for (what, n) in &during.counts {
                    assert!(
                        *n >= PODS_PER_ROUND,
                        "{what} not counted while pods run: {n}"
                    );
                }
            }
            for n in &names {
                env.delete_pod(n).await;
            }
            for n in &names {
                env.wait_gone(n, WAIT).await;
            }
        }
        let took = t0.elapsed();
        assert_eq!(peak, PODS_PER_ROUND, "each running pod had its veth");
        // Deletion returns once the kubelet removed the pod; give the runtime's own
        // asynchronous cleanup (shim exit) a moment before counting.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut after = snapshot(&env, &uids).await;
        while after.counts != before.counts && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            after = snapshot(&env, &uids).await;
        }
        eprintln!(
            "{} cycles in {took:?}; after: {after:?}",
            ROUNDS * PODS_PER_ROUND
        );
        assert_eq!(after.counts, before.counts, "resources left behind");
        assert!(
            after.containerd_fds <= before.containerd_fds + FD_SLACK,
            "containerd fds grew from {} to {}",
            before.containerd_fds,
            after.containerd_fds
        );
        assert!(
            after.own_fds <= before.own_fds + FD_SLACK,
            "kubelet (test process) fds grew from {} to {}",
            before.own_fds,
            after.own_fds
        );
    })
    .await;
}

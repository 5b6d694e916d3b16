//! Container log rotation against the real containerd: a container that wrote more than
//! 10 MiB has its log renamed, containerd reopens the path (CRI `ReopenContainerLog`) and
//! the container's later output lands in the new file.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Files under `root` whose name starts with `prefix` (depth-first).
fn find(root: &Path, prefix: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            find(&p, prefix, out);
        } else if e.file_name().to_string_lossy().starts_with(prefix) {
            out.push(p);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_logs_are_rotated_and_the_runtime_reopens_them() {
    run_test(46, |env| async move {
        env.create_pod(json!({
            "metadata": {"name": "chatty"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "c", "image": "busybox:1.36",
                "command": ["sh", "-c",
                    "head -c 11000000 /dev/zero | tr '\\0' x; echo; while true; do echo after-rotation; sleep 1; done"]}]}
        }))
        .await;
        env.wait_pod("chatty", Duration::from_secs(60), "Ready", ready)
            .await;
        let pods = env.dir.path().join("agent");
        let deadline = Instant::now() + Duration::from_secs(40);
        let (rotated, current) = loop {
            let mut rotated = Vec::new();
            find(&pods, "0.log.", &mut rotated);
            let mut current = Vec::new();
            find(&pods, "0.log", &mut current);
            current.retain(|p| p.file_name().is_some_and(|n| n == "0.log"));
            let fresh = current
                .first()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .is_some_and(|t| t.contains("after-rotation") && t.len() < 1_000_000);
            if !rotated.is_empty() && fresh {
                break (rotated, current);
            }
            assert!(
                Instant::now() < deadline,
                "no rotation: rotated {rotated:?}, current {current:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        // CRI log lines split at 16 KiB and add a prefix: a bit more than written.
        let size: u64 = rotated
            .iter()
            .filter(|p| !p.to_string_lossy().ends_with(".gz"))
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(size >= 10 * 1024 * 1024, "{rotated:?}: {size} bytes");
        eprintln!("rotated {rotated:?} ({size} bytes), current {current:?}");
        env.delete_pod("chatty").await;
        env.wait_gone("chatty", Duration::from_secs(60)).await;
    })
    .await;
}

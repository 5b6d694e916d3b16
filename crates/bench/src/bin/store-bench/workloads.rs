//! The measured workloads. Every backend runs exactly the same sequence of operations.

use crate::target::Target;
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use r8s_bench::{Measurement, run_concurrent};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

/// A value of `size` bytes that differs per key (so nothing compresses away).
pub fn value(i: usize, size: usize) -> Vec<u8> {
    let mut v = format!("{{\"i\":{i}}}").into_bytes();
    v.resize(size.max(v.len()), b'a' + (i % 26) as u8);
    v
}

/// Keys written by the write workloads of one (target, clients) run.
pub struct WriteSet {
    prefix: String,
    revisions: Arc<Vec<AtomicI64>>,
}

impl WriteSet {
    pub fn new(prefix: String, ops: usize) -> Self {
        Self {
            prefix,
            revisions: Arc::new((0..ops).map(|_| AtomicI64::new(0)).collect()),
        }
    }

    fn key(prefix: &str, i: usize) -> String {
        format!("{prefix}k{i:08}")
    }
}

/// `ops` creates of distinct keys.
pub async fn create(
    t: &Target,
    set: &WriteSet,
    clients: usize,
    size: usize,
) -> Result<Measurement> {
    let (t, prefix, revs) = (t.clone(), set.prefix.clone(), set.revisions.clone());
    run_concurrent(clients, revs.len(), move |_, i| {
        let (t, prefix, revs) = (t.clone(), prefix.clone(), revs.clone());
        async move {
            let rev = t.create(&WriteSet::key(&prefix, i), value(i, size)).await?;
            revs[i].store(rev, Ordering::Relaxed);
            Ok(())
        }
    })
    .await
}

/// One update of every created key (operation `i` updates key `i`, so no two clients
/// touch the same key and no update conflicts).
pub async fn update(
    t: &Target,
    set: &WriteSet,
    clients: usize,
    size: usize,
) -> Result<Measurement> {
    let (t, prefix, revs) = (t.clone(), set.prefix.clone(), set.revisions.clone());
    run_concurrent(clients, revs.len(), move |_, i| {
        let (t, prefix, revs) = (t.clone(), prefix.clone(), revs.clone());
        async move {
            let rev = revs[i].load(Ordering::Relaxed);
            let new = t
                .update(&WriteSet::key(&prefix, i), value(i + 1, size), rev)
                .await?;
            revs[i].store(new, Ordering::Relaxed);
            Ok(())
        }
    })
    .await
}

/// `ops` point reads of created keys, in a scattered order.
pub async fn get(t: &Target, set: &WriteSet, clients: usize) -> Result<Measurement> {
    let n = set.revisions.len();
    let (t, prefix) = (t.clone(), set.prefix.clone());
    run_concurrent(clients, n, move |_, i| {
        let (t, prefix) = (t.clone(), prefix.clone());
        async move {
            t.get(&WriteSet::key(&prefix, (i * 7919) % n)).await?;
            Ok(())
        }
    })
    .await
}

/// Load `keys` keys under `prefix` (not measured).
pub async fn preload(t: &Target, prefix: &str, keys: usize, size: usize) -> Result<()> {
    let (t, prefix) = (t.clone(), prefix.to_string());
    run_concurrent(64, keys, move |_, i| {
        let (t, prefix) = (t.clone(), prefix.clone());
        async move {
            t.create(&WriteSet::key(&prefix, i), value(i, size)).await?;
            Ok(())
        }
    })
    .await?;
    Ok(())
}

/// `iters` full lists (one request each, no paging) of `keys` keys, one client, after one
/// unmeasured warm-up list (the first large response on a connection pays for HTTP/2
/// flow-control windows growing).
pub async fn list(t: &Target, prefix: &str, keys: usize, iters: usize) -> Result<Measurement> {
    t.list(prefix).await?;
    let (t, prefix) = (t.clone(), prefix.to_string());
    run_concurrent(1, iters, move |_, _| {
        let (t, prefix) = (t.clone(), prefix.clone());
        async move {
            let n = t.list(&prefix).await?;
            if n != keys {
                bail!("listed {n} keys under {prefix}, expected {keys}");
            }
            Ok(())
        }
    })
    .await
}

/// `watchers` watches on one prefix, `writes` sequential creates: each sample is the time
/// from starting a write until every watcher has received its event.
pub async fn watch_fanout(
    t: &Target,
    prefix: &str,
    watchers: usize,
    writes: usize,
    size: usize,
) -> Result<Measurement> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut tasks = Vec::with_capacity(watchers);
    for _ in 0..watchers {
        let mut stream = t.watch(prefix).await?;
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(key) = stream.next().await {
                let seq = key?
                    .rsplit('k')
                    .next()
                    .and_then(|s| s.parse::<usize>().ok())
                    .context("unexpected key in the fan-out watch")?;
                if tx.send(seq).is_err() {
                    break;
                }
            }
            anyhow::Ok(())
        }));
    }
    drop(tx);
    let started = Instant::now();
    let mut samples = Vec::with_capacity(writes);
    for seq in 0..writes {
        let t0 = Instant::now();
        t.create(&WriteSet::key(prefix, seq), value(seq, size))
            .await?;
        let mut seen = 0;
        while seen < watchers {
            match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                Ok(Some(s)) if s == seq => seen += 1,
                Ok(Some(s)) => bail!("watch delivered write {s} while waiting for {seq}"),
                Ok(None) => bail!("all watches ended"),
                Err(_) => bail!("write {seq} reached only {seen}/{watchers} watchers in 30s"),
            }
        }
        samples.push(t0.elapsed());
    }
    let wall = started.elapsed();
    for task in tasks {
        task.abort();
    }
    Ok(Measurement { samples, wall })
}

//! Latency collection and summaries (nearest-rank percentiles over every sample; runs are
//! short enough that keeping all samples is cheaper than a histogram's error analysis).

use std::future::Future;
use std::time::{Duration, Instant};

/// Every latency sample of one workload plus its wall-clock time.
#[derive(Debug, Clone, Default)]
pub struct Measurement {
    pub samples: Vec<Duration>,
    pub wall: Duration,
}

/// What a table row shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub ops: usize,
    pub ops_per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Measurement {
    /// Throughput and percentiles.
    pub fn summary(&self) -> Summary {
        let mut s = self.samples.clone();
        s.sort_unstable();
        let secs = self.wall.as_secs_f64();
        Summary {
            ops: s.len(),
            ops_per_sec: if secs > 0.0 {
                s.len() as f64 / secs
            } else {
                0.0
            },
            p50: percentile(&s, 50.0),
            p99: percentile(&s, 99.0),
            max: s.last().copied().unwrap_or_default(),
        }
    }
}

/// Nearest-rank percentile of sorted samples (zero when empty).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Run `ops` operations spread over `clients` concurrent tasks; operation `i` (0-based,
/// globally unique) is `op(client, i)`. Client `c` runs operations `c, c + clients, …`.
pub async fn run_concurrent<F, Fut>(
    clients: usize,
    ops: usize,
    op: F,
) -> anyhow::Result<Measurement>
where
    F: Fn(usize, usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let clients = clients.max(1);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(ops / clients + 1);
            let mut i = c;
            while i < ops {
                let t = Instant::now();
                op(c, i).await?;
                samples.push(t.elapsed());
                i += clients;
            }
            anyhow::Ok(samples)
        }));
    }
    let mut all = Vec::with_capacity(ops);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(Measurement {
        samples: all,
        wall: started.elapsed(),
    })
}

/// Milliseconds with two decimals, for tables.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s: Vec<_> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&s, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&s, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&s[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[tokio::test]
    async fn run_concurrent_runs_every_op_once() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let m = run_concurrent(4, 10, move |_, i| {
            let s = s.clone();
            async move {
                s.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(i);
                Ok(())
            }
        })
        .await
        .expect("run");
        assert_eq!(m.samples.len(), 10);
        let mut v = seen.lock().expect("lock").clone();
        v.sort_unstable();
        assert_eq!(v, (0..10).collect::<Vec<_>>());
    }
}

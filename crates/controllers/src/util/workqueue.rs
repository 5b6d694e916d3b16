//! A work queue with client-go's semantics: a key is queued at most once, is never handed
//! to two workers at the same time (a key re-added while being processed is queued again
//! when its worker is done), can be delayed, and failed keys retry with per-key exponential
//! backoff (5 ms doubling up to 1000 s, as upstream's default controller rate limiter —
//! without the overall token bucket: r8s does no artificial throttling).

use futures::FutureExt;
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(1000);

struct State<K> {
    queue: VecDeque<K>,
    /// Keys waiting in `queue` or to be re-queued once their worker is done.
    dirty: HashSet<K>,
    processing: HashSet<K>,
    failures: HashMap<K, u32>,
    shutdown: bool,
}

/// A de-duplicating, rate-limited work queue. Cheap to clone (shared).
pub struct WorkQueue<K> {
    state: Arc<Mutex<State<K>>>,
    notify: Arc<Notify>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue {
            state: self.state.clone(),
            notify: self.notify.clone(),
        }
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        WorkQueue {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                shutdown: false,
            })),
            notify: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `key` now (no-op if already queued).
    pub fn add(&self, key: K) {
        let mut s = self.lock();
        if s.shutdown || s.dirty.contains(&key) {
            return;
        }
        s.dirty.insert(key.clone());
        if s.processing.contains(&key) {
            return;
        }
        s.queue.push_back(key);
        drop(s);
        self.notify.notify_one();
    }

    /// Queue `key` after `delay`.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            this.add(key);
        });
    }

    /// Queue `key` after its backoff (which doubles with each call until [`Self::forget`]).
    pub fn add_rate_limited(&self, key: K) {
        let delay = {
            let mut s = self.lock();
            let n = s.failures.entry(key.clone()).or_insert(0);
            let d = backoff(*n);
            *n = n.saturating_add(1);
            d
        };
        self.add_after(key, delay);
    }

    /// Reset `key`'s backoff (after a success).
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// How many times `key` has failed since it was last forgotten.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to work on; `None` once shut down. Call [`Self::done`] after.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.shutdown {
                    return None;
                }
                if let Some(key) = s.queue.pop_front() {
                    s.dirty.remove(&key);
                    s.processing.insert(key.clone());
                    let more = !s.queue.is_empty();
                    drop(s);
                    if more {
                        // Wake another worker for the rest.
                        self.notify.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// Mark `key` processed; if it was re-added meanwhile, queue it again.
    pub fn done(&self, key: &K) {
        let mut s = self.lock();
        s.processing.remove(key);
        if s.dirty.contains(key) {
            s.queue.push_back(key.clone());
            drop(s);
            self.notify.notify_one();
        }
    }

    /// Stop handing out keys; wakes every waiting worker.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.notify.notify_waiters();
    }

    /// Keys waiting to be processed.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether no key is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn backoff(failures: u32) -> Duration {
    let factor = 1u64.checked_shl(failures.min(40)).unwrap_or(u64::MAX);
    let nanos = (BASE_DELAY.as_nanos() as u64).saturating_mul(factor);
    Duration::from_nanos(nanos).min(MAX_DELAY)
}

/// Run `workers` workers over `queue` until it shuts down. `handle` returns `Ok(None)` when
/// done, `Ok(Some(d))` to look again after `d`, or an error to retry with backoff.
pub async fn run_workers<K, F, Fut, E>(queue: WorkQueue<K>, workers: usize, handle: F)
where
    K: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static,
    F: Fn(K) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Duration>, E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let handle = handle.clone();
        set.spawn(async move {
            while let Some(key) = queue.next().await {
                // A panicking sync (a bug) must not kill the worker: that would silently
                // stop the controller. Log it and retry the key with back-off.
                let outcome = std::panic::AssertUnwindSafe(handle(key.clone()))
                    .catch_unwind()
                    .await;
                let Ok(outcome) = outcome else {
                    tracing::error!(?key, "sync panicked; retrying with back-off");
                    queue.add_rate_limited(key.clone());
                    queue.done(&key);
                    continue;
                };
                match outcome {
                    Ok(again) => {
                        queue.forget(&key);
                        if let Some(d) = again {
                            queue.add_after(key.clone(), d);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(?key, "sync failed, retrying: {e}");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_sync_is_retried_and_the_worker_survives() {
        let q = WorkQueue::new();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let c = calls.clone();
        let workers = tokio::spawn(run_workers(q.clone(), 1, move |key: &'static str| {
            let (c, tx) = (c.clone(), tx.clone());
            async move {
                if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    panic!("bug in sync of {key}");
                }
                let _ = tx.send(key);
                Ok::<_, String>(None)
            }
        }));
        q.add("a");
        let done = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(done.ok().flatten(), Some("a"));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        workers.abort();
    }

    #[tokio::test]
    async fn dedups_and_serialises_keys() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let k = q.next().await;
        assert_eq!(k, Some("a"));
        // Re-added while processing: not handed out until done.
        q.add("a");
        assert_eq!(q.next().await, Some("b"));
        assert!(q.is_empty());
        q.done(&"a");
        assert_eq!(q.next().await, Some("a"));
        q.done(&"a");
        q.done(&"b");
        assert!(q.is_empty());
    }

    #[tokio::test]
    async fn delayed_and_shutdown() {
        let q = WorkQueue::new();
        q.add_after(1u32, Duration::from_millis(20));
        let got = tokio::time::timeout(Duration::from_secs(5), q.next()).await;
        assert_eq!(got.ok().flatten(), Some(1));
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.next().await });
        q.shutdown();
        let r = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(r, Ok(Ok(None))));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(5));
        assert_eq!(backoff(1), Duration::from_millis(10));
        assert_eq!(backoff(100), MAX_DELAY);
    }
}

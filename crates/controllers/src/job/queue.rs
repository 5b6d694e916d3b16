//! A rate-limited, delaying work queue with client-go's semantics, shared by the Job,
//! TTL-after-finished and CronJob controllers:
//!
//! - a key is queued at most once (`dirty`), and is never handed to two workers at once
//!   (`processing`): a key added while being processed is re-queued when `done` is called;
//! - `add_after` keeps only the earliest pending time per key;
//! - `add_rate_limited` delays by an exponential per-key backoff, reset by `forget`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Exponential per-item backoff (client-go's `ItemExponentialFailureRateLimiter`).
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    pub base: Duration,
    pub max: Duration,
}

struct State<K> {
    queue: VecDeque<K>,
    dirty: HashSet<K>,
    processing: HashSet<K>,
    /// Pending delayed adds: key -> (ready time, sequence number in `by_time`).
    waiting: HashMap<K, (Instant, u64)>,
    by_time: BTreeMap<(Instant, u64), K>,
    seq: u64,
    failures: HashMap<K, u32>,
    shut_down: bool,
}

/// The queue; cheap to clone (shared).
pub struct WorkQueue<K> {
    state: Arc<Mutex<State<K>>>,
    /// Wakes workers waiting in `get`.
    ready: Arc<Notify>,
    /// Wakes the delay timer when an earlier deadline arrives.
    timer: Arc<Notify>,
    limit: RateLimit,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue {
            state: self.state.clone(),
            ready: self.ready.clone(),
            timer: self.timer.clone(),
            limit: self.limit,
        }
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    /// A queue whose failed items back off per `limit`.
    pub fn new(limit: RateLimit) -> Self {
        WorkQueue {
            state: Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                waiting: HashMap::new(),
                by_time: BTreeMap::new(),
                seq: 0,
                failures: HashMap::new(),
                shut_down: false,
            })),
            ready: Arc::new(Notify::new()),
            timer: Arc::new(Notify::new()),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // A poisoned lock only means a panicking holder; the state stays consistent
        // because every critical section is panic-free.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `key` now.
    pub fn add(&self, key: K) {
        let mut st = self.lock();
        Self::add_locked(&mut st, key);
        drop(st);
        self.ready.notify_one();
    }

    fn add_locked(st: &mut State<K>, key: K) {
        if st.shut_down || st.dirty.contains(&key) {
            return;
        }
        st.dirty.insert(key.clone());
        if !st.processing.contains(&key) {
            st.queue.push_back(key);
        }
    }

    /// Queue `key` after `delay` (immediately when zero); an earlier pending time wins.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let at = Instant::now() + delay;
        let mut st = self.lock();
        if st.shut_down {
            return;
        }
        if let Some(&(cur, seq)) = st.waiting.get(&key) {
            if cur <= at {
                return;
            }
            st.by_time.remove(&(cur, seq));
        }
        st.seq += 1;
        let seq = st.seq;
        st.waiting.insert(key.clone(), (at, seq));
        st.by_time.insert((at, seq), key);
        drop(st);
        self.timer.notify_one();
    }

    /// Queue `key` after its exponential failure backoff.
    pub fn add_rate_limited(&self, key: K) {
        let delay = {
            let mut st = self.lock();
            let n = st.failures.entry(key.clone()).or_insert(0);
            let exp = (*n).min(30);
            *n = n.saturating_add(1);
            self.limit
                .base
                .saturating_mul(1u32 << exp.min(31))
                .min(self.limit.max)
        };
        self.add_after(key, delay);
    }

    /// Reset `key`'s failure backoff.
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// Wait for the next key; `None` once shut down.
    pub async fn get(&self) -> Option<K> {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            // Register before checking so a wake-up between check and await is not lost.
            notified.as_mut().enable();
            {
                let mut st = self.lock();
                if st.shut_down {
                    return None;
                }
                if let Some(key) = st.queue.pop_front() {
                    st.dirty.remove(&key);
                    st.processing.insert(key.clone());
                    let more = !st.queue.is_empty();
                    drop(st);
                    if more {
                        // Let another idle worker pick up the rest.
                        self.ready.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// Mark `key` processed; re-queue it if it was added meanwhile.
    pub fn done(&self, key: &K) {
        let mut st = self.lock();
        st.processing.remove(key);
        if st.dirty.contains(key) {
            st.queue.push_back(key.clone());
            drop(st);
            self.ready.notify_one();
        }
    }

    /// Stop handing out keys (workers' `get` returns `None`).
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.ready.notify_waiters();
        self.timer.notify_waiters();
    }

    /// Number of keys queued and ready.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Move delayed keys into the queue when due; runs until shut down.
    pub async fn run_timer(&self) {
        loop {
            let notified = self.timer.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next = {
                let mut st = self.lock();
                if st.shut_down {
                    return;
                }
                let now = Instant::now();
                let mut moved = false;
                while let Some((&(at, seq), _)) = st.by_time.iter().next() {
                    if at > now {
                        break;
                    }
                    if let Some(key) = st.by_time.remove(&(at, seq)) {
                        st.waiting.remove(&key);
                        Self::add_locked(&mut st, key);
                        moved = true;
                    }
                }
                if moved {
                    self.ready.notify_one();
                }
                st.by_time.keys().next().map(|(at, _)| *at)
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> WorkQueue<String> {
        WorkQueue::new(RateLimit {
            base: Duration::from_millis(5),
            max: Duration::from_millis(40),
        })
    }

    #[tokio::test]
    async fn dedups_and_requeues_while_processing() {
        let q = q();
        q.add("a".into());
        q.add("a".into());
        assert_eq!(q.len(), 1);
        let k = q.get().await;
        assert_eq!(k.as_deref(), Some("a"));
        // Added while processing: not handed out until done.
        q.add("a".into());
        assert_eq!(q.len(), 0);
        q.done(&"a".to_string());
        assert_eq!(q.len(), 1);
    }

    #[tokio::test]
    async fn delayed_adds_keep_the_earliest() {
        let q = q();
        let t = q.clone();
        let timer = tokio::spawn(async move { t.run_timer().await });
        q.add_after("a".into(), Duration::from_secs(60));
        q.add_after("a".into(), Duration::from_millis(10));
        let got = tokio::time::timeout(Duration::from_secs(5), q.get()).await;
        assert_eq!(got.ok().flatten().as_deref(), Some("a"));
        q.shut_down();
        let _ = timer.await;
    }

    #[tokio::test]
    async fn rate_limit_grows_and_resets() {
        let q = q();
        let t = q.clone();
        let timer = tokio::spawn(async move { t.run_timer().await });
        for _ in 0..5 {
            q.add_rate_limited("a".into());
            let got = tokio::time::timeout(Duration::from_secs(5), q.get()).await;
            assert!(got.ok().flatten().is_some());
            q.done(&"a".to_string());
        }
        assert_eq!(q.lock().failures.get("a"), Some(&5));
        q.forget(&"a".to_string());
        assert!(!q.lock().failures.contains_key("a"));
        q.shut_down();
        let _ = timer.await;
    }
}

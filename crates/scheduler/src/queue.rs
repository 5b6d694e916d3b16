//! The scheduling queue (upstream's three queues): `active` ordered by priority then age,
//! `backoff` for pods that failed recently (1 s doubling to 10 s per attempt), and
//! `unschedulable` for pods waiting for a cluster change that could help them — moved back
//! when such an event arrives (filtered by the plugins that rejected them) or after 5
//! minutes. Nothing ever spins: a pod is retried only after an event or a timer.

use crate::framework::PluginSet;
use crate::model::PodInfo;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Queue timing.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Unschedulable pods are retried at least this often.
    pub max_unschedulable: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_unschedulable: Duration::from_secs(300),
        }
    }
}

/// `initial × 2^(attempts−1)`, capped.
fn backoff_for(cfg: &QueueConfig, attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    (cfg.initial_backoff * (1u32 << shift)).min(cfg.max_backoff)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Where {
    Active,
    Backoff,
    Unschedulable,
    /// Popped and being scheduled.
    InFlight,
}

/// A pod popped from the queue.
#[derive(Debug, Clone)]
pub struct Queued {
    pub info: Arc<PodInfo>,
    pub attempts: u32,
}

#[derive(Debug)]
struct Entry {
    info: Arc<PodInfo>,
    priority: i32,
    attempts: u32,
    last_failure: Option<Instant>,
    /// Plugins that rejected the pod last time (0 = any event may help).
    plugins: PluginSet,
    at: Where,
    /// Bumped whenever the entry is (re)pushed, to skip stale heap items.
    generation: u64,
    /// `moves` when the pod was popped (events during its cycle send it to backoff).
    popped_at_move: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct ActiveItem {
    priority: i32,
    seq: u64,
    uid: String,
}

impl Ord for ActiveItem {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then(other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for ActiveItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Default)]
pub struct SchedulingQueue {
    cfg: QueueConfig,
    entries: HashMap<String, Entry>,
    active: BinaryHeap<ActiveItem>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    /// Uids waiting in unschedulable (events scan only these, not the whole queue).
    unsched: HashSet<String>,
    /// When each unschedulable pod is retried anyway (stale items skipped by generation).
    unsched_timeouts: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    moves: u64,
}

impl SchedulingQueue {
    pub fn new(cfg: QueueConfig) -> Self {
        SchedulingQueue {
            cfg,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// Counts per sub-queue: (active, backoff, unschedulable).
    pub fn stats(&self) -> (usize, usize, usize) {
        let mut s = (0, 0, 0);
        for e in self.entries.values() {
            match e.at {
                Where::Active => s.0 += 1,
                Where::Backoff => s.1 += 1,
                Where::Unschedulable => s.2 += 1,
                Where::InFlight => {}
            }
        }
        s
    }

    fn backoff_duration(&self, attempts: u32) -> Duration {
        backoff_for(&self.cfg, attempts)
    }

    fn backoff_until(&self, e: &Entry) -> Option<Instant> {
        e.last_failure
            .map(|t| t + self.backoff_duration(e.attempts))
    }

    fn push_active(&mut self, uid: &str) {
        self.unsched.remove(uid);
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.entries.get_mut(uid) {
            e.at = Where::Active;
            e.generation = seq;
            self.active.push(ActiveItem {
                priority: e.priority,
                seq,
                uid: uid.to_string(),
            });
        }
    }

    fn push_backoff(&mut self, uid: &str, until: Instant) {
        self.unsched.remove(uid);
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.entries.get_mut(uid) {
            e.at = Where::Backoff;
            e.generation = seq;
            self.backoff.push(Reverse((until, seq, uid.to_string())));
        }
    }

    /// Active, or backoff if the pod is still backing off.
    fn requeue(&mut self, uid: &str, now: Instant) {
        let until = self.entries.get(uid).and_then(|e| self.backoff_until(e));
        match until {
            Some(t) if t > now => self.push_backoff(uid, t),
            _ => self.push_active(uid),
        }
    }

    /// A new pending pod, or an update of a known one. Updates of unschedulable pods whose
    /// scheduling inputs changed move them back; status-only updates do not.
    pub fn upsert(&mut self, info: Arc<PodInfo>, priority: i32, now: Instant) {
        let uid = info.uid.clone();
        if let Some(e) = self.entries.get_mut(&uid) {
            let changed = e.info.scheduling_inputs_differ(&info);
            e.info = info;
            let priority_changed = e.priority != priority;
            e.priority = priority;
            match e.at {
                Where::Unschedulable if changed => self.requeue(&uid, now),
                Where::Active if priority_changed => self.push_active(&uid),
                _ => {}
            }
            return;
        }
        self.entries.insert(
            uid.clone(),
            Entry {
                info,
                priority,
                attempts: 0,
                last_failure: None,
                plugins: 0,
                at: Where::Active,
                generation: 0,
                popped_at_move: 0,
            },
        );
        self.push_active(&uid);
    }

    pub fn delete(&mut self, uid: &str) {
        // Heap items become stale and are skipped.
        self.entries.remove(uid);
        self.unsched.remove(uid);
    }

    fn mark_unschedulable(&mut self, uid: &str, now: Instant) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(e) = self.entries.get_mut(uid) {
            e.at = Where::Unschedulable;
            e.generation = seq;
            self.unsched.insert(uid.to_string());
            self.unsched_timeouts.push(Reverse((
                now + self.cfg.max_unschedulable,
                seq,
                uid.to_string(),
            )));
        }
    }

    /// Move due backoff pods and long-waiting unschedulable pods to active.
    pub fn flush(&mut self, now: Instant) {
        while let Some(Reverse((until, generation, uid))) = self.backoff.peek() {
            if *until > now {
                break;
            }
            let (generation, uid) = (*generation, uid.clone());
            self.backoff.pop();
            if self
                .entries
                .get(&uid)
                .is_some_and(|e| e.generation == generation && e.at == Where::Backoff)
            {
                self.push_active(&uid);
            }
        }
        while let Some(Reverse((due, generation, uid))) = self.unsched_timeouts.peek() {
            if *due > now {
                break;
            }
            let (generation, uid) = (*generation, uid.clone());
            self.unsched_timeouts.pop();
            if self
                .entries
                .get(&uid)
                .is_some_and(|e| e.generation == generation && e.at == Where::Unschedulable)
            {
                self.requeue(&uid, now);
            }
        }
    }

    /// The next pod to schedule.
    pub fn pop(&mut self, now: Instant) -> Option<Queued> {
        self.flush(now);
        while let Some(item) = self.active.pop() {
            let moves = self.moves;
            let Some(e) = self.entries.get_mut(&item.uid) else {
                continue;
            };
            if e.generation != item.seq || e.at != Where::Active {
                continue;
            }
            e.at = Where::InFlight;
            e.popped_at_move = moves;
            return Some(Queued {
                info: e.info.clone(),
                attempts: e.attempts + 1,
            });
        }
        None
    }

    /// The popped pod was bound (or handed to the binder): forget it.
    pub fn done(&mut self, uid: &str) {
        self.entries.remove(uid);
        self.unsched.remove(uid);
    }

    /// The popped pod fit nowhere: wait for an event that may help (or, if one arrived while
    /// it was being scheduled, just back off).
    pub fn unschedulable(&mut self, uid: &str, plugins: PluginSet, now: Instant) {
        let moves = self.moves;
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        e.attempts += 1;
        e.last_failure = Some(now);
        e.plugins = plugins;
        if e.popped_at_move != moves {
            let until = now + backoff_for(&self.cfg, e.attempts);
            self.push_backoff(uid, until);
        } else {
            self.mark_unschedulable(uid, now);
        }
    }

    /// The popped pod hit an error (or its binding failed): retry after backoff. Re-adds
    /// the pod if it was already removed.
    pub fn retry(&mut self, info: Arc<PodInfo>, priority: i32, now: Instant) {
        let uid = info.uid.clone();
        let e = self.entries.entry(uid.clone()).or_insert(Entry {
            info,
            priority,
            attempts: 0,
            last_failure: None,
            plugins: 0,
            at: Where::InFlight,
            generation: 0,
            popped_at_move: 0,
        });
        e.attempts += 1;
        e.last_failure = Some(now);
        let until = now + backoff_for(&self.cfg, e.attempts);
        self.push_backoff(&uid, until);
    }

    /// A cluster event that may help pods rejected by `plugins`: move them back.
    pub fn move_for(&mut self, plugins: PluginSet, now: Instant) {
        self.moves += 1;
        let movable: Vec<String> = self
            .unsched
            .iter()
            .filter(|u| {
                self.entries.get(*u).is_some_and(|e| {
                    e.at == Where::Unschedulable && (e.plugins == 0 || e.plugins & plugins != 0)
                })
            })
            .cloned()
            .collect();
        for uid in movable {
            self.requeue(&uid, now);
        }
    }

    /// When the next timer-driven move is due.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let backoff = self.backoff.peek().map(|Reverse((t, _, _))| *t);
        let unsched = self.unsched_timeouts.peek().map(|Reverse((t, _, _))| *t);
        match (backoff, unsched) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Plugin;

    fn pod(uid: &str) -> Arc<PodInfo> {
        let p: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": uid, "namespace": "d", "uid": uid}, "spec": {"containers": [{"name": "c"}]}}))
        .expect("pod");
        Arc::new(PodInfo::from_pod(&p))
    }

    #[test]
    fn priority_then_fifo() {
        let mut q = SchedulingQueue::new(QueueConfig::default());
        let now = Instant::now();
        q.upsert(pod("a"), 0, now);
        q.upsert(pod("b"), 10, now);
        q.upsert(pod("c"), 0, now);
        let order: Vec<String> =
            std::iter::from_fn(|| q.pop(now).map(|p| p.info.uid.clone())).collect();
        assert_eq!(order, ["b", "a", "c"]);
    }

    #[test]
    fn unschedulable_waits_for_matching_event_then_backs_off() {
        let mut q = SchedulingQueue::new(QueueConfig::default());
        let t0 = Instant::now();
        q.upsert(pod("a"), 0, t0);
        assert!(q.pop(t0).is_some());
        q.unschedulable("a", Plugin::NodeResourcesFit.bit(), t0);
        assert!(q.pop(t0).is_none());
        assert_eq!(q.stats(), (0, 0, 1));
        // An unrelated event does not move it.
        q.move_for(Plugin::InterPodAffinity.bit(), t0);
        assert_eq!(q.stats(), (0, 0, 1));
        // A relevant one moves it to backoff (1 s after the failure).
        q.move_for(Plugin::NodeResourcesFit.bit(), t0);
        assert_eq!(q.stats(), (0, 1, 0));
        assert!(q.pop(t0 + Duration::from_millis(500)).is_none());
        assert_eq!(q.next_wakeup(), Some(t0 + Duration::from_secs(1)));
        let p = q.pop(t0 + Duration::from_secs(1)).expect("due");
        assert_eq!(p.attempts, 2);
        // Second failure: 2 s backoff; an event during the cycle sends it to backoff directly.
        q.move_for(Plugin::NodeResourcesFit.bit(), t0);
        let t1 = t0 + Duration::from_secs(1);
        q.unschedulable("a", Plugin::NodeResourcesFit.bit(), t1);
        assert_eq!(q.stats(), (0, 1, 0));
        assert!(q.pop(t1 + Duration::from_millis(1900)).is_none());
        assert!(q.pop(t1 + Duration::from_secs(2)).is_some());
    }

    #[test]
    fn backoff_caps_and_stale_unschedulable_flush() {
        let cfg = QueueConfig::default();
        let q = SchedulingQueue::new(cfg.clone());
        assert_eq!(q.backoff_duration(1), Duration::from_secs(1));
        assert_eq!(q.backoff_duration(3), Duration::from_secs(4));
        assert_eq!(q.backoff_duration(10), Duration::from_secs(10));
        let mut q = SchedulingQueue::new(cfg);
        let t0 = Instant::now();
        q.upsert(pod("a"), 0, t0);
        q.pop(t0);
        q.unschedulable("a", Plugin::NodeAffinity.bit(), t0);
        assert_eq!(q.next_wakeup(), Some(t0 + Duration::from_secs(300)));
        assert!(q.pop(t0 + Duration::from_secs(299)).is_none());
        assert!(q.pop(t0 + Duration::from_secs(300)).is_some());
    }

    #[test]
    fn updates_and_deletes() {
        let mut q = SchedulingQueue::new(QueueConfig::default());
        let t0 = Instant::now();
        q.upsert(pod("a"), 0, t0);
        q.pop(t0);
        q.unschedulable("a", Plugin::NodeAffinity.bit(), t0);
        // Status-only update: stays.
        q.upsert(pod("a"), 0, t0);
        assert_eq!(q.stats(), (0, 0, 1));
        // Label change: moves.
        let mut changed = (*pod("a")).clone();
        changed.labels.insert("x".into(), "y".into());
        q.upsert(Arc::new(changed), 0, t0 + Duration::from_secs(5));
        assert_eq!(q.stats(), (1, 0, 0));
        q.delete("a");
        assert!(q.pop(t0 + Duration::from_secs(5)).is_none());
        assert!(q.is_empty());
        // Errors retry after backoff even for removed pods.
        q.retry(pod("b"), 0, t0);
        assert!(q.pop(t0).is_none());
        assert!(q.pop(t0 + Duration::from_secs(1)).is_some());
    }
}

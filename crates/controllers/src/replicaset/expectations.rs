//! Controller expectations, as upstream's `UIDTrackingControllerExpectations`: before a
//! sync creates or deletes pods it records how many creations (and which pod deletions) it
//! expects to see in its informer; until they are observed (or time out) the controller
//! does not act on a cache that may not show its own writes yet, so it never overshoots.
//! Deletions are tracked by pod key so a pod seen first as terminating and then deleted is
//! counted once.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long unfulfilled expectations block syncs (upstream's `ExpectationsTimeout`): after
/// that the controller trusts its cache again, e.g. when a watch event was lost.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Record {
    adds: i64,
    deletes: HashSet<String>,
    since: Instant,
}

/// Expectations per controller key (`namespace/name`).
#[derive(Debug, Default)]
pub struct Expectations {
    records: Mutex<HashMap<String, Record>>,
}

impl Expectations {
    /// No expectations.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key` may sync: nothing pending, or what was pending has timed out.
    pub fn satisfied(&self, key: &str) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(r) => {
                (r.adds <= 0 && r.deletes.is_empty()) || r.since.elapsed() > EXPECTATIONS_TIMEOUT
            }
        }
    }

    /// Expect `n` pod creations for `key` (replacing any earlier record).
    pub fn expect_creations(&self, key: &str, n: usize) {
        self.lock().insert(
            key.to_string(),
            Record {
                adds: i64::try_from(n).unwrap_or(i64::MAX),
                deletes: HashSet::new(),
                since: Instant::now(),
            },
        );
    }

    /// Expect the deletion of these pods (by `namespace/name`) for `key`.
    pub fn expect_deletions(&self, key: &str, pods: impl IntoIterator<Item = String>) {
        self.lock().insert(
            key.to_string(),
            Record {
                adds: 0,
                deletes: pods.into_iter().collect(),
                since: Instant::now(),
            },
        );
    }

    /// A pod owned by `key` appeared (or a creation we expected will never happen).
    pub fn creation_observed(&self, key: &str) {
        if let Some(r) = self.lock().get_mut(key) {
            r.adds -= 1;
        }
    }

    /// Pod `pod_key` of `key` is gone or terminating (or its deletion failed).
    pub fn deletion_observed(&self, key: &str, pod_key: &str) {
        if let Some(r) = self.lock().get_mut(key) {
            r.deletes.remove(pod_key);
        }
    }

    /// Forget `key` (its controller was deleted).
    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }

    #[cfg(test)]
    fn backdate(&self, key: &str, by: Duration) {
        if let Some(r) = self.lock().get_mut(key)
            && let Some(t) = Instant::now().checked_sub(by)
        {
            r.since = t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_block_until_observed() {
        let e = Expectations::new();
        assert!(e.satisfied("ns/a"));
        e.expect_creations("ns/a", 2);
        assert!(!e.satisfied("ns/a"));
        e.creation_observed("ns/a");
        assert!(!e.satisfied("ns/a"));
        e.creation_observed("ns/a");
        assert!(e.satisfied("ns/a"));
        // Extra observations (pods adopted later) do not underflow into a block.
        e.creation_observed("ns/a");
        assert!(e.satisfied("ns/a"));
    }

    #[test]
    fn deletions_are_tracked_by_pod() {
        let e = Expectations::new();
        e.expect_deletions("ns/a", ["ns/p1".to_string(), "ns/p2".to_string()]);
        e.deletion_observed("ns/a", "ns/p1");
        // The same pod seen again (terminating, then gone) counts once.
        e.deletion_observed("ns/a", "ns/p1");
        assert!(!e.satisfied("ns/a"));
        e.deletion_observed("ns/a", "ns/p2");
        assert!(e.satisfied("ns/a"));
    }

    #[test]
    fn expectations_time_out_and_can_be_deleted() {
        let e = Expectations::new();
        e.expect_creations("ns/a", 1);
        e.backdate("ns/a", EXPECTATIONS_TIMEOUT + Duration::from_secs(1));
        assert!(e.satisfied("ns/a"));
        e.expect_creations("ns/b", 1);
        e.delete("ns/b");
        assert!(e.satisfied("ns/b"));
    }
}

//! Expectations: what a controller is waiting to see in its cache before it may act on a
//! Job again (upstream's `ControllerExpectations` and `uidTrackingExpectations`). Without
//! them, a sync running on a cache that has not yet seen the pods it just created would
//! create them again.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// After this long, unmet expectations are considered stale and ignored (a lost watch
/// event must not wedge a Job forever).
pub const EXPECTATIONS_TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Counts {
    add: i64,
    del: i64,
    set_at: Instant,
}

/// Pending pod creations/deletions per Job key.
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Counts>>,
}

impl Expectations {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Counts>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the Job may be managed: nothing pending, or pending for too long.
    pub fn satisfied(&self, key: &str) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(c) => (c.add <= 0 && c.del <= 0) || c.set_at.elapsed() > EXPECTATIONS_TTL,
        }
    }

    /// Expect `n` pod creations (replacing previous expectations).
    pub fn expect_creations(&self, key: &str, n: usize) {
        self.set(key, n as i64, 0);
    }

    /// Expect `n` pod deletions (replacing previous expectations).
    pub fn expect_deletions(&self, key: &str, n: usize) {
        self.set(key, 0, n as i64);
    }

    fn set(&self, key: &str, add: i64, del: i64) {
        self.lock().insert(
            key.to_string(),
            Counts {
                add,
                del,
                set_at: Instant::now(),
            },
        );
    }

    /// A pod creation was seen (or will never be seen because the create failed).
    pub fn creation_observed(&self, key: &str) {
        if let Some(c) = self.lock().get_mut(key) {
            c.add -= 1;
        }
    }

    /// A pod deletion was seen (or will never be seen because the delete failed).
    pub fn deletion_observed(&self, key: &str) {
        if let Some(c) = self.lock().get_mut(key) {
            c.del -= 1;
        }
    }

    /// Forget the Job.
    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }
}

/// Pod UIDs whose tracking-finalizer removal the controller is waiting to observe.
#[derive(Default)]
pub struct FinalizerExpectations {
    inner: Mutex<HashMap<String, HashSet<String>>>,
}

impl FinalizerExpectations {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Expect the finalizer to disappear from these pods.
    pub fn expect_removed(&self, key: &str, uids: impl IntoIterator<Item = String>) {
        self.lock().entry(key.to_string()).or_default().extend(uids);
    }

    /// The finalizer was seen removed from `uid` (or its removal failed).
    pub fn removal_observed(&self, key: &str, uid: &str) {
        let mut m = self.lock();
        if let Some(s) = m.get_mut(key) {
            s.remove(uid);
            if s.is_empty() {
                m.remove(key);
            }
        }
    }

    /// UIDs still expected to lose the finalizer.
    pub fn expected(&self, key: &str) -> HashSet<String> {
        self.lock().get(key).cloned().unwrap_or_default()
    }

    /// Forget the Job.
    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_must_be_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/j"));
        e.expect_creations("ns/j", 2);
        assert!(!e.satisfied("ns/j"));
        e.creation_observed("ns/j");
        assert!(!e.satisfied("ns/j"));
        e.creation_observed("ns/j");
        assert!(e.satisfied("ns/j"));
        e.expect_deletions("ns/j", 1);
        assert!(!e.satisfied("ns/j"));
        e.deletion_observed("ns/j");
        e.deletion_observed("ns/j");
        assert!(e.satisfied("ns/j"));
    }

    #[test]
    fn finalizer_uids() {
        let f = FinalizerExpectations::default();
        f.expect_removed("ns/j", ["a".to_string(), "b".to_string()]);
        assert_eq!(f.expected("ns/j").len(), 2);
        f.removal_observed("ns/j", "a");
        assert!(f.expected("ns/j").contains("b"));
        f.removal_observed("ns/j", "b");
        assert!(f.expected("ns/j").is_empty());
    }
}

//! Create/delete expectations (upstream `ControllerExpectations`): after a DaemonSet sync
//! creates or deletes pods, the next sync must not act on a pod cache that has not seen them
//! yet, or it would create duplicates (daemon pods have generated names). Expectations are
//! tracked by pod name and are met when the informer reported the change or the cache
//! already reflects it; they expire after five minutes as upstream.

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long unmet expectations block a DaemonSet (upstream `ExpectationsTimeout`).
pub const TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Pending {
    adds: HashSet<String>,
    dels: HashSet<String>,
    since: Option<Instant>,
}

/// Per-DaemonSet pending pod creations and deletions, keyed by `namespace/name`.
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        // Every update is a single insert/remove: a poisoned map is still consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Expect pods `names` to appear.
    pub fn expect_creations(&self, key: &str, names: impl IntoIterator<Item = String>) {
        let mut m = self.lock();
        let p = m.entry(key.to_string()).or_default();
        p.adds.extend(names);
        p.since = Some(Instant::now());
    }

    /// Expect pods `names` to go (or start terminating).
    pub fn expect_deletions(&self, key: &str, names: impl IntoIterator<Item = String>) {
        let mut m = self.lock();
        let p = m.entry(key.to_string()).or_default();
        p.dels.extend(names);
        p.since = Some(Instant::now());
    }

    /// The informer saw pod `name` of the DaemonSet `key` appear.
    pub fn creation_observed(&self, key: &str, name: &str) {
        if let Some(p) = self.lock().get_mut(key) {
            p.adds.remove(name);
        }
    }

    /// The informer saw pod `name` go or start terminating.
    pub fn deletion_observed(&self, key: &str, name: &str) {
        if let Some(p) = self.lock().get_mut(key) {
            p.dels.remove(name);
        }
    }

    /// Drop everything about `key` (the DaemonSet is gone).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Whether the DaemonSet may act: nothing pending (checking the cache for changes whose
    /// events raced with recording the expectation), or the expectations expired.
    pub fn satisfied(&self, key: &str, namespace: &str, pods: &Store<Pod>) -> bool {
        let mut m = self.lock();
        let Some(p) = m.get_mut(key) else {
            return true;
        };
        p.adds
            .retain(|n| pods.get(&ObjectRef::new(n).within(namespace)).is_none());
        p.dels.retain(|n| {
            pods.get(&ObjectRef::new(n).within(namespace))
                .is_some_and(|pod| pod.metadata.deletion_timestamp.is_none())
        });
        let expired = p.since.is_some_and(|s| s.elapsed() > TIMEOUT);
        if (p.adds.is_empty() && p.dels.is_empty()) || expired {
            m.remove(key);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store;
    use kube::runtime::watcher::Event;

    fn pod(name: &str, deleting: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("ns".into());
        if deleting {
            p.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ));
        }
        p
    }

    #[test]
    fn met_by_events_or_cache() {
        let (reader, mut writer) = store::<Pod>();
        let e = Expectations::default();
        assert!(e.satisfied("ns/d", "ns", &reader));
        e.expect_creations("ns/d", ["d-a".to_string(), "d-b".to_string()]);
        assert!(!e.satisfied("ns/d", "ns", &reader));
        e.creation_observed("ns/d", "d-a");
        assert!(!e.satisfied("ns/d", "ns", &reader));
        writer.apply_watcher_event(&Event::Apply(pod("d-b", false)));
        assert!(e.satisfied("ns/d", "ns", &reader));

        e.expect_deletions("ns/d", ["d-b".to_string()]);
        assert!(!e.satisfied("ns/d", "ns", &reader));
        writer.apply_watcher_event(&Event::Apply(pod("d-b", true)));
        assert!(e.satisfied("ns/d", "ns", &reader));

        e.expect_deletions("ns/d", ["d-x".to_string()]);
        // Not in the cache at all: already gone.
        assert!(e.satisfied("ns/d", "ns", &reader));
        e.expect_creations("ns/d", ["d-y".to_string()]);
        e.forget("ns/d");
        assert!(e.satisfied("ns/d", "ns", &reader));
    }
}

//! NamespaceLifecycle's view of namespaces: the names that exist and are not terminating,
//! kept from a store watch — as upstream's admission plugin reads an informer — so a
//! create does not read and decode its namespace from the store (a tenth of the CPU of a
//! small create). Anything the cache does not know as active is looked up in the store,
//! so a namespace created a moment ago is never refused. A namespace this server marks
//! for deletion is forgotten at once ([`NamespaceCache::forget`]); one another server
//! (HA) marks may accept creates for the moment its watch event takes to arrive, as with
//! upstream's informer.

use super::watched::{Followed, start_following};
use r8s_store::{DynStore, KeyValue, Revision};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::oneshot;

/// Where namespaces are stored.
pub(super) const PREFIX: &str = "/registry/core/namespaces/";

/// Active namespaces, filled by a background watch started on first use.
#[derive(Default)]
pub(super) struct NamespaceCache {
    /// `None` until the first list completed (and again while re-listing).
    active: RwLock<Option<HashSet<String>>>,
    /// Namespaces forgotten at a revision: watch events up to it are stale.
    forgotten: Mutex<HashMap<String, Revision>>,
    /// Dropped with the cache, which stops the watch task.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl NamespaceCache {
    /// Whether `ns` is known to exist and not be terminating. `false` means "ask the
    /// store", not "missing".
    pub(super) fn is_active(self: &Arc<Self>, store: &DynStore, ns: &str) -> bool {
        start_following(self, store, &self.stop);
        self.active
            .read()
            .ok()
            .and_then(|a| a.as_ref().map(|set| set.contains(ns)))
            .unwrap_or(false)
    }

    /// `ns` was marked for deletion or deleted at `rev` by this server: treat it as
    /// unknown now, whatever older watch events still in flight say.
    pub(super) fn forget(&self, ns: &str, rev: Revision) {
        if let Ok(mut forgotten) = self.forgotten.lock() {
            forgotten.insert(ns.to_string(), rev);
        }
        if let Ok(mut active) = self.active.write()
            && let Some(set) = active.as_mut()
        {
            set.remove(ns);
        }
    }

    fn replace(&self, set: Option<HashSet<String>>) {
        if let Ok(mut active) = self.active.write() {
            *active = set;
        }
    }

    /// Applies one stored namespace at `rev` (`None`: deleted).
    fn apply(&self, name: &str, rev: Revision, value: Option<&[u8]>) {
        if let Ok(mut forgotten) = self.forgotten.lock()
            && let Some(&at) = forgotten.get(name)
        {
            if rev <= at {
                return;
            }
            forgotten.remove(name);
        }
        let Ok(mut active) = self.active.write() else {
            return;
        };
        let Some(set) = active.as_mut() else { return };
        if value.is_some_and(is_active_value) {
            set.insert(name.to_string());
        } else {
            set.remove(name);
        }
    }
}

/// A stored namespace that is not being deleted.
fn is_active_value(value: &[u8]) -> bool {
    serde_json::from_slice::<Value>(value)
        .ok()
        .is_some_and(|ns| !crate::meta::is_deleting(&ns))
}

fn name_of(kv: &KeyValue) -> &str {
    kv.key.strip_prefix(PREFIX).unwrap_or(&kv.key)
}

impl Followed for NamespaceCache {
    fn prefix(&self) -> String {
        PREFIX.to_string()
    }

    fn reset(&self, listed: Option<(&[KeyValue], Revision)>) {
        let set = listed.map(|(items, _)| {
            items
                .iter()
                .filter(|kv| is_active_value(&kv.value))
                .map(|kv| name_of(kv).to_string())
                .collect()
        });
        self.replace(set);
    }

    fn change(&self, kv: &KeyValue, rev: Revision, deleted: bool) {
        let value = (!deleted).then_some(kv.value.as_slice());
        self.apply(name_of(kv), rev, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    async fn store() -> (DynStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = r8s_store::open("", &dir.path().join("state.db"))
            .await
            .unwrap();
        (store, dir)
    }

    async fn eventually(cache: &Arc<NamespaceCache>, store: &DynStore, ns: &str, want: bool) {
        for _ in 0..200 {
            if cache.is_active(store, ns) == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{ns}: is_active never became {want}");
    }

    fn ns(name: &str, deleting: bool) -> Vec<u8> {
        let mut obj = json!({"metadata": {"name": name}});
        if deleting {
            obj["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        }
        serde_json::to_vec(&obj).unwrap()
    }

    #[tokio::test]
    async fn follows_creates_terminations_and_deletes() {
        let (store, _dir) = store().await;
        store
            .create(&format!("{PREFIX}listed"), ns("listed", false), None)
            .await
            .unwrap();
        let cache = Arc::new(NamespaceCache::default());
        assert!(
            !cache.is_active(&store, "listed"),
            "unknown before the list"
        );
        eventually(&cache, &store, "listed", true).await;

        let rev = store
            .create(&format!("{PREFIX}watched"), ns("watched", false), None)
            .await
            .unwrap();
        eventually(&cache, &store, "watched", true).await;
        store
            .update(&format!("{PREFIX}watched"), ns("watched", true), rev, None)
            .await
            .unwrap();
        eventually(&cache, &store, "watched", false).await;
        store
            .delete(&format!("{PREFIX}listed"), None)
            .await
            .unwrap();
        eventually(&cache, &store, "listed", false).await;
        assert!(!cache.is_active(&store, "never-created"));
    }

    #[tokio::test]
    async fn forgotten_namespaces_ignore_older_events() {
        let cache = NamespaceCache::default();
        cache.replace(Some(HashSet::new()));
        let active = ns("a", false);
        cache.apply("a", 5, Some(&active));
        assert!(cache.active.read().unwrap().as_ref().unwrap().contains("a"));
        cache.forget("a", 7);
        cache.apply("a", 6, Some(&active));
        assert!(!cache.active.read().unwrap().as_ref().unwrap().contains("a"));
        cache.apply("a", 7, Some(&ns("a", true)));
        cache.apply("a", 9, Some(&active));
        assert!(cache.active.read().unwrap().as_ref().unwrap().contains("a"));
        assert!(cache.forgotten.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_watch_stops_with_the_cache() {
        let (store, _dir) = store().await;
        let cache = Arc::new(NamespaceCache::default());
        cache.is_active(&store, "x");
        let weak = Arc::downgrade(&cache);
        drop(cache);
        assert!(weak.upgrade().is_none());
        // The task ends on the stop signal; give it a moment and check the store is
        // still usable (nothing blocked).
        tokio::time::sleep(Duration::from_millis(20)).await;
        store.current_revision().await.unwrap();
    }
}

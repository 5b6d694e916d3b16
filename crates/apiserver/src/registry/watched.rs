//! All objects of one kind, kept from a store watch, for admission plugins that read a
//! namespace's LimitRanges or ResourceQuotas on every pod create (upstream's plugins
//! read informers). Listing them from the store instead cost a fifth of a small create.
//!
//! The cache answers only once it has seen every write this server made to the kind:
//! each such write notes its revision ([`KindCache::wrote`]), and until the watch has
//! delivered it the caller reads the store. So a LimitRange created a moment before a
//! pod always applies to it. Writes by another server (HA) arrive with the watch, as
//! with upstream's informers.

use super::decode;
use futures::StreamExt;
use r8s_api::catalog::ResourceInfo;
use r8s_store::{DynStore, EventKind, KeyValue, ListOptions, Revision};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

/// How long to wait before listing again after the watch failed.
const RESYNC_DELAY: Duration = Duration::from_millis(500);

/// One kind's objects by storage key, filled by a background watch started on first use.
pub(super) struct KindCache {
    info: &'static ResourceInfo,
    /// `None` until the first list completed (and again while re-listing).
    state: RwLock<Option<State>>,
    /// The newest revision this server wrote to the kind.
    written: AtomicI64,
    /// Dropped with the cache, which stops the watch task.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

struct State {
    /// The revision the objects are current at.
    seen: Revision,
    objects: BTreeMap<String, Value>,
}

impl KindCache {
    pub(super) fn new(info: &'static ResourceInfo) -> Self {
        KindCache {
            info,
            state: RwLock::new(None),
            written: AtomicI64::new(0),
            stop: Mutex::new(None),
        }
    }

    /// The cached kind.
    pub(super) fn info(&self) -> &'static ResourceInfo {
        self.info
    }

    /// Whether writes to `info` concern this cache.
    pub(super) fn caches(&self, info: &ResourceInfo) -> bool {
        info.group == self.info.group && info.plural == self.info.plural
    }

    /// This server committed a write to the kind at `rev`.
    pub(super) fn wrote(&self, rev: Revision) {
        self.written.fetch_max(rev, Ordering::SeqCst);
    }

    /// The objects in namespace `ns`, or `None` when the cache cannot answer yet (not
    /// listed, or behind this server's last write): then read the store.
    pub(super) fn in_namespace(self: &Arc<Self>, store: &DynStore, ns: &str) -> Option<Vec<Value>> {
        start_following(self, store, &self.stop);
        let written = self.written.load(Ordering::SeqCst);
        let state = self.state.read().ok()?;
        let state = state.as_ref().filter(|s| s.seen >= written)?;
        let prefix = format!("{}{ns}/", self.info.key_prefix());
        Some(
            state
                .objects
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(_, v)| v.clone())
                .collect(),
        )
    }

    fn replace(&self, state: Option<State>) {
        if let Ok(mut s) = self.state.write() {
            *s = state;
        }
    }

    /// Applies one change at `rev` (`None`: deleted).
    fn apply(&self, key: &str, rev: Revision, obj: Option<Value>) {
        let Ok(mut state) = self.state.write() else {
            return;
        };
        let Some(state) = state.as_mut() else { return };
        match obj {
            Some(obj) => state.objects.insert(key.to_string(), obj),
            None => state.objects.remove(key),
        };
        state.seen = state.seen.max(rev);
    }
}

/// A cache kept from one store watch by [`start_following`].
pub(super) trait Followed: Send + Sync + 'static {
    /// The key prefix followed.
    fn prefix(&self) -> String;
    /// Everything under the prefix at `rev`; `None` while re-listing (the cache must not
    /// answer then).
    fn reset(&self, listed: Option<(&[KeyValue], Revision)>);
    /// One change at `rev`: `kv` holds the new value unless `deleted`.
    fn change(&self, kv: &KeyValue, rev: Revision, deleted: bool);
}

/// Starts the watch task feeding `cache`, once: `stop` holds the sender whose drop (with
/// the cache) ends the task.
pub(super) fn start_following<C: Followed>(
    cache: &Arc<C>,
    store: &DynStore,
    stop: &Mutex<Option<oneshot::Sender<()>>>,
) {
    let Ok(mut stop) = stop.lock() else {
        return;
    };
    if stop.is_some() {
        return;
    }
    let (tx, rx) = oneshot::channel();
    *stop = Some(tx);
    tokio::spawn(follow(store.clone(), Arc::downgrade(cache), rx));
}

/// Lists, then follows the watch; lists again whenever the watch ends or fails, until the
/// cache is dropped.
async fn follow<C: Followed>(store: DynStore, cache: Weak<C>, mut stop: oneshot::Receiver<()>) {
    loop {
        let synced = tokio::select! {
            _ = &mut stop => return,
            synced = sync_once(&store, &cache) => synced,
        };
        if !synced {
            return;
        }
        if let Some(cache) = cache.upgrade() {
            cache.reset(None);
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(RESYNC_DELAY) => {}
        }
    }
}

/// One list + watch; returns when the watch stops (`false` once the cache is gone).
async fn sync_once<C: Followed>(store: &DynStore, cache: &Weak<C>) -> bool {
    let Some(prefix) = cache.upgrade().map(|c| c.prefix()) else {
        return false;
    };
    let Ok(list) = store.list(&prefix, ListOptions::default()).await else {
        return true;
    };
    let Ok(mut events) = store.watch(&prefix, list.revision).await else {
        return true;
    };
    match cache.upgrade() {
        Some(cache) => cache.reset(Some((&list.items, list.revision))),
        None => return false,
    }
    while let Some(Ok(event)) = events.next().await {
        let Some(cache) = cache.upgrade() else {
            return false;
        };
        cache.change(&event.kv, event.revision(), event.kind != EventKind::Put);
    }
    true
}

impl Followed for KindCache {
    fn prefix(&self) -> String {
        self.info.key_prefix()
    }

    fn reset(&self, listed: Option<(&[KeyValue], Revision)>) {
        let state = listed.map(|(items, seen)| State {
            seen,
            objects: items
                .iter()
                .filter_map(|kv| Some((kv.key.clone(), decode(self.info, kv).ok()?)))
                .collect(),
        });
        self.replace(state);
    }

    fn change(&self, kv: &KeyValue, rev: Revision, deleted: bool) {
        let obj = if deleted {
            None
        } else {
            decode(self.info, kv).ok()
        };
        self.apply(&kv.key, rev, obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limit_ranges() -> &'static ResourceInfo {
        r8s_api::catalog::find("", "v1", "limitranges").unwrap()
    }

    fn key(ns: &str, name: &str) -> String {
        super::super::object_key(limit_ranges(), Some(ns), name)
    }

    fn body(name: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"metadata": {"name": name}})).unwrap()
    }

    fn names(objs: &[Value]) -> Vec<&str> {
        objs.iter().map(crate::meta::name).collect()
    }

    async fn answer(cache: &Arc<KindCache>, store: &DynStore, ns: &str) -> Vec<Value> {
        for _ in 0..200 {
            if let Some(objs) = cache.in_namespace(store, ns) {
                return objs;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the cache never answered for {ns}");
    }

    #[tokio::test]
    async fn answers_per_namespace_once_it_saw_this_servers_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = r8s_store::open("", &dir.path().join("state.db"))
            .await
            .unwrap();
        store
            .create(&key("a", "one"), body("one"), None)
            .await
            .unwrap();
        store
            .create(&key("ab", "other"), body("other"), None)
            .await
            .unwrap();
        let cache = Arc::new(KindCache::new(limit_ranges()));
        assert!(cache.in_namespace(&store, "a").is_none(), "not listed yet");
        assert_eq!(names(&answer(&cache, &store, "a").await), ["one"]);

        // A write this server made and the watch has not delivered: no answer until it has.
        let rev = store
            .create(&key("a", "two"), body("two"), None)
            .await
            .unwrap();
        cache.wrote(rev);
        assert_eq!(names(&answer(&cache, &store, "a").await), ["one", "two"]);

        let (_, rev) = store.delete(&key("a", "one"), None).await.unwrap();
        cache.wrote(rev);
        assert_eq!(names(&answer(&cache, &store, "a").await), ["two"]);
        assert!(answer(&cache, &store, "empty").await.is_empty());
    }

    #[tokio::test]
    async fn a_write_not_yet_seen_means_no_answer() {
        let cache = KindCache::new(limit_ranges());
        cache.replace(Some(State {
            seen: 5,
            objects: BTreeMap::new(),
        }));
        cache.wrote(7);
        let dir = tempfile::tempdir().unwrap();
        let store = r8s_store::open("", &dir.path().join("state.db"))
            .await
            .unwrap();
        let cache = Arc::new(cache);
        // Mark the watch as started so the test controls the state.
        *cache.stop.lock().unwrap() = Some(oneshot::channel().0);
        assert!(cache.in_namespace(&store, "a").is_none());
        cache.apply(&key("a", "x"), 7, Some(json!({"metadata": {"name": "x"}})));
        assert_eq!(names(&cache.in_namespace(&store, "a").unwrap()), ["x"]);
    }
}

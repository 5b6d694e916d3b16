//! The admission configurations of one kind — the webhooks of every Mutating- or
//! ValidatingWebhookConfiguration, the ValidatingAdmissionPolicies, their bindings —
//! kept from a store watch (upstream's webhook and policy sources read informers), each
//! object compiled once when it changes, in upstream's order: objects by name, webhooks as
//! listed.
//!
//! As the LimitRange cache (`registry/watched.rs`), it answers only once it has seen every
//! write this server made to the configurations; until then the store is listed. Each
//! cache owns one bit of a mask shared by all of them, set while it may hold something:
//! with nothing configured, one atomic load of that mask is all a write pays
//! ([`Configured::any`]).

use crate::error::ApiResult;
use crate::registry::decode;
use crate::registry::watched::{Followed, start_following};
use r8s_api::catalog::ResourceInfo;
use r8s_store::{DynStore, KeyValue, ListOptions, Revision};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::oneshot;

/// What one configuration kind holds, in call order.
pub(crate) type ItemList<T> = Arc<[Arc<T>]>;

/// What a stored configuration object compiles to (webhooks: one per entry).
pub(crate) type CompileFn<T> = fn(&Value) -> Vec<Arc<T>>;

/// The mask of caches that may hold something (a bit per cache, set from the cache's
/// creation until it has listed nothing).
#[derive(Clone)]
pub(crate) struct Configured(Arc<AtomicU8>);

impl Configured {
    pub(crate) fn new() -> Self {
        Configured(Arc::new(AtomicU8::new(0)))
    }

    /// Whether any cache may hold something.
    pub(crate) fn any(&self) -> bool {
        self.0.load(Ordering::Acquire) != 0
    }

    fn has(&self, bit: u8) -> bool {
        self.0.load(Ordering::Acquire) & bit != 0
    }

    fn set(&self, bit: u8, present: bool) {
        if present {
            self.0.fetch_or(bit, Ordering::AcqRel);
        } else {
            self.0.fetch_and(!bit, Ordering::AcqRel);
        }
    }
}

pub(crate) struct ConfigCache<T> {
    info: &'static ResourceInfo,
    compile: CompileFn<T>,
    state: RwLock<State<T>>,
    /// This cache's bit of `configured`: clear when listed, current with this server's
    /// writes, and empty. Only changed under the `state` write lock.
    bit: u8,
    configured: Configured,
    /// Dropped with the cache, which stops the watch task.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

struct State<T> {
    /// Whether `configs` holds a complete list (false until listed, and while re-listing).
    listed: bool,
    /// The revision the configurations are current at.
    seen: Revision,
    /// The newest revision this server wrote to the kind.
    written: Revision,
    /// Compiled configurations by storage key (so by name).
    configs: BTreeMap<String, Vec<Arc<T>>>,
    items: Option<ItemList<T>>,
}

impl<T> Default for State<T> {
    fn default() -> Self {
        State {
            listed: false,
            seen: 0,
            written: 0,
            configs: BTreeMap::new(),
            items: None,
        }
    }
}

impl<T> State<T> {
    fn answers(&self) -> bool {
        self.listed && self.seen >= self.written
    }
}

impl<T: Send + Sync + 'static> ConfigCache<T> {
    /// A cache of `info`'s objects compiled by `compile`, owning `bit` of `configured`.
    pub(crate) fn new(
        info: &'static ResourceInfo,
        compile: CompileFn<T>,
        configured: &Configured,
        bit: u8,
    ) -> Self {
        configured.set(bit, true);
        ConfigCache {
            info,
            compile,
            state: RwLock::new(State::default()),
            bit,
            configured: configured.clone(),
            stop: Mutex::new(None),
        }
    }

    /// Whether writes to `info` are writes of this cache's configurations.
    pub(crate) fn caches(&self, info: &ResourceInfo) -> bool {
        info.group == self.info.group && info.plural == self.info.plural
    }

    /// Certainly nothing of this kind is configured (false when unsure).
    pub(crate) fn is_empty(&self) -> bool {
        !self.configured.has(self.bit)
    }

    /// This server committed a write to the configurations at `rev`.
    pub(crate) fn wrote(&self, rev: Revision) {
        if let Ok(mut state) = self.state.write() {
            state.written = state.written.max(rev);
            self.update_empty(&state);
        }
    }

    /// Starts the watch feeding the cache (once).
    pub(crate) fn follow(self: &Arc<Self>, store: &DynStore) {
        start_following(self, store, &self.stop);
    }

    /// What to consider now: from the watch when current, else listed from the store
    /// (and compiled for this request).
    pub(crate) async fn items(self: &Arc<Self>, store: &DynStore) -> ApiResult<ItemList<T>> {
        self.follow(store);
        if let Some(items) = self.current() {
            return Ok(items);
        }
        let list = store
            .list(&self.info.key_prefix(), ListOptions::default())
            .await?;
        let configs: BTreeMap<String, Vec<Arc<T>>> = list
            .items
            .iter()
            .filter_map(|kv| Some((kv.key.clone(), (self.compile)(&decode(self.info, kv).ok()?))))
            .collect();
        Ok(flatten(&configs))
    }

    fn current(&self) -> Option<ItemList<T>> {
        let state = self.state.read().ok()?;
        if !state.answers() {
            return None;
        }
        state.items.clone()
    }

    fn update_empty(&self, state: &State<T>) {
        let empty = state.answers() && state.items.as_ref().is_some_and(|h| h.is_empty());
        self.configured.set(self.bit, !empty);
    }

    fn with_state(&self, f: impl FnOnce(&mut State<T>)) {
        if let Ok(mut state) = self.state.write() {
            f(&mut state);
            self.update_empty(&state);
        }
    }
}

fn flatten<T>(configs: &BTreeMap<String, Vec<Arc<T>>>) -> ItemList<T> {
    configs
        .values()
        .flat_map(|c| c.iter().cloned())
        .collect::<Vec<_>>()
        .into()
}

impl<T: Send + Sync + 'static> Followed for ConfigCache<T> {
    fn prefix(&self) -> String {
        self.info.key_prefix()
    }

    fn reset(&self, listed: Option<(&[KeyValue], Revision)>) {
        let configs: Option<BTreeMap<String, Vec<Arc<T>>>> = listed.map(|(items, _)| {
            items
                .iter()
                .filter_map(|kv| {
                    Some((kv.key.clone(), (self.compile)(&decode(self.info, kv).ok()?)))
                })
                .collect()
        });
        self.with_state(|state| match (configs, listed) {
            (Some(configs), Some((_, rev))) => {
                state.items = Some(flatten(&configs));
                state.configs = configs;
                state.seen = rev;
                state.listed = true;
            }
            _ => {
                state.listed = false;
                state.items = None;
                state.configs.clear();
            }
        });
    }

    fn change(&self, kv: &KeyValue, rev: Revision, deleted: bool) {
        // Compiled outside the lock (policies compile CEL).
        let compiled = if deleted {
            None
        } else {
            decode(self.info, kv).ok().map(|obj| (self.compile)(&obj))
        };
        self.with_state(|state| {
            if !state.listed {
                return;
            }
            match compiled {
                Some(items) => state.configs.insert(kv.key.clone(), items),
                None => state.configs.remove(&kv.key),
            };
            state.items = Some(flatten(&state.configs));
            state.seen = state.seen.max(rev);
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::config::{Hook, HookKind, hooks_of};
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn compile_mutating(c: &Value) -> Vec<Arc<Hook>> {
        hooks_of(HookKind::Mutating, c)
    }

    fn mutating() -> &'static ResourceInfo {
        r8s_api::catalog::find(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
        )
        .unwrap()
    }

    fn config(name: &str, hooks: &[&str]) -> Vec<u8> {
        let webhooks: Vec<Value> = hooks
            .iter()
            .map(|h| json!({"name": h, "clientConfig": {"url": "https://127.0.0.1/"}}))
            .collect();
        serde_json::to_vec(&json!({"metadata": {"name": name}, "webhooks": webhooks})).unwrap()
    }

    fn names(hooks: &ItemList<Hook>) -> Vec<String> {
        hooks
            .iter()
            .map(|h| format!("{}/{}", h.configuration, h.name))
            .collect()
    }

    #[tokio::test]
    async fn follows_the_store_and_knows_when_nothing_is_configured() {
        let dir = tempfile::tempdir().unwrap();
        let store = r8s_store::open("", &dir.path().join("state.db"))
            .await
            .unwrap();
        let configured = Configured::new();
        let cache = Arc::new(ConfigCache::new(
            mutating(),
            compile_mutating,
            &configured,
            1,
        ));
        assert!(!cache.is_empty(), "unsure before the first list");
        assert!(cache.items(&store).await.unwrap().is_empty());
        for _ in 0..200 {
            if cache.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(cache.is_empty());
        assert!(!configured.any());

        // This server's write: not empty at once, and listed from the store until the
        // watch delivers it.
        let prefix = mutating().key_prefix();
        let rev = store
            .create(&format!("{prefix}b"), config("b", &["b1", "b2"]), None)
            .await
            .unwrap();
        cache.wrote(rev);
        assert!(!cache.is_empty());
        assert_eq!(names(&cache.items(&store).await.unwrap()), ["b/b1", "b/b2"]);
        let rev = store
            .create(&format!("{prefix}a"), config("a", &["a1"]), None)
            .await
            .unwrap();
        cache.wrote(rev);
        // Configurations by name, webhooks in order.
        assert_eq!(
            names(&cache.items(&store).await.unwrap()),
            ["a/a1", "b/b1", "b/b2"]
        );
        for _ in 0..200 {
            if cache.current().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(names(&cache.current().unwrap()), ["a/a1", "b/b1", "b/b2"]);

        let (_, rev) = store.delete(&format!("{prefix}a"), None).await.unwrap();
        cache.wrote(rev);
        let (_, rev) = store.delete(&format!("{prefix}b"), None).await.unwrap();
        cache.wrote(rev);
        assert!(cache.items(&store).await.unwrap().is_empty());
        for _ in 0..200 {
            if cache.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(cache.is_empty());
    }
}

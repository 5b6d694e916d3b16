//! The webhooks of every Mutating- or ValidatingWebhookConfiguration, kept from a store
//! watch (upstream's webhook source reads informers), in upstream's order: configurations
//! by name, webhooks as listed.
//!
//! As the LimitRange cache (`registry/watched.rs`), it answers only once it has seen every
//! write this server made to the configurations; until then the store is listed. With no
//! webhook configured, [`ConfigCache::is_empty`] is one atomic load, which is all a write
//! pays.

use super::config::{Hook, HookKind, hooks_of};
use crate::error::ApiResult;
use crate::registry::decode;
use crate::registry::watched::{Followed, start_following};
use r8s_api::catalog::ResourceInfo;
use r8s_store::{DynStore, KeyValue, ListOptions, Revision};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::oneshot;

/// The webhooks of one configuration kind, in call order.
pub(crate) type HookList = Arc<[Arc<Hook>]>;

pub(crate) struct ConfigCache {
    kind: HookKind,
    info: &'static ResourceInfo,
    state: RwLock<State>,
    /// Listed, current with this server's writes, and no webhook: nothing to call.
    /// Only changed under the `state` write lock.
    empty: AtomicBool,
    /// Dropped with the cache, which stops the watch task.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

#[derive(Default)]
struct State {
    /// Whether `configs` holds a complete list (false until listed, and while re-listing).
    listed: bool,
    /// The revision the configurations are current at.
    seen: Revision,
    /// The newest revision this server wrote to the kind.
    written: Revision,
    /// Configurations by storage key (so by name).
    configs: BTreeMap<String, Value>,
    hooks: Option<HookList>,
}

impl State {
    fn answers(&self) -> bool {
        self.listed && self.seen >= self.written
    }
}

impl ConfigCache {
    pub(crate) fn new(kind: HookKind, info: &'static ResourceInfo) -> Self {
        ConfigCache {
            kind,
            info,
            state: RwLock::new(State::default()),
            empty: AtomicBool::new(false),
            stop: Mutex::new(None),
        }
    }

    /// Whether writes to `info` are writes of this cache's configurations.
    pub(crate) fn caches(&self, info: &ResourceInfo) -> bool {
        info.group == self.info.group && info.plural == self.info.plural
    }

    /// Certainly no webhook of this kind is configured (false when unsure).
    pub(crate) fn is_empty(&self) -> bool {
        self.empty.load(Ordering::Acquire)
    }

    /// This server committed a write to the configurations at `rev`.
    pub(crate) fn wrote(&self, rev: Revision) {
        if let Ok(mut state) = self.state.write() {
            state.written = state.written.max(rev);
            self.update_empty(&state);
        }
    }

    /// The webhooks to consider now: from the watch when current, else listed from the
    /// store.
    pub(crate) async fn hooks(self: &Arc<Self>, store: &DynStore) -> ApiResult<HookList> {
        start_following(self, store, &self.stop);
        if let Some(hooks) = self.current() {
            return Ok(hooks);
        }
        let list = store
            .list(&self.info.key_prefix(), ListOptions::default())
            .await?;
        let configs: BTreeMap<String, Value> = list
            .items
            .iter()
            .filter_map(|kv| Some((kv.key.clone(), decode(self.info, kv).ok()?)))
            .collect();
        Ok(compile(self.kind, &configs))
    }

    fn current(&self) -> Option<HookList> {
        let state = self.state.read().ok()?;
        if !state.answers() {
            return None;
        }
        state.hooks.clone()
    }

    fn update_empty(&self, state: &State) {
        let empty = state.answers() && state.hooks.as_ref().is_some_and(|h| h.is_empty());
        self.empty.store(empty, Ordering::Release);
    }

    fn with_state(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut state) = self.state.write() {
            f(&mut state);
            self.update_empty(&state);
        }
    }
}

fn compile(kind: HookKind, configs: &BTreeMap<String, Value>) -> HookList {
    configs
        .values()
        .flat_map(|c| hooks_of(kind, c))
        .collect::<Vec<_>>()
        .into()
}

impl Followed for ConfigCache {
    fn prefix(&self) -> String {
        self.info.key_prefix()
    }

    fn reset(&self, listed: Option<(&[KeyValue], Revision)>) {
        let configs: Option<BTreeMap<String, Value>> = listed.map(|(items, _)| {
            items
                .iter()
                .filter_map(|kv| Some((kv.key.clone(), decode(self.info, kv).ok()?)))
                .collect()
        });
        let kind = self.kind;
        self.with_state(|state| match (configs, listed) {
            (Some(configs), Some((_, rev))) => {
                state.hooks = Some(compile(kind, &configs));
                state.configs = configs;
                state.seen = rev;
                state.listed = true;
            }
            _ => {
                state.listed = false;
                state.hooks = None;
                state.configs.clear();
            }
        });
    }

    fn change(&self, kv: &KeyValue, rev: Revision, deleted: bool) {
        let obj = if deleted {
            None
        } else {
            decode(self.info, kv).ok()
        };
        let kind = self.kind;
        self.with_state(|state| {
            if !state.listed {
                return;
            }
            match obj {
                Some(obj) => state.configs.insert(kv.key.clone(), obj),
                None => state.configs.remove(&kv.key),
            };
            state.hooks = Some(compile(kind, &state.configs));
            state.seen = state.seen.max(rev);
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

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

    fn names(hooks: &HookList) -> Vec<String> {
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
        let cache = Arc::new(ConfigCache::new(HookKind::Mutating, mutating()));
        assert!(!cache.is_empty(), "unsure before the first list");
        assert!(cache.hooks(&store).await.unwrap().is_empty());
        for _ in 0..200 {
            if cache.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(cache.is_empty());

        // This server's write: not empty at once, and listed from the store until the
        // watch delivers it.
        let prefix = mutating().key_prefix();
        let rev = store
            .create(&format!("{prefix}b"), config("b", &["b1", "b2"]), None)
            .await
            .unwrap();
        cache.wrote(rev);
        assert!(!cache.is_empty());
        assert_eq!(names(&cache.hooks(&store).await.unwrap()), ["b/b1", "b/b2"]);
        let rev = store
            .create(&format!("{prefix}a"), config("a", &["a1"]), None)
            .await
            .unwrap();
        cache.wrote(rev);
        // Configurations by name, webhooks in order.
        assert_eq!(
            names(&cache.hooks(&store).await.unwrap()),
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
        assert!(cache.hooks(&store).await.unwrap().is_empty());
        for _ in 0..200 {
            if cache.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(cache.is_empty());
    }
}

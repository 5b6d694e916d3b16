//! A shared informer in client-go's sense, on kube-rs's watcher: a cache (reflector store)
//! kept in sync with the API server, plus a callback per change that sees the previous
//! state too (so a controller can react to e.g. a pod's labels moving it between
//! services). A relist after a watch outage synthesises deletes for objects that vanished
//! meanwhile, as client-go's DeltaFIFO `Replace` does.

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, Store, store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

/// One change seen by an informer.
pub enum InformerEvent<K> {
    /// Added (`old` is `None`) or modified.
    Apply { old: Option<Arc<K>>, new: Arc<K> },
    /// Deleted (last known state).
    Delete(Arc<K>),
}

/// A running informer; the watch task stops when this and every clone are dropped.
pub struct Informer<K: Resource + 'static>
where
    K::DynamicType: Hash + Eq + Clone,
{
    store: Store<K>,
    task: Arc<AbortOnDrop>,
}

impl<K: Resource + 'static> Clone for Informer<K>
where
    K::DynamicType: Hash + Eq + Clone,
{
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            task: self.task.clone(),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Watch `api` (retrying with backoff forever) and call `on_event` after each change is
    /// in the cache.
    pub fn spawn<F>(api: Api<K>, config: watcher::Config, on_event: F) -> Self
    where
        F: Fn(InformerEvent<K>) + Send + Sync + 'static,
    {
        let (reader, mut writer) = store::<K>();
        let reader2 = reader.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher::watcher(api, config).default_backoff().boxed();
            let mut buffered: Vec<K> = Vec::new();
            while let Some(item) = stream.next().await {
                let ev = match item {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::debug!(kind = %K::kind(&()), "watch error: {e}");
                        continue;
                    }
                };
                match &ev {
                    Event::Apply(obj) => {
                        let old = reader2.get(&ObjectRef::from_obj(obj));
                        writer.apply_watcher_event(&ev);
                        on_event(InformerEvent::Apply {
                            old,
                            new: Arc::new(obj.clone()),
                        });
                    }
                    Event::Delete(obj) => {
                        let old = reader2.get(&ObjectRef::from_obj(obj));
                        writer.apply_watcher_event(&ev);
                        on_event(InformerEvent::Delete(
                            old.unwrap_or_else(|| Arc::new(obj.clone())),
                        ));
                    }
                    Event::Init => {
                        buffered.clear();
                        writer.apply_watcher_event(&ev);
                    }
                    Event::InitApply(obj) => {
                        buffered.push(obj.clone());
                        writer.apply_watcher_event(&ev);
                    }
                    Event::InitDone => {
                        let before = reader2.state();
                        writer.apply_watcher_event(&ev);
                        let seen: HashSet<ObjectRef<K>> =
                            buffered.iter().map(ObjectRef::from_obj).collect();
                        for gone in before
                            .iter()
                            .filter(|o| !seen.contains(&ObjectRef::from_obj(o.as_ref())))
                        {
                            on_event(InformerEvent::Delete(gone.clone()));
                        }
                        let before: std::collections::HashMap<ObjectRef<K>, Arc<K>> = before
                            .into_iter()
                            .map(|o| (ObjectRef::from_obj(o.as_ref()), o))
                            .collect();
                        for obj in buffered.drain(..) {
                            let old = before.get(&ObjectRef::from_obj(&obj)).cloned();
                            on_event(InformerEvent::Apply {
                                old,
                                new: Arc::new(obj),
                            });
                        }
                    }
                }
            }
        });
        Informer {
            store: reader,
            task: Arc::new(AbortOnDrop(task)),
        }
    }

    /// The cache.
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// Wait for the first complete list.
    pub async fn wait_synced(&self) {
        // Only fails if the writer is dropped, i.e. the task ended; nothing to wait for then.
        let _ = self.store.wait_until_ready().await;
    }

    /// A cached object by namespace and name.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let mut r = ObjectRef::<K>::new(name);
        if let Some(ns) = namespace {
            r = r.within(ns);
        }
        self.store.get(&r)
    }
}

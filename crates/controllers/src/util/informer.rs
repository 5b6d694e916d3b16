//! A shared informer in client-go's sense, on kube-rs's watcher: one watch and one cache
//! (reflector store) per resource, kept in sync with the API server, and any number of
//! event handlers that see the previous state too (so a controller can react to e.g. a
//! pod's labels moving it between services). A relist after a watch outage synthesises
//! deletes for objects that vanished meanwhile, as client-go's DeltaFIFO `Replace` does.
//!
//! Cached objects have `metadata.managedFields` removed before they enter the cache (as
//! upstream controller managers' informer transform does): no controller reads them and
//! they are often the largest part of an object. [`crate::util::SharedInformers`] hands
//! out one informer per kind to every controller.

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, Store, store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::watch;

use super::AbortOnDrop;

/// One change seen by an informer.
pub enum InformerEvent<K> {
    /// Added (`old` is `None`) or modified.
    Apply { old: Option<Arc<K>>, new: Arc<K> },
    /// Deleted (last known state).
    Delete(Arc<K>),
}

impl<K> Clone for InformerEvent<K> {
    fn clone(&self) -> Self {
        match self {
            InformerEvent::Apply { old, new } => InformerEvent::Apply {
                old: old.clone(),
                new: new.clone(),
            },
            InformerEvent::Delete(o) => InformerEvent::Delete(o.clone()),
        }
    }
}

/// Drop the fields no controller reads from an object about to be cached.
pub fn strip_managed_fields<K: Resource>(obj: &mut K) {
    // `None`, not an empty list: written back, an empty list would reset the tracking.
    obj.meta_mut().managed_fields = None;
}

type Handler<K> = Arc<dyn Fn(InformerEvent<K>) + Send + Sync>;

struct Handlers<K> {
    next_id: u64,
    list: Vec<(u64, Handler<K>)>,
}

impl<K> Handlers<K> {
    /// Deliver one change to every handler.
    fn deliver(&self, ev: InformerEvent<K>) {
        if let Some(((_, last), rest)) = self.list.split_last() {
            for (_, h) in rest {
                h(ev.clone());
            }
            last(ev);
        }
    }
}

/// What the watch task and every informer handle share.
struct Shared<K: Resource + 'static>
where
    K::DynamicType: Hash + Eq + Clone,
{
    store: Store<K>,
    /// Held for the whole delivery of one change (cache update included) and while a new
    /// handler is replayed the cache, so a handler sees every change exactly once: either
    /// in the replay or live.
    handlers: Mutex<Handlers<K>>,
    /// Set once the first list is in the cache. Not the store's own readiness signal: that
    /// one wakes only the latest of several concurrent waiters, and shared informers have
    /// one waiter per controller.
    synced: watch::Sender<bool>,
}

impl<K: Resource + 'static> Shared<K>
where
    K::DynamicType: Hash + Eq + Clone,
{
    fn handlers(&self) -> MutexGuard<'_, Handlers<K>> {
        self.handlers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running informer; the watch task stops when this and every clone are dropped.
pub struct Informer<K: Resource + 'static>
where
    K::DynamicType: Hash + Eq + Clone,
{
    shared: Arc<Shared<K>>,
    task: Arc<AbortOnDrop>,
}

impl<K: Resource + 'static> Clone for Informer<K>
where
    K::DynamicType: Hash + Eq + Clone,
{
    fn clone(&self) -> Self {
        Informer {
            shared: self.shared.clone(),
            task: self.task.clone(),
        }
    }
}

/// An event handler's registration: dropping it removes the handler (client-go's
/// `RemoveEventHandler`), so a stopped controller stops receiving events and releases
/// whatever its handler holds.
#[must_use = "dropping the registration removes the handler"]
pub struct Registration(Option<Box<dyn FnOnce() + Send + Sync>>);

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(remove) = self.0.take() {
            remove();
        }
    }
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Watch `api` (retrying with backoff forever), caching objects without their
    /// `managedFields`. Events go to the handlers added with [`Informer::add_handler`].
    pub fn new(api: Api<K>, config: watcher::Config) -> Self {
        let (shared, pump) = parts();
        let task = tokio::spawn(pump.run(api, config));
        Informer {
            shared,
            task: Arc::new(AbortOnDrop(task.abort_handle())),
        }
    }

    /// Call `on_event` after each change is in the cache, until the returned registration
    /// is dropped. Objects already cached are first replayed to it as additions (`Apply`
    /// with no `old`), as client-go's `AddEventHandler` does. `on_event` runs on the watch
    /// task: it must not block, nor add or remove handlers of this informer.
    pub fn add_handler<F>(&self, on_event: F) -> Registration
    where
        F: Fn(InformerEvent<K>) + Send + Sync + 'static,
    {
        let mut handlers = self.shared.handlers();
        for obj in self.shared.store.state() {
            on_event(InformerEvent::Apply {
                old: None,
                new: obj,
            });
        }
        let id = handlers.next_id;
        handlers.next_id += 1;
        handlers.list.push((id, Arc::new(on_event)));
        let weak: Weak<Shared<K>> = Arc::downgrade(&self.shared);
        Registration(Some(Box::new(move || {
            if let Some(shared) = weak.upgrade() {
                shared.handlers().list.retain(|(i, _)| *i != id);
            }
        })))
    }

    /// Number of registered handlers.
    pub fn handler_count(&self) -> usize {
        self.shared.handlers().list.len()
    }

    /// The cache.
    pub fn store(&self) -> &Store<K> {
        &self.shared.store
    }

    /// Wait for the first complete list.
    pub async fn wait_synced(&self) {
        let mut synced = self.shared.synced.subscribe();
        // Only fails if the sender is gone, which it is not while `self` holds it.
        let _ = synced.wait_for(|s| *s).await;
    }

    /// Whether the first complete list is in the cache.
    pub fn has_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Whether `other` is a handle on the same informer (same watch, same cache).
    pub fn same_as(&self, other: &Informer<K>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// A cached object by namespace and name.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<K>> {
        let mut r = ObjectRef::<K>::new(name);
        if let Some(ns) = namespace {
            r = r.within(ns);
        }
        self.shared.store.get(&r)
    }
}

/// A new cache with its handler list, and the pump that feeds it.
fn parts<K>() -> (Arc<Shared<K>>, Pump<K>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = store::<K>();
    let shared = Arc::new(Shared {
        store: reader,
        handlers: Mutex::new(Handlers {
            next_id: 0,
            list: Vec::new(),
        }),
        synced: watch::channel(false).0,
    });
    let pump = Pump {
        writer,
        shared: shared.clone(),
        listed: Vec::new(),
    };
    (shared, pump)
}

/// The watch task's state: applies each event to the cache, then tells the handlers.
struct Pump<K: Resource + Clone + 'static>
where
    K::DynamicType: Hash + Eq + Clone,
{
    writer: store::Writer<K>,
    shared: Arc<Shared<K>>,
    /// Keys of the objects of the list in progress, in list order.
    listed: Vec<ObjectRef<K>>,
}

impl<K> Pump<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Watch `api` (retrying with backoff forever) and handle every event.
    async fn run(mut self, api: Api<K>, config: watcher::Config) {
        let mut stream = watcher::watcher(api, config)
            .modify(strip_managed_fields)
            .default_backoff()
            .boxed();
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => self.handle(ev),
                Err(e) => tracing::debug!(kind = %K::kind(&()), "watch error: {e}"),
            }
        }
    }

    fn handle(&mut self, ev: Event<K>) {
        let store = &self.shared.store;
        let handlers = self.shared.handlers();
        match ev {
            Event::Apply(obj) => {
                let key = ObjectRef::from_obj(&obj);
                let old = store.get(&key);
                let ev = Event::Apply(obj);
                self.writer.apply_watcher_event(&ev);
                // The cached Arc itself, so handlers share the cache's copy.
                let new = match (store.get(&key), ev) {
                    (Some(new), _) => new,
                    (None, Event::Apply(obj)) => Arc::new(obj),
                    (None, _) => return,
                };
                handlers.deliver(InformerEvent::Apply { old, new });
            }
            Event::Delete(obj) => {
                let old = store.get(&ObjectRef::from_obj(&obj));
                let ev = Event::Delete(obj);
                self.writer.apply_watcher_event(&ev);
                let gone = match (old, ev) {
                    (Some(old), _) => old,
                    (None, Event::Delete(obj)) => Arc::new(obj),
                    (None, _) => return,
                };
                handlers.deliver(InformerEvent::Delete(gone));
            }
            Event::Init => {
                self.listed.clear();
                self.writer.apply_watcher_event(&Event::Init);
            }
            Event::InitApply(obj) => {
                self.listed.push(ObjectRef::from_obj(&obj));
                self.writer.apply_watcher_event(&Event::InitApply(obj));
            }
            Event::InitDone => {
                let before: HashMap<ObjectRef<K>, Arc<K>> = store
                    .state()
                    .into_iter()
                    .map(|o| (ObjectRef::from_obj(o.as_ref()), o))
                    .collect();
                self.writer.apply_watcher_event(&Event::InitDone);
                self.shared.synced.send_replace(true);
                // Objects that vanished while the watch was down (client-go's `Replace`).
                for (key, gone) in &before {
                    if store.get(key).is_none() {
                        handlers.deliver(InformerEvent::Delete(gone.clone()));
                    }
                }
                for key in std::mem::take(&mut self.listed) {
                    if let Some(new) = store.get(&key) {
                        let old = before.get(&key).cloned();
                        handlers.deliver(InformerEvent::Apply { old, new });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "informer_tests.rs"]
mod tests;

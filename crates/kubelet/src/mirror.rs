//! Watch-fed caches for the node's network services (service proxy, DNS, Ingress): a
//! reflector store of one kind that pokes a `Notify` after every change, so the owner
//! rebuilds its rules or tables from the stores (debounced) instead of per event.

use futures::{Future, StreamExt};
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use std::sync::Arc;
use tokio::sync::Notify;

/// A kind a reflector can mirror (what kube-rs's `watcher` and `Store` ask of it).
pub trait Mirrored:
    kube::Resource<DynamicType = ()>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Mirrored for K where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// The store of `api`'s objects (those `config` selects) and the future that keeps it
/// current; the caller runs the future (and so decides when it stops).
pub fn mirror<K: Mirrored>(
    api: Api<K>,
    config: watcher::Config,
    changed: Arc<Notify>,
) -> (Store<K>, impl Future<Output = ()> + Send + 'static) {
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().reflect(writer);
    let feed = async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {
            changed.notify_one();
        }
    };
    (reader, feed)
}

/// [`mirror`] of every object, fed by a task of its own for the life of the process.
pub fn spawned<K: Mirrored>(api: Api<K>, changed: Arc<Notify>) -> Store<K> {
    let (store, feed) = mirror(api, watcher::Config::default(), changed);
    tokio::spawn(feed);
    store
}

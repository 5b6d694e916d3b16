//! Glue between the shared [`crate::util::Informer`] and add/update/delete handlers.
//!
//! Events travel through a channel: the informer's callback then holds no reference to
//! the controller that owns the informer's cache, so dropping a controller's `run` future
//! drops the informers and stops their watch tasks (no reference cycle).

use crate::util::{Informer, InformerEvent};
use kube::runtime::watcher;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Callbacks for cache changes (called after the cache reflects the change).
pub trait Handler<K>: Send + Sync {
    fn on_add(&self, obj: &Arc<K>);
    fn on_update(&self, old: &Arc<K>, new: &Arc<K>);
    fn on_delete(&self, obj: &Arc<K>);
}

/// Start watching `api`; events are delivered by [`dispatch`] on the returned receiver.
pub fn start<K>(api: Api<K>) -> (Informer<K>, mpsc::UnboundedReceiver<InformerEvent<K>>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let informer = Informer::spawn(api, watcher::Config::default(), move |ev| {
        // The receiver only goes away when the controller stops.
        let _ = tx.send(ev);
    });
    (informer, rx)
}

/// Feed events to `handler` until the informer stops.
pub async fn dispatch<K, H: Handler<K>>(
    mut rx: mpsc::UnboundedReceiver<InformerEvent<K>>,
    handler: Arc<H>,
) {
    while let Some(ev) = rx.recv().await {
        match ev {
            InformerEvent::Apply { old: None, new } => handler.on_add(&new),
            InformerEvent::Apply {
                old: Some(old),
                new,
            } => handler.on_update(&old, &new),
            InformerEvent::Delete(obj) => handler.on_delete(&obj),
        }
    }
}

//! Glue between a shared [`crate::util::Informer`] and add/update/delete handlers.
//!
//! Events travel through a channel: the informer's handler then holds no reference to
//! the controller, so dropping a controller's `run` future drops the registration (the
//! informer stops calling it) and the controller with it (no reference cycle).

use crate::util::{Informer, InformerEvent, Registration};
use kube::Resource;
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

/// Receive `informer`'s events (cached objects first, then changes) until the returned
/// registration is dropped; [`dispatch`] delivers them.
pub fn start<K>(informer: &Informer<K>) -> (Registration, mpsc::UnboundedReceiver<InformerEvent<K>>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let registration = informer.add_handler(move |ev| {
        // The receiver only goes away when the controller stops.
        let _ = tx.send(ev);
    });
    (registration, rx)
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

//! What every controller gets: an API client, the shared informers and an event recorder
//! factory.

use crate::events::{Broadcaster, Recorder};
use crate::util::SharedInformers;
use std::sync::Arc;

/// Shared controller context; cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    /// Event correlator/writer shared by all recorders (so identical events from any
    /// controller fold together).
    pub events: Arc<Broadcaster>,
    /// One informer (watch + cache) per kind for all controllers of this context.
    pub informers: Arc<SharedInformers>,
}

impl Context {
    /// A context over `client`.
    pub fn new(client: kube::Client) -> Self {
        let events = Broadcaster::new(client.clone());
        let informers = Arc::new(SharedInformers::new(client.clone()));
        Context {
            client,
            events,
            informers,
        }
    }

    /// An event recorder attributing events to `component` (e.g. `replicaset-controller`).
    pub fn recorder(&self, component: &str) -> Recorder {
        self.events.recorder(component)
    }
}

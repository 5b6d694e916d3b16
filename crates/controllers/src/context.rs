//! What every controller gets: an API client and an event recorder factory.

use crate::events::{Broadcaster, Recorder};
use std::sync::Arc;

/// Shared controller context; cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    /// Event correlator/writer shared by all recorders (so identical events from any
    /// controller fold together).
    pub events: Arc<Broadcaster>,
}

impl Context {
    /// A context over `client`.
    pub fn new(client: kube::Client) -> Self {
        let events = Broadcaster::new(client.clone());
        Context { client, events }
    }

    /// An event recorder attributing events to `component` (e.g. `replicaset-controller`).
    pub fn recorder(&self, component: &str) -> Recorder {
        self.events.recorder(component)
    }
}

//! A core/v1 Event recorder for controllers, behaving like upstream client-go's recorder:
//! publishing never blocks the caller (events are written by a background task), and a
//! correlator folds repeats so a hot loop cannot flood the API server:
//!
//! - *dedup*: an event identical to a recent one (same object, type, reason, message,
//!   source) bumps that Event's `count` and `lastTimestamp` instead of creating a new one;
//! - *aggregation*: once more than [`AGGREGATE_MAX_EVENTS`] events for one object/reason
//!   differ only in message within [`AGGREGATE_INTERVAL`], further ones are folded into a
//!   single "(combined from similar events): MESSAGE" Event.
//!
//! Usage: `ctx.recorder("replicaset-controller").publish(&obj_ref, EventType::Normal,
//! "SuccessfulCreate", "Created pod: x")`.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How many distinct messages for one object/reason before aggregation kicks in (upstream's
/// `defaultAggregateMaxEvents`).
pub const AGGREGATE_MAX_EVENTS: usize = 10;
/// The window for aggregation (upstream's `defaultAggregateIntervalInSeconds`).
pub const AGGREGATE_INTERVAL: Duration = Duration::from_secs(600);
/// How many recent events the dedup cache remembers (upstream's `maxLruCacheEntries`).
const CACHE_ENTRIES: usize = 4096;
/// Events queued for writing before new ones are dropped (never block the controller).
const QUEUE_DEPTH: usize = 1000;
/// Write attempts per event (upstream's `maxTriesPerEvent`).
const MAX_TRIES: usize = 12;

/// Event type: `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    /// The API string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// Why an event could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("event API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// Records events on behalf of one component (e.g. `replicaset-controller`). Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    component: String,
    host: Option<String>,
    broadcaster: Arc<Broadcaster>,
}

impl Recorder {
    /// Publish an event about `obj` (fire-and-forget: written in the background, folded with
    /// recent identical/similar events).
    pub fn publish(&self, obj: &ObjectReference, type_: EventType, reason: &str, message: &str) {
        let ev = self.make_event(obj, type_, reason, message);
        self.broadcaster.enqueue(ev);
    }

    /// [`Recorder::publish`] about a typed object (reference built with [`object_ref`]).
    pub fn publish_for<K>(&self, obj: &K, type_: EventType, reason: &str, message: &str)
    where
        K: kube::Resource<DynamicType = ()>,
    {
        self.publish(&object_ref(obj), type_, reason, message);
    }

    /// Publish and wait until it is written (or fails); mostly for tests.
    pub async fn publish_now(
        &self,
        obj: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> Result<Event, EventError> {
        let ev = self.make_event(obj, type_, reason, message);
        self.broadcaster.write(ev).await
    }

    /// The component name events are attributed to.
    pub fn component(&self) -> &str {
        &self.component
    }

    fn make_event(
        &self,
        obj: &ObjectReference,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> Event {
        let now = k8s_openapi::jiff::Timestamp::now();
        let ns = obj
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string());
        let obj_name = obj.name.clone().unwrap_or_default();
        // Upstream names events `<object>.<unix nanos in hex>`.
        let nanos = now.as_nanosecond();
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{obj_name}.{nanos:x}")),
                namespace: Some(ns),
                ..Default::default()
            },
            involved_object: obj.clone(),
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(type_.as_str().to_string()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: self.host.clone(),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            event_time: None::<MicroTime>,
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.host.clone().unwrap_or_else(|| self.component.clone())),
            ..Default::default()
        }
    }
}

/// Shared by all recorders of one controller manager: the correlator cache and the
/// background writer.
pub struct Broadcaster {
    client: kube::Client,
    cache: Mutex<Correlator>,
    tx: mpsc::Sender<Event>,
    rx: Mutex<Option<mpsc::Receiver<Event>>>,
}

impl Broadcaster {
    /// A broadcaster writing with `client`. The writer task starts on first publish (so this
    /// can be built outside a runtime).
    pub fn new(client: kube::Client) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        Arc::new(Broadcaster {
            client,
            cache: Mutex::new(Correlator::default()),
            tx,
            rx: Mutex::new(Some(rx)),
        })
    }

    /// A recorder for `component`.
    pub fn recorder(self: &Arc<Self>, component: &str) -> Recorder {
        Recorder {
            component: component.to_string(),
            host: None,
            broadcaster: self.clone(),
        }
    }

    fn enqueue(self: &Arc<Self>, ev: Event) {
        self.ensure_writer();
        if self.tx.try_send(ev).is_err() {
            tracing::warn!("event queue full or closed; dropping event");
        }
    }

    fn ensure_writer(self: &Arc<Self>) {
        let rx = match self.rx.lock() {
            Ok(mut g) => g.take(),
            Err(_) => None,
        };
        let Some(mut rx) = rx else { return };
        // Hold only a weak reference so dropping every recorder ends the writer.
        let weak = Arc::downgrade(self);
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                let Some(this) = weak.upgrade() else { break };
                this.write_with_retries(ev).await;
            }
        });
    }

    async fn write_with_retries(&self, ev: Event) {
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=MAX_TRIES {
            match self.write(ev.clone()).await {
                Ok(_) => return,
                Err(EventError::Api(kube::Error::Api(s)))
                    if s.code == 404 || s.code == 403 || s.code == 422 =>
                {
                    // Namespace gone/terminating or invalid: retrying will not help.
                    tracing::debug!(reason = ?ev.reason, "event dropped: {}", s.message);
                    return;
                }
                Err(e) => {
                    tracing::debug!(attempt, "writing event failed: {e}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Correlate `ev` with recent events and write it (create, or patch the count of the
    /// existing one).
    async fn write(&self, ev: Event) -> Result<Event, EventError> {
        let decision = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(ev, Instant::now());
        let ns = decision
            .event
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let written = match &decision.existing_name {
            Some(name) => {
                let patch = serde_json::json!({
                    "count": decision.event.count,
                    "lastTimestamp": decision.event.last_timestamp,
                    "message": decision.event.message,
                });
                match api
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(e) => e,
                    // The old Event expired or was deleted: start a fresh one.
                    Err(kube::Error::Api(s)) if s.code == 404 => {
                        let mut fresh = decision.event.clone();
                        fresh.metadata.resource_version = None;
                        fresh.count = Some(1);
                        fresh.first_timestamp = fresh.last_timestamp.clone();
                        api.create(&PostParams::default(), &fresh).await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            None => api.create(&PostParams::default(), &decision.event).await?,
        };
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record_written(&decision.key, &written);
        Ok(written)
    }
}

/// What the correlator decided for one event.
struct Decision {
    /// The event to write (count/timestamps already folded).
    event: Event,
    /// Name of an existing Event to patch instead of creating one.
    existing_name: Option<String>,
    key: String,
}

/// A recent event in the dedup cache.
struct Seen {
    name: String,
    count: i32,
    first_timestamp: Option<Time>,
}

/// Recent aggregation state for one object/reason.
struct Similar {
    messages: VecDeque<(String, Instant)>,
}

/// Upstream's EventCorrelator, simplified: a bounded dedup cache keyed by the full event
/// identity and an aggregation cache keyed by everything but the message.
#[derive(Default)]
struct Correlator {
    seen: HashMap<String, Seen>,
    order: VecDeque<String>,
    similar: HashMap<String, Similar>,
}

fn obj_key(ev: &Event) -> String {
    let o = &ev.involved_object;
    let src = ev.source.as_ref();
    format!(
        "{}\u{1}{}\u{1}{}\u{1}{}\u{1}{}\u{1}{}\u{1}{}\u{1}{}\u{1}{}\u{1}{}",
        src.and_then(|s| s.component.as_deref()).unwrap_or(""),
        src.and_then(|s| s.host.as_deref()).unwrap_or(""),
        o.kind.as_deref().unwrap_or(""),
        o.namespace.as_deref().unwrap_or(""),
        o.name.as_deref().unwrap_or(""),
        o.uid.as_deref().unwrap_or(""),
        o.api_version.as_deref().unwrap_or(""),
        o.field_path.as_deref().unwrap_or(""),
        ev.type_.as_deref().unwrap_or(""),
        ev.reason.as_deref().unwrap_or(""),
    )
}

impl Correlator {
    fn observe(&mut self, mut ev: Event, now: Instant) -> Decision {
        let base = obj_key(&ev);
        let message = ev.message.clone().unwrap_or_default();
        // Aggregation: count distinct messages for this object/reason in the window.
        let sim = self.similar.entry(base.clone()).or_insert(Similar {
            messages: VecDeque::new(),
        });
        while sim
            .messages
            .front()
            .is_some_and(|(_, t)| now.duration_since(*t) > AGGREGATE_INTERVAL)
        {
            sim.messages.pop_front();
        }
        if !sim.messages.iter().any(|(m, _)| *m == message) {
            sim.messages.push_back((message.clone(), now));
        }
        let key = if sim.messages.len() > AGGREGATE_MAX_EVENTS {
            ev.message = Some(format!("(combined from similar events): {message}"));
            format!("{base}\u{1}*aggregate*")
        } else {
            format!("{base}\u{1}{message}")
        };
        // Dedup: fold into the previously written Event with the same identity. (The writer
        // task handles events one at a time, so observe/write/record do not interleave.)
        let existing_name = match self.seen.get(&key) {
            Some(seen) => {
                ev.count = Some(seen.count + 1);
                if seen.first_timestamp.is_some() {
                    ev.first_timestamp = seen.first_timestamp.clone();
                }
                ev.metadata.name = Some(seen.name.clone());
                Some(seen.name.clone())
            }
            None => None,
        };
        Decision {
            event: ev,
            existing_name,
            key,
        }
    }

    fn record_written(&mut self, key: &str, written: &Event) {
        let Some(name) = written.metadata.name.clone() else {
            return;
        };
        self.remember(
            key,
            Seen {
                name,
                count: written.count.unwrap_or(1),
                first_timestamp: written.first_timestamp.clone(),
            },
        );
    }

    fn remember(&mut self, key: &str, seen: Seen) {
        if self.seen.insert(key.to_string(), seen).is_none() {
            self.order.push_back(key.to_string());
            while self.order.len() > CACHE_ENTRIES {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
        if self.similar.len() > CACHE_ENTRIES {
            // Bound the aggregation cache too; losing it only delays aggregation.
            self.similar.clear();
        }
    }
}

/// An `ObjectReference` to a Kubernetes object, for [`Recorder::publish`].
pub fn object_ref<K>(obj: &K) -> ObjectReference
where
    K: kube::Resource<DynamicType = ()>,
{
    let meta = obj.meta();
    ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(msg: &str) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some(format!("x.{msg}")),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("x".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            reason: Some("Reason".into()),
            message: Some(msg.into()),
            type_: Some("Normal".into()),
            count: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn identical_events_fold_into_one() {
        let mut c = Correlator::default();
        let now = Instant::now();
        let d1 = c.observe(ev("a"), now);
        assert!(d1.existing_name.is_none());
        let mut written = d1.event.clone();
        written.metadata.name = Some("x.1".into());
        c.record_written(&d1.key, &written);
        let d2 = c.observe(ev("a"), now);
        assert_eq!(d2.existing_name.as_deref(), Some("x.1"));
        assert_eq!(d2.event.count, Some(2));
        let d3 = c.observe(ev("b"), now);
        assert!(d3.existing_name.is_none());
        assert_eq!(d3.event.count, Some(1));
    }

    #[test]
    fn many_similar_events_aggregate() {
        let mut c = Correlator::default();
        let now = Instant::now();
        for i in 0..AGGREGATE_MAX_EVENTS {
            let d = c.observe(ev(&format!("m{i}")), now);
            assert!(!d.key.ends_with("*aggregate*"));
        }
        let d = c.observe(ev("m-last"), now);
        assert!(d.key.ends_with("*aggregate*"));
        assert_eq!(
            d.event.message.as_deref(),
            Some("(combined from similar events): m-last")
        );
        c.record_written(&d.key, &d.event);
        let d2 = c.observe(ev("m-again"), now);
        assert_eq!(d2.event.count, Some(2));
        // The window expires.
        let later = now + AGGREGATE_INTERVAL + Duration::from_secs(1);
        let d3 = c.observe(ev("fresh"), later);
        assert!(!d3.key.ends_with("*aggregate*"));
    }
}

//! core/v1 Events from the kubelet (source `kubelet`, host = node name), like upstream's
//! recorder: publishing never blocks a pod worker (one background writer keeps the order),
//! and a repeat of a recent event (same object, field path, type, reason and message)
//! bumps that Event's `count` and `lastTimestamp` instead of creating another one.

use super::container::Kind;
use k8s_openapi::api::core::v1::{Container, Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tracing::debug;

/// Events waiting to be written before new ones are dropped.
const QUEUE_DEPTH: usize = 1000;
/// Remembered events for folding repeats (upstream keeps an LRU of 4096).
const CACHE_ENTRIES: usize = 4096;

pub const NORMAL: &str = "Normal";
pub const WARNING: &str = "Warning";

/// Event reasons, as upstream's kubelet spells them (pkg/kubelet/events).
pub mod reason {
    pub const PULLING: &str = "Pulling";
    pub const PULLED: &str = "Pulled";
    /// Image pull, container config, create or start failed.
    pub const FAILED: &str = "Failed";
    /// Image pull back-off and crash-loop back-off.
    pub const BACK_OFF: &str = "BackOff";
    pub const NEVER_PULL: &str = "ErrImageNeverPull";
    pub const FAILED_PULL_SECRET: &str = "FailedToRetrieveImagePullSecret";
    pub const CREATED: &str = "Created";
    pub const STARTED: &str = "Started";
    pub const KILLING: &str = "Killing";
    pub const UNHEALTHY: &str = "Unhealthy";
    pub const FAILED_MOUNT: &str = "FailedMount";
    pub const SANDBOX_CHANGED: &str = "SandboxChanged";
    pub const FAILED_CREATE_SANDBOX: &str = "FailedCreatePodSandBox";
    pub const FAILED_KILL_POD: &str = "FailedKillPod";
    pub const FAILED_POST_START_HOOK: &str = "FailedPostStartHook";
    pub const FAILED_PRE_STOP_HOOK: &str = "FailedPreStopHook";
}

/// The reference for events about the pod itself (no field path).
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path: None,
    }
}

/// The reference upstream's kubelet uses for a container's events: the pod, with the
/// container as field path.
pub fn container_ref(pod: &Pod, c: &Container, kind: Kind) -> ObjectReference {
    ObjectReference {
        field_path: Some(format!("{}{{{}}}", kind.spec_field(), c.name)),
        ..pod_ref(pod)
    }
}

/// A pod as upstream's kubelet names it in messages: `name_namespace(uid)`.
pub fn pod_desc(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    )
}

type Key = (String, String, String, String, String);

fn key_of(ev: &Event) -> Key {
    let o = &ev.involved_object;
    (
        o.uid.clone().unwrap_or_default(),
        o.field_path.clone().unwrap_or_default(),
        ev.type_.clone().unwrap_or_default(),
        ev.reason.clone().unwrap_or_default(),
        ev.message.clone().unwrap_or_default(),
    )
}

/// Writes events for one node. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    host: String,
    tx: mpsc::Sender<Event>,
}

impl Recorder {
    /// A recorder and the writer future to spawn next to the pod workers.
    pub fn new(
        client: kube::Client,
        node: &str,
    ) -> (
        Recorder,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let rec = Recorder {
            host: node.to_string(),
            tx,
        };
        (rec, writer(client, rx))
    }

    /// Queues an event about `obj`.
    pub fn event(&self, obj: &ObjectReference, type_: &str, reason: &str, message: &str) {
        let now = k8s_openapi::jiff::Timestamp::now();
        let name = obj.name.clone().unwrap_or_default();
        let ev = Event {
            metadata: ObjectMeta {
                // Upstream names events `<object>.<unix nanos in hex>`.
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(obj.namespace.clone().unwrap_or_else(|| "default".into())),
                ..Default::default()
            },
            involved_object: obj.clone(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.host.clone()),
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            reporting_component: Some("kubelet".into()),
            reporting_instance: Some(self.host.clone()),
            ..Default::default()
        };
        if self.tx.try_send(ev).is_err() {
            debug!("event queue full or closed; dropping event");
        }
    }
}

/// What was written for a key: (namespace, event name, count).
type Seen = HashMap<Key, (String, String, i32)>;

async fn writer(client: kube::Client, mut rx: mpsc::Receiver<Event>) {
    let seen: Arc<Mutex<Seen>> = Arc::default();
    while let Some(ev) = rx.recv().await {
        let key = key_of(&ev);
        let prior = seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        let written = match prior {
            Some((ns, name, count)) => bump(&client, &ns, &name, count + 1, &ev)
                .await
                .map(|()| (ns, name, count + 1)),
            None => Err(()),
        };
        let written = match written {
            Ok(w) => Some(w),
            // New, or the earlier Event is gone (expired, deleted): create one.
            Err(()) => create(&client, &ev).await,
        };
        let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
        if s.len() >= CACHE_ENTRIES {
            s.clear();
        }
        match written {
            Some(w) => s.insert(key, w),
            None => s.remove(&key),
        };
    }
}

async fn bump(
    client: &kube::Client,
    ns: &str,
    name: &str,
    count: i32,
    ev: &Event,
) -> Result<(), ()> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let patch = serde_json::json!({"count": count, "lastTimestamp": ev.last_timestamp});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            debug!("updating event {ns}/{name}: {e}");
            Err(())
        }
    }
}

async fn create(client: &kube::Client, ev: &Event) -> Option<(String, String, i32)> {
    let ns = ev.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    match api.create(&PostParams::default(), ev).await {
        Ok(e) => Some((ns, e.metadata.name.unwrap_or_default(), 1)),
        Err(e) => {
            debug!("writing event: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_refs_name_the_field() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "7"},
            "spec": {"containers": [{"name": "c"}]}
        }))
        .unwrap();
        let c = pod.spec.as_ref().unwrap().containers[0].clone();
        let r = container_ref(&pod, &c, Kind::App);
        assert_eq!(r.field_path.as_deref(), Some("spec.containers{c}"));
        assert_eq!(r.kind.as_deref(), Some("Pod"));
        assert_eq!(r.uid.as_deref(), Some("u1"));
        assert_eq!(pod_ref(&pod).field_path, None);
        assert_eq!(pod_ref(&pod).resource_version.as_deref(), Some("7"));
        assert_eq!(pod_desc(&pod), "p_ns(u1)");
        assert_eq!(
            container_ref(&pod, &c, Kind::Init).field_path.as_deref(),
            Some("spec.initContainers{c}")
        );
        assert_eq!(
            container_ref(&pod, &c, Kind::Ephemeral)
                .field_path
                .as_deref(),
            Some("spec.ephemeralContainers{c}")
        );
    }

    #[test]
    fn repeats_share_a_key() {
        let obj = ObjectReference {
            uid: Some("u".into()),
            field_path: Some("spec.containers{c}".into()),
            ..Default::default()
        };
        let mk = |reason: &str| Event {
            involved_object: obj.clone(),
            type_: Some(NORMAL.into()),
            reason: Some(reason.into()),
            message: Some("m".into()),
            ..Default::default()
        };
        assert_eq!(key_of(&mk("BackOff")), key_of(&mk("BackOff")));
        assert_ne!(key_of(&mk("BackOff")), key_of(&mk("Pulling")));
    }
}

//! Event recording (`FailedScheduling`, `Scheduled`, `Preempted`) as core/v1 Events from
//! `default-scheduler`. Like client-go's recorder it never blocks the caller (records are
//! dropped when the writer falls behind) and aggregates repeats of the same event into one
//! object with a growing `count`.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// Buffered records before new ones are dropped.
const BUFFER: usize = 4096;
/// Concurrent event writes.
const WRITERS: usize = 4;
/// Aggregation memory; cleared when full.
const MAX_TRACKED: usize = 20_000;

/// One event about a pod.
#[derive(Debug, Clone)]
pub struct Record {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub warning: bool,
    pub reason: &'static str,
    pub action: &'static str,
    pub message: String,
}

/// Cheap handle to the event writer.
#[derive(Clone)]
pub struct Recorder {
    tx: Option<mpsc::Sender<Record>>,
    component: String,
}

impl Recorder {
    /// A recorder that drops everything (tests, or events disabled).
    pub fn disabled() -> Self {
        Recorder {
            tx: None,
            component: String::new(),
        }
    }

    pub fn record(&self, r: Record) {
        if let Some(tx) = &self.tx
            && tx.try_send(r).is_err()
        {
            tracing::debug!("event dropped: recorder busy");
        }
    }

    pub fn component(&self) -> &str {
        &self.component
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn new_event(component: &str, r: &Record, name: &str) -> serde_json::Value {
    let t = now();
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": r.namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": r.name, "namespace": r.namespace, "uid": r.uid},
        "reason": r.reason,
        "message": r.message,
        "type": if r.warning { "Warning" } else { "Normal" },
        "source": {"component": component},
        "firstTimestamp": t,
        "lastTimestamp": t,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": component,
        "action": r.action,
    })
}

/// Start the writer; it ends when every `Recorder` clone is dropped.
pub fn spawn(
    client: kube::Client,
    component: &str,
    set: &mut tokio::task::JoinSet<()>,
) -> Recorder {
    let (tx, rx) = mpsc::channel::<Record>(BUFFER);
    let comp = component.to_string();
    let records =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    // (pod uid, reason, message) → (event name, count)
    let mut seen: HashMap<(String, &'static str, String), (String, i32)> = HashMap::new();
    let writer = records
        .map(move |r| {
            let key = (r.uid.clone(), r.reason, r.message.clone());
            if seen.len() > MAX_TRACKED {
                seen.clear();
            }
            let entry = seen.entry(key).or_insert_with(|| {
                let name = format!(
                    "{}.{:x}",
                    r.name,
                    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
                );
                (name, 0)
            });
            entry.1 += 1;
            let (name, count) = entry.clone();
            let api: Api<Event> = Api::namespaced(client.clone(), &r.namespace);
            let body = new_event(&comp, &r, &name);
            async move {
                let res = if count == 1 {
                    match serde_json::from_value::<Event>(body) {
                        Ok(ev) => api.create(&PostParams::default(), &ev).await.map(|_| ()),
                        Err(e) => Err(kube::Error::SerdeError(e)),
                    }
                } else {
                    let patch = json!({"count": count, "lastTimestamp": now()});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| ())
                };
                if let Err(e) = res {
                    tracing::debug!(event = %name, error = %e, "writing event failed");
                }
            }
        })
        .buffer_unordered(WRITERS)
        .for_each(|_| async {});
    set.spawn(writer);
    Recorder {
        tx: Some(tx),
        component: component.to_string(),
    }
}

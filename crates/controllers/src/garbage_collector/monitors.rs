//! One metadata-only watch per deletable resource (re-discovered every 30 s so new
//! resources such as CRDs are picked up, as upstream), each feeding the graph. A relist
//! after a watch outage turns objects that vanished meanwhile into deletes. Only uids are
//! kept between events (the graph holds the rest); `managedFields` are dropped on arrival.

use super::Shared;
use super::graph::Change;
use crate::util::discovery::{Discovered, preferred_resources, supports_all};
use crate::util::informer::strip_managed_fields;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::discovery::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often to re-run discovery.
const RESYNC_DISCOVERY: Duration = Duration::from_secs(30);
/// How long to wait for the first full graph before workers start regardless.
const INITIAL_SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// Resources never watched (upstream's ignoredResources): events are numerous and never
/// owners.
fn ignored(ar: &ApiResource) -> bool {
    ar.plural == "events" && (ar.group.is_empty() || ar.group == "events.k8s.io")
}

fn key(ar: &ApiResource) -> String {
    format!("{}/{}", ar.api_version, ar.plural)
}

struct Monitor {
    task: JoinHandle<()>,
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keep monitors in line with discovery until the process ends.
pub async fn run(shared: Arc<Shared>) -> anyhow::Result<()> {
    let mut monitors: HashMap<String, Monitor> = HashMap::new();
    let mut first = true;
    loop {
        match preferred_resources(&shared.client).await {
            Ok(resources) => {
                sync_monitors(&shared, &mut monitors, &resources, first);
                first = false;
            }
            Err(e) => tracing::warn!("garbage collector discovery failed: {e}"),
        }
        if first {
            // Nothing started yet: retry discovery soon.
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        tokio::time::sleep(RESYNC_DISCOVERY).await;
    }
}

fn sync_monitors(
    shared: &Arc<Shared>,
    monitors: &mut HashMap<String, Monitor>,
    resources: &[Discovered],
    first: bool,
) {
    if let Ok(mut m) = shared.mapper.write() {
        m.set(resources);
    }
    let wanted: HashMap<String, &ApiResource> = resources
        .iter()
        .filter(|(ar, caps)| !ignored(ar) && supports_all(caps, &["delete", "list", "watch"]))
        .map(|(ar, _)| (key(ar), ar))
        .collect();
    monitors.retain(|k, _| wanted.contains_key(k));
    for (k, ar) in wanted {
        if monitors.contains_key(&k) {
            continue;
        }
        if first {
            shared.pending_monitors.fetch_add(1, Ordering::SeqCst);
        }
        let task = tokio::spawn(monitor(shared.clone(), ar.clone(), first));
        monitors.insert(k, Monitor { task });
    }
    if first {
        // Discovery finished: from now on only per-monitor syncs are outstanding.
        shared.discovered.store(true, Ordering::SeqCst);
    }
}

/// Wait (bounded) until the first discovery's monitors have all listed once.
pub async fn wait_initial_sync(shared: &Arc<Shared>) {
    let deadline = tokio::time::Instant::now() + INITIAL_SYNC_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if shared.discovered.load(Ordering::SeqCst)
            && shared.pending_monitors.load(Ordering::SeqCst) == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::warn!("garbage collector: initial sync incomplete, starting anyway");
}

fn upsert(shared: &Shared, ar: &ApiResource, meta: &ObjectMeta) {
    let work = shared.graph().process(Change::Upsert {
        api_version: &ar.api_version,
        kind: &ar.kind,
        meta,
    });
    shared.enqueue(work);
}

fn delete(shared: &Shared, meta: &ObjectMeta) {
    let work = shared.graph().process(Change::Delete { meta });
    shared.enqueue(work);
}

async fn monitor(shared: Arc<Shared>, ar: ApiResource, counted: bool) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(shared.client.clone(), &ar);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .modify(strip_managed_fields)
        .default_backoff()
        .boxed();
    // Uids of the objects in the graph from this watch.
    let mut known: HashSet<String> = HashSet::new();
    let mut listing: HashMap<String, ObjectMeta> = HashMap::new();
    let mut counted = counted;
    while let Some(item) = stream.next().await {
        let ev = match item {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(resource = %key(&ar), "garbage collector watch error: {e}");
                continue;
            }
        };
        match ev {
            Event::Apply(obj) => {
                if let Some(uid) = obj.metadata.uid.clone() {
                    upsert(&shared, &ar, &obj.metadata);
                    known.insert(uid);
                }
            }
            Event::Delete(obj) => {
                if let Some(uid) = &obj.metadata.uid {
                    known.remove(uid);
                }
                delete(&shared, &obj.metadata);
            }
            Event::Init => listing.clear(),
            Event::InitApply(obj) => {
                if let Some(uid) = obj.metadata.uid.clone() {
                    listing.insert(uid, obj.metadata);
                }
            }
            Event::InitDone => {
                for uid in known.drain() {
                    if !listing.contains_key(&uid) {
                        let gone = ObjectMeta {
                            uid: Some(uid),
                            ..ObjectMeta::default()
                        };
                        delete(&shared, &gone);
                    }
                }
                for (uid, meta) in std::mem::take(&mut listing) {
                    upsert(&shared, &ar, &meta);
                    known.insert(uid);
                }
                if counted {
                    counted = false;
                    shared.pending_monitors.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }
}

//! Pod sync: a watch on the pods bound to this node feeds one worker per pod UID; a
//! relister (upstream's PLEG) lists the runtime every second and wakes the workers whose
//! containers changed; sandboxes of pods that no longer exist are cleaned up at start
//! and periodically.

mod actions;
pub mod backoff;
pub mod container;
pub mod env;
pub mod events;
mod image;
pub mod keyring;
pub mod logrotate;
pub mod probe;
pub mod pull;
pub mod refs;
pub mod runtime;
pub mod sandbox;
mod sandbox_sync;
pub mod status;
pub mod volumes;
mod worker;

use crate::KubeletConfig;
use crate::cri::Cri;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::Store;
use kube::runtime::watcher::{self, Event};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

/// Shared by all pod workers.
pub struct PodContext {
    pub client: kube::Client,
    pub cfg: Arc<KubeletConfig>,
    pub cri: Cri,
    /// All Services (for the service-link environment variables).
    pub services: Store<Service>,
    /// Node allocatable CPU (milli) and memory (bytes): defaults for downward API limits.
    pub node_cpu_milli: i128,
    pub node_memory: i128,
}

/// Node-wide services of the workers that [`PodContext`] does not carry: the event
/// recorder and the image puller that merges concurrent pulls of one image.
#[derive(Clone)]
pub(crate) struct Services {
    pub(crate) events: events::Recorder,
    pub(crate) puller: pull::Puller,
}

struct WorkerEntry {
    tx: watch::Sender<Option<Arc<Pod>>>,
    wake: Arc<Notify>,
}

type Workers = Arc<Mutex<HashMap<String, WorkerEntry>>>;

fn uid_of(p: &Pod) -> Option<String> {
    p.metadata.uid.clone().filter(|u| !u.is_empty())
}

/// A reflector over all Services: its store, and the future that keeps it filled
/// (to be spawned with the agent's other tasks).
pub fn service_store(
    client: kube::Client,
) -> (
    Store<Service>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (reader, writer) = kube::runtime::reflector::store();
    let api: Api<Service> = Api::all(client);
    let stream =
        kube::runtime::reflector(writer, watcher::watcher(api, watcher::Config::default()))
            .default_backoff()
            .applied_objects();
    let fut = async move {
        futures::pin_mut!(stream);
        while let Some(r) = stream.next().await {
            if let Err(e) = r {
                warn!("service watch: {e}");
            }
        }
    };
    (reader, fut)
}

/// Runs pod sync until the pod watch ends (it retries errors itself).
pub async fn run(ctx: Arc<PodContext>) -> anyhow::Result<()> {
    let workers: Workers = Arc::new(Mutex::new(HashMap::new()));
    let synced = Arc::new(Notify::new());
    let relister = tokio::spawn(relist_loop(ctx.clone(), workers.clone(), synced.clone()));
    let _guard = AbortOnDrop(relister);
    let (recorder, event_writer) = events::Recorder::new(ctx.client.clone(), &ctx.cfg.node_name);
    let _events_guard = AbortOnDrop(tokio::spawn(event_writer));
    let _rotation_guard = AbortOnDrop(tokio::spawn(logrotate::run(ctx.cri.clone())));
    let services = Services {
        events: recorder,
        puller: pull::Puller::new(ctx.cri.clone()),
    };
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let wc = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.cfg.node_name));
    let stream = watcher::watcher(api, wc).default_backoff();
    futures::pin_mut!(stream);
    let mut listing: Option<HashSet<String>> = None;
    let mut first_sync = true;
    loop {
        let ev = match stream.try_next().await {
            Ok(Some(ev)) => ev,
            Ok(None) => return Ok(()),
            Err(e) => {
                warn!("pod watch: {e}");
                continue;
            }
        };
        match ev {
            Event::Init => listing = Some(HashSet::new()),
            Event::InitApply(p) => {
                if let (Some(l), Some(u)) = (listing.as_mut(), uid_of(&p)) {
                    l.insert(u);
                }
                upsert(&ctx, &services, &workers, p);
            }
            Event::Apply(p) => upsert(&ctx, &services, &workers, p),
            Event::Delete(p) => {
                if let Some(u) = uid_of(&p) {
                    gone(&workers, &u);
                }
            }
            Event::InitDone => {
                let seen = listing.take().unwrap_or_default();
                let stale: Vec<String> = lock(&workers)
                    .keys()
                    .filter(|u| !seen.contains(*u))
                    .cloned()
                    .collect();
                for u in stale {
                    gone(&workers, &u);
                }
                if first_sync {
                    first_sync = false;
                    cleanup_orphans(&ctx, &seen).await;
                    synced.notify_one();
                }
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock(w: &Workers) -> std::sync::MutexGuard<'_, HashMap<String, WorkerEntry>> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

fn upsert(ctx: &Arc<PodContext>, services: &Services, workers: &Workers, pod: Pod) {
    let Some(uid) = uid_of(&pod) else { return };
    let pod = Arc::new(pod);
    let mut map = lock(workers);
    if let Some(w) = map.get(&uid) {
        // A finished worker (it deleted the pod) has no receiver any more: ignore.
        let _ = w.tx.send(Some(pod));
        return;
    }
    let (tx, rx) = watch::channel(Some(pod));
    let wake = Arc::new(Notify::new());
    let w = worker::Worker::new(ctx.clone(), services.clone(), uid.clone(), wake.clone());
    tokio::spawn(w.run(rx));
    map.insert(uid, WorkerEntry { tx, wake });
}

fn gone(workers: &Workers, uid: &str) {
    if let Some(w) = lock(workers).remove(uid) {
        let _ = w.tx.send(None);
    }
}

/// Sandboxes (managed by r8s) whose pod UID is not in `known`.
async fn orphan_uids(ctx: &PodContext, known: &(dyn Fn(&str) -> bool + Sync)) -> HashSet<String> {
    let filter = crate::cri::api::PodSandboxFilter {
        label_selector: HashMap::from([(runtime::LABEL_MANAGED.to_string(), "true".to_string())]),
        ..Default::default()
    };
    match ctx.cri.list_pod_sandbox(Some(filter)).await {
        Ok(list) => list
            .into_iter()
            .filter_map(|s| s.labels.get(runtime::LABEL_POD_UID).cloned())
            .filter(|u| !known(u))
            .collect(),
        Err(e) => {
            warn!("listing sandboxes for cleanup: {e}");
            HashSet::new()
        }
    }
}

/// Removes pod `uid`'s directory under `data_dir` (unmounting its volumes) and its cgroups.
pub fn remove_pod_files(data_dir: &std::path::Path, uid: &str) {
    actions::remove_pod_files(&volumes::PodDirs::new(data_dir, uid).root, uid);
}

async fn cleanup_uid(ctx: &PodContext, uid: &str) {
    info!(%uid, "removing sandbox of a pod that no longer exists");
    actions::remove_pod_runtime(ctx, uid).await;
    actions::remove_pod_files(&volumes::PodDirs::new(&ctx.cfg.data_dir, uid).root, uid);
}

async fn cleanup_orphans(ctx: &PodContext, known: &HashSet<String>) {
    for uid in orphan_uids(ctx, &|u| known.contains(u)).await {
        cleanup_uid(ctx, &uid).await;
    }
}

/// The runtime's container and sandbox states, for change detection.
async fn snapshot(cri: &Cri) -> Option<HashMap<String, (i32, String)>> {
    let (ctrs, sbs) =
        tokio::try_join!(cri.list_containers(None), cri.list_pod_sandbox(None)).ok()?;
    let mut m = HashMap::new();
    for c in ctrs {
        let uid = c
            .labels
            .get(runtime::LABEL_POD_UID)
            .cloned()
            .unwrap_or_default();
        m.insert(c.id, (c.state, uid));
    }
    for s in sbs {
        let uid = s
            .labels
            .get(runtime::LABEL_POD_UID)
            .cloned()
            .unwrap_or_default();
        m.insert(s.id, (100 + s.state, uid));
    }
    Some(m)
}

/// Every second: wake workers whose containers changed state; every 30 s (after the first
/// full pod list): remove sandboxes of pods without a worker.
async fn relist_loop(ctx: Arc<PodContext>, workers: Workers, synced: Arc<Notify>) {
    let mut prev: HashMap<String, (i32, String)> = HashMap::new();
    let mut ticks: u64 = 0;
    let mut ready = false;
    let synced_fut = synced.notified();
    futures::pin_mut!(synced_fut);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = &mut synced_fut, if !ready => { ready = true; }
        }
        ticks += 1;
        let Some(cur) = snapshot(&ctx.cri).await else {
            continue;
        };
        let mut changed: HashSet<&str> = HashSet::new();
        for (id, (state, uid)) in &cur {
            if prev.get(id).map(|p| p.0) != Some(*state) {
                changed.insert(uid);
            }
        }
        for (id, (_, uid)) in &prev {
            if !cur.contains_key(id) {
                changed.insert(uid);
            }
        }
        {
            let map = lock(&workers);
            for uid in changed {
                if let Some(w) = map.get(uid) {
                    w.wake.notify_one();
                }
            }
        }
        if ready && ticks.is_multiple_of(30) {
            let known: HashSet<String> = lock(&workers).keys().cloned().collect();
            // Give brand-new workers a moment: only sandboxes seen in the previous round.
            let candidates = orphan_uids(&ctx, &|u| known.contains(u)).await;
            for uid in candidates {
                let seen_before = prev.values().any(|(_, u)| *u == uid);
                if seen_before && !lock(&workers).contains_key(&uid) {
                    cleanup_uid(&ctx, &uid).await;
                }
            }
        }
        prev = cur;
    }
}

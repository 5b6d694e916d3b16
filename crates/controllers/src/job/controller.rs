//! The Job controller's state, startup, workers and API helpers.

use super::backoff;
use super::expectations::{Expectations, FinalizerExpectations};
use super::handlers::{JobEvents, PodEvents};
use super::informer;
use super::queue::{RateLimit, WorkQueue};
use super::status::split_key;
use super::{Config, status};
use crate::Context;
use crate::events::Recorder;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Why a sync failed (the key is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("invalid work queue key {0:?}")]
    BadKey(String),
    #[error("{0}")]
    Sync(String),
}

/// A status we wrote that the cache may not show yet: while the cache still shows one of
/// the `stale` resource versions, syncs start from `job` (avoids conflicts on our own
/// writes).
struct Written {
    stale: HashSet<String>,
    job: Arc<Job>,
}

pub(super) struct Controller {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub cfg: Config,
    pub jobs: Store<Job>,
    pub pods: Store<Pod>,
    pub queue: WorkQueue<String>,
    /// Pods whose tracking finalizer must go although no Job sync will handle them.
    pub orphans: WorkQueue<String>,
    pub expectations: Expectations,
    pub finalizers: FinalizerExpectations,
    pub backoff: backoff::Store,
    written: Mutex<HashMap<String, Written>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) async fn run(ctx: Context, cfg: Config) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let job_informer = ctx.informers.get::<Job>();
    let pod_informer = ctx.informers.get::<Pod>();
    // The registrations live in this future: dropping it stops the events.
    let (_job_registration, job_events) = informer::start(&job_informer);
    let (_pod_registration, pod_events) = informer::start(&pod_informer);
    let limit = RateLimit {
        base: cfg.api_backoff.0,
        max: cfg.api_backoff.1,
    };
    let ctrl = Arc::new(Controller {
        client,
        recorder: ctx.recorder("job-controller"),
        jobs: job_informer.store().clone(),
        pods: pod_informer.store().clone(),
        queue: WorkQueue::new(limit),
        orphans: WorkQueue::new(limit),
        expectations: Expectations::default(),
        finalizers: FinalizerExpectations::default(),
        backoff: backoff::Store::default(),
        written: Mutex::new(HashMap::new()),
        cfg,
    });
    let mut set = tokio::task::JoinSet::new();
    set.spawn(informer::dispatch(
        job_events,
        Arc::new(JobEvents(ctrl.clone())),
    ));
    set.spawn(informer::dispatch(
        pod_events,
        Arc::new(PodEvents(ctrl.clone())),
    ));
    let q = ctrl.queue.clone();
    set.spawn(async move { q.run_timer().await });
    let q = ctrl.orphans.clone();
    set.spawn(async move { q.run_timer().await });
    job_informer.wait_synced().await;
    pod_informer.wait_synced().await;
    tracing::info!("job controller started");
    for _ in 0..ctrl.cfg.workers.max(1) {
        let c = ctrl.clone();
        set.spawn(async move { c.worker().await });
    }
    let c = ctrl.clone();
    set.spawn(async move { c.orphan_worker().await });
    // Every task runs forever; one ending means the controller cannot work.
    set.join_next().await;
    ctrl.queue.shut_down();
    ctrl.orphans.shut_down();
    anyhow::bail!("job controller task ended unexpectedly")
}

impl Controller {
    async fn worker(self: Arc<Self>) {
        while let Some(key) = self.queue.get().await {
            match self.sync_job(&key).await {
                Ok(()) => self.queue.forget(&key),
                Err(e) => {
                    tracing::warn!(job = %key, error = %e, "syncing job failed");
                    self.queue.add_rate_limited(key.clone());
                }
            }
            self.queue.done(&key);
        }
    }

    async fn orphan_worker(self: Arc<Self>) {
        while let Some(key) = self.orphans.get().await {
            match self.sync_orphan_pod(&key).await {
                Ok(()) => self.orphans.forget(&key),
                Err(e) => {
                    tracing::warn!(pod = %key, error = %e, "removing finalizer of orphan pod failed");
                    self.orphans.add_rate_limited(key.clone());
                }
            }
            self.orphans.done(&key);
        }
    }

    /// Sync now (Job created, deleted or its spec changed).
    pub fn enqueue_now(&self, key: String) {
        self.queue.add(key);
    }

    /// Sync after the batching period (pod events, status updates).
    pub fn enqueue_batched(&self, key: String) {
        self.queue.add_after(key, self.cfg.sync_batch_period);
    }

    /// Sync after `delay`, but not before the batching period.
    pub fn enqueue_with_delay(&self, key: String, delay: Duration) {
        self.queue
            .add_after(key, delay.max(self.cfg.sync_batch_period));
    }

    /// The cached Job, or the newer status we wrote if the cache has not caught up.
    pub fn cached_job(&self, key: &str) -> Result<Option<Arc<Job>>, JobError> {
        let (ns, name) = split_key(key).ok_or_else(|| JobError::BadKey(key.to_string()))?;
        let Some(cached) = self.jobs.get(&ObjectRef::new(name).within(ns)) else {
            lock(&self.written).remove(key);
            return Ok(None);
        };
        let mut written = lock(&self.written);
        if let Some(w) = written.get(key) {
            let rv = cached.metadata.resource_version.as_deref().unwrap_or("");
            if w.job.metadata.uid == cached.metadata.uid && w.stale.contains(rv) {
                return Ok(Some(w.job.clone()));
            }
            written.remove(key);
        }
        Ok(Some(cached))
    }

    /// Resolve a pod's controller reference to a cached Job (same name and UID).
    pub fn resolve(
        &self,
        ns: &str,
        r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Option<Arc<Job>> {
        if r.kind != "Job" {
            return None;
        }
        self.jobs
            .get(&ObjectRef::new(&r.name).within(ns))
            .filter(|j| j.metadata.uid.as_deref() == Some(r.uid.as_str()))
    }

    /// Cached pods of a namespace. Read from the cache itself (not an index kept by the
    /// event handlers, which lags it) so a sync never misses a cached pod.
    pub fn pods_in(&self, ns: &str) -> Vec<Arc<Pod>> {
        self.pods
            .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns))
    }

    /// PUT the Job status; remembers the result so the next sync does not start from the
    /// stale cache.
    pub async fn update_status(&self, job: &Job) -> Result<Job, JobError> {
        let key = status::key_of(job);
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let name = job.metadata.name.as_deref().unwrap_or("");
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let new = api
            .replace_status(name, &PostParams::default(), job)
            .await?;
        let base_rv = job.metadata.resource_version.clone().unwrap_or_default();
        let mut written = lock(&self.written);
        let mut stale = match written.remove(&key) {
            Some(w) if w.job.metadata.resource_version.as_deref() == Some(base_rv.as_str()) => {
                w.stale
            }
            _ => HashSet::new(),
        };
        stale.insert(base_rv);
        written.insert(
            key,
            Written {
                stale,
                job: Arc::new(new.clone()),
            },
        );
        Ok(new)
    }
}

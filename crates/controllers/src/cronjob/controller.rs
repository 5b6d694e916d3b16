//! The CronJob controller's caches, event handlers and workers.

use super::Clock;
use super::utils::{next_schedule_delay, schedule_for};
use crate::Context;
use crate::events::{EventType, Recorder};
use crate::job::informer::{self, Handler};
use crate::job::pods::controller_of;
use crate::job::queue::{RateLimit, WorkQueue};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::reflector::{ObjectRef, Store};
use r8s_api::cron::Schedule;
use std::sync::Arc;
use std::time::Duration;

/// Why a sync failed (the key is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum CronJobError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Sync(String),
}

/// Concurrent CronJob syncs (`--concurrent-cron-job-syncs`).
const WORKERS: usize = 5;

pub(super) struct Controller {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub clock: Arc<dyn Clock>,
    pub cronjobs: Store<CronJob>,
    pub jobs: Store<Job>,
    pub queue: WorkQueue<String>,
}

struct CronJobEvents(Arc<Controller>);
struct JobEvents(Arc<Controller>);

pub(super) fn key_of(cj: &CronJob) -> String {
    format!(
        "{}/{}",
        cj.metadata.namespace.as_deref().unwrap_or(""),
        cj.metadata.name.as_deref().unwrap_or("")
    )
}

pub(super) async fn run(ctx: Context, clock: Arc<dyn Clock>) -> anyhow::Result<()> {
    let client = ctx.client.clone();
    let cj_informer = ctx.informers.get::<CronJob>();
    let job_informer = ctx.informers.get::<Job>();
    // The registrations live in this future: dropping it stops the events.
    let (_cj_registration, cj_events) = informer::start(&cj_informer);
    let (_job_registration, job_events) = informer::start(&job_informer);
    let ctrl = Arc::new(Controller {
        client,
        recorder: ctx.recorder("cronjob-controller"),
        clock,
        cronjobs: cj_informer.store().clone(),
        jobs: job_informer.store().clone(),
        // Upstream's default controller rate limiter, without the overall token bucket.
        queue: WorkQueue::new(RateLimit {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }),
    });
    let mut set = tokio::task::JoinSet::new();
    set.spawn(informer::dispatch(
        cj_events,
        Arc::new(CronJobEvents(ctrl.clone())),
    ));
    set.spawn(informer::dispatch(
        job_events,
        Arc::new(JobEvents(ctrl.clone())),
    ));
    let q = ctrl.queue.clone();
    set.spawn(async move { q.run_timer().await });
    if let Some(mut jumps) = ctrl.clock.jumps() {
        // A jumping clock may have passed schedule times: look at every CronJob again.
        let c = ctrl.clone();
        set.spawn(async move {
            while jumps.changed().await.is_ok() {
                for cj in c.cronjobs.state() {
                    c.queue.add(key_of(&cj));
                }
            }
            // The clock is gone: keep running on whatever it last said.
            std::future::pending::<()>().await;
        });
    }
    cj_informer.wait_synced().await;
    job_informer.wait_synced().await;
    tracing::info!("cronjob controller started");
    for _ in 0..WORKERS {
        let c = ctrl.clone();
        set.spawn(async move { c.worker().await });
    }
    set.join_next().await;
    ctrl.queue.shut_down();
    anyhow::bail!("cronjob controller task ended unexpectedly")
}

impl Controller {
    async fn worker(self: Arc<Self>) {
        while let Some(key) = self.queue.get().await {
            match self.sync(&key).await {
                Ok(requeue) => {
                    self.queue.forget(&key);
                    if let Some(d) = requeue {
                        self.queue.add_after(key.clone(), d);
                    }
                }
                Err(e) => {
                    tracing::warn!(cronjob = %key, error = %e, "syncing cronjob failed");
                    self.queue.add_rate_limited(key.clone());
                }
            }
            self.queue.done(&key);
        }
    }

    /// The cached CronJob a Job's controller reference points to (same name and UID).
    fn resolve(&self, ns: &str, r: &OwnerReference) -> Option<Arc<CronJob>> {
        if r.kind != "CronJob" {
            return None;
        }
        self.cronjobs
            .get(&ObjectRef::new(&r.name).within(ns))
            .filter(|cj| cj.metadata.uid.as_deref() == Some(r.uid.as_str()))
    }

    fn enqueue_owner(&self, job: &Job) {
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        if let Some(cj) = controller_of(&job.metadata).and_then(|r| self.resolve(ns, r)) {
            self.queue.add(key_of(&cj));
        }
    }
}

impl Handler<Job> for JobEvents {
    fn on_add(&self, job: &Arc<Job>) {
        self.0.enqueue_owner(job);
    }

    fn on_update(&self, old: &Arc<Job>, cur: &Arc<Job>) {
        if old.metadata.resource_version == cur.metadata.resource_version {
            return;
        }
        if controller_of(&old.metadata) != controller_of(&cur.metadata) {
            self.0.enqueue_owner(old);
        }
        self.0.enqueue_owner(cur);
    }

    fn on_delete(&self, job: &Arc<Job>) {
        self.0.enqueue_owner(job);
    }
}

impl Handler<CronJob> for CronJobEvents {
    fn on_add(&self, cj: &Arc<CronJob>) {
        self.0.queue.add(key_of(cj));
    }

    fn on_update(&self, old: &Arc<CronJob>, cur: &Arc<CronJob>) {
        let c = &self.0;
        let (os, cs) = (old.spec.as_ref(), cur.spec.as_ref());
        let schedule_changed = os.map(|s| &s.schedule) != cs.map(|s| &s.schedule)
            || os.and_then(|s| s.time_zone.as_ref()) != cs.and_then(|s| s.time_zone.as_ref());
        if !schedule_changed {
            c.queue.add(key_of(cur));
            return;
        }
        // A new schedule: look again at its next time (earlier pending times still win).
        let (text, tz) = schedule_for(cur, None);
        match Schedule::parse(&text, tz) {
            Ok(sched) => {
                if let Some(delay) = next_schedule_delay(cur, c.clock.now(), &sched) {
                    c.queue.add_after(key_of(cur), delay);
                }
            }
            Err(e) => {
                tracing::debug!(cronjob = %key_of(cur), error = %e, "unparseable schedule");
                let schedule = cs.map(|s| s.schedule.as_str()).unwrap_or("");
                c.recorder.publish_for(
                    cur.as_ref(),
                    EventType::Warning,
                    "UnParseableCronJobSchedule",
                    &format!("unparseable schedule for cronjob: {schedule}"),
                );
            }
        }
    }

    fn on_delete(&self, cj: &Arc<CronJob>) {
        self.0.queue.add(key_of(cj));
    }
}

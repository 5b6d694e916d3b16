//! The TTL-after-finished controller (upstream `pkg/controller/ttlafterfinished`):
//! deletes a finished Job `spec.ttlSecondsAfterFinished` seconds after its `Complete` or
//! `Failed` condition, with foreground propagation (pods go first) and a UID
//! precondition (a re-created Job of the same name is never deleted by mistake).

use super::informer::{self, Handler};
use super::queue::{RateLimit, WorkQueue};
use super::status::{finish_time, is_finished, key_of, split_key};
use crate::Context;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::reflector::{ObjectRef, Store};
use std::sync::Arc;
use std::time::Duration;

/// Why a TTL check failed (retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum TtlError {
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("unable to find the time when the Job {0} finished")]
    NoFinishTime(String),
}

/// Concurrent TTL checks (`--concurrent-ttl-after-finished-syncs`).
const WORKERS: usize = 5;

struct Ttl {
    client: kube::Client,
    jobs: Store<Job>,
    queue: WorkQueue<String>,
}

struct Events(Arc<Ttl>);

fn needs_cleanup(job: &Job) -> bool {
    job.spec
        .as_ref()
        .and_then(|s| s.ttl_seconds_after_finished)
        .is_some()
        && is_finished(job)
}

impl Handler<Job> for Events {
    fn on_add(&self, job: &Arc<Job>) {
        if job.metadata.deletion_timestamp.is_none() && needs_cleanup(job) {
            self.0.queue.add(key_of(job));
        }
    }
    fn on_update(&self, _old: &Arc<Job>, cur: &Arc<Job>) {
        self.on_add(cur);
    }
    fn on_delete(&self, _job: &Arc<Job>) {}
}

/// Run the controller until a fatal error.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let informer = ctx.informers.get::<Job>();
    // The registration lives in this future: dropping it stops the events.
    let (_registration, events) = informer::start(&informer);
    let ttl = Arc::new(Ttl {
        client: ctx.client.clone(),
        jobs: informer.store().clone(),
        queue: WorkQueue::new(RateLimit {
            base: Duration::from_millis(5),
            max: Duration::from_secs(1000),
        }),
    });
    let mut set = tokio::task::JoinSet::new();
    set.spawn(informer::dispatch(events, Arc::new(Events(ttl.clone()))));
    let q = ttl.queue.clone();
    set.spawn(async move { q.run_timer().await });
    informer.wait_synced().await;
    for _ in 0..WORKERS {
        let t = ttl.clone();
        set.spawn(async move {
            while let Some(key) = t.queue.get().await {
                match t.process(&key).await {
                    Ok(()) => t.queue.forget(&key),
                    Err(e) => {
                        tracing::warn!(job = %key, error = %e, "TTL-after-finished check failed");
                        t.queue.add_rate_limited(key.clone());
                    }
                }
                t.queue.done(&key);
            }
        });
    }
    set.join_next().await;
    ttl.queue.shut_down();
    anyhow::bail!("TTL-after-finished controller task ended unexpectedly")
}

/// Time left before `job` expires (zero or negative: expired); None without a TTL.
fn time_left(job: &Job, now: Timestamp) -> Result<Option<SignedDuration>, TtlError> {
    let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) else {
        return Ok(None);
    };
    let finished = finish_time(job).ok_or_else(|| TtlError::NoFinishTime(key_of(job)))?;
    let expire_at = finished + SignedDuration::from_secs(i64::from(ttl));
    Ok(Some(expire_at.duration_since(now)))
}

impl Ttl {
    async fn process(&self, key: &str) -> Result<(), TtlError> {
        let Some((ns, name)) = split_key(key) else {
            return Ok(());
        };
        let Some(job) = self.jobs.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(());
        };
        if !self.expired(key, &job)? {
            return Ok(());
        }
        // The cache may be stale (TTL changed, Job re-created): check a fresh copy.
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let Some(fresh) = api.get_opt(name).await? else {
            return Ok(());
        };
        if !self.expired(key, &fresh)? {
            return Ok(());
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            preconditions: Some(Preconditions {
                uid: fresh.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        tracing::info!(job = %key, "deleting finished job after its TTL");
        match api.delete(name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the Job should be deleted now; otherwise re-check when it will be.
    fn expired(&self, key: &str, job: &Job) -> Result<bool, TtlError> {
        if job.metadata.deletion_timestamp.is_some() || !needs_cleanup(job) {
            return Ok(false);
        }
        match time_left(job, Timestamp::now())? {
            None => Ok(false),
            Some(left) if left.is_positive() => {
                let d = Duration::try_from(left).unwrap_or(Duration::ZERO);
                self.queue.add_after(key.to_string(), d);
                Ok(false)
            }
            Some(_) => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn expiry_from_finished_condition() {
        let t0 = Timestamp::from_second(1_000).expect("ts");
        let job = Job {
            spec: Some(JobSpec {
                ttl_seconds_after_finished: Some(30),
                ..Default::default()
            }),
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: "Complete".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(t0)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(needs_cleanup(&job));
        let left = time_left(&job, t0 + SignedDuration::from_secs(10)).expect("ok");
        assert_eq!(left, Some(SignedDuration::from_secs(20)));
    }
}

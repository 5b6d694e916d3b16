//! Cache event handlers (which Job to sync, expectation bookkeeping) and the removal of
//! tracking finalizers from pods no Job sync will handle any more.

use super::apierrors::is_not_found;
use super::controller::{Controller, JobError};
use super::informer::Handler;
use super::pods::{TRACKING_FINALIZER, controller_of, has_tracking_finalizer};
use super::status::{self, is_finished, key_of, split_key};
use crate::util::selector;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;

pub(super) struct JobEvents(pub Arc<Controller>);
pub(super) struct PodEvents(pub Arc<Controller>);

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

impl Handler<Job> for JobEvents {
    fn on_add(&self, job: &Arc<Job>) {
        self.0.enqueue_now(key_of(job));
    }

    fn on_update(&self, old: &Arc<Job>, cur: &Arc<Job>) {
        let c = &self.0;
        let key = key_of(cur);
        if cur.metadata.generation == old.metadata.generation {
            c.enqueue_batched(key.clone());
        } else {
            c.enqueue_now(key.clone());
        }
        // Finished Jobs are not synced; their pods' finalizers go through the orphan queue.
        if is_finished(cur) {
            c.cleanup_pod_finalizers(cur);
        }
        // A changed activeDeadlineSeconds needs a sync when the new deadline passes.
        let ads = |j: &Job| j.spec.as_ref().and_then(|s| s.active_deadline_seconds);
        if let (Some(start), Some(cur_ads)) = (
            cur.status.as_ref().and_then(|s| s.start_time.as_ref()),
            ads(cur),
        ) && ads(old) != Some(cur_ads)
        {
            let deadline = start.0 + jiff::SignedDuration::from_secs(cur_ads);
            let left = deadline.duration_since(jiff::Timestamp::now());
            c.queue
                .add_after(key, left.try_into().unwrap_or(std::time::Duration::ZERO));
        }
    }

    fn on_delete(&self, job: &Arc<Job>) {
        self.0.enqueue_now(key_of(job));
        self.0.cleanup_pod_finalizers(job);
    }
}

impl Handler<Pod> for PodEvents {
    fn on_add(&self, pod: &Arc<Pod>) {
        let c = &self.0;
        if pod.metadata.deletion_timestamp.is_some() {
            // Seen for the first time already terminating (e.g. after a restart): not a
            // creation we could have been waiting for.
            c.pod_deleted(pod, false);
            return;
        }
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        if let Some(r) = controller_of(&pod.metadata) {
            if let Some(job) = c.resolve(ns, r) {
                let key = key_of(&job);
                c.expectations.creation_observed(&key);
                c.enqueue_batched(key);
            }
            return;
        }
        if has_tracking_finalizer(pod) {
            c.orphans.add(pod_key(pod));
        }
        for job in c.jobs_selecting(pod) {
            c.enqueue_batched(key_of(&job));
        }
    }

    fn on_update(&self, old: &Arc<Pod>, cur: &Arc<Pod>) {
        let c = &self.0;
        if cur.metadata.resource_version == old.metadata.resource_version {
            return;
        }
        if cur.metadata.deletion_timestamp.is_some() {
            // Graceful deletion started: replace the pod now rather than after it is gone.
            c.pod_deleted(cur, false);
            return;
        }
        let ns = cur.metadata.namespace.as_deref().unwrap_or("");
        let uid = cur.metadata.uid.as_deref().unwrap_or("");
        let finalizer_removed = !has_tracking_finalizer(cur);
        let cur_ref = controller_of(&cur.metadata);
        let old_ref = controller_of(&old.metadata);
        let ref_changed = cur_ref != old_ref;
        if ref_changed && let Some(job) = old_ref.and_then(|r| c.resolve(ns, r)) {
            let key = key_of(&job);
            if finalizer_removed {
                c.finalizers.removal_observed(&key, uid);
            }
            c.enqueue_batched(key);
        }
        if let Some(r) = cur_ref {
            if let Some(job) = c.resolve(ns, r) {
                let key = key_of(&job);
                if finalizer_removed {
                    c.finalizers.removal_observed(&key, uid);
                }
                c.enqueue_batched(key);
            }
            return;
        }
        if has_tracking_finalizer(cur) {
            c.orphans.add(pod_key(cur));
        }
        if ref_changed || cur.metadata.labels != old.metadata.labels {
            for job in c.jobs_selecting(cur) {
                c.enqueue_batched(key_of(&job));
            }
        }
    }

    fn on_delete(&self, pod: &Arc<Pod>) {
        self.0.pod_deleted(pod, true);
    }
}

impl Controller {
    /// A pod went away (`final`) or started terminating.
    fn pod_deleted(&self, pod: &Pod, final_delete: bool) {
        let has_finalizer = has_tracking_finalizer(pod);
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let job = controller_of(&pod.metadata).and_then(|r| self.resolve(ns, r));
        let Some(job) = job.filter(|j| !is_finished(j)) else {
            // No Job sync will remove this finalizer.
            if has_finalizer {
                self.orphans.add(pod_key(pod));
            }
            return;
        };
        let key = key_of(&job);
        self.expectations.deletion_observed(&key);
        if final_delete || !has_finalizer {
            let uid = pod.metadata.uid.as_deref().unwrap_or("");
            self.finalizers.removal_observed(&key, uid);
        }
        self.enqueue_batched(key);
    }

    /// Cached Jobs in the pod's namespace whose selector matches it.
    fn jobs_selecting(&self, pod: &Pod) -> Vec<Arc<Job>> {
        let ns = pod.metadata.namespace.as_deref();
        self.jobs
            .state()
            .into_iter()
            .filter(|j| j.metadata.namespace.as_deref() == ns)
            .filter(|j| {
                selector::matches(
                    j.spec.as_ref().and_then(|s| s.selector.as_ref()),
                    pod.metadata.labels.as_ref(),
                )
            })
            .collect()
    }

    /// Queue the Job's pods that still carry the tracking finalizer for its removal.
    pub fn cleanup_pod_finalizers(&self, job: &Job) {
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let sel = job.spec.as_ref().and_then(|s| s.selector.as_ref());
        for pod in self.pods_in(ns) {
            let owned = controller_of(&pod.metadata)
                .is_some_and(|r| Some(r.uid.as_str()) == job.metadata.uid.as_deref());
            if owned
                && has_tracking_finalizer(&pod)
                && selector::matches(sel, pod.metadata.labels.as_ref())
            {
                self.orphans.add(pod_key(&pod));
            }
        }
    }

    /// Remove the tracking finalizer from a pod whose Job is gone or finished.
    pub(super) async fn sync_orphan_pod(&self, key: &str) -> Result<(), JobError> {
        let (ns, name) = split_key(key).ok_or_else(|| JobError::BadKey(key.to_string()))?;
        let Some(pod) = self.pods.get(&ObjectRef::new(name).within(ns)) else {
            return Ok(());
        };
        if let Some(r) = controller_of(&pod.metadata) {
            if r.kind != "Job" || r.api_version != "batch/v1" {
                return Ok(());
            }
            if let Some(job) = self.resolve(ns, r)
                && (status::managed_externally(&job).is_some() || !is_finished(&job))
            {
                // Adopted or still running: its Job sync owns the finalizer.
                return Ok(());
            }
        }
        if has_tracking_finalizer(&pod) {
            match self.remove_tracking_finalizer(ns, name).await {
                Err(e) if !is_not_found(&e) => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Strategic-merge patch deleting only our finalizer from the list.
    pub async fn remove_tracking_finalizer(&self, ns: &str, name: &str) -> Result<(), kube::Error> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let patch = serde_json::json!({
            "metadata": { "$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER] }
        });
        api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .map(|_| ())
    }
}

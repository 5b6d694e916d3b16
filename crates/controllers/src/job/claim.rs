//! Which pods a Job manages (upstream `getPodsForJob` / `ClaimPods`): pods it controls
//! that still match its selector; matching orphans are adopted (owner reference plus
//! tracking finalizer), controlled pods that stopped matching are released.

use super::apierrors::is_not_found;
use super::controller::{Controller, JobError};
use super::pods::{TRACKING_FINALIZER, controller_of, has_tracking_finalizer, job_owner_ref};
use crate::util::selector;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use std::sync::Arc;

impl Controller {
    pub(super) async fn pods_for_job(&self, job: &Job) -> Result<Vec<Arc<Pod>>, JobError> {
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let job_uid = job.metadata.uid.as_deref().unwrap_or("");
        let sel = job.spec.as_ref().and_then(|s| s.selector.as_ref());
        let deleting = job.metadata.deletion_timestamp.is_some();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let mut out = Vec::new();
        // Adoption is allowed only if an uncached read confirms the Job is not being
        // deleted (a stale cache must not adopt pods into a dying Job).
        let mut can_adopt: Option<bool> = None;
        for pod in self.pods_in(ns) {
            let matches = selector::matches(sel, pod.metadata.labels.as_ref());
            let pod_name = pod.metadata.name.as_deref().unwrap_or("");
            let pod_uid = pod.metadata.uid.as_deref().unwrap_or("");
            match controller_of(&pod.metadata) {
                Some(r) if r.uid == job_uid => {
                    if matches {
                        out.push(pod);
                    } else if !deleting {
                        let patch = json!({"metadata": {
                            "ownerReferences": [{"$patch": "delete", "uid": job_uid}],
                            "uid": pod_uid,
                        }});
                        match api
                            .patch(pod_name, &PatchParams::default(), &Patch::Strategic(patch))
                            .await
                        {
                            Err(e) if !is_not_found(&e) => return Err(e.into()),
                            _ => {}
                        }
                    }
                }
                Some(_) => {}
                None => {
                    if !matches || deleting || pod.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    if can_adopt.is_none() {
                        can_adopt = Some(self.recheck_adoptable(job).await?);
                    }
                    if can_adopt != Some(true) {
                        continue;
                    }
                    let patch = json!({"metadata": {
                        "ownerReferences": [job_owner_ref(job)],
                        "uid": pod_uid,
                        "finalizers": [TRACKING_FINALIZER],
                    }});
                    match api
                        .patch(pod_name, &PatchParams::default(), &Patch::Strategic(patch))
                        .await
                    {
                        Ok(_) => {
                            let mut adopted = (*pod).clone();
                            if !has_tracking_finalizer(&adopted) {
                                adopted
                                    .metadata
                                    .finalizers
                                    .get_or_insert_with(Vec::new)
                                    .push(TRACKING_FINALIZER.to_string());
                            }
                            adopted
                                .metadata
                                .owner_references
                                .get_or_insert_with(Vec::new)
                                .push(job_owner_ref(job));
                            out.push(Arc::new(adopted));
                        }
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(out)
    }

    async fn recheck_adoptable(&self, job: &Job) -> Result<bool, JobError> {
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let name = job.metadata.name.as_deref().unwrap_or("");
        let api: Api<Job> = Api::namespaced(self.client.clone(), ns);
        let fresh = api.get(name).await?;
        if fresh.metadata.uid != job.metadata.uid {
            return Err(JobError::Sync(format!(
                "original Job {ns}/{name} is gone: got uid {:?}, wanted {:?}",
                fresh.metadata.uid, job.metadata.uid
            )));
        }
        Ok(fresh.metadata.deletion_timestamp.is_none())
    }
}

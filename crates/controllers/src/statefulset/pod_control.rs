//! Creating, updating and deleting a StatefulSet's pods and claims (upstream
//! `stateful_pod_control.go`), with the events upstream records for each.

use super::retention::{self, Retention};
use super::utils::{
    claims_for, identity_matches, storage_matches, update_identity, update_storage,
};
use crate::events::{EventType, Recorder};
use crate::util::error::{Error, Result, is_already_exists, is_conflict, is_not_found};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

/// How many times an update is retried on conflicts (client-go's `retry.DefaultBackoff`).
const CONFLICT_RETRIES: usize = 5;

/// API access for one controller: clients, the claim cache, the event recorder.
#[derive(Clone)]
pub struct PodControl {
    pub client: Client,
    pub claims: Store<PersistentVolumeClaim>,
    pub recorder: Recorder,
}

fn name_of(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or("")
}

fn ns_of(set: &StatefulSet) -> &str {
    set.metadata.namespace.as_deref().unwrap_or("")
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

fn title(verb: &str) -> String {
    let mut c = verb.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

impl PodControl {
    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn pvcs(&self, ns: &str) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn cached_claim(&self, ns: &str, name: &str) -> Option<std::sync::Arc<PersistentVolumeClaim>> {
        self.claims.get(&ObjectRef::new(name).within(ns))
    }

    fn record_pod_event(&self, verb: &str, set: &StatefulSet, pod: &Pod, err: Option<&Error>) {
        let (ty, reason, msg) = match err {
            None => (
                EventType::Normal,
                format!("Successful{}", title(verb)),
                format!(
                    "{verb} Pod {} in StatefulSet {} successful",
                    pod_name(pod),
                    name_of(set)
                ),
            ),
            Some(e) => (
                EventType::Warning,
                format!("Failed{}", title(verb)),
                format!(
                    "{verb} Pod {} in StatefulSet {} failed error: {e}",
                    pod_name(pod),
                    name_of(set)
                ),
            ),
        };
        self.recorder.publish_for(set, ty, &reason, &msg);
    }

    fn record_claim_event(&self, set: &StatefulSet, pod: &Pod, claim: &str, err: Option<&Error>) {
        let (ty, reason, msg) = match err {
            None => (
                EventType::Normal,
                "SuccessfulCreate",
                format!(
                    "create Claim {claim} Pod {} in StatefulSet {} success",
                    pod_name(pod),
                    name_of(set)
                ),
            ),
            Some(e) => (
                EventType::Warning,
                "FailedCreate",
                format!(
                    "create Claim {claim} for Pod {} in StatefulSet {} failed error: {e}",
                    pod_name(pod),
                    name_of(set)
                ),
            ),
        };
        self.recorder.publish_for(set, ty, reason, &msg);
    }

    /// Create the pod's claims, then the pod, then point the claims' owners per policy.
    pub async fn create_stateful_pod(&self, set: &StatefulSet, pod: &Pod) -> Result<()> {
        if let Err(e) = self.create_claims(set, pod).await {
            self.record_pod_event("create", set, pod, Some(&e));
            return Err(e);
        }
        let created = match self
            .pods(ns_of(set))
            .create(&PostParams::default(), pod)
            .await
        {
            Ok(p) => p,
            // Upstream passes AlreadyExists up without an event: the cache was stale.
            Err(e) if is_already_exists(&e) => {
                return Err(Error::api(format!("creating pod {}", pod_name(pod)), e));
            }
            Err(e) => {
                let e = Error::api(format!("creating pod {}", pod_name(pod)), e);
                self.record_pod_event("create", set, pod, Some(&e));
                return Err(e);
            }
        };
        if let Err(e) = self.update_claims_for_retention(set, &created).await {
            self.record_pod_event("update", set, &created, Some(&e));
            return Err(e);
        }
        self.record_pod_event("create", set, &created, None);
        Ok(())
    }

    /// Bring the pod's identity, storage and claim ownership in line with `set`.
    pub async fn update_stateful_pod(&self, set: &StatefulSet, pod: &Pod) -> Result<()> {
        let mut pod = pod.clone();
        let mut attempted = false;
        let mut result = Ok(());
        for _ in 0..CONFLICT_RETRIES {
            let mut consistent = true;
            if !identity_matches(set, &pod) {
                update_identity(set, &mut pod);
                consistent = false;
            }
            if !storage_matches(set, &pod) {
                update_storage(set, &mut pod);
                consistent = false;
                if let Err(e) = self.create_claims(set, &pod).await {
                    self.record_pod_event("update", set, &pod, Some(&e));
                    return Err(e);
                }
            }
            match self.claims_match_retention(set, &pod) {
                Ok(true) => {}
                Ok(false) => {
                    if let Err(e) = self.update_claims_for_retention(set, &pod).await {
                        self.record_pod_event("update", set, &pod, Some(&e));
                        return Err(e);
                    }
                    consistent = false;
                }
                Err(e) => {
                    self.record_pod_event("update", set, &pod, Some(&e));
                    return Err(e);
                }
            }
            if consistent {
                result = Ok(());
                break;
            }
            attempted = true;
            let api = self.pods(ns_of(set));
            match api
                .replace(pod_name(&pod), &PostParams::default(), &pod)
                .await
            {
                Ok(_) => {
                    result = Ok(());
                    break;
                }
                Err(e) if is_conflict(&e) => {
                    result = Err(Error::api(format!("updating pod {}", pod_name(&pod)), e));
                    match api.get(pod_name(&pod)).await {
                        Ok(fresh) => pod = fresh,
                        Err(e) => {
                            result = Err(Error::api(format!("getting pod {}", pod_name(&pod)), e));
                            break;
                        }
                    }
                }
                Err(e) => {
                    result = Err(Error::api(format!("updating pod {}", pod_name(&pod)), e));
                    break;
                }
            }
        }
        if attempted {
            self.record_pod_event("update", set, &pod, result.as_ref().err());
        }
        result
    }

    /// Delete the pod (gracefully); an already-gone pod is an error, as upstream.
    pub async fn delete_stateful_pod(&self, set: &StatefulSet, pod: &Pod) -> Result<()> {
        let res = self
            .pods(ns_of(set))
            .delete(pod_name(pod), &DeleteParams::default())
            .await
            .map(|_| ())
            .map_err(|e| Error::api(format!("deleting pod {}", pod_name(pod)), e));
        self.record_pod_event("delete", set, pod, res.as_ref().err());
        res
    }

    /// Whether every existing claim of the pod has owners agreeing with the policy.
    pub fn claims_match_retention(&self, set: &StatefulSet, pod: &Pod) -> Result<bool> {
        for claim in claims_for(set, pod).values() {
            let name = claim.metadata.name.as_deref().unwrap_or("");
            if let Some(c) = self.cached_claim(ns_of(set), name)
                && !retention::claim_owner_up_to_date(&c, set, pod)
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Rewrite the owners of the pod's claims to agree with the policy.
    pub async fn update_claims_for_retention(&self, set: &StatefulSet, pod: &Pod) -> Result<()> {
        let api = self.pvcs(ns_of(set));
        for claim in claims_for(set, pod).values() {
            let name = claim.metadata.name.as_deref().unwrap_or("");
            let Some(cached) = self.cached_claim(ns_of(set), name) else {
                continue; // picked up on a later sync
            };
            if retention::claim_owner_up_to_date(&cached, set, pod) {
                continue;
            }
            let mut c = (*cached).clone();
            for attempt in 0..CONFLICT_RETRIES {
                retention::update_claim_owner_refs(&mut c, set, pod);
                match api.replace(name, &PostParams::default(), &c).await {
                    Ok(_) => break,
                    Err(e) if is_conflict(&e) && attempt + 1 < CONFLICT_RETRIES => {
                        c = api
                            .get(name)
                            .await
                            .map_err(|e| Error::api(format!("getting claim {name}"), e))?;
                        if retention::claim_owner_up_to_date(&c, set, pod) {
                            break;
                        }
                    }
                    Err(e) if is_not_found(&e) => break,
                    Err(e) => {
                        return Err(Error::api(
                            format!("updating claim {name} for its retention policy"),
                            e,
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// With whenScaled=Delete, a claim still owned by a previous pod of this name blocks
    /// creating the pod until the garbage collector removes it.
    pub fn pod_claim_is_stale(&self, set: &StatefulSet, pod: &Pod) -> bool {
        if retention::policy(set).0 == Retention::Retain {
            return false;
        }
        claims_for(set, pod).values().any(|claim| {
            let name = claim.metadata.name.as_deref().unwrap_or("");
            self.cached_claim(ns_of(set), name)
                .is_some_and(|c| retention::has_stale_owner_ref(&c, pod))
        })
    }

    /// Create missing claims of a pending pod, then fix their owners.
    pub async fn create_missing_claims(&self, set: &StatefulSet, pod: &Pod) -> Result<()> {
        self.create_claims(set, pod).await?;
        if let Err(e) = self.update_claims_for_retention(set, pod).await {
            self.record_pod_event("update", set, pod, Some(&e));
            return Err(e);
        }
        Ok(())
    }

    /// Create every claim of the pod that does not exist; a claim being deleted is an error.
    pub async fn create_claims(&self, set: &StatefulSet, pod: &Pod) -> Result<()> {
        let api = self.pvcs(ns_of(set));
        let mut errs = Vec::new();
        for claim in claims_for(set, pod).values() {
            let name = claim.metadata.name.clone().unwrap_or_default();
            // Owners per the retention policy from the start, so the claim is right even
            // before the cache has seen it.
            let mut claim = claim.clone();
            retention::update_claim_owner_refs(&mut claim, set, pod);
            let existing = match self.cached_claim(ns_of(set), &name) {
                Some(c) => Some((*c).clone()),
                None => match api.create(&PostParams::default(), &claim).await {
                    Ok(_) => {
                        self.record_claim_event(set, pod, &name, None);
                        None
                    }
                    // The cache lags our own create: look at the live object instead.
                    Err(e) if is_already_exists(&e) => match api.get_opt(&name).await {
                        Ok(c) => c,
                        Err(e) => {
                            errs.push(Error::api(format!("failed to retrieve PVC {name}"), e));
                            None
                        }
                    },
                    Err(e) => {
                        let e = Error::api(format!("failed to create PVC {name}"), e);
                        self.record_claim_event(set, pod, &name, Some(&e));
                        errs.push(e);
                        None
                    }
                },
            };
            if existing.is_some_and(|c| c.metadata.deletion_timestamp.is_some()) {
                errs.push(Error::Invalid(format!("pvc {name} is being deleted")));
            }
        }
        Error::aggregate(errs)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn titles() {
        assert_eq!(super::title("create"), "Create");
        assert_eq!(super::title(""), "");
    }
}

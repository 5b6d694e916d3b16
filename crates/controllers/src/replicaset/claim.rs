//! Ownership of dependents by controller reference (upstream `ControllerRefManager`): a
//! controller claims the objects it owns that still match its selector, adopts matching
//! orphans (after re-reading itself from the API server, so a controller being deleted
//! never adopts), and releases owned objects whose labels stopped matching.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{Selector, SelectorExt};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::fmt::Debug;
use std::sync::Arc;

/// Why claiming failed (the sync is retried).
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// The owner was replaced by a namesake or is being deleted.
    #[error("{0}")]
    CannotAdopt(String),
}

pub use crate::util::podutil::{controller_of, controller_ref};

/// A label selector as a matcher; `None` for one that cannot be parsed.
pub fn selector_of(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> Option<Selector> {
    Selector::try_from(sel.clone()).ok()
}

/// Whether `sel` matches `meta`'s labels.
pub fn matches(sel: &Selector, meta: &ObjectMeta) -> bool {
    match &meta.labels {
        Some(l) => sel.matches(l),
        None => sel.matches(&Default::default()),
    }
}

/// Claims dependents of type `K` for the controller `owner` of type `O`.
pub struct Claimer<'a, O: Resource, K: Resource> {
    owner: &'a O,
    owner_api: Api<O>,
    api: Api<K>,
    selector: &'a Selector,
    /// Result of the one-time "may we adopt" re-check.
    can_adopt: Option<Result<(), String>>,
}

impl<'a, O, K> Claimer<'a, O, K>
where
    O: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    /// A claimer using namespaced APIs of the owner's namespace.
    pub fn new(client: &kube::Client, owner: &'a O, selector: &'a Selector) -> Self {
        let ns = owner.meta().namespace.clone().unwrap_or_default();
        Claimer {
            owner,
            owner_api: Api::namespaced(client.clone(), &ns),
            api: Api::namespaced(client.clone(), &ns),
            selector,
            can_adopt: None,
        }
    }

    fn owner_uid(&self) -> &str {
        self.owner.meta().uid.as_deref().unwrap_or("")
    }

    fn owner_deleting(&self) -> bool {
        self.owner.meta().deletion_timestamp.is_some()
    }

    /// The objects among `objs` this controller owns after adopting and releasing; the
    /// first error (if any) after trying every object.
    pub async fn claim(&mut self, objs: Vec<Arc<K>>) -> (Vec<Arc<K>>, Option<ClaimError>) {
        let mut claimed = Vec::new();
        let mut first_err = None;
        for obj in objs {
            match self.claim_one(&obj).await {
                Ok(true) => claimed.push(obj),
                Ok(false) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        (claimed, first_err)
    }

    async fn claim_one(&mut self, obj: &K) -> Result<bool, ClaimError> {
        let meta = obj.meta();
        let owner_ns = self.owner.meta().namespace.as_deref().unwrap_or("");
        let matched = matches(self.selector, meta);
        if let Some(r) = controller_of(meta) {
            if r.uid != self.owner_uid() {
                return Ok(false);
            }
            if matched {
                return Ok(true);
            }
            if self.owner_deleting() {
                return Ok(false);
            }
            self.release(obj).await?;
            return Ok(false);
        }
        if self.owner_deleting()
            || !matched
            || meta.deletion_timestamp.is_some()
            || meta.namespace.as_deref().unwrap_or("") != owner_ns
        {
            return Ok(false);
        }
        self.check_can_adopt().await?;
        self.adopt(obj).await
    }

    /// Re-read the owner once: never adopt for a controller that is being deleted or was
    /// replaced by a namesake since the cache saw it.
    async fn check_can_adopt(&mut self) -> Result<(), ClaimError> {
        if let Some(verdict) = &self.can_adopt {
            return verdict.clone().map_err(ClaimError::CannotAdopt);
        }
        let name = self.owner.meta().name.clone().unwrap_or_default();
        let ns = self.owner.meta().namespace.clone().unwrap_or_default();
        let fresh = self.owner_api.get(&name).await?;
        let uid = fresh.meta().uid.clone().unwrap_or_default();
        let verdict = if uid != self.owner_uid() {
            Err(format!(
                "original {} {ns}/{name} is gone: got uid {uid}, wanted {}",
                O::kind(&()),
                self.owner_uid()
            ))
        } else if let Some(t) = &fresh.meta().deletion_timestamp {
            Err(format!("{ns}/{name} has just been deleted at {}", t.0))
        } else {
            Ok(())
        };
        self.can_adopt = Some(verdict.clone());
        verdict.map_err(ClaimError::CannotAdopt)
    }

    async fn adopt(&self, obj: &K) -> Result<bool, ClaimError> {
        let name = obj.meta().name.clone().unwrap_or_default();
        // The object's uid in the patch guards against a namesake replacing it meanwhile.
        let patch = json!({"metadata": {
            "ownerReferences": [controller_ref(self.owner)],
            "uid": obj.meta().uid,
        }});
        match self
            .api
            .patch(
                &name,
                &Default::default(),
                &kube::api::Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn release(&self, obj: &K) -> Result<(), ClaimError> {
        let name = obj.meta().name.clone().unwrap_or_default();
        let patch = json!({"metadata": {
            "ownerReferences": [{"$patch": "delete", "uid": self.owner_uid()}],
            "uid": obj.meta().uid,
        }});
        match self
            .api
            .patch(
                &name,
                &Default::default(),
                &kube::api::Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Gone, or no longer ours / replaced (422): nothing to release.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

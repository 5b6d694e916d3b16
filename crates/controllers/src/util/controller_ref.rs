//! ControllerRef management as upstream's `ControllerRefManager`: a controller *claims* the
//! objects it should own — adopting matching orphans (after re-checking that it is not being
//! deleted) and releasing owned objects that no longer match. Shared by the StatefulSet and
//! DaemonSet controllers for pods and ControllerRevisions.

use super::error::{Error, Result, is_not_found};
use super::podutil::controller_of;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

/// The owner doing the claiming.
pub struct Claimer<'a> {
    /// Controller reference to the owner (its UID identifies it).
    pub owner: &'a OwnerReference,
    /// The owner's namespace.
    pub namespace: &'a str,
    /// The owner is being deleted: adopt nothing, release nothing.
    pub deleting: bool,
}

/// Claim `objs` for the owner. `matches` says whether an object belongs (selector, plus any
/// extra filter); `can_adopt` is called at most once, before the first adoption, and must
/// fail if the owner is gone or being deleted. Returns the claimed objects; any failed
/// adoption/release makes the whole call fail (the caller retries).
pub async fn claim<K, M, C, Fut>(
    api: &Api<K>,
    claimer: &Claimer<'_>,
    objs: Vec<Arc<K>>,
    matches: M,
    can_adopt: C,
) -> Result<Vec<Arc<K>>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    M: Fn(&K) -> bool,
    C: FnOnce() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut claimed = Vec::new();
    let mut errors = Vec::new();
    let mut can_adopt = Some(can_adopt);
    let mut adopt_checked: Option<bool> = None;
    for obj in objs {
        let meta = obj.meta();
        if let Some(cref) = controller_of(meta) {
            if cref.uid != claimer.owner.uid {
                continue;
            }
            if matches(&obj) {
                claimed.push(obj);
                continue;
            }
            if claimer.deleting {
                continue;
            }
            if let Err(e) = release(api, &obj, &claimer.owner.uid).await {
                errors.push(e);
            }
            continue;
        }
        if claimer.deleting || !matches(&obj) || meta.deletion_timestamp.is_some() {
            continue;
        }
        if meta.namespace.as_deref().unwrap_or("") != claimer.namespace {
            continue;
        }
        let ok = match adopt_checked {
            Some(ok) => ok,
            None => {
                let check = match can_adopt.take() {
                    Some(f) => f().await,
                    None => Ok(()),
                };
                let ok = check.is_ok();
                if let Err(e) = check {
                    errors.push(e);
                }
                adopt_checked = Some(ok);
                ok
            }
        };
        if !ok {
            continue;
        }
        match adopt(api, &obj, claimer.owner).await {
            Ok(Some(adopted)) => claimed.push(Arc::new(adopted)),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    Error::aggregate(errors)?;
    Ok(claimed)
}

/// Add `owner` as controller of `obj` (optimistic: fails on a concurrent change).
/// `None` if the object is gone.
pub async fn adopt<K>(api: &Api<K>, obj: &K, owner: &OwnerReference) -> Result<Option<K>>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let meta = obj.meta();
    let name = meta.name.clone().unwrap_or_default();
    let mut refs = meta.owner_references.clone().unwrap_or_default();
    refs.retain(|r| r.uid != owner.uid);
    refs.push(owner.clone());
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": meta.resource_version,
        "uid": meta.uid,
    }});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(o) => Ok(Some(o)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(Error::api(format!("adopting {} {name}", K::kind(&())), e)),
    }
}

/// Remove the owner reference with `owner_uid` from `obj`; gone objects are fine.
pub async fn release<K>(api: &Api<K>, obj: &K, owner_uid: &str) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let meta = obj.meta();
    let name = meta.name.clone().unwrap_or_default();
    let refs: Vec<OwnerReference> = meta
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.uid != owner_uid)
        .collect();
    let refs = if refs.is_empty() {
        json!(null)
    } else {
        json!(refs)
    };
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": meta.resource_version,
        "uid": meta.uid,
    }});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        // Upstream ignores Invalid (the owner no longer owns it, or it has no owner).
        Err(kube::Error::Api(s)) if s.code == 422 => Ok(()),
        Err(e) => Err(Error::api(format!("releasing {} {name}", K::kind(&())), e)),
    }
}

/// Fails unless the live `owner` is the cached one (same uid) and is not being deleted:
/// checked before adopting anything, as upstream does.
pub async fn ensure_adoptable<K>(api: &Api<K>, owner: &K) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    use kube::ResourceExt;
    let kind = K::kind(&());
    let name = owner.name_any();
    let fresh = api
        .get(&name)
        .await
        .map_err(|e| Error::api(format!("getting {} {name}", kind.to_lowercase()), e))?;
    if fresh.uid() != owner.uid() {
        return Err(Error::Invalid(format!(
            "original {kind} {name} is gone: got uid {:?}, wanted {:?}",
            fresh.uid(),
            owner.uid()
        )));
    }
    if fresh.meta().deletion_timestamp.is_some() {
        return Err(Error::Invalid(format!(
            "{kind} {name} has just been deleted"
        )));
    }
    Ok(())
}

//! The garbage collector's workers (upstream `attemptToDeleteItem` and
//! `attemptToOrphanWorker`): decide from live state whether an object's owners are gone,
//! delete it with the right propagation, finish foreground deletions and orphan dependents.

use super::graph::{FOREGROUND, Identity, ORPHAN};
use super::{GcError, Shared};
use crate::util::{is_conflict, is_not_found};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{
    DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};

/// Attempts at a read-modify-write before giving the key back to the queue.
const CONFLICT_RETRIES: usize = 5;

/// What the API server says about an object.
enum Live {
    /// Gone, or replaced by another object of the same name.
    Absent,
    Present(Box<ObjectMeta>),
}

/// An API handle for `id`'s resource; `None` if the reference is invalid (a namespaced
/// kind referenced from a cluster-scoped object). Virtual owner nodes carry their
/// dependent's namespace, which is ignored for cluster-scoped kinds.
fn api_for(shared: &Shared, id: &Identity) -> Result<Option<Api<DynamicObject>>, GcError> {
    let resolved = shared
        .mapper
        .read()
        .map_err(|_| GcError::Conflicts("mapper lock poisoned".into()))?
        .resolve(&id.api_version, &id.kind);
    let Some((ar, namespaced)) = resolved else {
        return Err(GcError::UnknownKind {
            api_version: id.api_version.clone(),
            kind: id.kind.clone(),
        });
    };
    Ok(match (namespaced, &id.namespace) {
        (true, Some(ns)) => Some(Api::namespaced_with(shared.client.clone(), ns, &ar)),
        (true, None) => None,
        (false, _) => Some(Api::all_with(shared.client.clone(), &ar)),
    })
}

async fn get_live(shared: &Shared, id: &Identity) -> Result<Live, GcError> {
    let Some(api) = api_for(shared, id)? else {
        return Ok(Live::Absent);
    };
    match api.get_metadata(&id.name).await {
        Ok(obj) if obj.metadata.uid.as_deref() == Some(id.uid.as_str()) => {
            Ok(Live::Present(Box::new(obj.metadata)))
        }
        Ok(_) => Ok(Live::Absent),
        Err(e) if is_not_found(&e) => Ok(Live::Absent),
        Err(e) => Err(e.into()),
    }
}

/// The object `uid` turned out not to exist: drop it from the graph and re-check whatever
/// depended on it.
fn process_absent(shared: &Shared, uid: &str) {
    let work = {
        let mut g = shared.graph();
        g.mark_absent(uid);
        g.remove(uid)
    };
    shared.enqueue(work);
}

/// Upstream's attemptToDeleteItem.
pub async fn attempt_to_delete(shared: &Shared, uid: &str) -> Result<(), GcError> {
    let Some(node) = shared.graph().get(uid).cloned() else {
        return Ok(());
    };
    if node.virtual_node {
        // Only known as someone's owner: verify it exists. If it does, the watch will
        // report it; if not, its dependents are orphans of a missing owner.
        return match get_live(shared, &node.identity).await {
            Ok(Live::Absent) => {
                process_absent(shared, uid);
                Ok(())
            }
            Ok(Live::Present(_)) => Ok(()),
            Err(e) => Err(e),
        };
    }
    if node.deleting_dependents {
        return process_deleting_dependents(shared, &node.identity).await;
    }
    if node.being_deleted {
        // Deletion is under way; the dependents are handled once it is gone.
        return Ok(());
    }
    let meta = match get_live(shared, &node.identity).await? {
        Live::Absent => {
            process_absent(shared, uid);
            return Ok(());
        }
        Live::Present(m) => m,
    };
    let owners = meta.owner_references.clone().unwrap_or_default();
    if owners.is_empty() {
        return Ok(());
    }
    let mut solid = Vec::new();
    let mut dangling = Vec::new();
    let mut waiting = Vec::new();
    for r in &owners {
        match owner_state(shared, &node.identity, r).await? {
            OwnerState::Absent => dangling.push(r.uid.clone()),
            OwnerState::WaitingForDependents => waiting.push(r.uid.clone()),
            OwnerState::Solid => solid.push(r.uid.clone()),
        }
    }
    if !solid.is_empty() {
        // Still owned: just drop references to owners that are gone or waiting on us.
        if dangling.is_empty() && waiting.is_empty() {
            return Ok(());
        }
        let drop: Vec<String> = dangling.into_iter().chain(waiting).collect();
        return patch_owner_refs(shared, &node.identity, |refs| {
            refs.into_iter()
                .filter(|r| !drop.contains(&r.uid))
                .collect()
        })
        .await;
    }
    let has_dependents = !shared.graph().dependents(uid).is_empty();
    if !waiting.is_empty() && has_dependents {
        // An owner is being deleted in the foreground: this object must go the same way.
        let cycle = shared
            .graph()
            .dependents(uid)
            .iter()
            .any(|d| d.deleting_dependents);
        if cycle {
            // A dependent waits for us while we wait for it: stop blocking our owners.
            patch_owner_refs(shared, &node.identity, |refs| {
                refs.into_iter()
                    .map(|mut r| {
                        if waiting.contains(&r.uid) && r.block_owner_deletion == Some(true) {
                            r.block_owner_deletion = Some(false);
                        }
                        r
                    })
                    .collect()
            })
            .await?;
        }
        return delete_object(shared, &node.identity, PropagationPolicy::Foreground).await;
    }
    // Every owner is gone (or waiting with nothing below us): delete, honouring the
    // propagation this object's own finalizers ask for.
    let fins = meta.finalizers.clone().unwrap_or_default();
    let policy = if fins.iter().any(|f| f == ORPHAN) {
        PropagationPolicy::Orphan
    } else if fins.iter().any(|f| f == FOREGROUND) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    };
    delete_object(shared, &node.identity, policy).await
}

enum OwnerState {
    Absent,
    WaitingForDependents,
    Solid,
}

async fn owner_state(
    shared: &Shared,
    dependent: &Identity,
    r: &OwnerReference,
) -> Result<OwnerState, GcError> {
    if shared.graph().is_absent(&r.uid) {
        return Ok(OwnerState::Absent);
    }
    let id = Identity {
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
        namespace: dependent.namespace.clone(),
        name: r.name.clone(),
        uid: r.uid.clone(),
    };
    match get_live(shared, &id).await? {
        Live::Absent => {
            shared.graph().mark_absent(&r.uid);
            Ok(OwnerState::Absent)
        }
        Live::Present(m) => {
            let fg = m.finalizers.iter().flatten().any(|f| f == FOREGROUND);
            if m.deletion_timestamp.is_some() && fg {
                Ok(OwnerState::WaitingForDependents)
            } else {
                Ok(OwnerState::Solid)
            }
        }
    }
}

/// A foreground deletion: once no blocking dependent is left, remove the finalizer;
/// otherwise make sure the blocking dependents are being deleted.
async fn process_deleting_dependents(shared: &Shared, id: &Identity) -> Result<(), GcError> {
    let blocking = shared.graph().blocking_dependents(&id.uid);
    if blocking.is_empty() {
        return remove_finalizer(shared, id, FOREGROUND).await;
    }
    for dep in blocking {
        if !dep.deleting_dependents {
            shared.queue.add(super::graph::Work::AttemptToDelete(
                dep.identity.uid.clone(),
            ));
        }
    }
    Ok(())
}

/// Upstream's attemptToOrphan: remove references to the owner from all its dependents,
/// then its orphan finalizer.
pub async fn attempt_to_orphan(shared: &Shared, uid: &str) -> Result<(), GcError> {
    let Some(owner) = shared.graph().get(uid).cloned() else {
        return Ok(());
    };
    let dependents = shared.graph().dependents(uid);
    for dep in dependents {
        patch_owner_refs(shared, &dep.identity, |refs| {
            refs.into_iter().filter(|r| r.uid != uid).collect()
        })
        .await?;
    }
    remove_finalizer(shared, &owner.identity, ORPHAN).await
}

async fn delete_object(
    shared: &Shared,
    id: &Identity,
    policy: PropagationPolicy,
) -> Result<(), GcError> {
    let Some(api) = api_for(shared, id)? else {
        return Ok(());
    };
    let dp = DeleteParams {
        propagation_policy: Some(policy),
        preconditions: Some(Preconditions {
            uid: Some(id.uid.clone()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&id.name, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        // UID precondition failed: the object was replaced; the new one is not ours.
        Err(e) if is_conflict(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Read-modify-write the owner references of `id` (merge patch pinned to the
/// resourceVersion read).
async fn patch_owner_refs<F>(shared: &Shared, id: &Identity, f: F) -> Result<(), GcError>
where
    F: Fn(Vec<OwnerReference>) -> Vec<OwnerReference>,
{
    let Some(api) = api_for(shared, id)? else {
        return Ok(());
    };
    for _ in 0..CONFLICT_RETRIES {
        let meta = match api.get_metadata(&id.name).await {
            Ok(o) if o.metadata.uid.as_deref() == Some(id.uid.as_str()) => o.metadata,
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let old = meta.owner_references.clone().unwrap_or_default();
        let new = f(old.clone());
        if new == old {
            return Ok(());
        }
        let refs = if new.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::to_value(&new).unwrap_or(serde_json::Value::Null)
        };
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": meta.resource_version,
            "ownerReferences": refs,
        }});
        match api
            .patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(GcError::Conflicts(format!(
        "updating ownerReferences of {}",
        id.name
    )))
}

/// Remove `finalizer` from `id` (read-modify-write, pinned to the resourceVersion read).
async fn remove_finalizer(shared: &Shared, id: &Identity, finalizer: &str) -> Result<(), GcError> {
    let Some(api) = api_for(shared, id)? else {
        return Ok(());
    };
    for _ in 0..CONFLICT_RETRIES {
        let meta = match api.get_metadata(&id.name).await {
            Ok(o) if o.metadata.uid.as_deref() == Some(id.uid.as_str()) => o.metadata,
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let fins = meta.finalizers.clone().unwrap_or_default();
        if !fins.iter().any(|f| f == finalizer) {
            return Ok(());
        }
        let rest: Vec<&String> = fins.iter().filter(|f| *f != finalizer).collect();
        let patch = serde_json::json!({"metadata": {
            "resourceVersion": meta.resource_version,
            "finalizers": rest,
        }});
        match api
            .patch(&id.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(GcError::Conflicts(format!(
        "removing finalizer {finalizer} of {}",
        id.name
    )))
}

//! Storage object in-use protection (upstream's `pvc-protection` and `pv-protection`
//! controllers). The API server's admission puts [`PVC_FINALIZER`] on every claim and
//! [`PV_FINALIZER`] on every volume; deleting one only marks it, and this controller
//! drops the finalizer once the object is no longer in use:
//!
//! - a claim, once no scheduled pod (whatever its phase, since a finished pod's volume may
//!   still be mounted) names it in a `persistentVolumeClaim` volume, or in an `ephemeral`
//!   volume while the pod is not finished; checked against a live list before letting go,
//!   as upstream, since the cache may lag a pod just created;
//! - a volume, once it is not `Bound`.

use crate::Context;
use crate::util::{InformerEvent, WorkQueue, is_not_found, run_workers};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use std::sync::Arc;

pub const PVC_FINALIZER: &str = "kubernetes.io/pvc-protection";
pub const PV_FINALIZER: &str = "kubernetes.io/pv-protection";

const WORKERS: usize = 2;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Claim(String, String),
    Volume(String),
}

struct State {
    client: kube::Client,
    claims: crate::util::Informer<PersistentVolumeClaim>,
    volumes: crate::util::Informer<PersistentVolume>,
    pods: crate::util::Informer<Pod>,
}

/// Whether a deleted object still waits for `finalizer`.
fn releasing(meta: &kube::api::ObjectMeta, finalizer: &str) -> bool {
    meta.deletion_timestamp.is_some()
        && meta
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == finalizer))
}

/// Claims `pod` keeps in use (see the module comment).
pub fn claims_in_use(pod: &Pod) -> Vec<String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    if spec.node_name.as_deref().is_none_or(str::is_empty) {
        // The kubelet only sees scheduled pods, and refuses a claim being deleted.
        return Vec::new();
    }
    let finished = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Succeeded" || p == "Failed");
    spec.volumes
        .iter()
        .flatten()
        .filter_map(|v| match (&v.persistent_volume_claim, &v.ephemeral) {
            (Some(c), _) => Some(c.claim_name.clone()),
            // A generic ephemeral volume's claim is named `<pod>-<volume>`.
            (None, Some(_)) if !finished => Some(format!("{}-{}", pod.name_any(), v.name)),
            _ => None,
        })
        .collect()
}

/// Run the controller until a fatal error.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: WorkQueue<Key> = WorkQueue::new();
    let state = Arc::new(State {
        client: ctx.client.clone(),
        claims: ctx.informers.get::<PersistentVolumeClaim>(),
        volumes: ctx.informers.get::<PersistentVolume>(),
        pods: ctx.informers.get::<Pod>(),
    });
    let q = queue.clone();
    let _claims = state.claims.add_handler(move |ev| {
        if let InformerEvent::Apply { new, .. } = ev
            && releasing(&new.metadata, PVC_FINALIZER)
        {
            q.add(Key::Claim(
                new.namespace().unwrap_or_default(),
                new.name_any(),
            ));
        }
    });
    let q = queue.clone();
    let _volumes = state.volumes.add_handler(move |ev| {
        if let InformerEvent::Apply { new, .. } = ev
            && releasing(&new.metadata, PV_FINALIZER)
        {
            q.add(Key::Volume(new.name_any()));
        }
    });
    let q = queue.clone();
    let _pods = state.pods.add_handler(move |ev| {
        // A pod going away (or finishing) may free its claims.
        let pod = match ev {
            InformerEvent::Delete(old) => old,
            InformerEvent::Apply { new, .. } => new,
        };
        for claim in crate::util::podutil::claim_names(&pod) {
            q.add(Key::Claim(pod.namespace().unwrap_or_default(), claim));
        }
    });
    state.claims.wait_synced().await;
    state.volumes.wait_synced().await;
    state.pods.wait_synced().await;
    run_workers(queue, WORKERS, move |key: Key| {
        let state = state.clone();
        async move {
            match key {
                Key::Claim(ns, name) => sync_claim(&state, &ns, &name).await,
                Key::Volume(name) => sync_volume(&state, &name).await,
            }
            .map(|()| None)
        }
    })
    .await;
    Ok(())
}

async fn sync_claim(state: &State, ns: &str, name: &str) -> Result<(), kube::Error> {
    let Some(pvc) = state.claims.get(Some(ns), name) else {
        return Ok(());
    };
    if !releasing(&pvc.metadata, PVC_FINALIZER) {
        return Ok(());
    }
    let uses = |p: &Pod| claims_in_use(p).iter().any(|c| c == name);
    if state
        .pods
        .store()
        .state()
        .iter()
        .any(|p| p.namespace().as_deref() == Some(ns) && uses(p))
    {
        return Ok(());
    }
    let pods: Api<Pod> = Api::namespaced(state.client.clone(), ns);
    if pods
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(uses)
    {
        return Ok(());
    }
    let api: Api<PersistentVolumeClaim> = Api::namespaced(state.client.clone(), ns);
    remove_finalizer(&api, &pvc.metadata, PVC_FINALIZER).await
}

async fn sync_volume(state: &State, name: &str) -> Result<(), kube::Error> {
    let Some(pv) = state.volumes.get(None, name) else {
        return Ok(());
    };
    let bound = pv
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Bound");
    if !releasing(&pv.metadata, PV_FINALIZER) || bound {
        return Ok(());
    }
    let api: Api<PersistentVolume> = Api::all(state.client.clone());
    remove_finalizer(&api, &pv.metadata, PV_FINALIZER).await
}

/// Drop `finalizer`, guarded by the resourceVersion the decision was made on (a conflict
/// is retried with the newer object).
async fn remove_finalizer<K>(
    api: &Api<K>,
    meta: &kube::api::ObjectMeta,
    finalizer: &str,
) -> Result<(), kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let rest: Vec<&String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .collect();
    let patch = json!({"metadata": {"finalizers": rest,
        "resourceVersion": meta.resource_version}});
    let name = meta.name.clone().unwrap_or_default();
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Err(e) if is_not_found(&e) => Ok(()),
        r => r.map(|_| ()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pod(node: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "d"},
            "spec": {"nodeName": node, "containers": [], "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "tmp", "emptyDir": {}}]},
            "status": {"phase": phase}}))
        .unwrap()
    }

    #[test]
    fn scheduled_pods_hold_their_claims() {
        assert_eq!(
            claims_in_use(&pod("n1", "Running")),
            ["data", "web-scratch"]
        );
        assert_eq!(claims_in_use(&pod("", "Pending")), Vec::<String>::new());
        // A finished pod still holds a named claim (its volume may be mounted), not an
        // ephemeral one.
        assert_eq!(claims_in_use(&pod("n1", "Succeeded")), ["data"]);
        assert_eq!(
            crate::util::podutil::claim_names(&pod("", "Pending")),
            ["data", "web-scratch"]
        );
    }

    #[test]
    fn only_deleted_objects_with_the_finalizer_are_released() {
        let meta = |deleted: bool, finalizers: &[&str]| kube::api::ObjectMeta {
            deletion_timestamp: deleted
                .then(|| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default())),
            finalizers: Some(finalizers.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        assert!(releasing(&meta(true, &[PVC_FINALIZER]), PVC_FINALIZER));
        assert!(!releasing(&meta(false, &[PVC_FINALIZER]), PVC_FINALIZER));
        assert!(!releasing(&meta(true, &["other"]), PVC_FINALIZER));
    }
}

//! The PersistentVolume controller (upstream `persistentvolume-binder` plus a built-in
//! local-path provisioner, as k3s ships one):
//!
//! - a pending claim binds to the smallest available volume of its class that fits
//!   (access modes, size, selector), or to the volume reserved for it;
//! - a claim of a class whose provisioner is `rancher.io/local-path` gets a new hostPath
//!   volume under the provisioner's directory: at once for `Immediate` classes, once a
//!   pod using the claim is on a node for `WaitForFirstConsumer` ones;
//! - a volume whose claim is gone is `Released`; with reclaim policy `Delete` it is deleted
//!   (a local-path one with its directory), with `Retain` it stays for an admin;
//! - a bound claim whose volume is gone is `Lost`.

pub mod matching;

use crate::events::EventType;
use crate::util::{InformerEvent, WorkQueue, is_already_exists, is_not_found, run_workers};
use crate::{Context, Recorder};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use matching::*;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const WORKERS: usize = 2;
/// How long a claim waits before its binding is tried again when nothing fits yet.
const RECHECK: Duration = Duration::from_secs(15);

/// Settings of the controller.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Where the local-path provisioner makes volumes (on the node running the server's
    /// agent); `None` turns the provisioner off.
    pub local_path_dir: Option<PathBuf>,
    /// The node an `Immediate` local-path volume is made on (the server's own agent);
    /// without one such claims wait for a consumer like `WaitForFirstConsumer` ones.
    pub default_node: Option<String>,
}

/// What one work item is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Claim(String, String),
    Volume(String),
}

struct State {
    client: kube::Client,
    claims: crate::util::Informer<PersistentVolumeClaim>,
    volumes: crate::util::Informer<PersistentVolume>,
    classes: crate::util::Informer<StorageClass>,
    pods: crate::util::Informer<Pod>,
    recorder: Recorder,
    cfg: Config,
}

/// Run the controller until a fatal error.
pub async fn run(ctx: Context, cfg: Config) -> anyhow::Result<()> {
    let queue: WorkQueue<Key> = WorkQueue::new();
    let state = Arc::new(State {
        client: ctx.client.clone(),
        claims: ctx.informers.get::<PersistentVolumeClaim>(),
        volumes: ctx.informers.get::<PersistentVolume>(),
        classes: ctx.informers.get::<StorageClass>(),
        pods: ctx.informers.get::<Pod>(),
        recorder: ctx.recorder("persistentvolume-controller"),
        cfg,
    });
    let q = queue.clone();
    let _claims = state.claims.add_handler(move |ev| {
        let pvc = match ev {
            InformerEvent::Apply { new, .. } => new,
            InformerEvent::Delete(old) => {
                // Its volume may now be released.
                if let Some(v) = old.spec.as_ref().and_then(|s| s.volume_name.clone()) {
                    q.add(Key::Volume(v));
                }
                old
            }
        };
        q.add(Key::Claim(
            pvc.namespace().unwrap_or_default(),
            pvc.name_any(),
        ));
    });
    let (q, claims) = (queue.clone(), state.claims.clone());
    let _volumes = state.volumes.add_handler(move |ev| {
        let pv = match ev {
            InformerEvent::Apply { new, .. } => new,
            InformerEvent::Delete(old) => old,
        };
        q.add(Key::Volume(pv.name_any()));
        // A new or freed volume may fit any pending claim.
        for pvc in claims.store().state() {
            let pending = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .is_none_or(str::is_empty);
            if pending
                || pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref()) == Some(&pv.name_any())
            {
                q.add(Key::Claim(
                    pvc.namespace().unwrap_or_default(),
                    pvc.name_any(),
                ));
            }
        }
    });
    let q = queue.clone();
    let _pods = state.pods.add_handler(move |ev| {
        // A scheduled pod is the first consumer of its WaitForFirstConsumer claims.
        if let InformerEvent::Apply { new, .. } = ev
            && new
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
        {
            for claim in crate::util::podutil::claim_names(&new) {
                q.add(Key::Claim(new.namespace().unwrap_or_default(), claim));
            }
        }
    });
    state.claims.wait_synced().await;
    state.volumes.wait_synced().await;
    state.classes.wait_synced().await;
    state.pods.wait_synced().await;
    run_workers(queue, WORKERS, move |key: Key| {
        let state = state.clone();
        async move {
            match key {
                Key::Claim(ns, name) => sync_claim(&state, &ns, &name).await,
                Key::Volume(name) => sync_volume(&state, &name).await,
            }
        }
    })
    .await;
    Ok(())
}

/// Merge-patch claim `pvc`: its status (`status: true`, through the status subresource)
/// or the object.
async fn patch_claim(
    state: &State,
    pvc: &PersistentVolumeClaim,
    status: bool,
    patch: serde_json::Value,
) -> Result<(), kube::Error> {
    let api: Api<PersistentVolumeClaim> =
        Api::namespaced(state.client.clone(), &pvc.namespace().unwrap_or_default());
    let (name, params, patch) = (pvc.name_any(), PatchParams::default(), Patch::Merge(patch));
    if status {
        api.patch_status(&name, &params, &patch).await.map(|_| ())
    } else {
        api.patch(&name, &params, &patch).await.map(|_| ())
    }
}

async fn set_claim_phase(
    state: &State,
    pvc: &PersistentVolumeClaim,
    status: serde_json::Value,
) -> Result<(), kube::Error> {
    patch_claim(state, pvc, true, json!({"status": status})).await
}

async fn set_volume_phase(state: &State, name: &str, phase: &str) -> Result<(), kube::Error> {
    let api: Api<PersistentVolume> = Api::all(state.client.clone());
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": phase}})),
    )
    .await
    .map(|_| ())
}

fn claim_phase(pvc: &PersistentVolumeClaim) -> &str {
    pvc.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn volume_phase(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

async fn sync_claim(state: &State, ns: &str, name: &str) -> Result<Option<Duration>, kube::Error> {
    let Some(pvc) = state.claims.get(Some(ns), name) else {
        return Ok(None);
    };
    if pvc.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let bound_name = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    if let Some(volume) = bound_name {
        return match state.volumes.get(None, &volume) {
            Some(pv) => finish_binding(state, &pv, &pvc).await.map(|_| None),
            None if claim_phase(&pvc) == "Bound" => {
                // Its volume is gone: data is lost, as upstream reports it.
                state.recorder.publish_for(
                    &*pvc,
                    EventType::Warning,
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                );
                set_claim_phase(state, &pvc, json!({"phase": "Lost"}))
                    .await
                    .map(|_| None)
            }
            // Pre-bound to a volume that does not exist yet.
            None => Ok(Some(RECHECK)),
        };
    }
    let volumes: Vec<Arc<PersistentVolume>> = state.volumes.store().state();
    if let Some(pv) = best_volume(volumes.iter().map(|v| &**v), &pvc) {
        return finish_binding(state, pv, &pvc).await.map(|_| None);
    }
    provision_or_wait(state, &pvc).await
}

/// Bind `pv` and `pvc` to each other, each step idempotent: the volume's claimRef, its
/// phase, the claim's volumeName and annotations, the claim's phase and capacity.
async fn finish_binding(
    state: &State,
    pv: &PersistentVolume,
    pvc: &PersistentVolumeClaim,
) -> Result<(), kube::Error> {
    let pv_name = pv.name_any();
    let pvs: Api<PersistentVolume> = Api::all(state.client.clone());
    let ref_uid = pv
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .and_then(|r| r.uid.clone())
        .unwrap_or_default();
    if ref_uid.is_empty() {
        let patch = json!({"spec": {"claimRef": claim_ref(pvc)}});
        pvs.patch(&pv_name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
    } else if Some(ref_uid.as_str()) != pvc.metadata.uid.as_deref() {
        // Taken by another claim meanwhile (or the claim names a volume it cannot have).
        return Ok(());
    }
    if volume_phase(pv) != "Bound" {
        set_volume_phase(state, &pv_name, "Bound").await?;
    }
    let annotations = pvc.metadata.annotations.clone().unwrap_or_default();
    let named = pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref()) == Some(pv_name.as_str());
    if !named || !annotations.contains_key(BIND_COMPLETED) {
        let mut ann = json!({BIND_COMPLETED: "yes"});
        if !named {
            ann[BOUND_BY_CONTROLLER] = json!("yes");
        }
        let patch = json!({"metadata": {"annotations": ann}, "spec": {"volumeName": pv_name}});
        patch_claim(state, pvc, false, patch).await?;
    }
    if claim_phase(pvc) != "Bound" {
        let spec = pv.spec.clone().unwrap_or_default();
        set_claim_phase(
            state,
            pvc,
            json!({"phase": "Bound", "accessModes": spec.access_modes, "capacity": spec.capacity}),
        )
        .await?;
    }
    Ok(())
}

/// No volume fits: provision one if the class is ours, else say why the claim waits.
async fn provision_or_wait(
    state: &State,
    pvc: &PersistentVolumeClaim,
) -> Result<Option<Duration>, kube::Error> {
    let class_name = claim_class(pvc);
    let class = (!class_name.is_empty())
        .then(|| state.classes.get(None, class_name))
        .flatten();
    let Some(class) = class else {
        let msg = if class_name.is_empty() {
            "no persistent volumes available for this claim and no storage class is set".to_string()
        } else {
            format!("storageclass.storage.k8s.io \"{class_name}\" not found")
        };
        state
            .recorder
            .publish_for(pvc, EventType::Normal, "FailedBinding", &msg);
        return Ok(Some(RECHECK));
    };
    let (Some(base), true) = (
        state.cfg.local_path_dir.as_ref(),
        class.provisioner == LOCAL_PATH_PROVISIONER,
    ) else {
        state.recorder.publish_for(
            pvc,
            EventType::Normal,
            "ExternalProvisioning",
            &format!(
                "Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.",
                class.provisioner
            ),
        );
        return Ok(Some(RECHECK));
    };
    let wait = class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer");
    let node = pvc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SELECTED_NODE).cloned())
        .or_else(|| first_consumer_node(state, pvc));
    let node = match node.or_else(|| (!wait).then(|| state.cfg.default_node.clone()).flatten()) {
        Some(n) => n,
        None => {
            state.recorder.publish_for(
                pvc,
                EventType::Normal,
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
            );
            return Ok(None);
        }
    };
    let ann = pvc.metadata.annotations.clone().unwrap_or_default();
    if !ann.contains_key(STORAGE_PROVISIONER) {
        let patch = json!({"metadata": {"annotations": {
            STORAGE_PROVISIONER: LOCAL_PATH_PROVISIONER,
            BETA_STORAGE_PROVISIONER: LOCAL_PATH_PROVISIONER,
        }}});
        patch_claim(state, pvc, false, patch).await?;
    }
    let pv = local_path_volume(pvc, &class, &node, base);
    let pvs: Api<PersistentVolume> = Api::all(state.client.clone());
    match pvs.create(&PostParams::default(), &pv).await {
        Ok(_) => state.recorder.publish_for(
            pvc,
            EventType::Normal,
            "ProvisioningSucceeded",
            &format!("Successfully provisioned volume {}", pv.name_any()),
        ),
        Err(e) if is_already_exists(&e) => {}
        Err(e) => return Err(e),
    }
    Ok(None)
}

/// The node of a scheduled pod that uses `pvc`.
fn first_consumer_node(state: &State, pvc: &PersistentVolumeClaim) -> Option<String> {
    let ns = pvc.namespace().unwrap_or_default();
    let name = pvc.name_any();
    state
        .pods
        .store()
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| crate::util::podutil::claim_names(p).contains(&name))
        .find_map(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty())
        })
}

async fn sync_volume(state: &State, name: &str) -> Result<Option<Duration>, kube::Error> {
    let Some(pv) = state.volumes.get(None, name) else {
        return Ok(None);
    };
    if pv.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let claim = pv.spec.as_ref().and_then(|s| s.claim_ref.clone());
    let Some(claim) = claim else {
        if volume_phase(&pv) != "Available" {
            set_volume_phase(state, name, "Available").await?;
        }
        return Ok(None);
    };
    let uid = claim.uid.clone().unwrap_or_default();
    if uid.is_empty() {
        // Reserved for a claim that may not exist yet.
        if volume_phase(&pv) != "Available" {
            set_volume_phase(state, name, "Available").await?;
        }
        return Ok(None);
    }
    // Ask the API, not the cache, before giving the volume up.
    let ns = claim.namespace.clone().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(state.client.clone(), &ns);
    let live = claims
        .get_opt(claim.name.as_deref().unwrap_or_default())
        .await?;
    if live.as_ref().and_then(|c| c.metadata.uid.as_deref()) == Some(uid.as_str()) {
        if let Some(pvc) = live
            && claim_phase(&pvc) == "Bound"
            && volume_phase(&pv) != "Bound"
        {
            set_volume_phase(state, name, "Bound").await?;
        }
        return Ok(None);
    }
    // Its claim is gone: reclaim.
    let policy = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain");
    if policy != "Delete" {
        if volume_phase(&pv) != "Released" {
            set_volume_phase(state, name, "Released").await?;
        }
        return Ok(None);
    }
    // Released first, as upstream: the pv-protection finalizer lets a deleted volume go
    // only once it is no longer Bound.
    if volume_phase(&pv) != "Released" {
        set_volume_phase(state, name, "Released").await?;
    }
    let ours = pv
        .annotations()
        .get(PROVISIONED_BY)
        .is_some_and(|p| p == LOCAL_PATH_PROVISIONER);
    if ours
        && let Some(dir) = pv
            .spec
            .as_ref()
            .and_then(|s| s.host_path.as_ref())
            .map(|h| PathBuf::from(&h.path))
        && state
            .cfg
            .local_path_dir
            .as_ref()
            .is_some_and(|base| dir.starts_with(base))
        && let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(volume = name, "removing {}: {e}", dir.display());
        return Ok(Some(RECHECK));
    }
    let pvs: Api<PersistentVolume> = Api::all(state.client.clone());
    match pvs.delete(name, &Default::default()).await {
        Ok(_) => Ok(None),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

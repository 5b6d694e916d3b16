//! The PersistentVolume controller against an in-process API server: static binding of a
//! claim to the smallest fitting volume, the local-path provisioner for a
//! `WaitForFirstConsumer` class (nothing until a pod using the claim is on a node), and
//! reclaiming: `Delete` removes a provisioned volume and its directory, `Retain` keeps the
//! volume as `Released`. With them runs storage-object-in-use protection: a claim a pod
//! uses, or a Bound volume, stays Terminating when deleted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use r8s_controllers::persistentvolume::{self, Config};
use r8s_controllers::volumeprotection;
use serde_json::{Value, json};
use std::path::PathBuf;
use support::{bind, namespace, run, start, wait_for};

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("manifest")
}

fn claim(name: &str, class: &str, size: &str) -> PersistentVolumeClaim {
    obj(json!({"metadata": {"name": name}, "spec": {
        "storageClassName": class, "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}}}}))
}

fn volume(name: &str, size: &str, policy: &str) -> PersistentVolume {
    obj(json!({"metadata": {"name": name}, "spec": {
        "storageClassName": "manual", "accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": size}, "persistentVolumeReclaimPolicy": policy,
        "hostPath": {"path": format!("/tmp/r8s-pv-test/{name}")}}}))
}

/// The PersistentVolume and protection controllers, running until dropped.
fn controllers(client: &kube::Client, cfg: Config) -> [support::Running; 2] {
    [
        run(client, move |ctx| persistentvolume::run(ctx, cfg)),
        run(client, volumeprotection::run),
    ]
}

async fn phase_of_claim(api: &Api<PersistentVolumeClaim>, name: &str) -> Option<String> {
    api.get(name).await.ok()?.status?.phase
}

/// Wait until claim `name` is Bound; the claim.
async fn wait_bound(api: &Api<PersistentVolumeClaim>, name: &str) -> PersistentVolumeClaim {
    wait_for(&format!("claim {name} Bound"), 10, || async {
        let c = api.get(name).await.ok()?;
        (c.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(c)
    })
    .await
}

async fn phase_of_volume(api: &Api<PersistentVolume>, name: &str) -> Option<String> {
    api.get_opt(name).await.ok()??.status?.phase
}

#[tokio::test]
async fn claims_bind_to_the_smallest_fitting_volume_and_retained_volumes_are_released() {
    let (_s, client) = start().await;
    namespace(&client, "pv").await;
    let _c = controllers(&client, Config::default());
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    for (name, size) in [("pv-big", "10Gi"), ("pv-small", "1Gi"), ("pv-fit", "3Gi")] {
        pvs.create(&PostParams::default(), &volume(name, size, "Retain"))
            .await
            .unwrap();
    }
    wait_for("volumes Available", 10, || async {
        (phase_of_volume(&pvs, "pv-fit").await.as_deref() == Some("Available")).then_some(())
    })
    .await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "pv");
    pvcs.create(&PostParams::default(), &claim("data", "manual", "2Gi"))
        .await
        .unwrap();
    let bound = wait_bound(&pvcs, "data").await;
    assert_eq!(bound.spec.unwrap().volume_name.as_deref(), Some("pv-fit"));
    let status = bound.status.unwrap();
    assert_eq!(status.capacity.unwrap()["storage"].0, "3Gi");
    let ann = bound.metadata.annotations.unwrap();
    assert_eq!(ann["pv.kubernetes.io/bind-completed"], "yes");
    assert_eq!(ann["pv.kubernetes.io/bound-by-controller"], "yes");
    let pv = pvs.get("pv-fit").await.unwrap();
    let r = pv.spec.unwrap().claim_ref.unwrap();
    assert_eq!(
        (r.namespace.as_deref(), r.name.as_deref()),
        (Some("pv"), Some("data"))
    );
    wait_for("volume Bound", 10, || async {
        (phase_of_volume(&pvs, "pv-fit").await.as_deref() == Some("Bound")).then_some(())
    })
    .await;

    // Nothing fits: the claim stays Pending.
    pvcs.create(&PostParams::default(), &claim("huge", "manual", "50Gi"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        phase_of_claim(&pvcs, "huge").await.as_deref(),
        Some("Pending")
    );

    // Retain: the volume outlives its claim as Released and is not bound again.
    pvcs.delete("data", &DeleteParams::default()).await.unwrap();
    wait_for("volume Released", 10, || async {
        (phase_of_volume(&pvs, "pv-fit").await.as_deref() == Some("Released")).then_some(())
    })
    .await;
    pvcs.create(&PostParams::default(), &claim("again", "manual", "2Gi"))
        .await
        .unwrap();
    let again = wait_bound(&pvcs, "again").await;
    assert_eq!(again.spec.unwrap().volume_name.as_deref(), Some("pv-big"));
}

#[tokio::test]
async fn local_path_volumes_are_provisioned_for_the_first_consumer_and_deleted_with_the_claim() {
    let (_s, client) = start().await;
    namespace(&client, "lp").await;
    let base = tempfile::tempdir().unwrap();
    let cfg = Config {
        local_path_dir: Some(base.path().to_path_buf()),
        default_node: None,
    };
    let _c = controllers(&client, cfg);
    let classes: Api<StorageClass> = Api::all(client.clone());
    classes
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "local-path"},
                "provisioner": "rancher.io/local-path",
                "volumeBindingMode": "WaitForFirstConsumer", "reclaimPolicy": "Delete"})),
        )
        .await
        .unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "lp");
    pvcs.create(&PostParams::default(), &claim("data", "local-path", "1Gi"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    assert!(
        pvs.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        phase_of_claim(&pvcs, "data").await.as_deref(),
        Some("Pending")
    );

    // A pod using the claim lands on node-a: the volume is made there.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "lp");
    pods.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "user"}, "spec": {
            "containers": [{"name": "c", "image": "busybox:1.36"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}})),
    )
    .await
    .unwrap();
    bind(&pods, "user", "node-a").await.unwrap();
    let bound = wait_bound(&pvcs, "data").await;
    let uid = bound.metadata.uid.clone().unwrap();
    let pv_name = bound.spec.unwrap().volume_name.unwrap();
    assert_eq!(pv_name, format!("pvc-{uid}"));
    let pv = pvs.get(&pv_name).await.unwrap();
    assert_eq!(
        pv.metadata.annotations.as_ref().unwrap()["pv.kubernetes.io/provisioned-by"],
        "rancher.io/local-path"
    );
    let spec = pv.spec.unwrap();
    let dir = PathBuf::from(spec.host_path.unwrap().path);
    assert_eq!(dir, base.path().join(format!("pvc-{uid}_lp_data")));
    let affinity = serde_json::to_value(spec.node_affinity).unwrap();
    assert_eq!(
        affinity["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
        json!(["node-a"])
    );
    assert_eq!(
        bound.metadata.annotations.as_ref().unwrap()["volume.kubernetes.io/storage-provisioner"],
        "rancher.io/local-path"
    );

    // Both carry their protection finalizer from admission.
    let finalizers = |m: &kube::api::ObjectMeta| m.finalizers.clone().unwrap_or_default();
    assert_eq!(
        finalizers(&bound.metadata),
        [volumeprotection::PVC_FINALIZER]
    );
    assert_eq!(finalizers(&pv.metadata), [volumeprotection::PV_FINALIZER]);

    // Delete: the claim stays Terminating while the pod uses it; once the pod is gone,
    // the claim goes, then the volume and its directory.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("file"), "data").unwrap();
    pvcs.delete("data", &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let held = pvcs.get("data").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(
        phase_of_claim(&pvcs, "data").await.as_deref(),
        Some("Bound")
    );
    pods.delete("user", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_for("volume deleted", 10, || async {
        pvs.get_opt(&pv_name).await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(!dir.exists());
}

#[tokio::test]
async fn a_bound_claim_whose_volume_disappears_is_lost() {
    let (_s, client) = start().await;
    namespace(&client, "lost").await;
    let _c = controllers(&client, Config::default());
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    pvs.create(&PostParams::default(), &volume("pv-gone", "1Gi", "Retain"))
        .await
        .unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "lost");
    pvcs.create(&PostParams::default(), &claim("data", "manual", "1Gi"))
        .await
        .unwrap();
    wait_for("claim Bound", 10, || async {
        (phase_of_claim(&pvcs, "data").await.as_deref() == Some("Bound")).then_some(())
    })
    .await;
    // A Bound volume is protected: deleting it only marks it…
    pvs.delete("pv-gone", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let held = pvs.get("pv-gone").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(
        phase_of_claim(&pvcs, "data").await.as_deref(),
        Some("Bound")
    );
    // …until an admin drops the finalizer by hand: the claim is then Lost.
    pvs.patch(
        "pv-gone",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    wait_for("claim Lost", 10, || async {
        (phase_of_claim(&pvcs, "data").await.as_deref() == Some("Lost")).then_some(())
    })
    .await;
}

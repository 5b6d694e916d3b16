//! The garbage collector: background, foreground and orphan cascades over owner
//! references (ConfigMaps owning ConfigMaps, built by hand), and dependents of owners that
//! never existed.

use crate::support::{namespace, run, start, wait_for};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

async fn cm(api: &Api<ConfigMap>, name: &str, owners: &[&ConfigMap], fins: &[&str]) -> ConfigMap {
    let refs: Vec<serde_json::Value> = owners
        .iter()
        .map(|o| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "name": o.metadata.name, "uid": o.metadata.uid,
                   "blockOwnerDeletion": true})
        })
        .collect();
    let obj: ConfigMap = serde_json::from_value(json!({"metadata": {
        "name": name, "ownerReferences": refs, "finalizers": fins}}))
    .expect("cm");
    api.create(&PostParams::default(), &obj)
        .await
        .expect("create cm")
}

async fn gone(api: &Api<ConfigMap>, name: &str) -> Option<()> {
    matches!(api.get_opt(name).await, Ok(None)).then_some(())
}

async fn setup(ns: &str) -> (r8s_apiserver::testing::TestServer, Client, Api<ConfigMap>) {
    let (server, client) = start().await;
    namespace(&client, ns).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    (server, client, api)
}

#[tokio::test]
async fn background_deletion_collects_dependents() {
    let (_server, client, api) = setup("gc-bg").await;
    let _gc = run(&client, r8s_controllers::garbage_collector::run);
    let owner = cm(&api, "owner", &[], &[]).await;
    let mid = cm(&api, "mid", &[&owner], &[]).await;
    cm(&api, "leaf", &[&mid], &[]).await;
    // A second owner keeps this one alive.
    let other = cm(&api, "other", &[], &[]).await;
    cm(&api, "shared", &[&owner, &other], &[]).await;
    api.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    assert!(gone(&api, "owner").await.is_some(), "owner deleted at once");
    wait_for("mid collected", 30, || gone(&api, "mid")).await;
    wait_for("leaf collected", 30, || gone(&api, "leaf")).await;
    // The shared dependent survives, with the dangling reference removed.
    let shared = wait_for("shared dependent loses dangling reference", 30, || async {
        let s = api.get("shared").await.ok()?;
        (s.metadata.owner_references.as_ref().map(|r| r.len()) == Some(1)).then_some(s)
    })
    .await;
    let refs = shared.metadata.owner_references.unwrap_or_default();
    assert_eq!(refs[0].uid, other.metadata.uid.unwrap_or_default());
}

#[tokio::test]
async fn dependents_of_missing_owners_are_collected() {
    let (_server, client, api) = setup("gc-missing").await;
    let ghost: ConfigMap = serde_json::from_value(json!({"metadata": {
        "name": "ghost", "uid": "00000000-0000-0000-0000-000000000001"}}))
    .expect("cm");
    // Created before the collector starts: found on its initial list.
    cm(&api, "orphan-before", &[&ghost], &[]).await;
    let _gc = run(&client, r8s_controllers::garbage_collector::run);
    wait_for("dependent of missing owner collected", 30, || {
        gone(&api, "orphan-before")
    })
    .await;
    cm(&api, "orphan-after", &[&ghost], &[]).await;
    wait_for("dependent created later collected", 30, || {
        gone(&api, "orphan-after")
    })
    .await;
}

#[tokio::test]
async fn foreground_deletion_waits_for_dependents() {
    let (_server, client, api) = setup("gc-fg").await;
    let _gc = run(&client, r8s_controllers::garbage_collector::run);
    let owner = cm(&api, "owner", &[], &[]).await;
    let mid = cm(&api, "mid", &[&owner], &[]).await;
    // The leaf is held by a finalizer, so the whole chain must wait for it.
    cm(&api, "leaf", &[&mid], &["example.com/hold"]).await;
    api.delete("owner", &DeleteParams::foreground())
        .await
        .expect("delete owner");
    let leaf = wait_for("leaf being deleted", 30, || async {
        let l = api.get("leaf").await.ok()?;
        l.metadata.deletion_timestamp.is_some().then_some(l)
    })
    .await;
    assert!(leaf.metadata.deletion_timestamp.is_some());
    let mid_now = api.get("mid").await.expect("mid still there");
    assert!(mid_now.metadata.deletion_timestamp.is_some());
    assert!(
        mid_now
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    let owner_now = api.get("owner").await.expect("owner still there");
    assert!(
        owner_now
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_string())
    );
    api.patch(
        "leaf",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release leaf");
    wait_for("leaf gone", 30, || gone(&api, "leaf")).await;
    wait_for("mid gone", 30, || gone(&api, "mid")).await;
    wait_for("owner gone", 30, || gone(&api, "owner")).await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents() {
    let (_server, client, api) = setup("gc-orphan").await;
    let _gc = run(&client, r8s_controllers::garbage_collector::run);
    let owner = cm(&api, "owner", &[], &[]).await;
    cm(&api, "d1", &[&owner], &[]).await;
    cm(&api, "d2", &[&owner], &[]).await;
    api.delete("owner", &DeleteParams::orphan())
        .await
        .expect("delete owner");
    wait_for("owner gone", 30, || gone(&api, "owner")).await;
    for d in ["d1", "d2"] {
        let dep = api.get(d).await.expect("dependent kept");
        assert!(
            dep.metadata.owner_references.unwrap_or_default().is_empty(),
            "{d} still references its owner"
        );
        assert!(dep.metadata.deletion_timestamp.is_none());
    }
}

/// The shapes `kubectl delete deployment` produces: Deployment -> ReplicaSet -> Pods (made
/// by hand here, no workload controllers), with each cascade mode.
#[tokio::test]
async fn deployment_shaped_cascades() {
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use k8s_openapi::api::core::v1::Pod;
    let (_server, client) = start().await;
    namespace(&client, "gc-deploy").await;
    let _gc = run(&client, r8s_controllers::garbage_collector::run);
    let deps: Api<Deployment> = Api::namespaced(client.clone(), "gc-deploy");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), "gc-deploy");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "gc-deploy");
    let pp = PostParams::default();
    let owned = |kind: &str, name: &str, uid: &Option<String>, api_version: &str| {
        json!([{"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true}])
    };
    let make = |name: String| {
        let deps = deps.clone();
        let rss = rss.clone();
        let pods = pods.clone();
        let pp = pp.clone();
        async move {
            let labels = json!({"app": name});
            let d: Deployment = serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
            }))
            .expect("deployment");
            let d = deps.create(&pp, &d).await.expect("create deployment");
            let rs: ReplicaSet = serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-rs"), "labels": labels,
                             "ownerReferences": owned("Deployment", &name, &d.metadata.uid, "apps/v1")},
                "spec": {"selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}
            }))
            .expect("rs");
            let rs = rss.create(&pp, &rs).await.expect("create rs");
            for i in 0..2 {
                let p: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("{name}-pod-{i}"), "labels": labels,
                                 "ownerReferences": owned("ReplicaSet", &format!("{name}-rs"), &rs.metadata.uid, "apps/v1")},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}
                }))
                .expect("pod");
                pods.create(&pp, &p).await.expect("create pod");
            }
        }
    };
    let pods_of = |name: &'static str| {
        let pods = pods.clone();
        async move {
            pods.list(&kube::api::ListParams::default().labels(&format!("app={name}")))
                .await
                .map(|l| l.items.len())
                .unwrap_or(usize::MAX)
        }
    };

    // Background (kubectl's default): the deployment goes at once, then the rest.
    make("bg".into()).await;
    deps.delete("bg", &DeleteParams::background())
        .await
        .expect("delete");
    assert!(matches!(deps.get_opt("bg").await, Ok(None)));
    wait_for("bg replicaset collected", 30, || async {
        matches!(rss.get_opt("bg-rs").await, Ok(None)).then_some(())
    })
    .await;
    wait_for("bg pods collected", 30, || async {
        (pods_of("bg").await == 0).then_some(())
    })
    .await;

    // Foreground: pods, then the replicaset, then the deployment.
    make("fg".into()).await;
    deps.delete("fg", &DeleteParams::foreground())
        .await
        .expect("delete");
    wait_for("fg deployment gone", 30, || async {
        matches!(deps.get_opt("fg").await, Ok(None)).then_some(())
    })
    .await;
    assert!(matches!(rss.get_opt("fg-rs").await, Ok(None)));
    assert_eq!(pods_of("fg").await, 0);

    // Orphan: the deployment goes, the replicaset and pods stay, unowned by it.
    make("or".into()).await;
    deps.delete("or", &DeleteParams::orphan())
        .await
        .expect("delete");
    wait_for("orphaning deployment gone", 30, || async {
        matches!(deps.get_opt("or").await, Ok(None)).then_some(())
    })
    .await;
    let rs = rss.get("or-rs").await.expect("replicaset kept");
    assert!(rs.metadata.owner_references.unwrap_or_default().is_empty());
    assert_eq!(pods_of("or").await, 2);
}

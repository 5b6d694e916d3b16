//! The ReplicaSet controller against an in-process API server: scale up/down, adoption and
//! release, never overshooting, deletion preference, terminating pods.

mod support;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use r8s_controllers::Context;
use serde_json::json;
use support::{Kubelet, bind, is_active, is_ready, namespace, start, wait_for};

fn rs_manifest(name: &str, app: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app, "tier": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }))
    .expect("rs manifest")
}

fn start_controller(client: &Client) {
    let ctx = Context::new(client.clone());
    tokio::spawn(r8s_controllers::replicaset::run(ctx));
}

/// Active pods in `ns` with label `app=<app>`.
async fn active_pods(client: &Client, ns: &str, app: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("list pods");
    list.items.into_iter().filter(is_active).collect()
}

fn owner_uid(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

async fn scale(api: &Api<ReplicaSet>, name: &str, n: i32) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": n}})),
    )
    .await
    .expect("scale");
}

/// Wait until the ReplicaSet reports `n` replicas, all ready and available, for its
/// current generation.
async fn wait_status(api: &Api<ReplicaSet>, name: &str, n: i32) -> ReplicaSet {
    wait_for(&format!("{name} status {n}/{n}"), 30, || async {
        let rs = api.get(name).await.ok()?;
        let st = rs.status.clone()?;
        (st.replicas == n
            && st.ready_replicas.unwrap_or(0) == n
            && st.available_replicas.unwrap_or(0) == n
            && st.fully_labeled_replicas.unwrap_or(0) == n
            && st.observed_generation == rs.metadata.generation)
            .then_some(rs)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn scales_up_and_down() {
    let (_server, client) = start().await;
    namespace(&client, "rs-scale").await;
    Kubelet {
        node: Some("node-a".into()),
        ..Default::default()
    }
    .spawn(client.clone(), "rs-scale");
    start_controller(&client);
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), "rs-scale");
    let rs = api
        .create(&PostParams::default(), &rs_manifest("web", "web", 3))
        .await
        .expect("create rs");
    let uid = rs.metadata.uid.clone().expect("uid");
    wait_status(&api, "web", 3).await;
    let pods = active_pods(&client, "rs-scale", "web").await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert!(
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("web-"))
        );
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-"));
        let r = &p.metadata.owner_references.as_ref().expect("owner refs")[0];
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.uid.as_str()),
            ("ReplicaSet", "web", uid.as_str())
        );
        assert_eq!(r.controller, Some(true));
        assert_eq!(r.block_owner_deletion, Some(true));
        assert_eq!(
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("tier"))
                .map(String::as_str),
            Some("web")
        );
    }

    scale(&api, "web", 7).await;
    wait_status(&api, "web", 7).await;
    assert_eq!(active_pods(&client, "rs-scale", "web").await.len(), 7);

    scale(&api, "web", 2).await;
    wait_status(&api, "web", 2).await;
    // Deleted pods were bound, so they terminated gracefully and the kubelet finished them.
    wait_for("surplus pods gone", 30, || async {
        let api: Api<Pod> = Api::namespaced(client.clone(), "rs-scale");
        let all = api
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        (all.items.len() == 2).then_some(())
    })
    .await;

    scale(&api, "web", 0).await;
    wait_for("scaled to zero", 30, || async {
        let rs = api.get("web").await.ok()?;
        let st = rs.status?;
        (st.replicas == 0 && st.observed_generation == rs.metadata.generation).then_some(())
    })
    .await;
    assert!(active_pods(&client, "rs-scale", "web").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn adopts_orphans_and_releases_mismatches() {
    let (_server, client) = start().await;
    namespace(&client, "rs-adopt").await;
    Kubelet::default().spawn(client.clone(), "rs-adopt");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "rs-adopt");
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &orphan)
        .await
        .expect("create orphan");
    start_controller(&client);
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), "rs-adopt");
    let rs = api
        .create(&PostParams::default(), &rs_manifest("db", "db", 2))
        .await
        .expect("create rs");
    let uid = rs.metadata.uid.clone().expect("uid");
    // The orphan is adopted, so only one pod is created. It lacks the template's `tier`
    // label, so it is not fully labeled.
    wait_for("adoption", 30, || async {
        let p = pods.get("orphan").await.ok()?;
        (owner_uid(&p).as_deref() == Some(uid.as_str())).then_some(())
    })
    .await;
    wait_for("2 replicas, 1 fully labeled", 30, || async {
        let st = api.get("db").await.ok()?.status?;
        (st.replicas == 2 && st.fully_labeled_replicas == Some(1) && st.ready_replicas == Some(2))
            .then_some(())
    })
    .await;
    assert_eq!(active_pods(&client, "rs-adopt", "db").await.len(), 2);

    // Relabel the adopted pod: it is released and replaced.
    pods.patch(
        "orphan",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "elsewhere"}}})),
    )
    .await
    .expect("relabel");
    wait_for("release", 30, || async {
        let p = pods.get("orphan").await.ok()?;
        owner_uid(&p).is_none().then_some(())
    })
    .await;
    wait_for("replacement", 30, || async {
        let st = api.get("db").await.ok()?.status?;
        let owned = active_pods(&client, "rs-adopt", "db").await;
        (st.replicas == 2
            && st.fully_labeled_replicas == Some(2)
            && owned.len() == 2
            && owned
                .iter()
                .all(|p| owner_uid(p).as_deref() == Some(uid.as_str())))
        .then_some(())
    })
    .await;
    // The released pod keeps running, unowned.
    let released = pods.get("orphan").await.expect("released pod");
    assert!(released.metadata.deletion_timestamp.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn never_overshoots_while_scaling_up() {
    let (_server, client) = start().await;
    namespace(&client, "rs-burst").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "rs-burst");
    // Track the number of live pods from the watch (every intermediate state).
    let max_seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tracker = {
        let pods = pods.clone();
        let max_seen = max_seen.clone();
        tokio::spawn(async move {
            let mut live = std::collections::HashSet::new();
            let mut stream = watcher(pods, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(Ok(ev)) = stream.next().await {
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        let name = p.metadata.name.clone().unwrap_or_default();
                        if is_active(&p) {
                            live.insert(name);
                        } else {
                            live.remove(&name);
                        }
                    }
                    watcher::Event::Delete(p) => {
                        live.remove(&p.metadata.name.clone().unwrap_or_default());
                    }
                    _ => {}
                }
                max_seen.fetch_max(live.len(), std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    start_controller(&client);
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), "rs-burst");
    api.create(&PostParams::default(), &rs_manifest("burst", "burst", 25))
        .await
        .expect("create rs");
    wait_for("25 pods", 60, || async {
        let st = api.get("burst").await.ok()?.status?;
        (st.replicas == 25).then_some(())
    })
    .await;
    // Several resyncs happen meanwhile (each pod creation queues the ReplicaSet); none may
    // create beyond the target.
    scale(&api, "burst", 30).await;
    wait_for("30 pods", 60, || async {
        let st = api.get("burst").await.ok()?.status?;
        (st.replicas == 30).then_some(())
    })
    .await;
    wait_for("watch caught up", 30, || async {
        (max_seen.load(std::sync::atomic::Ordering::SeqCst) >= 30).then_some(())
    })
    .await;
    assert_eq!(
        pods.list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        30
    );
    assert_eq!(max_seen.load(std::sync::atomic::Ordering::SeqCst), 30);
    tracker.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_down_prefers_unready_and_ignores_terminating() {
    let (_server, client) = start().await;
    namespace(&client, "rs-pref").await;
    start_controller(&client);
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), "rs-pref");
    api.create(&PostParams::default(), &rs_manifest("pref", "pref", 3))
        .await
        .expect("create rs");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "rs-pref");
    let created = wait_for("3 pods", 30, || async {
        let p = active_pods(&client, "rs-pref", "pref").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    // Bind all three and make two of them ready: the unready one must go first.
    let names: Vec<String> = created
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    for n in &names {
        bind(&pods, n, "node-a").await.expect("bind");
    }
    for n in &names[..2] {
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        pods.patch_status(
            n,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now}]}})),
        )
        .await
        .expect("ready");
    }
    wait_for("2 ready", 30, || async {
        let st = api.get("pref").await.ok()?.status?;
        (st.ready_replicas == Some(2)).then_some(())
    })
    .await;
    scale(&api, "pref", 2).await;
    let unready = names[2].clone();
    wait_for("unready pod terminating", 30, || async {
        let p = pods.get(&unready).await.ok()?;
        p.metadata.deletion_timestamp.is_some().then_some(())
    })
    .await;
    for n in &names[..2] {
        let p = pods.get(n).await.expect("ready pod kept");
        assert!(
            p.metadata.deletion_timestamp.is_none(),
            "{n} should be kept"
        );
    }
    // A terminating pod no longer counts: deleting a ready pod gets it replaced although it
    // lingers (nothing finishes its termination here).
    pods.delete(&names[0], &DeleteParams::default())
        .await
        .expect("delete");
    wait_for("replacement for terminating pod", 30, || async {
        let live = active_pods(&client, "rs-pref", "pref").await;
        let st = api.get("pref").await.ok()?.status?;
        (live.len() == 2
            && st.replicas == 2
            && !live
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(names[0].as_str())))
        .then_some(())
    })
    .await;
    let all = pods.list(&ListParams::default()).await.expect("list").items;
    assert_eq!(
        all.len(),
        4,
        "two terminating pods linger beside two live ones"
    );
    assert!(all.iter().filter(|p| is_ready(p)).count() >= 1);
}

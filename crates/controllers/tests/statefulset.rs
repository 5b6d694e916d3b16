//! StatefulSet controller against an in-process API server. Pods never run: a stand-in
//! kubelet binds them to a node and marks them Running + Ready after a short delay, and
//! finishes graceful deletions; a watch records the order of pod events.
// Test helpers may panic on unexpected API answers.
#![allow(clippy::unwrap_used)]

mod support;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use r8s_apiserver::testing::TestServer;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{DelayedKubelet, is_ready, wait_for};

const NS: &str = "default";

async fn start() -> (TestServer, Client) {
    let (server, client) = support::start().await;
    let ctx = r8s_controllers::Context::new(client.clone());
    tokio::spawn(r8s_controllers::statefulset::run(ctx));
    (server, client)
}

/// What happened to a pod, in watch order.
#[derive(Clone, Debug, PartialEq)]
enum Ev {
    Created(String),
    Ready(String),
    Terminating(String),
    Gone(String),
}

/// Records pod events of the namespace in order.
#[derive(Clone, Default)]
struct Timeline(Arc<Mutex<Vec<Ev>>>);

impl Timeline {
    fn spawn(client: Client) -> Self {
        let t = Timeline::default();
        let events = t.0.clone();
        let api: Api<Pod> = Api::namespaced(client, NS);
        tokio::spawn(async move {
            let mut seen: HashSet<(String, &'static str)> = HashSet::new();
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(Ok(ev)) = stream.next().await {
                let mut push = |uid: String, kind: &'static str, ev: Ev| {
                    if seen.insert((uid, kind)) {
                        events.lock().unwrap().push(ev);
                    }
                };
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        let (uid, name) = (p.uid().unwrap_or_default(), p.name_any());
                        push(uid.clone(), "c", Ev::Created(name.clone()));
                        if is_ready(&p) {
                            push(uid.clone(), "r", Ev::Ready(name.clone()));
                        }
                        if p.metadata.deletion_timestamp.is_some() {
                            push(uid, "t", Ev::Terminating(name));
                        }
                    }
                    watcher::Event::Delete(p) => {
                        push(p.uid().unwrap_or_default(), "g", Ev::Gone(p.name_any()))
                    }
                    _ => {}
                }
            }
        });
        t
    }

    fn events(&self) -> Vec<Ev> {
        self.0.lock().unwrap().clone()
    }

    fn position(&self, ev: &Ev) -> Option<usize> {
        self.events().iter().position(|e| e == ev)
    }

    fn clear(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// The stand-in kubelet of these tests: binds pods to `node-1`, marks them Running + Ready
/// after `delay` (unless their name is held), and completes graceful deletions after
/// `delay`.
fn kubelet(client: &Client, delay: Duration) -> DelayedKubelet {
    DelayedKubelet::spawn(client.clone(), NS, delay, |_| Some("node-1".to_string()))
}

fn sts(name: &str, replicas: i32, extra_spec: Value) -> StatefulSet {
    let mut spec = json!({
        "replicas": replicas,
        "serviceName": "nginx",
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}
        },
    });
    if let (Some(s), Value::Object(extra)) = (spec.as_object_mut(), extra_spec) {
        s.extend(extra);
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec
    }))
    .expect("sts")
}

fn claim_templates() -> Value {
    json!([{"metadata": {"name": "www"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}])
}

async fn wait_status(
    api: &Api<StatefulSet>,
    name: &str,
    what: &str,
    f: impl Fn(&StatefulSet) -> bool,
) -> StatefulSet {
    wait_for(what, 30, || async {
        let s = api.get(name).await.ok()?;
        let observed =
            s.status.as_ref().and_then(|st| st.observed_generation) == s.metadata.generation;
        (observed && f(&s)).then_some(s)
    })
    .await
}

fn st(s: &StatefulSet) -> k8s_openapi::api::apps::v1::StatefulSetStatus {
    s.status.clone().unwrap_or_default()
}

fn revision_label(p: &Pod) -> String {
    p.labels()
        .get("controller-revision-hash")
        .cloned()
        .unwrap_or_default()
}

async fn pods_of(api: &Api<Pod>, app: &str) -> Vec<Pod> {
    let mut pods = api
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("list")
        .items;
    pods.sort_by_key(|p| p.name_any());
    pods
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ordered_ready_scale_up_down_keeps_claims() {
    let (_server, client) = start().await;
    let timeline = Timeline::spawn(client.clone());
    kubelet(&client, Duration::from_millis(150));
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    sets.create(
        &PostParams::default(),
        &sts("web", 3, json!({"volumeClaimTemplates": claim_templates()})),
    )
    .await
    .expect("create");

    let s = wait_status(&sets, "web", "3 ready replicas", |s| {
        st(s).ready_replicas == Some(3)
    })
    .await;
    let status = st(&s);
    assert_eq!(status.replicas, 3);
    assert_eq!(status.current_replicas, Some(3));
    assert_eq!(status.updated_replicas, Some(3));
    assert_eq!(status.available_replicas, Some(3));
    assert_eq!(status.collision_count, Some(0));
    assert!(status.current_revision.is_some());
    assert_eq!(status.current_revision, status.update_revision);

    // Strict order: pod i is created only after pod i-1 is Ready.
    for i in 1..3 {
        let prev_ready = timeline
            .position(&Ev::Ready(format!("web-{}", i - 1)))
            .expect("ready event");
        let created = timeline
            .position(&Ev::Created(format!("web-{i}")))
            .expect("created event");
        assert!(
            prev_ready < created,
            "web-{i} created before web-{} was ready: {:?}",
            i - 1,
            timeline.events()
        );
    }

    // Identity, storage and revision of each pod; claims created and labelled.
    for (i, p) in pods_of(&pods, "web").await.iter().enumerate() {
        let name = format!("web-{i}");
        assert_eq!(p.name_any(), name);
        let labels = p.labels();
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], name);
        assert_eq!(labels["apps.kubernetes.io/pod-index"], i.to_string());
        assert_eq!(Some(revision_label(p)), status.update_revision);
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(name.as_str()));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let vol = spec
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "www")
            .expect("www volume");
        assert_eq!(
            vol.persistent_volume_claim.as_ref().unwrap().claim_name,
            format!("www-web-{i}")
        );
        let owner = &p.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("StatefulSet", Some(true))
        );
        let pvc = pvcs.get(&format!("www-web-{i}")).await.expect("claim");
        assert_eq!(pvc.labels()["app"], "web");
    }

    // Scale down: highest ordinal first, each gone before the next is touched.
    timeline.clear();
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .expect("scale");
    wait_status(&sets, "web", "1 replica", |s| {
        st(s).replicas == 1 && st(s).ready_replicas == Some(1)
    })
    .await;
    wait_for("pods gone", 30, || async {
        (pods_of(&pods, "web").await.len() == 1).then_some(())
    })
    .await;
    let gone2 = timeline
        .position(&Ev::Gone("web-2".into()))
        .expect("web-2 gone");
    let term1 = timeline
        .position(&Ev::Terminating("web-1".into()))
        .expect("web-1 terminating");
    assert!(
        gone2 < term1,
        "web-1 deleted before web-2 was gone: {:?}",
        timeline.events()
    );
    // Claims are never deleted with their pods (default Retain policy).
    for i in 0..3 {
        let pvc = pvcs.get(&format!("www-web-{i}")).await.expect("claim kept");
        assert!(pvc.owner_references().is_empty());
    }

    // Scaling up again re-uses the claims.
    sets.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .expect("scale up");
    wait_status(&sets, "web", "2 ready", |s| st(s).ready_replicas == Some(2)).await;
    assert_eq!(
        pvcs.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_in_reverse_with_partition_and_rollback() {
    let (_server, client) = start().await;
    let timeline = Timeline::spawn(client.clone());
    kubelet(&client, Duration::from_millis(100));
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let revs: Api<ControllerRevision> = Api::namespaced(client.clone(), NS);
    sets.create(&PostParams::default(), &sts("db", 3, json!({})))
        .await
        .expect("create");
    let s = wait_status(&sets, "db", "3 ready", |s| st(s).ready_replicas == Some(3)).await;
    let r1 = st(&s).update_revision.expect("revision");

    timeline.clear();
    let patch = json!({"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        "template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}
    }});
    sets.patch("db", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("update");
    let s = wait_status(&sets, "db", "2 updated", |s| {
        st(s).updated_replicas == Some(2) && st(s).ready_replicas == Some(3)
    })
    .await;
    let status = st(&s);
    let r2 = status.update_revision.clone().unwrap();
    assert_ne!(r1, r2);
    assert_eq!(status.current_revision.as_deref(), Some(r1.as_str()));
    assert_eq!(status.current_replicas, Some(1));
    let now = pods_of(&pods, "db").await;
    assert_eq!(revision_label(&now[0]), r1, "below the partition stays");
    assert_eq!(revision_label(&now[1]), r2);
    assert_eq!(revision_label(&now[2]), r2);
    assert_eq!(
        now[2].spec.as_ref().unwrap().containers[0].image.as_deref(),
        Some("nginx:2")
    );
    // Reverse ordinal order, one at a time.
    let gone2 = timeline
        .position(&Ev::Gone("db-2".into()))
        .expect("db-2 replaced");
    let term1 = timeline
        .position(&Ev::Terminating("db-1".into()))
        .expect("db-1 replaced");
    assert!(gone2 < term1, "{:?}", timeline.events());
    assert!(timeline.position(&Ev::Terminating("db-0".into())).is_none());

    // Partition 0 finishes the rollout; the update revision becomes current.
    sets.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})),
    )
    .await
    .expect("partition 0");
    let s = wait_status(&sets, "db", "rollout complete", |s| {
        let st = st(s);
        st.current_revision == st.update_revision
            && st.current_replicas == Some(3)
            && st.ready_replicas == Some(3)
    })
    .await;
    assert_eq!(st(&s).update_revision.as_deref(), Some(r2.as_str()));
    let list = revs
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap()
        .items;
    let mut numbers: Vec<(String, i64)> = list.iter().map(|r| (r.name_any(), r.revision)).collect();
    numbers.sort_by_key(|n| n.1);
    assert_eq!(numbers, vec![(r1.clone(), 1), (r2.clone(), 2)]);
    assert!(
        list.iter()
            .all(|r| r.owner_references()[0].kind == "StatefulSet")
    );

    // Restoring the old template (what `kubectl rollout undo` does) re-uses revision r1,
    // renumbered as the newest.
    let undo = list
        .iter()
        .find(|r| r.name_any() == r1)
        .unwrap()
        .data
        .clone()
        .unwrap()
        .0;
    sets.patch("db", &PatchParams::default(), &Patch::Strategic(undo))
        .await
        .expect("undo");
    let s = wait_status(&sets, "db", "rolled back", |s| {
        let st = st(s);
        st.update_revision.as_deref() == Some(r1.as_str())
            && st.current_revision == st.update_revision
            && st.ready_replicas == Some(3)
    })
    .await;
    assert_eq!(st(&s).current_replicas, Some(3));
    let r1_now = revs.get(&r1).await.unwrap();
    assert_eq!(r1_now.revision, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_delete_and_self_healing() {
    let (_server, client) = start().await;
    kubelet(&client, Duration::from_millis(50));
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    sets.create(
        &PostParams::default(),
        &sts("od", 2, json!({"updateStrategy": {"type": "OnDelete"}})),
    )
    .await
    .expect("create");
    let s = wait_status(&sets, "od", "2 ready", |s| st(s).ready_replicas == Some(2)).await;
    let r1 = st(&s).update_revision.unwrap();

    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}});
    sets.patch("od", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("update");
    let s = wait_status(&sets, "od", "new update revision", |s| {
        st(s).update_revision.as_deref() != Some(r1.as_str())
    })
    .await;
    let r2 = st(&s).update_revision.unwrap();
    assert_eq!(st(&s).updated_replicas, Some(0));
    assert_eq!(st(&s).current_revision.as_deref(), Some(r1.as_str()));
    // OnDelete: nothing is replaced until a pod is deleted.
    let before = pods_of(&pods, "od").await;
    assert!(before.iter().all(|p| revision_label(p) == r1));

    // A deleted pod comes back with the same name, at the update revision.
    let old_uid = before[1].uid();
    pods.delete("od-1", &DeleteParams::default())
        .await
        .expect("delete");
    let p = wait_for("od-1 recreated", 30, || async {
        let p = pods.get("od-1").await.ok()?;
        (p.uid() != old_uid && is_ready(&p)).then_some(p)
    })
    .await;
    assert_eq!(revision_label(&p), r2);
    let s = wait_status(&sets, "od", "1 updated", |s| {
        st(s).updated_replicas == Some(1) && st(s).ready_replicas == Some(2)
    })
    .await;
    assert_eq!(st(&s).current_replicas, Some(1));

    // A failed pod is deleted and replaced (self-healing).
    let old_uid = pods.get("od-0").await.unwrap().uid();
    pods.patch_status(
        "od-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Failed"}})),
    )
    .await
    .expect("fail od-0");
    let p = wait_for("od-0 replaced", 30, || async {
        let p = pods.get("od-0").await.ok()?;
        (p.uid() != old_uid && is_ready(&p)).then_some(p)
    })
    .await;
    assert_eq!(revision_label(&p), r2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_and_claim_retention_owners() {
    let (_server, client) = start().await;
    let kubelet = kubelet(&client, Duration::from_millis(50));
    for i in 0..3 {
        kubelet.hold(&format!("par-{i}"));
    }
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let spec = json!({
        "podManagementPolicy": "Parallel",
        "volumeClaimTemplates": claim_templates(),
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
    });
    let created = sets
        .create(&PostParams::default(), &sts("par", 3, spec))
        .await
        .expect("create");
    let set_uid = created.uid().unwrap();
    // Parallel: every pod exists although none is ready.
    wait_for("3 pods without readiness", 30, || async {
        let ps = pods_of(&pods, "par").await;
        (ps.len() == 3 && ps.iter().all(|p| !is_ready(p))).then_some(())
    })
    .await;

    // whenDeleted=Delete: live pods' claims are controlled by the set.
    for i in 0..3 {
        let name = format!("www-par-{i}");
        wait_for("claim owned by the set", 30, || async {
            let c = pvcs.get(&name).await.ok()?;
            c.owner_references()
                .iter()
                .any(|r| r.uid == set_uid && r.controller == Some(true))
                .then_some(())
        })
        .await;
    }

    // whenScaled=Delete: a scaled-down pod's claim is handed to the pod before it goes.
    let doomed_uid = pods.get("par-2").await.unwrap().uid().unwrap();
    sets.patch(
        "par",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 2}})),
    )
    .await
    .expect("scale");
    wait_for("claim owned by the condemned pod", 30, || async {
        let c = pvcs.get("www-par-2").await.ok()?;
        let refs = c.owner_references();
        (refs.iter().any(|r| r.uid == doomed_uid && r.kind == "Pod")
            && !refs.iter().any(|r| r.uid == set_uid))
        .then_some(())
    })
    .await;
    wait_for("par-2 gone", 30, || async {
        (pods_of(&pods, "par").await.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_unavailable_replaces_pods_in_batches() {
    let (_server, client) = start().await;
    let timeline = Timeline::spawn(client.clone());
    kubelet(&client, Duration::from_millis(150));
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let strategy = json!({"updateStrategy": {"type": "RollingUpdate",
        "rollingUpdate": {"partition": 0, "maxUnavailable": 2}}});
    sets.create(&PostParams::default(), &sts("mu", 4, strategy))
        .await
        .expect("create");
    wait_status(&sets, "mu", "4 ready", |s| st(s).ready_replicas == Some(4)).await;
    timeline.clear();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}});
    sets.patch("mu", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("update");
    let s = wait_status(&sets, "mu", "rollout complete", |s| {
        let st = st(s);
        st.current_revision == st.update_revision
            && st.updated_replicas == Some(4)
            && st.ready_replicas == Some(4)
    })
    .await;
    let rev = st(&s).update_revision.unwrap();
    assert!(
        pods_of(&pods, "mu")
            .await
            .iter()
            .all(|p| revision_label(p) == rev)
    );
    // The two highest ordinals go together; the next pair only after they are back.
    let pos = |e: Ev| {
        timeline
            .position(&e)
            .unwrap_or_else(|| panic!("{e:?} missing: {:?}", timeline.events()))
    };
    let (t3, t2) = (
        pos(Ev::Terminating("mu-3".into())),
        pos(Ev::Terminating("mu-2".into())),
    );
    let gone3 = pos(Ev::Gone("mu-3".into()));
    assert!(t3 < gone3 && t2 < gone3, "{:?}", timeline.events());
    let t1 = pos(Ev::Terminating("mu-1".into()));
    assert!(t1 > pos(Ev::Gone("mu-2".into())), "{:?}", timeline.events());
}

//! The Deployment controller (with the ReplicaSet controller) against an in-process API
//! server, driven through kube-rs and the real kubectl: creation, scaling, rolling update
//! within maxUnavailable (checked on every watch event), revisions, rollback, pause/resume,
//! Recreate, restart, history cleanup and the progress deadline.

mod support;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use r8s_apiserver::testing::TestServer;
use r8s_controllers::Context;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use support::{Kubelet, is_active, is_ready, namespace, start, wait_for};

const REVISION: &str = "deployment.kubernetes.io/revision";
const HASH: &str = "pod-template-hash";

struct Env {
    server: TestServer,
    client: Client,
    ns: String,
}

impl Env {
    /// Server, namespace `ns`, both controllers, and a kubelet binding pods to a node.
    async fn new(ns: &str, kubelet: Kubelet) -> Env {
        let (server, client) = start().await;
        namespace(&client, ns).await;
        kubelet.spawn(client.clone(), ns);
        let ctx = Context::new(client.clone());
        tokio::spawn(r8s_controllers::replicaset::run(ctx.clone()));
        tokio::spawn(r8s_controllers::deployment::run(ctx));
        Env {
            server,
            client,
            ns: ns.to_string(),
        }
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn replicasets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Run kubectl against the server in this namespace; (success, stdout + stderr).
    async fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.server.kubeconfig)
            .arg("-n")
            .arg(&self.ns)
            .args(args)
            .output()
            .await
            .expect("run kubectl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    async fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.kubectl(args).await;
        assert!(ok, "kubectl {args:?} failed: {text}");
        text
    }

    async fn create(&self, d: &Deployment) -> Deployment {
        self.deployments()
            .create(&PostParams::default(), d)
            .await
            .expect("create deployment")
    }

    /// ReplicaSets of deployment `name` (by controller reference), by revision.
    async fn owned_rss(&self, name: &str) -> Vec<ReplicaSet> {
        let d = self.deployments().get(name).await.expect("get deployment");
        let uid = d.metadata.uid.unwrap_or_default();
        let mut rss: Vec<ReplicaSet> = self
            .replicasets()
            .list(&ListParams::default())
            .await
            .expect("list rs")
            .items
            .into_iter()
            .filter(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.controller == Some(true) && r.uid == uid)
            })
            .collect();
        rss.sort_by_key(|rs| ann(&rs.metadata, REVISION).and_then(|r| r.parse::<i64>().ok()));
        rss
    }

    /// Wait for the rollout of the current generation to finish with `n` replicas.
    async fn wait_complete(&self, name: &str, n: i32) -> Deployment {
        let api = self.deployments();
        wait_for(&format!("{name} complete with {n}"), 60, || async {
            let d = api.get(name).await.ok()?;
            let st = d.status.clone()?;
            let progressing = cond(&d, "Progressing").map(|c| c.1);
            (st.observed_generation == d.metadata.generation
                && st.replicas.unwrap_or(0) == n
                && st.updated_replicas.unwrap_or(0) == n
                && st.available_replicas.unwrap_or(0) == n
                && st.ready_replicas.unwrap_or(0) == n
                && st.unavailable_replicas.unwrap_or(0) == 0
                && (n == 0 || progressing.as_deref() == Some("NewReplicaSetAvailable")))
            .then_some(d)
        })
        .await
    }
}

/// (status, reason) of condition `t`.
fn cond(d: &Deployment, t: &str) -> Option<(String, String)> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

fn ann<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    k: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(k).map(String::as_str)
}

fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn image_of(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn manifest(name: &str, replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": {"team": "blue"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }))
    .expect("deployment manifest")
}

fn rolling(surge: serde_json::Value, unavailable: serde_json::Value) -> serde_json::Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

fn bound_kubelet() -> Kubelet {
    Kubelet {
        node: Some("node-1".into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn create_becomes_available() {
    let env = Env::new("d-create", bound_kubelet()).await;
    env.create(&manifest("web", 3, "busybox:1", json!({})))
        .await;
    let d = env.wait_complete("web", 3).await;
    assert_eq!(
        cond(&d, "Available"),
        Some(("True".into(), "MinimumReplicasAvailable".into()))
    );
    assert_eq!(
        cond(&d, "Progressing"),
        Some(("True".into(), "NewReplicaSetAvailable".into()))
    );
    assert_eq!(ann(&d.metadata, REVISION), Some("1"));
    let rss = env.owned_rss("web").await;
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = rs
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HASH))
        .cloned()
        .expect("hash label");
    assert_eq!(
        rs.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert!(
        hash.len() >= 8
            && hash
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c))
    );
    let spec = rs.spec.clone().expect("spec");
    assert_eq!(
        spec.selector
            .match_labels
            .as_ref()
            .and_then(|l| l.get(HASH)),
        Some(&hash)
    );
    let tl = spec
        .template
        .and_then(|t| t.metadata)
        .and_then(|m| m.labels)
        .expect("template labels");
    assert_eq!(tl.get(HASH), Some(&hash));
    // Defaults: 25% surge of 3 rounds up to 1.
    assert_eq!(ann(&rs.metadata, REVISION), Some("1"));
    assert_eq!(
        ann(&rs.metadata, "deployment.kubernetes.io/desired-replicas"),
        Some("3")
    );
    assert_eq!(
        ann(&rs.metadata, "deployment.kubernetes.io/max-replicas"),
        Some("4")
    );
    assert_eq!(
        ann(&rs.metadata, "team"),
        Some("blue"),
        "deployment annotations are copied"
    );
    let pods = env
        .pods()
        .list(&ListParams::default().labels("app=web"))
        .await
        .expect("pods")
        .items;
    assert_eq!(pods.len(), 3);
    assert!(
        pods.iter()
            .all(|p| p.metadata.labels.as_ref().and_then(|l| l.get(HASH)) == Some(&hash))
    );
    // kubectl sees a finished rollout.
    let out = env
        .kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    // Both controllers report what they did as events.
    let rs_name = rs.metadata.name.clone().unwrap_or_default();
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    wait_for(
        "ScalingReplicaSet and SuccessfulCreate events",
        30,
        || async {
            let list = events.list(&ListParams::default()).await.ok()?.items;
            let has = |obj: &str, reason: &str, msg: &str| {
                list.iter().any(|e| {
                    e.involved_object.name.as_deref() == Some(obj)
                        && e.reason.as_deref() == Some(reason)
                        && e.message.as_deref().is_some_and(|m| m.contains(msg))
                })
            };
            (has(
                "web",
                "ScalingReplicaSet",
                &format!("Scaled up replica set {rs_name} from 0 to 3"),
            ) && has(&rs_name, "SuccessfulCreate", "Created pod: "))
            .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn adopts_a_matching_orphan_replicaset() {
    let env = Env::new("d-adopt", bound_kubelet()).await;
    let d = manifest("web", 2, "busybox:1", json!({}));
    let spec = d.spec.clone().expect("spec");
    let orphan: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web-manual", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": spec.selector, "template": spec.template},
    }))
    .expect("rs");
    env.replicasets()
        .create(&PostParams::default(), &orphan)
        .await
        .expect("create orphan rs");
    // The Deployment must come after the orphan reached the shared ReplicaSet cache (as
    // when a user creates them in two steps): once the ReplicaSet controller has counted
    // the orphan's pods, it has. Without this, a loaded machine may deliver the
    // Deployment's event first, and a controller that knows no matching ReplicaSet
    // rightly creates its own.
    let rs_api = env.replicasets();
    wait_for("the orphan's pods counted", 30, || {
        let rs_api = rs_api.clone();
        async move {
            let rs = rs_api.get("web-manual").await.ok()?;
            (rs.status?.replicas == 2).then_some(())
        }
    })
    .await;
    let created = env.create(&d).await;
    env.wait_complete("web", 2).await;
    let rss = env.owned_rss("web").await;
    assert_eq!(
        rss.len(),
        1,
        "the orphan is adopted and used as the new ReplicaSet"
    );
    let rs = &rss[0];
    assert_eq!(rs.metadata.name.as_deref(), Some("web-manual"));
    let owner = rs.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner.len(), 1);
    assert_eq!(owner[0].uid, created.metadata.uid.unwrap_or_default());
    assert_eq!(owner[0].block_owner_deletion, Some(true));
    assert_eq!(ann(&rs.metadata, REVISION), Some("1"));
    assert_eq!(
        env.pods()
            .list(&ListParams::default())
            .await
            .expect("pods")
            .items
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scales_up_and_down() {
    let env = Env::new("d-scale", bound_kubelet()).await;
    env.create(&manifest("web", 3, "busybox:1", json!({})))
        .await;
    env.wait_complete("web", 3).await;
    env.kubectl_ok(&["scale", "deployment/web", "--replicas=10"])
        .await;
    env.wait_complete("web", 10).await;
    let rss = env.owned_rss("web").await;
    assert_eq!(rss.len(), 1, "scaling does not roll out");
    assert_eq!(replicas(&rss[0]), 10);
    assert_eq!(
        ann(
            &rss[0].metadata,
            "deployment.kubernetes.io/desired-replicas"
        ),
        Some("10")
    );
    assert_eq!(
        ann(&rss[0].metadata, "deployment.kubernetes.io/max-replicas"),
        Some("13")
    );
    env.deployments()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale down");
    env.wait_complete("web", 2).await;
    wait_for("surplus pods gone", 30, || async {
        let pods = env.pods().list(&ListParams::default()).await.ok()?.items;
        (pods.len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        ann(&env.owned_rss("web").await[0].metadata, REVISION),
        Some("1")
    );
}

/// Watches pods and records the fewest available (ready, not terminating) pods seen after
/// each event while armed.
struct AvailabilityTracker {
    armed: Arc<AtomicBool>,
    min_available: Arc<AtomicI64>,
    live: Arc<Mutex<HashMap<String, Pod>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AvailabilityTracker {
    fn spawn(pods: Api<Pod>) -> Self {
        let armed = Arc::new(AtomicBool::new(false));
        let min_available = Arc::new(AtomicI64::new(i64::MAX));
        let live: Arc<Mutex<HashMap<String, Pod>>> = Arc::default();
        let (a, m, l) = (armed.clone(), min_available.clone(), live.clone());
        let task = tokio::spawn(async move {
            let mut stream = watcher(pods, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(Ok(ev)) = stream.next().await {
                let mut live = l.lock().expect("lock");
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        live.insert(p.metadata.name.clone().unwrap_or_default(), p);
                    }
                    watcher::Event::Delete(p) => {
                        live.remove(&p.metadata.name.clone().unwrap_or_default());
                    }
                    _ => continue,
                }
                let available = live
                    .values()
                    .filter(|p| is_active(p) && is_ready(p))
                    .count();
                if a.load(Ordering::SeqCst) {
                    m.fetch_min(available as i64, Ordering::SeqCst);
                }
            }
        });
        AvailabilityTracker {
            armed,
            min_available,
            live,
            task,
        }
    }

    /// Pods the watch currently shows, by pod-template-hash: (live, available).
    fn by_hash(&self) -> BTreeMap<String, (usize, usize)> {
        let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for p in self.live.lock().expect("lock").values() {
            let h = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(HASH))
                .cloned()
                .unwrap_or_default();
            let e = out.entry(h).or_default();
            if is_active(p) {
                e.0 += 1;
                if is_ready(p) {
                    e.1 += 1;
                }
            }
        }
        out
    }
}

/// Watches ReplicaSets and records the largest total of `spec.replicas` seen.
fn track_max_total_replicas(rss: Api<ReplicaSet>) -> (Arc<AtomicI64>, tokio::task::JoinHandle<()>) {
    let max = Arc::new(AtomicI64::new(0));
    let m = max.clone();
    let task = tokio::spawn(async move {
        let mut sizes: HashMap<String, i32> = HashMap::new();
        let mut stream = watcher(rss, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(Ok(ev)) = stream.next().await {
            match ev {
                watcher::Event::Apply(rs) | watcher::Event::InitApply(rs) => {
                    sizes.insert(rs.metadata.name.clone().unwrap_or_default(), replicas(&rs));
                }
                watcher::Event::Delete(rs) => {
                    sizes.remove(&rs.metadata.name.clone().unwrap_or_default());
                }
                _ => continue,
            }
            m.fetch_max(i64::from(sizes.values().sum::<i32>()), Ordering::SeqCst);
        }
    });
    (max, task)
}

/// Roll deployment `web` (fully available with `n` replicas) to `image` with `kubectl set
/// image`, checking on every pod watch event that at least `floor` pods stay available and
/// on every ReplicaSet event that the ReplicaSets never ask for more than `ceiling` pods.
async fn roll_within_bounds(
    env: &Env,
    n: i32,
    image: &str,
    floor: i64,
    ceiling: i64,
) -> ReplicaSet {
    let tracker = AvailabilityTracker::spawn(env.pods());
    let (max_total, rs_task) = track_max_total_replicas(env.replicasets());
    wait_for("tracker synced", 30, || async {
        (tracker.by_hash().values().map(|v| v.1).sum::<usize>() == n as usize).then_some(())
    })
    .await;
    tracker.armed.store(true, Ordering::SeqCst);
    env.kubectl_ok(&["set", "image", "deployment/web", &format!("c={image}")])
        .await;
    let out = env
        .kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(out.contains("successfully rolled out"), "{out}");
    env.wait_complete("web", n).await;
    let new = env.owned_rss("web").await.pop().expect("new rs");
    assert_eq!(image_of(&new), image);
    let new_hash = new
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HASH))
        .cloned()
        .expect("hash");
    let want = n as usize;
    wait_for("watch shows only new pods", 30, || async {
        let by = tracker.by_hash();
        (by.get(&new_hash) == Some(&(want, want))
            && by.values().map(|v| v.0).sum::<usize>() == want)
            .then_some(())
    })
    .await;
    tracker.armed.store(false, Ordering::SeqCst);
    tracker.task.abort();
    rs_task.abort();
    let min = tracker.min_available.load(Ordering::SeqCst);
    assert!(
        min >= floor,
        "available pods dropped to {min} (< replicas - maxUnavailable = {floor})"
    );
    let max = max_total.load(Ordering::SeqCst);
    assert!(
        max <= ceiling,
        "ReplicaSets asked for {max} pods (> replicas + maxSurge = {ceiling})"
    );
    new
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_update_history_and_rollback() {
    let env = Env::new("d-roll", bound_kubelet()).await;
    env.create(&manifest(
        "web",
        6,
        "busybox:1",
        rolling(json!(1), json!(1)),
    ))
    .await;
    env.wait_complete("web", 6).await;
    roll_within_bounds(&env, 6, "busybox:2", 5, 7).await;
    let rss = env.owned_rss("web").await;
    assert_eq!(rss.len(), 2);
    let (old, new) = (rss[0].clone(), rss[1].clone());
    assert_eq!((replicas(&old), replicas(&new)), (0, 6));
    assert_eq!(ann(&old.metadata, REVISION), Some("1"));
    assert_eq!(ann(&new.metadata, REVISION), Some("2"));
    let d = env.deployments().get("web").await.expect("get");
    assert_eq!(ann(&d.metadata, REVISION), Some("2"));

    let history = env
        .kubectl_ok(&["rollout", "history", "deployment/web"])
        .await;
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // `kubectl rollout undo` copies revision 1's template back: the old ReplicaSet is
    // re-used as revision 3, remembering it was revision 1.
    env.kubectl_ok(&["rollout", "undo", "deployment/web"]).await;
    env.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    env.wait_complete("web", 6).await;
    let rss = env.owned_rss("web").await;
    assert_eq!(rss.len(), 2, "rollback re-uses the old ReplicaSet");
    let (second, first) = (&rss[0], &rss[1]);
    assert_eq!(first.metadata.name, old.metadata.name);
    assert_eq!(image_of(first), "busybox:1");
    assert_eq!((replicas(first), replicas(second)), (6, 0));
    assert_eq!(ann(&first.metadata, REVISION), Some("3"));
    assert_eq!(
        ann(&first.metadata, "deployment.kubernetes.io/revision-history"),
        Some("1")
    );
    let d = env.deployments().get("web").await.expect("get");
    assert_eq!(ann(&d.metadata, REVISION), Some("3"));
    let history = env
        .kubectl_ok(&["rollout", "history", "deployment/web"])
        .await;
    assert!(history.contains('2') && history.contains('3'), "{history}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_update_with_percentages() {
    let env = Env::new("d-pct", bound_kubelet()).await;
    // Defaults 25%/25% of 10: surge rounds up to 3, unavailable down to 2.
    env.create(&manifest("web", 10, "busybox:1", json!({})))
        .await;
    env.wait_complete("web", 10).await;
    let new = roll_within_bounds(&env, 10, "busybox:2", 8, 13).await;
    assert_eq!(
        ann(&new.metadata, "deployment.kubernetes.io/max-replicas"),
        Some("13")
    );
    // Surge only (maxUnavailable 0): never below 10 available.
    env.deployments()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "50%", "maxUnavailable": 0}}}})),
        )
        .await
        .expect("strategy");
    roll_within_bounds(&env, 10, "busybox:3", 10, 15).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_resume_and_restart() {
    let env = Env::new("d-pause", bound_kubelet()).await;
    env.create(&manifest("web", 2, "busybox:1", json!({})))
        .await;
    env.wait_complete("web", 2).await;
    env.kubectl_ok(&["rollout", "pause", "deployment/web"])
        .await;
    env.kubectl_ok(&["set", "image", "deployment/web", "c=busybox:2"])
        .await;
    // Scaling still works while paused; the template change is not rolled out.
    env.kubectl_ok(&["scale", "deployment/web", "--replicas=3"])
        .await;
    let d = wait_for("paused condition and scale observed", 30, || async {
        let d = env.deployments().get("web").await.ok()?;
        let st = d.status.clone()?;
        (st.observed_generation == d.metadata.generation
            && st.available_replicas == Some(3)
            && cond(&d, "Progressing").map(|c| c.1).as_deref() == Some("DeploymentPaused"))
        .then_some(d)
    })
    .await;
    assert_eq!(
        cond(&d, "Progressing").map(|c| c.0).as_deref(),
        Some("Unknown")
    );
    let rss = env.owned_rss("web").await;
    assert_eq!(rss.len(), 1, "no rollout while paused");
    assert_eq!(image_of(&rss[0]), "busybox:1");
    let (ok, _) = env.kubectl(&["rollout", "undo", "deployment/web"]).await;
    assert!(!ok, "kubectl refuses to roll back a paused deployment");

    env.kubectl_ok(&["rollout", "resume", "deployment/web"])
        .await;
    env.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    env.wait_complete("web", 3).await;
    let rss = env.owned_rss("web").await;
    assert_eq!(rss.len(), 2);
    assert_eq!(image_of(&rss[1]), "busybox:2");

    // `kubectl rollout restart` changes the template (restartedAt) and rolls again.
    env.kubectl_ok(&["rollout", "restart", "deployment/web"])
        .await;
    env.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    let d = env.wait_complete("web", 3).await;
    assert_eq!(ann(&d.metadata, REVISION), Some("3"));
    let rss = env.owned_rss("web").await;
    assert_eq!(rss.len(), 3);
    assert_eq!(rss.iter().map(replicas).collect::<Vec<_>>(), vec![0, 0, 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn recreate_never_overlaps_old_and_new_pods() {
    let env = Env::new("d-recreate", bound_kubelet()).await;
    env.create(&manifest(
        "web",
        3,
        "busybox:1",
        json!({"type": "Recreate"}),
    ))
    .await;
    env.wait_complete("web", 3).await;
    // Record every moment pods of two templates exist at once (terminating ones included).
    let overlap = Arc::new(AtomicBool::new(false));
    let watch_task = {
        let overlap = overlap.clone();
        let pods = env.pods();
        tokio::spawn(async move {
            let mut seen: HashMap<String, String> = HashMap::new();
            let mut stream = watcher(pods, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(Ok(ev)) = stream.next().await {
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        let h = p
                            .metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get(HASH))
                            .cloned()
                            .unwrap_or_default();
                        seen.insert(p.metadata.name.clone().unwrap_or_default(), h);
                    }
                    watcher::Event::Delete(p) => {
                        seen.remove(&p.metadata.name.clone().unwrap_or_default());
                    }
                    _ => continue,
                }
                let hashes: std::collections::HashSet<&String> = seen.values().collect();
                if hashes.len() > 1 {
                    overlap.store(true, Ordering::SeqCst);
                }
            }
        })
    };
    env.kubectl_ok(&["set", "image", "deployment/web", "c=busybox:2"])
        .await;
    env.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    env.wait_complete("web", 3).await;
    let rss = env.owned_rss("web").await;
    assert_eq!(rss.iter().map(replicas).collect::<Vec<_>>(), vec![0, 3]);
    assert_eq!(
        ann(&rss[1].metadata, "deployment.kubernetes.io/max-replicas"),
        Some("3"),
        "no surge"
    );
    assert!(
        !overlap.load(Ordering::SeqCst),
        "old and new pods coexisted"
    );
    watch_task.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn old_replicasets_beyond_history_limit_are_deleted() {
    let env = Env::new("d-history", bound_kubelet()).await;
    let mut d = manifest("web", 1, "busybox:1", json!({}));
    if let Some(spec) = d.spec.as_mut() {
        spec.revision_history_limit = Some(1);
    }
    env.create(&d).await;
    env.wait_complete("web", 1).await;
    for image in ["busybox:2", "busybox:3", "busybox:4"] {
        env.kubectl_ok(&["set", "image", "deployment/web", &format!("c={image}")])
            .await;
        env.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=60s"])
            .await;
    }
    env.wait_complete("web", 1).await;
    let rss = wait_for("old ReplicaSets cleaned up", 30, || async {
        let rss = env.owned_rss("web").await;
        (rss.len() == 2).then_some(rss)
    })
    .await;
    assert_eq!(
        rss.iter().map(image_of).collect::<Vec<_>>(),
        vec!["busybox:3".to_string(), "busybox:4".to_string()]
    );
    assert_eq!(
        rss.iter()
            .map(|rs| ann(&rs.metadata, REVISION).unwrap_or("").to_string())
            .collect::<Vec<_>>(),
        vec!["3".to_string(), "4".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_deadline_exceeded_when_pods_never_ready() {
    let kubelet = Kubelet {
        node: Some("node-1".into()),
        broken_image: Some("broken".into()),
        ..Default::default()
    };
    let env = Env::new("d-deadline", kubelet).await;
    let mut d = manifest("web", 2, "busybox:broken", json!({}));
    if let Some(spec) = d.spec.as_mut() {
        spec.progress_deadline_seconds = Some(2);
    }
    env.create(&d).await;
    let d = wait_for("ProgressDeadlineExceeded", 30, || async {
        let d = env.deployments().get("web").await.ok()?;
        (cond(&d, "Progressing") == Some(("False".into(), "ProgressDeadlineExceeded".into())))
            .then_some(d)
    })
    .await;
    assert_eq!(
        cond(&d, "Available"),
        Some(("False".into(), "MinimumReplicasUnavailable".into()))
    );
    let st = d.status.expect("status");
    assert_eq!(st.replicas, Some(2));
    assert_eq!(st.unavailable_replicas, Some(2));
    assert_eq!(st.available_replicas.unwrap_or(0), 0);
    let (ok, out) = env
        .kubectl(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    assert!(
        !ok && out.contains("exceeded its progress deadline"),
        "{out}"
    );
}

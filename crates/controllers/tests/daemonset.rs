//! DaemonSet controller against an in-process API server. Nodes are created by the test; a
//! stand-in scheduler binds daemon pods to the node named in their required node affinity
//! and a stand-in kubelet marks them Running + Ready after a short delay and finishes
//! graceful deletions.
// Test helpers may panic on unexpected API answers.
#![allow(clippy::unwrap_used)]

mod support;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use r8s_apiserver::testing::TestServer;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{DelayedKubelet, is_ready, wait_for};

const NS: &str = "default";

async fn start() -> (TestServer, Client) {
    let (server, client) = support::start().await;
    tokio::spawn(r8s_controllers::daemonset::run(
        r8s_controllers::Context::new(client.clone()),
    ));
    // Scheduler: bind to the affinity node. Kubelet: Running + Ready after the delay;
    // finish graceful deletions after it.
    DelayedKubelet::spawn(
        client.clone(),
        NS,
        Duration::from_millis(100),
        affinity_node,
    );
    (server, client)
}

/// The node of `metadata.name In [node]` in a pod's required affinity.
fn affinity_node(p: &Pod) -> Option<String> {
    let terms = &p
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    let req = terms.first()?.match_fields.as_ref()?.first()?;
    (req.key == "metadata.name" && req.operator == "In")
        .then(|| req.values.as_ref()?.first().cloned())?
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

async fn create_node(client: &Client, name: &str, labels: Value, taints: Value) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints}
    }))
    .unwrap();
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": now, "lastTransitionTime": now,
                        "reason": "KubeletReady", "message": "ready"}],
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("node status");
}

fn ds(name: &str, extra_spec: Value, pod_spec_extra: Value) -> DaemonSet {
    let mut pod_spec = json!({"containers": [{"name": "c", "image": "agent:1"}]});
    if let (Some(p), Value::Object(extra)) = (pod_spec.as_object_mut(), pod_spec_extra) {
        p.extend(extra);
    }
    let mut spec = json!({
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
    });
    if let (Some(s), Value::Object(extra)) = (spec.as_object_mut(), extra_spec) {
        s.extend(extra);
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec
    }))
    .unwrap()
}

/// Live (non-terminating) pods of `app` by node.
async fn pods_by_node(pods: &Api<Pod>, app: &str) -> BTreeMap<String, Vec<Pod>> {
    let mut map: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for p in pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
    {
        if p.metadata.deletion_timestamp.is_none() {
            let node = node_of(&p)
                .or_else(|| affinity_node(&p))
                .unwrap_or_default();
            map.entry(node).or_default().push(p);
        }
    }
    map
}

async fn wait_ds(
    api: &Api<DaemonSet>,
    name: &str,
    what: &str,
    f: impl Fn(&k8s_openapi::api::apps::v1::DaemonSetStatus) -> bool,
) -> DaemonSet {
    wait_for(what, 30, || async {
        let d = api.get(name).await.ok()?;
        let st = d.status.clone()?;
        (st.observed_generation == d.metadata.generation && f(&st)).then_some(d)
    })
    .await
}

/// Exactly one ready, bound pod on each of `nodes` and none elsewhere.
async fn steady(pods: &Api<Pod>, app: &str, nodes: &[&str]) -> Option<BTreeMap<String, Vec<Pod>>> {
    let m = pods_by_node(pods, app).await;
    let ok = m.keys().map(String::as_str).collect::<Vec<_>>() == nodes
        && m.values()
            .all(|ps| ps.len() == 1 && is_ready(&ps[0]) && node_of(&ps[0]).is_some());
    ok.then_some(m)
}

async fn wait_nodes(pods: &Api<Pod>, app: &str, nodes: &[&str]) -> BTreeMap<String, Vec<Pod>> {
    wait_for(&format!("daemon pods exactly on {nodes:?}"), 30, || {
        steady(pods, app, nodes)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_pod_per_eligible_node_follows_nodes() {
    let (_server, client) = start().await;
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let nodes: Api<Node> = Api::all(client.clone());
    create_node(&client, "n1", json!({"role": "worker"}), json!([])).await;
    create_node(
        &client,
        "n2",
        json!({"role": "worker"}),
        json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
    )
    .await;
    create_node(&client, "n3", json!({}), json!([])).await;
    // Node-condition taints are tolerated automatically by daemon pods.
    create_node(
        &client,
        "n4",
        json!({"role": "worker"}),
        json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
               {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
    )
    .await;
    dss.create(
        &PostParams::default(),
        &ds(
            "agent",
            json!({}),
            json!({"nodeSelector": {"role": "worker"}}),
        ),
    )
    .await
    .expect("create");

    let placed = wait_nodes(&pods, "agent", &["n1", "n4"]).await;
    let d = wait_ds(&dss, "agent", "status for 2 nodes", |s| {
        s.number_available == Some(2)
    })
    .await;
    let st = d.status.unwrap();
    assert_eq!(st.desired_number_scheduled, 2);
    assert_eq!(st.current_number_scheduled, 2);
    assert_eq!(st.number_ready, 2);
    assert_eq!(st.updated_number_scheduled, Some(2));
    assert_eq!(st.number_misscheduled, 0);
    let pod = &placed["n1"][0];
    assert_eq!(affinity_node(pod).as_deref(), Some("n1"));
    assert!(pod.metadata.generate_name.as_deref() == Some("agent-"));
    assert!(pod.labels().contains_key("controller-revision-hash"));
    assert_eq!(
        pod.labels()
            .get("pod-template-generation")
            .map(String::as_str),
        Some("1")
    );
    let tols = pod
        .spec
        .as_ref()
        .unwrap()
        .tolerations
        .clone()
        .unwrap_or_default();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/unschedulable",
    ] {
        assert!(
            tols.iter().any(|t| t.key.as_deref() == Some(key)),
            "missing toleration {key}"
        );
    }
    let owner = &pod.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("DaemonSet", Some(true))
    );

    // A new eligible node gets a pod; a node that becomes eligible too.
    create_node(&client, "n5", json!({"role": "worker"}), json!([])).await;
    wait_nodes(&pods, "agent", &["n1", "n4", "n5"]).await;
    nodes
        .patch(
            "n3",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"role": "worker"}}})),
        )
        .await
        .unwrap();
    wait_nodes(&pods, "agent", &["n1", "n3", "n4", "n5"]).await;
    // A node that stops matching loses its pod; a NoExecute taint evicts too.
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"role": null}}})),
        )
        .await
        .unwrap();
    nodes
        .patch(
            "n5",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": [{"key": "evict", "effect": "NoExecute"}]}})),
        )
        .await
        .unwrap();
    wait_nodes(&pods, "agent", &["n3", "n4"]).await;
    let d = wait_ds(&dss, "agent", "status for 2 nodes", |s| {
        s.desired_number_scheduled == 2
            && s.current_number_scheduled == 2
            && s.number_misscheduled == 0
    })
    .await;
    assert_eq!(d.status.unwrap().number_ready, 2);
    // A deleted node's count goes away.
    nodes.delete("n4", &DeleteParams::default()).await.unwrap();
    wait_ds(&dss, "agent", "desired 1", |s| {
        s.desired_number_scheduled == 1
    })
    .await;
}

/// Per pod event order of one app: tracks, after every event, how many of `nodes` lack a
/// ready non-terminating pod, and the most pods any node had at once.
#[derive(Clone, Default)]
struct Availability {
    max_unavailable: Arc<Mutex<usize>>,
    max_per_node: Arc<Mutex<usize>>,
    synced: Arc<std::sync::atomic::AtomicBool>,
}

impl Availability {
    fn spawn(client: Client, app: &str, nodes: &'static [&'static str]) -> Self {
        let a = Availability::default();
        let (mu, mp, done) = (
            a.max_unavailable.clone(),
            a.max_per_node.clone(),
            a.synced.clone(),
        );
        let api: Api<Pod> = Api::namespaced(client, NS);
        let cfg = watcher::Config::default().labels(&format!("app={app}"));
        tokio::spawn(async move {
            let mut live: HashMap<String, Pod> = HashMap::new();
            let mut stream = watcher(api, cfg).default_backoff().boxed();
            let mut synced = false;
            while let Some(Ok(ev)) = stream.next().await {
                match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        live.insert(p.name_any(), p);
                    }
                    watcher::Event::Delete(p) => {
                        live.remove(&p.name_any());
                    }
                    watcher::Event::InitDone => {
                        synced = true;
                        done.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    watcher::Event::Init => {}
                }
                if !synced {
                    continue;
                }
                let mut per_node: HashMap<String, (usize, bool)> = HashMap::new();
                for p in live.values() {
                    let Some(n) = node_of(p).or_else(|| affinity_node(p)) else {
                        continue;
                    };
                    let e = per_node.entry(n).or_default();
                    e.0 += 1;
                    if is_ready(p) && p.metadata.deletion_timestamp.is_none() {
                        e.1 = true;
                    }
                }
                let unavailable = nodes
                    .iter()
                    .filter(|n| !per_node.get(**n).is_some_and(|e| e.1))
                    .count();
                let most = per_node.values().map(|e| e.0).max().unwrap_or(0);
                let mut m = mu.lock().unwrap();
                *m = (*m).max(unavailable);
                let mut m = mp.lock().unwrap();
                *m = (*m).max(most);
            }
        });
        a
    }

    fn reset(&self) {
        *self.max_unavailable.lock().unwrap() = 0;
        *self.max_per_node.lock().unwrap() = 0;
    }
}

fn hashes(m: &BTreeMap<String, Vec<Pod>>) -> HashSet<String> {
    m.values()
        .flatten()
        .map(|p| {
            p.labels()
                .get("controller-revision-hash")
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rolling_update_surge_and_on_delete() {
    let (_server, client) = start().await;
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let revs: Api<ControllerRevision> = Api::namespaced(client.clone(), NS);
    static NODES: [&str; 3] = ["a", "b", "c"];
    for n in NODES {
        create_node(&client, n, json!({}), json!([])).await;
    }
    dss.create(&PostParams::default(),
        &ds("roll", json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}), json!({})))
        .await
        .expect("create");
    let v1 = wait_nodes(&pods, "roll", &NODES).await;
    let h1 = hashes(&v1);
    assert_eq!(h1.len(), 1);
    wait_ds(&dss, "roll", "all available", |s| {
        s.number_available == Some(3)
    })
    .await;
    let availability = Availability::spawn(client.clone(), "roll", &NODES);
    wait_for("availability recorder synced", 10, || async {
        availability
            .synced
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some(())
    })
    .await;

    // maxUnavailable 1: one node at a time loses its pod.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}});
    dss.patch("roll", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let v2 = wait_for("all pods at the new hash", 30, || async {
        let m = steady(&pods, "roll", &NODES).await?;
        let h = hashes(&m);
        (h.len() == 1 && h != h1).then_some(m)
    })
    .await;
    let d = wait_ds(&dss, "roll", "updated 3", |s| {
        s.updated_number_scheduled == Some(3) && s.number_available == Some(3)
    })
    .await;
    assert_eq!(d.status.unwrap().desired_number_scheduled, 3);
    assert!(
        *availability.max_unavailable.lock().unwrap() <= 1,
        "more than one node unavailable"
    );
    assert_eq!(*availability.max_per_node.lock().unwrap(), 1);
    let h2 = hashes(&v2);
    let mut list: Vec<(String, i64)> = revs
        .list(&ListParams::default().labels("app=roll"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| (r.labels()["controller-revision-hash"].clone(), r.revision))
        .collect();
    list.sort_by_key(|r| r.1);
    let expect: Vec<(String, i64)> = vec![
        (h1.iter().next().unwrap().clone(), 1),
        (h2.iter().next().unwrap().clone(), 2),
    ];
    assert_eq!(list, expect);

    // maxSurge: the new pod starts beside the old one, which goes once the new is ready.
    availability.reset();
    let patch = json!({"spec": {
        "updateStrategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {"spec": {"containers": [{"name": "c", "image": "agent:3"}]}}}});
    dss.patch("roll", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    wait_for("surge rollout done", 30, || async {
        let m = steady(&pods, "roll", &NODES).await?;
        let h = hashes(&m);
        (h.len() == 1 && h != h2).then_some(())
    })
    .await;
    wait_ds(&dss, "roll", "updated 3", |s| {
        s.updated_number_scheduled == Some(3) && s.number_available == Some(3)
    })
    .await;
    assert_eq!(
        *availability.max_unavailable.lock().unwrap(),
        0,
        "surge must keep every node available"
    );
    assert_eq!(*availability.max_per_node.lock().unwrap(), 2);

    // OnDelete: a template change leaves pods alone until one is deleted.
    let patch = json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null},
        "template": {"spec": {"containers": [{"name": "c", "image": "agent:4"}]}}}});
    dss.patch("roll", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    wait_ds(&dss, "roll", "nothing updated", |s| {
        s.updated_number_scheduled == Some(0)
    })
    .await;
    let before = wait_nodes(&pods, "roll", &NODES).await;
    let h3 = hashes(&before);
    assert_eq!(h3.len(), 1);
    let victim = before["b"][0].name_any();
    pods.delete(&victim, &DeleteParams::default())
        .await
        .unwrap();
    let after = wait_for("b replaced", 30, || async {
        let m = steady(&pods, "roll", &NODES).await?;
        (m["b"][0].name_any() != victim).then_some(m)
    })
    .await;
    let new_hash = after["b"][0].labels()["controller-revision-hash"].clone();
    assert!(!h3.contains(&new_hash));
    assert!(h3.contains(&after["a"][0].labels()["controller-revision-hash"]));
    wait_ds(&dss, "roll", "1 updated", |s| {
        s.updated_number_scheduled == Some(1)
    })
    .await;
}

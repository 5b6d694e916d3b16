//! PodDisruptionBudgets end to end against an in-process API server: the disruption
//! controller computes each budget's status, and pods/eviction honours it (429 when no
//! disruption is allowed, the pod recorded in `disruptedPods`, dry runs change nothing,
//! pods that are Pending or not Ready, several budgets, a budget not yet processed).
//! Pods never run: the test sets them Running/Ready itself.
#![allow(clippy::unwrap_used)]

mod support;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};
use r8s_controllers::disruption;
use serde_json::{Value, json};
use support::{bind, run, set_running, wait_for};

/// A test server and an admin client that does not retry 429s by itself (kube-rs's
/// default policy would, for minutes), so refusals are seen as they come.
async fn start() -> (r8s_apiserver::testing::TestServer, Client) {
    let server = r8s_apiserver::testing::TestServer::start().await;
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).unwrap();
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    cfg.default_retry = false;
    (server, Client::try_from(cfg).unwrap())
}

const NS: &str = "default";

/// A pod labelled `app=<app>`, bound to a node (so deletion is graceful), optionally
/// controlled by `owner` (a ReplicaSet).
async fn pod(client: &Client, name: &str, app: &str, owner: Option<&ReplicaSet>) -> Pod {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut p = json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    });
    if let Some(rs) = owner {
        p["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs.name_any(),
            "uid": rs.uid().unwrap(), "controller": true}]);
    }
    api.create(&PostParams::default(), &serde_json::from_value(p).unwrap())
        .await
        .unwrap();
    bind(&api, name, "node-a").await.unwrap();
    set_running(&api, name, true).await.unwrap()
}

async fn budget(client: &Client, name: &str, spec: Value) -> PodDisruptionBudget {
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NS);
    let b = json!({"metadata": {"name": name}, "spec": spec});
    api.create(&PostParams::default(), &serde_json::from_value(b).unwrap())
        .await
        .unwrap()
}

/// Wait until the budget's status satisfies `want`; that status as JSON.
async fn status_until(client: &Client, name: &str, want: impl Fn(&Value) -> bool) -> Value {
    let api: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NS);
    let want = &want;
    wait_for(&format!("status of budget {name}"), 30, || {
        let api = api.clone();
        async move {
            let b = api.get(name).await.ok()?;
            let s = serde_json::to_value(b.status?).ok()?;
            want(&s).then_some(s)
        }
    })
    .await
}

/// Numbers of a status: (expected, desired, current, allowed).
fn counts(s: &Value) -> (i64, i64, i64, i64) {
    let n = |f: &str| s[f].as_i64().unwrap_or(0);
    (
        n("expectedPods"),
        n("desiredHealthy"),
        n("currentHealthy"),
        n("disruptionsAllowed"),
    )
}

async fn evict(client: &Client, name: &str, delete_options: Value) -> Result<Value, kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": NS}, "deleteOptions": delete_options});
    api.create_subresource::<_, Value>("eviction", name, &PostParams::default(), &body)
        .await
}

fn api_error(r: Result<Value, kube::Error>) -> Box<kube::core::Status> {
    match r {
        Err(kube::Error::Api(s)) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn causes(s: &kube::core::Status) -> Vec<(String, String)> {
    s.details
        .iter()
        .flat_map(|d| d.causes.iter())
        .map(|c| (c.reason.clone(), c.message.clone()))
        .collect()
}

async fn terminating(client: &Client, name: &str) -> bool {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    api.get(name)
        .await
        .map(|p| p.metadata.deletion_timestamp.is_some())
        .unwrap_or(true)
}

#[tokio::test]
async fn min_available_budget_blocks_evictions_beyond_it() {
    let (_server, client) = start().await;
    let _c = run(&client, disruption::run);
    for p in ["web-a", "web-b", "web-c"] {
        pod(&client, p, "web", None).await;
    }
    budget(
        &client,
        "web",
        json!({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}),
    )
    .await;
    let s = status_until(&client, "web", |s| counts(s) == (3, 2, 3, 1)).await;
    assert_eq!(s["observedGeneration"], 1);
    assert_eq!(s["conditions"][0]["type"], "DisruptionAllowed");
    assert_eq!(s["conditions"][0]["status"], "True");
    assert_eq!(s["conditions"][0]["reason"], "SufficientPods");

    // A dry run neither deletes nor uses the budget.
    evict(&client, "web-a", json!({"dryRun": ["All"]}))
        .await
        .unwrap();
    assert!(!terminating(&client, "web-a").await);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NS);
    let b = pdbs.get("web").await.unwrap();
    let st = b.status.unwrap();
    assert_eq!(st.disruptions_allowed, 1);
    assert!(st.disrupted_pods.unwrap_or_default().is_empty());

    // One eviction is allowed: the pod is recorded and goes.
    let ok = evict(&client, "web-a", json!({})).await.unwrap();
    assert_eq!(ok["status"], "Success");
    assert!(terminating(&client, "web-a").await);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let a = pods.get("web-a").await.unwrap();
    let cond = a
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_deref()),
        ("True", Some("EvictionByEvictionAPI"))
    );

    // The next would leave fewer than 2 healthy pods.
    let refused = api_error(evict(&client, "web-b", json!({})).await);
    assert_eq!(refused.code, 429, "{refused:?}");
    assert_eq!(refused.reason, "TooManyRequests");
    assert_eq!(
        refused.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let (kind, message) = causes(&refused).pop().unwrap();
    assert_eq!(kind, "DisruptionBudget");
    assert!(
        message.starts_with("The disruption budget web needs 2 healthy pods and has "),
        "{message}"
    );
    assert!(!terminating(&client, "web-b").await);

    // The controller sees the terminating pod: 2 healthy, none allowed; the entry of the
    // pod being deleted is dropped.
    let s = status_until(&client, "web", |s| {
        counts(s) == (3, 2, 2, 0) && s.get("disruptedPods").is_none()
    })
    .await;
    assert_eq!(s["conditions"][0]["reason"], "InsufficientPods");

    // Once the pod is gone and a replacement is Ready, one disruption is allowed again.
    pods.delete("web-a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    pod(&client, "web-d", "web", None).await;
    status_until(&client, "web", |s| counts(s) == (3, 2, 3, 1)).await;
    evict(&client, "web-b", json!({})).await.unwrap();
}

#[tokio::test]
async fn max_unavailable_counts_by_the_controllers_scale() {
    let (_server, client) = start().await;
    let _c = run(&client, disruption::run);
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), NS);
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}))
    .unwrap();
    let rs = rss.create(&PostParams::default(), &rs).await.unwrap();
    // Three of the four replicas exist.
    for p in ["db-1", "db-2", "db-3"] {
        pod(&client, p, "db", Some(&rs)).await;
    }
    budget(
        &client,
        "db",
        json!({"maxUnavailable": "25%", "selector": {"matchLabels": {"app": "db"}}}),
    )
    .await;
    // Expected 4 (the scale), desired 4 - ceil(25% of 4) = 3, 3 healthy: none allowed.
    status_until(&client, "db", |s| counts(s) == (4, 3, 3, 0)).await;
    let refused = api_error(evict(&client, "db-1", json!({})).await);
    assert_eq!(refused.code, 429);

    // A percentage minAvailable rounds up too: 50% of 4 is 2.
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NS);
    let patch = json!({"spec": {"maxUnavailable": null, "minAvailable": "50%"}});
    pdbs.patch("db", &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    let s = status_until(&client, "db", |s| counts(s) == (4, 2, 3, 1)).await;
    assert_eq!(s["observedGeneration"], 2);

    // A pod whose controller cannot be found fails the sync safely.
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "db-x", "labels": {"app": "db"}, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gone", "uid": "no-such-uid",
            "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}))
    .unwrap();
    api.create(&PostParams::default(), &orphan).await.unwrap();
    let s = status_until(&client, "db", |s| {
        s["conditions"][0]["reason"] == "SyncFailed"
    })
    .await;
    assert_eq!(s["disruptionsAllowed"], 0);
    assert_eq!(s["conditions"][0]["status"], "False");
    assert_eq!(
        s["conditions"][0]["message"],
        "found no controllers for pod \"db-x\""
    );
}

#[tokio::test]
async fn pods_that_skip_the_budget_and_budgets_that_refuse() {
    let (_server, client) = start().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);

    // Before the controller ran, a budget has no observed generation: "still processing".
    pod(&client, "api-a", "api", None).await;
    pod(&client, "api-b", "api", None).await;
    budget(
        &client,
        "api",
        json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "api"}}}),
    )
    .await;
    let refused = api_error(evict(&client, "api-a", json!({})).await);
    assert_eq!(refused.code, 429);
    assert_eq!(
        causes(&refused),
        [(
            "DisruptionBudget".to_string(),
            "The disruption budget api is still being processed by the server.".to_string()
        )]
    );
    assert_eq!(
        refused.details.as_ref().map(|d| d.retry_after_seconds),
        Some(10)
    );

    let _c = run(&client, disruption::run);
    status_until(&client, "api", |s| counts(s) == (2, 1, 2, 1)).await;

    // A Pending pod goes without the budget.
    let pending: Pod = serde_json::from_value(json!({
        "metadata": {"name": "api-p", "labels": {"app": "api"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pending).await.unwrap();
    evict(&client, "api-p", json!({})).await.unwrap();
    wait_for("pending pod gone", 10, || async {
        pods.get_opt("api-p").await.unwrap().is_none().then_some(())
    })
    .await;

    // An unready pod goes without using the budget while the budget is met.
    pod(&client, "api-u", "api", None).await;
    set_running(&pods, "api-u", false).await.unwrap();
    status_until(&client, "api", |s| counts(s) == (3, 1, 2, 1)).await;
    evict(&client, "api-u", json!({})).await.unwrap();
    assert!(terminating(&client, "api-u").await);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), NS);
    assert_eq!(
        pdbs.get("api")
            .await
            .unwrap()
            .status
            .unwrap()
            .disruptions_allowed,
        1
    );

    // Two budgets for one pod: refused.
    budget(
        &client,
        "api-2",
        json!({"maxUnavailable": 1, "selector": {}}),
    )
    .await;
    let refused = api_error(evict(&client, "api-a", json!({})).await);
    assert_eq!(refused.code, 500, "{refused:?}");
    assert_eq!(
        refused.message,
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
    assert!(!terminating(&client, "api-a").await);

    // The name in the body must be the pod's.
    let body =
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}});
    let bad = api_error(
        pods.create_subresource::<_, Value>("eviction", "api-a", &PostParams::default(), &body)
            .await,
    );
    assert_eq!(bad.code, 400);
    assert_eq!(
        bad.message,
        "name in URL does not match name in Eviction object"
    );
}

#[tokio::test]
async fn stale_disruption_target_conditions_are_reset() {
    let (_server, client) = start().await;
    let _c = run(&client, disruption::run);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    pod(&client, "marked", "x", None).await;
    // An eviction marked it three minutes ago but never deleted it.
    let then = (k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_secs(180))
    .strftime("%Y-%m-%dT%H:%M:%SZ")
    .to_string();
    let status = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True"},
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting", "lastTransitionTime": then}]}});
    pods.patch_status(
        "marked",
        &Default::default(),
        &kube::api::Patch::Strategic(&status),
    )
    .await
    .unwrap();
    wait_for("DisruptionTarget reset", 20, || async {
        let p = pods.get("marked").await.ok()?;
        let c = p
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "DisruptionTarget")?;
        (c.status == "False").then_some(())
    })
    .await;
}

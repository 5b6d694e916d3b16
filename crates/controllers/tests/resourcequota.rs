//! The resource quota controller against an in-process API server: `status.hard` follows
//! `spec.hard`, `status.used` follows the pods and ConfigMaps of the namespace (pods as
//! they come and go, ConfigMaps on the periodic resync), and a tampered status is put
//! back. Expected values are waited for, so the tests hold whether or not the API
//! server's ResourceQuota admission plugin also charges creates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use r8s_controllers::resourcequota;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use support::{namespace, run, start, wait_for};

/// Names and amounts (milli-units) of a resource list, so `1Gi` and `1073741824` match.
fn amounts(list: &Value) -> BTreeMap<String, i128> {
    r8s_api::quota::parse_list(Some(list))
        .into_iter()
        .map(|(k, a)| (k, a.milli))
        .collect()
}

/// Wait until quota `name` reports `hard` and `used` (by amount).
async fn wait_status(api: &Api<ResourceQuota>, name: &str, hard: &Value, used: &Value) {
    let (hard, used) = (amounts(hard), amounts(used));
    wait_for(
        &format!("quota {name} hard {hard:?} used {used:?}"),
        10,
        || async {
            let rq = api.get(name).await.ok()?;
            let status = serde_json::to_value(rq.status?).ok()?;
            let got_hard = amounts(status.get("hard")?);
            let got_used = amounts(status.get("used")?);
            (got_hard == hard && got_used == used).then_some(())
        },
    )
    .await;
}

async fn create_quota(client: &Client, ns: &str, name: &str, hard: &Value) -> Api<ResourceQuota> {
    let api: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
    let rq = serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"hard": hard}}))
        .expect("quota manifest");
    api.create(&PostParams::default(), &rq)
        .await
        .expect("create quota");
    api
}

async fn create_configmap(client: &Client, ns: &str, name: &str) {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .expect("configmap manifest");
    api.create(&PostParams::default(), &cm)
        .await
        .expect("create configmap");
}

/// ConfigMaps in `ns` now (whatever else may have published some).
async fn configmap_count(client: &Client, ns: &str) -> usize {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .expect("list configmaps")
        .items
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_and_configmaps_are_counted() {
    let (_server, client) = start().await;
    let ns = "quota-pods";
    namespace(&client, ns).await;
    create_configmap(&client, ns, "one").await;
    create_configmap(&client, ns, "two").await;
    let _controller = run(&client, resourcequota::run);
    let hard = json!({"pods": "2", "requests.memory": "1Gi", "count/configmaps": "5"});
    let api = create_quota(&client, ns, "compute", &hard).await;
    let cms = configmap_count(&client, ns).await;
    let idle = json!({"pods": "0", "requests.memory": "0", "count/configmaps": cms.to_string()});
    wait_status(&api, "compute", &hard, &idle).await;
    // status.hard is spec.hard as written.
    let rq = api.get("compute").await.expect("get quota");
    assert_eq!(
        serde_json::to_value(rq.status.and_then(|s| s.hard)).expect("hard"),
        hard
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"containers": [{
            "name": "c", "image": "busybox",
            "resources": {"requests": {"memory": "256Mi"}},
        }]},
    }))
    .expect("pod manifest");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let busy =
        json!({"pods": "1", "requests.memory": "256Mi", "count/configmaps": cms.to_string()});
    wait_status(&api, "compute", &hard, &busy).await;

    pods.delete("web", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete pod");
    wait_status(&api, "compute", &hard, &idle).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unwatched_kinds_are_recounted_on_resync() {
    let (_server, client) = start().await;
    let ns = "quota-resync";
    namespace(&client, ns).await;
    let cfg = resourcequota::Config {
        resync_period: Duration::from_secs(1),
    };
    let _controller = run(&client, move |ctx| resourcequota::run_with(ctx, cfg));
    let hard = json!({"count/configmaps": "10", "configmaps": "10"});
    let api = create_quota(&client, ns, "objects", &hard).await;
    let before = configmap_count(&client, ns).await.to_string();
    wait_status(
        &api,
        "objects",
        &hard,
        &json!({"count/configmaps": before, "configmaps": before}),
    )
    .await;
    // ConfigMaps are not watched: the periodic resync notices them.
    create_configmap(&client, ns, "a").await;
    create_configmap(&client, ns, "b").await;
    let after = configmap_count(&client, ns).await.to_string();
    wait_status(
        &api,
        "objects",
        &hard,
        &json!({"count/configmaps": after, "configmaps": after}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_follows_spec_and_edits_are_undone() {
    let (_server, client) = start().await;
    let ns = "quota-edits";
    namespace(&client, ns).await;
    // Edited usage is repaired by the periodic recount (as upstream), made short here.
    let cfg = resourcequota::Config {
        resync_period: Duration::from_secs(1),
    };
    let _controller = run(&client, move |ctx| resourcequota::run_with(ctx, cfg));
    let hard = json!({"services": "3", "services.nodeports": "2"});
    let api = create_quota(&client, ns, "svc", &hard).await;
    let none = json!({"services": "0", "services.nodeports": "0"});
    wait_status(&api, "svc", &hard, &none).await;

    // A wrong usage written by someone else is recounted.
    let tamper =
        json!({"status": {"hard": hard, "used": {"services": "3", "services.nodeports": "2"}}});
    api.patch_status("svc", &PatchParams::default(), &Patch::Merge(&tamper))
        .await
        .expect("tamper with status");
    wait_status(&api, "svc", &hard, &none).await;

    // A new limit shows up in status.hard and is counted.
    let patch = json!({"spec": {"hard": {"services.loadbalancers": "1"}}});
    api.patch("svc", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("add a limit");
    let hard = json!({"services": "3", "services.nodeports": "2", "services.loadbalancers": "1"});
    let none = json!({"services": "0", "services.nodeports": "0", "services.loadbalancers": "0"});
    wait_status(&api, "svc", &hard, &none).await;

    // Services are watched: a NodePort service is counted as it comes and goes.
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]},
    }))
    .expect("service manifest");
    services
        .create(&PostParams::default(), &svc)
        .await
        .expect("create service");
    let one = json!({"services": "1", "services.nodeports": "1", "services.loadbalancers": "0"});
    wait_status(&api, "svc", &hard, &one).await;
    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete service");
    wait_status(&api, "svc", &hard, &none).await;
}

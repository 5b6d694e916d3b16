//! The built-in service load balancer against an in-process API server: LoadBalancer
//! Services get the Ready nodes' addresses, a port held by an older LoadBalancer Service
//! leaves the newer one pending, Services of another `loadBalancerClass` are left alone,
//! and turning a Service into a ClusterIP clears its status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use r8s_controllers::servicelb;
use serde_json::{Value, json};
use support::{namespace, run, start, wait_for};

async fn node(client: &kube::Client, name: &str, ip: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
    let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}],
        "conditions": [{"type": "Ready", "status": "True"}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

fn lb(name: &str, port: i32, class: Option<&str>) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": class,
                 "selector": {"app": name}, "ports": [{"port": port}]}}))
    .unwrap()
}

async fn ingress(api: &Api<Service>, name: &str) -> Value {
    let svc = api.get(name).await.unwrap();
    serde_json::to_value(
        svc.status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress),
    )
    .unwrap()
}

#[tokio::test]
async fn load_balancer_services_get_node_addresses() {
    let (_s, client) = start().await;
    namespace(&client, "lb").await;
    node(&client, "n1", "10.0.0.2").await;
    node(&client, "n2", "10.0.0.1").await;
    let _c = run(&client, servicelb::run);
    let svcs: Api<Service> = Api::namespaced(client.clone(), "lb");
    svcs.create(&PostParams::default(), &lb("web", 80, None))
        .await
        .unwrap();
    let want = json!([{"ip": "10.0.0.1", "ipMode": "VIP"}, {"ip": "10.0.0.2", "ipMode": "VIP"}]);
    wait_for("web gets both node addresses", 10, || async {
        (ingress(&svcs, "web").await == want).then_some(())
    })
    .await;

    // Port 80 is taken: the newer Service waits, with a warning; another class is not ours.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    svcs.create(&PostParams::default(), &lb("second", 80, None))
        .await
        .unwrap();
    svcs.create(
        &PostParams::default(),
        &lb("classy", 81, Some("example.com/lb")),
    )
    .await
    .unwrap();
    svcs.create(&PostParams::default(), &lb("other", 8080, None))
        .await
        .unwrap();
    wait_for("other gets addresses", 10, || async {
        (ingress(&svcs, "other").await == want).then_some(())
    })
    .await;
    assert_eq!(ingress(&svcs, "second").await, Value::Null);
    assert_eq!(ingress(&svcs, "classy").await, Value::Null);

    // The holder goes: the waiting Service gets the port.
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    wait_for("second gets addresses", 10, || async {
        (ingress(&svcs, "second").await == want).then_some(())
    })
    .await;

    // No longer a LoadBalancer: the status is cleared.
    svcs.patch(
        "other",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
    )
    .await
    .unwrap();
    wait_for("other cleared", 10, || async {
        (ingress(&svcs, "other").await == Value::Null).then_some(())
    })
    .await;
}

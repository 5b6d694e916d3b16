//! The endpoints controllers: Endpoints and EndpointSlices follow pod readiness, resolve
//! named target ports, and leave selector-less services alone.

use crate::support::{namespace, run, start, wait_for};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

async fn pod(client: &Client, ns: &str, name: &str, ip: &str, ready: bool) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    if api.get_opt(name).await.expect("get pod").is_none() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                "ports": [{"name": "http", "containerPort": 8080}]}]}
        }))
        .expect("pod");
        api.create(&PostParams::default(), &p)
            .await
            .expect("create pod");
    }
    let status = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("pod status");
}

fn slice_lp(svc: &str) -> ListParams {
    ListParams::default().labels(&format!("kubernetes.io/service-name={svc}"))
}

#[tokio::test]
async fn endpoints_and_slices_follow_pod_readiness() {
    let (_server, client) = start().await;
    let _ep = run(&client, r8s_controllers::endpoints::run);
    namespace(&client, "ep").await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "ep");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"tier": "front"}},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
    .expect("svc");
    svcs.create(&PostParams::default(), &svc)
        .await
        .expect("create svc");
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "ep");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "ep");

    // No pods yet: an empty Endpoints and one placeholder slice.
    wait_for("empty endpoints", 20, || async {
        let e = eps.get_opt("web").await.ok()??;
        e.subsets.unwrap_or_default().is_empty().then_some(())
    })
    .await;
    let placeholder = wait_for("placeholder slice", 20, || async {
        let l = slices.list(&slice_lp("web")).await.ok()?.items;
        (l.len() == 1).then(|| l[0].clone())
    })
    .await;
    assert!(placeholder.endpoints.is_empty());
    let labels = placeholder.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    assert_eq!(labels.get("tier").map(String::as_str), Some("front"));
    let owner = placeholder
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("Service"));

    // A pod that is not ready yet.
    pod(&client, "ep", "web-1", "10.42.0.7", false).await;
    let e = wait_for("not-ready address", 20, || async {
        let e = eps.get("web").await.ok()?;
        let s = e.subsets.clone()?.into_iter().next()?;
        s.not_ready_addresses.is_some().then_some(s)
    })
    .await;
    assert!(e.addresses.is_none());
    assert_eq!(
        e.not_ready_addresses.as_ref().map(|a| a[0].ip.as_str()),
        Some("10.42.0.7")
    );
    let ports = e.ports.unwrap_or_default();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, 8080, "named targetPort resolved");
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    let slice = wait_for("slice with the not-ready endpoint", 20, || async {
        let l = slices.list(&slice_lp("web")).await.ok()?.items;
        (l.len() == 1 && l[0].endpoints.len() == 1).then(|| l[0].clone())
    })
    .await;
    let c = slice.endpoints[0].conditions.clone().unwrap_or_default();
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(false), Some(false), Some(false))
    );
    assert_eq!(slice.endpoints[0].addresses, vec!["10.42.0.7".to_string()]);
    let sp = slice.ports.clone().unwrap_or_default();
    assert_eq!(sp[0].port, Some(8080));
    assert_eq!(
        slice.endpoints[0]
            .target_ref
            .as_ref()
            .and_then(|r| r.name.as_deref()),
        Some("web-1")
    );

    // It becomes ready; a second ready pod joins.
    pod(&client, "ep", "web-1", "10.42.0.7", true).await;
    pod(&client, "ep", "web-2", "10.42.0.8", true).await;
    wait_for("two ready addresses", 20, || async {
        let e = eps.get("web").await.ok()?;
        let s = e.subsets.clone()?.into_iter().next()?;
        (s.addresses.as_ref()?.len() == 2 && s.not_ready_addresses.is_none()).then_some(())
    })
    .await;
    wait_for("two ready slice endpoints", 20, || async {
        let l = slices.list(&slice_lp("web")).await.ok()?.items;
        let eps: Vec<_> = l.iter().flat_map(|s| s.endpoints.iter()).collect();
        (eps.len() == 2
            && eps
                .iter()
                .all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true)))
        .then_some(())
    })
    .await;
    assert_eq!(
        slices
            .list(&slice_lp("web"))
            .await
            .expect("list")
            .items
            .len(),
        1
    );

    // A pod whose labels stop matching leaves.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ep");
    pods.patch(
        "web-2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .expect("relabel");
    wait_for("relabelled pod removed", 20, || async {
        let e = eps.get("web").await.ok()?;
        let s = e.subsets.clone()?.into_iter().next()?;
        (s.addresses.as_ref()?.len() == 1).then_some(())
    })
    .await;

    // Deleting the service deletes its Endpoints.
    svcs.delete("web", &DeleteParams::default())
        .await
        .expect("delete svc");
    wait_for("endpoints deleted", 20, || async {
        matches!(eps.get_opt("web").await, Ok(None)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn publish_not_ready_and_selectorless_services() {
    let (_server, client) = start().await;
    let _ep = run(&client, r8s_controllers::endpoints::run);
    namespace(&client, "ep2").await;
    let svcs: Api<Service> = Api::namespaced(client.clone(), "ep2");
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), "ep2");
    // Selector-less service with hand-written endpoints: left alone.
    let manual: Service = serde_json::from_value(json!({
        "metadata": {"name": "manual"},
        "spec": {"ports": [{"port": 5432}]}
    }))
    .expect("svc");
    svcs.create(&PostParams::default(), &manual)
        .await
        .expect("create manual");
    let manual_eps: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "manual"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 5432}]}]
    }))
    .expect("eps");
    eps.create(&PostParams::default(), &manual_eps)
        .await
        .expect("create manual eps");
    // Headless, publishing not-ready addresses.
    let headless: Service = serde_json::from_value(json!({
        "metadata": {"name": "peers"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": true,
                 "selector": {"app": "web"}, "ports": [{"port": 7000, "targetPort": 7000}]}
    }))
    .expect("svc");
    svcs.create(&PostParams::default(), &headless)
        .await
        .expect("create headless");
    pod(&client, "ep2", "peer-0", "10.42.1.5", false).await;
    let e = wait_for("not-ready pod published", 20, || async {
        let e = eps.get("peers").await.ok()?;
        let s = e.subsets.clone()?.into_iter().next()?;
        s.addresses.is_some().then_some(e)
    })
    .await;
    let labels = e.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("service.kubernetes.io/headless")
            .map(String::as_str),
        Some("")
    );
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "ep2");
    wait_for("published slice endpoint ready", 20, || async {
        let l = slices.list(&slice_lp("peers")).await.ok()?.items;
        let ep = l.iter().flat_map(|s| s.endpoints.iter()).next()?;
        let c = ep.conditions.clone()?;
        (c.ready == Some(true) && c.serving == Some(false)).then_some(())
    })
    .await;
    // The manual endpoints were not touched and no slices were made for that service.
    let m = eps.get("manual").await.expect("manual eps");
    let s = m.subsets.unwrap_or_default();
    assert_eq!(
        s.first()
            .and_then(|s| s.addresses.as_ref())
            .map(|a| a[0].ip.as_str()),
        Some("192.0.2.10")
    );
    assert!(
        slices
            .list(&slice_lp("manual"))
            .await
            .expect("list")
            .items
            .is_empty()
    );
}

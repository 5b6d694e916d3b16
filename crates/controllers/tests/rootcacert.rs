//! The root CA publisher against an in-process API server: every namespace (existing and
//! new) gets `kube-root-ca.crt`, deletions are undone, edits put back, and terminating
//! namespaces are left alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use r8s_controllers::{Context, rootcacert};
use serde_json::json;
use std::time::Duration;
use support::{start, wait_for};

const NAME: &str = "kube-root-ca.crt";

/// Wait until `ns` holds the published ConfigMap with `ca`; returns it.
async fn published(client: &Client, ns: &str, ca: &str) -> ConfigMap {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    wait_for(&format!("{ns}/{NAME}"), 20, || async {
        let cm = api.get_opt(NAME).await.unwrap()?;
        let data_ok = cm
            .data
            .as_ref()
            .map(|d| d.len() == 1 && d.get("ca.crt").map(String::as_str) == Some(ca));
        let described = cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(rootcacert::DESCRIPTION_ANNOTATION))
            .is_some_and(|d| d == rootcacert::DESCRIPTION);
        (data_ok == Some(true) && described).then_some(cm)
    })
    .await
}

#[tokio::test]
async fn every_namespace_gets_the_root_ca() {
    let (server, client) = start().await;
    let ca = server.running.pki.ca_pem.clone();
    let publisher = tokio::spawn(rootcacert::run(Context::new(client.clone()), ca.clone()));

    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        published(&client, ns, &ca).await;
    }

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let first = published(&client, "team-a", &ca).await;
    assert_eq!(
        first.metadata.annotations.as_ref().unwrap()["kubernetes.io/description"],
        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."
    );

    // Deleted: recreated.
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "team-a");
    maps.delete(NAME, &DeleteParams::default()).await.unwrap();
    let again = published(&client, "team-a", &ca).await;
    assert_ne!(again.metadata.uid, first.metadata.uid);

    // Edited data, an extra key, a removed annotation: put back; other metadata kept.
    maps.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({
            "metadata": {"labels": {"keep": "me"},
                         "annotations": {"kubernetes.io/description": null}},
            "data": {"ca.crt": "forged", "extra": "x"},
        })),
    )
    .await
    .unwrap();
    let fixed = published(&client, "team-a", &ca).await;
    assert_eq!(fixed.metadata.uid, again.metadata.uid);
    assert_eq!(
        fixed
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("keep"))
            .map(String::as_str),
        Some("me")
    );

    // A terminating namespace (no namespace controller runs, so it stays terminating):
    // its ConfigMap is not recreated.
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "leaving"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    published(&client, "leaving", &ca).await;
    namespaces
        .delete("leaving", &DeleteParams::default())
        .await
        .unwrap();
    let leaving: Api<ConfigMap> = Api::namespaced(client.clone(), "leaving");
    leaving
        .delete(NAME, &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(leaving.get_opt(NAME).await.unwrap().is_none());

    assert!(!publisher.is_finished(), "the publisher keeps running");
    publisher.abort();
}

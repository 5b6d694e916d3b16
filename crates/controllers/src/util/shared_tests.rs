//! The factory against an in-process API server: one informer per kind and config,
//! `managedFields` stripped from the cache.

use super::*;
use crate::util::InformerEvent;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::PostParams;
use r8s_apiserver::testing::TestServer;
use std::time::Duration;

async fn client(server: &TestServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&server.kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("client config");
    kube::Client::try_from(cfg).expect("client")
}

#[tokio::test]
async fn one_informer_per_kind_and_config() {
    let server = TestServer::start().await;
    let factory = SharedInformers::new(client(&server).await);
    assert!(factory.is_empty());
    let a = factory.get::<ConfigMap>();
    let b = factory.get::<ConfigMap>();
    assert!(a.same_as(&b));
    let labelled = factory.get_with::<ConfigMap>(watcher::Config::default().labels("x=y"));
    assert!(!a.same_as(&labelled));
    let again = factory.get_with::<ConfigMap>(watcher::Config::default().labels("x=y"));
    assert!(labelled.same_as(&again));
    let in_ns = factory.get_namespaced::<ConfigMap>("default", watcher::Config::default());
    assert!(!a.same_as(&in_ns));
    let _ns = factory.get::<Namespace>();
    assert_eq!(factory.len(), 4);
}

#[tokio::test]
async fn cache_has_no_managed_fields() {
    let server = TestServer::start().await;
    let client = client(&server).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "cm", "annotations": {"keep": "me"}},
        "data": {"k": "v"},
    }))
    .expect("configmap");
    let created = api
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    assert!(created.metadata.managed_fields.is_some());

    let factory = SharedInformers::new(client);
    let informer = factory.get::<ConfigMap>();
    informer.wait_synced().await;
    let cached = informer.get(Some("default"), "cm").expect("cached");
    assert!(cached.metadata.managed_fields.is_none());
    assert_eq!(
        cached
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("keep")),
        Some(&"me".to_string())
    );

    // A handler added now is replayed the cache, then sees live changes, stripped too.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _reg = informer.add_handler(move |ev| {
        let _ = tx.send(ev);
    });
    let mut replayed = false;
    while let Ok(InformerEvent::Apply { old: None, new }) = rx.try_recv() {
        replayed |= new.metadata.name.as_deref() == Some("cm");
    }
    assert!(replayed);
    let patch = serde_json::json!({"data": {"k": "w"}});
    api.patch("cm", &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("patch");
    let ev = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Some(InformerEvent::Apply {
                    old: Some(old),
                    new,
                }) if new.metadata.name.as_deref() == Some("cm") => {
                    return (old, new);
                }
                Some(_) => continue,
                None => panic!("informer stopped"),
            }
        }
    })
    .await
    .expect("update seen");
    assert_eq!(
        ev.0.data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("v")
    );
    assert_eq!(
        ev.1.data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("w")
    );
    assert!(ev.1.metadata.managed_fields.is_none());
}

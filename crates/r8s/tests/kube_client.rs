//! kube-rs (typed, dynamic, watcher) against a fresh `r8s server`.

mod common;
use common::Server;
use futures::TryStreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config};

async fn client(s: &Server) -> Client {
    let kc = kube::config::Kubeconfig::read_from(&s.kubeconfig).expect("kubeconfig");
    let cfg = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    Client::try_from(cfg).expect("client")
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_crud_and_conflicts() {
    let s = Server::start();
    let c = client(&s).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "typed", "labels": {"app": "x"}},
        "data": {"k": "v"}
    }))
    .unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    assert!(created.metadata.uid.is_some());
    let rv = created.metadata.resource_version.clone().unwrap();
    // Update with the right resourceVersion works; a second with the stale one is a 409.
    let mut next = created.clone();
    next.data
        .get_or_insert_default()
        .insert("k".into(), "v2".into());
    cms.replace("typed", &PostParams::default(), &next)
        .await
        .unwrap();
    let mut stale = created.clone();
    stale.metadata.resource_version = Some(rv);
    let err = cms
        .replace("typed", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => assert_eq!(s.code, 409),
        other => panic!("expected 409, got {other:?}"),
    }
    let patched = cms
        .patch(
            "typed",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"n": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.data.unwrap().get("n").map(String::as_str),
        Some("1")
    );
    let list = cms
        .list(&ListParams::default().labels("app=x"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    cms.delete("typed", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("typed").await.unwrap().is_none());
    // Server-side apply creates.
    let ns: Api<Namespace> = Api::all(c.clone());
    let applied = ns
        .patch(
            "ssa",
            &PatchParams::apply("test").force(),
            &Patch::Apply(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ssa"}})),
        )
        .await
        .unwrap();
    assert_eq!(applied.metadata.name.as_deref(), Some("ssa"));
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamic_discovery_and_paging() {
    let s = Server::start();
    let c = client(&s).await;
    let discovery = Discovery::new(c.clone()).run().await.unwrap();
    let (ar, _caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.kind == "Deployment")
        .expect("deployments discovered");
    assert_eq!(ar.group, "apps");
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    for i in 0..25 {
        let cm: ConfigMap =
            serde_json::from_value(serde_json::json!({"metadata": {"name": format!("p{i:02}")}}))
                .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(10);
    loop {
        let page = cms.list(&lp).await.unwrap();
        // (The root CA publisher's kube-root-ca.crt lives in every namespace too.)
        names.extend(
            page.items
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .filter(|n| n != "kube-root-ca.crt"),
        );
        match page.metadata.continue_ {
            Some(t) if !t.is_empty() => lp = lp.continue_token(&t),
            _ => break,
        }
    }
    assert_eq!(names.len(), 25);
    let dynamic: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &ar);
    assert!(
        dynamic
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_sees_changes() {
    let s = Server::start();
    let c = client(&s).await;
    let deploys: Api<Deployment> = Api::namespaced(c.clone(), "default");
    let stream = watcher(deploys.clone(), watcher::Config::default()).applied_objects();
    let mut stream = Box::pin(stream);
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "w"},
        "spec": {"selector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": {"labels": {"a": "b"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        deploys.create(&PostParams::default(), &d).await.unwrap();
    });
    let seen = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(obj) = stream.try_next().await.unwrap() {
            if obj.metadata.name.as_deref() == Some("w") {
                return obj;
            }
        }
        panic!("watch ended");
    })
    .await
    .expect("watcher saw the deployment");
    assert_eq!(seen.spec.unwrap().replicas, Some(1));
    writer.await.unwrap();
    drop(stream);
}

/// A custom resource as kube-rs users define one.
#[derive(
    kube::CustomResource, serde::Deserialize, serde::Serialize, Clone, Debug, schemars::JsonSchema,
)]
#[kube(
    group = "r8s.example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd",
    printcolumn = r#"{"name":"Size","type":"integer","jsonPath":".spec.size"}"#
)]
pub struct WidgetSpec {
    size: i32,
    label: String,
}

#[derive(serde::Deserialize, serde::Serialize, Clone, Debug, Default, schemars::JsonSchema)]
pub struct WidgetStatus {
    ready: bool,
}

#[tokio::test(flavor = "multi_thread")]
async fn derived_custom_resources() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::CustomResourceExt;
    use kube::runtime::{conditions, wait::await_condition};

    let s = Server::start();
    let c = client(&s).await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap();
    let established = await_condition(
        crds.clone(),
        "widgets.r8s.example.com",
        conditions::is_crd_established(),
    );
    tokio::time::timeout(std::time::Duration::from_secs(10), established)
        .await
        .expect("established in time")
        .unwrap();

    let widgets: Api<Widget> = Api::namespaced(c.clone(), "default");
    let mut events =
        std::pin::pin!(watcher(widgets.clone(), watcher::Config::default()).applied_objects());
    let w = Widget::new(
        "w1",
        WidgetSpec {
            size: 3,
            label: "blue".into(),
        },
    );
    let created = widgets.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(created.spec.size, 3);
    assert_eq!(created.metadata.generation, Some(1));
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), events.try_next())
        .await
        .expect("a watch event")
        .unwrap()
        .expect("an object");
    assert_eq!(seen.metadata.name.as_deref(), Some("w1"));

    let status = serde_json::json!({"status": {"ready": true}});
    let patched = widgets
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert!(patched.status.map(|s| s.ready).unwrap_or(false));
    assert_eq!(
        widgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // Discovery finds the group as kube-rs' dynamic clients do.
    let discovery = Discovery::new(c.clone()).run().await.unwrap();
    let (resource, _caps) = discovery
        .groups()
        .find(|g| g.name() == "r8s.example.com")
        .expect("the CRD's group")
        .recommended_kind("Widget")
        .expect("Widget");
    assert_eq!(resource.plural, "widgets");
    let dynamic: Api<DynamicObject> = Api::namespaced_with(c.clone(), "default", &resource);
    let got = dynamic.get("w1").await.unwrap();
    assert_eq!(got.data["spec"]["label"], "blue");

    crds.delete("widgets.r8s.example.com", &DeleteParams::default())
        .await
        .unwrap();
    assert!(widgets.list(&ListParams::default()).await.is_err());
}

//! The namespace controller empties a terminating namespace, reports what remains in the
//! namespace conditions, and releases it with the finalize subresource.

use crate::support::{namespace, run, start, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn condition(ns: &Namespace, type_: &str) -> Option<(String, String)> {
    ns.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test]
async fn deleting_a_namespace_removes_its_content_then_itself() {
    let (_server, client) = start().await;
    let _ns = run(&client, r8s_controllers::namespace::run);
    namespace(&client, "doomed").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "doomed");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "doomed");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "doomed");
    let pp = PostParams::default();
    for i in 0..3 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm{i}")}})).expect("cm");
        cms.create(&pp, &cm).await.expect("create cm");
    }
    // One configmap is held by a finalizer until the test lets it go.
    let held: ConfigMap = serde_json::from_value(json!({"metadata": {
        "name": "held", "finalizers": ["example.com/hold"]}}))
    .expect("cm");
    cms.create(&pp, &held).await.expect("create held");
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}}))
            .expect("secret");
    secrets.create(&pp, &secret).await.expect("create secret");
    // An unscheduled pod (deleted at once) and one bound to a node (graceful; no kubelet
    // here, so the controller finishes it after its grace period).
    for (name, node) in [("loose", None), ("bound", Some("node-a"))] {
        let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}],
                              "terminationGracePeriodSeconds": 1});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("pod");
        pods.create(&pp, &pod).await.expect("create pod");
    }

    let nss: Api<Namespace> = Api::all(client.clone());
    nss.delete("doomed", &DeleteParams::default())
        .await
        .expect("delete ns");
    let ns = nss.get("doomed").await.expect("still there");
    assert_eq!(
        ns.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Terminating")
    );

    // Everything without a finalizer goes; the held configmap keeps the namespace.
    wait_for("pods deleted", 30, || async {
        pods.list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    wait_for("content deleted", 30, || async {
        let left = cms.list(&Default::default()).await.ok()?.items;
        let secrets_left = secrets.list(&Default::default()).await.ok()?.items;
        (left.len() == 1 && secrets_left.is_empty()).then_some(())
    })
    .await;
    let ns = wait_for("finalizers-remaining condition", 30, || async {
        let ns = nss.get("doomed").await.ok()?;
        (condition(&ns, "NamespaceFinalizersRemaining")?.0 == "True").then_some(ns)
    })
    .await;
    assert_eq!(
        condition(&ns, "NamespaceContentRemaining"),
        Some(("True".into(), "SomeResourcesRemain".into()))
    );
    assert_eq!(
        condition(&ns, "NamespaceDeletionDiscoveryFailure"),
        Some(("False".into(), "ResourcesDiscovered".into()))
    );
    assert!(
        ns.spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|f| f == "kubernetes"))
    );

    // Release the held configmap: it goes, then the namespace.
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release finalizer");
    wait_for("namespace gone", 60, || async {
        matches!(nss.get_opt("doomed").await, Ok(None)).then_some(())
    })
    .await;
}

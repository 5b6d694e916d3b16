//! The service account controller keeps a `default` ServiceAccount in every namespace.

use crate::support::{namespace, run, start, wait_for};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::DeleteParams;

#[tokio::test]
async fn default_service_account_is_created_and_recreated() {
    let (_server, client) = start().await;
    let _sa = run(&client, r8s_controllers::serviceaccount::run);
    namespace(&client, "sa-test").await;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), "sa-test");
    let first = wait_for("default service account", 20, || async {
        api.get_opt("default").await.ok().flatten()
    })
    .await;
    api.delete("default", &DeleteParams::default())
        .await
        .expect("delete sa");
    let old_uid = first.metadata.uid.clone();
    wait_for("default service account recreated", 20, || async {
        api.get_opt("default")
            .await
            .ok()
            .flatten()
            .filter(|sa| sa.metadata.uid != old_uid)
    })
    .await;
    // Existing namespaces got one too.
    let kube_system: Api<ServiceAccount> = Api::namespaced(client.clone(), "kube-system");
    wait_for("kube-system default service account", 20, || async {
        kube_system.get_opt("default").await.ok().flatten()
    })
    .await;
}

//! The service account controller: every active namespace has a `default` ServiceAccount,
//! recreated if deleted (upstream `serviceaccounts-controller`). Terminating namespaces are
//! skipped.

use crate::Context;
use crate::util::{Informer, InformerEvent, WorkQueue, is_already_exists, run_workers};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use std::time::Duration;

/// Service accounts ensured in every namespace.
pub const MANAGED_NAMES: [&str; 1] = ["default"];

const WORKERS: usize = 3;

/// Run the controller until a fatal error.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: WorkQueue<String> = WorkQueue::new();
    let namespaces = ctx.informers.get::<Namespace>();
    let accounts = ctx.informers.get::<ServiceAccount>();
    // The handlers stay registered while this future lives.
    let q = queue.clone();
    let _namespace_events = namespaces.add_handler(move |ev| {
        if let InformerEvent::Apply { new, .. } = ev
            && let Some(name) = &new.metadata.name
        {
            q.add(name.clone());
        }
    });
    let q = queue.clone();
    let _account_events = accounts.add_handler(move |ev| {
        if let InformerEvent::Delete(sa) = ev
            && MANAGED_NAMES.contains(&sa.metadata.name.as_deref().unwrap_or(""))
            && let Some(ns) = &sa.metadata.namespace
        {
            q.add(ns.clone());
        }
    });
    namespaces.wait_synced().await;
    accounts.wait_synced().await;
    let client = ctx.client.clone();
    run_workers(queue, WORKERS, move |ns: String| {
        let client = client.clone();
        let namespaces = namespaces.clone();
        let accounts = accounts.clone();
        async move { sync_namespace(client, &namespaces, &accounts, &ns).await }
    })
    .await;
    Ok(())
}

async fn sync_namespace(
    client: kube::Client,
    namespaces: &Informer<Namespace>,
    accounts: &Informer<ServiceAccount>,
    ns: &str,
) -> Result<Option<Duration>, kube::Error> {
    let Some(namespace) = namespaces.get(None, ns) else {
        return Ok(None);
    };
    let phase = namespace.status.as_ref().and_then(|s| s.phase.as_deref());
    if namespace.metadata.deletion_timestamp.is_some() || phase.is_some_and(|p| p != "Active") {
        return Ok(None);
    }
    let api: Api<ServiceAccount> = Api::namespaced(client, ns);
    for name in MANAGED_NAMES {
        if accounts.get(Some(ns), name).is_some() {
            continue;
        }
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(ns.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(e) if is_already_exists(&e) => {}
            // The namespace is being deleted (or is gone): nothing to ensure.
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("terminat") => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

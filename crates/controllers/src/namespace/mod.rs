//! The namespace controller: once a namespace has a deletionTimestamp (the API server sets
//! it with phase Terminating), delete everything in it — pods first, as upstream v1.33's
//! ordered namespace deletion — keep the `NamespaceDeletion*`/`Namespace*Remaining`
//! status conditions current, and when the namespace is empty remove the `kubernetes`
//! finalizer through `namespaces/NAME/finalize`, after which the API server removes it.

mod conditions;
mod content;

use crate::Context;
use crate::util::{InformerEvent, WorkQueue, is_conflict, is_not_found, run_workers};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use std::time::Duration;

/// The finalizer this controller owns in `spec.finalizers`.
pub const FINALIZER: &str = "kubernetes";

/// Concurrent namespace syncs (upstream `--concurrent-namespace-syncs` default).
const WORKERS: usize = 10;

/// Failures of a namespace deletion.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("discovery failed: {0}")]
    Discovery(kube::Error),
    #[error("failed to delete content: {0}")]
    Content(String),
    #[error("namespace uid changed while finalizing")]
    UidChanged,
}

/// Run the controller until a fatal error.
pub async fn run(ctx: Context) -> anyhow::Result<()> {
    let queue: WorkQueue<String> = WorkQueue::new();
    let informer = ctx.informers.get::<Namespace>();
    // The handler stays registered while this future lives.
    let q = queue.clone();
    let _events = informer.add_handler(move |ev| {
        if let InformerEvent::Apply { new, .. } = ev
            && new.metadata.deletion_timestamp.is_some()
            && let Some(name) = &new.metadata.name
        {
            q.add(name.clone());
        }
    });
    informer.wait_synced().await;
    let client = ctx.client.clone();
    run_workers(queue, WORKERS, move |name: String| {
        let client = client.clone();
        async move { sync_namespace(&client, &name).await }
    })
    .await;
    Ok(())
}

/// One pass over a terminating namespace. `Ok(Some(d))`: content remains, look again after
/// `d`.
pub async fn sync_namespace(
    client: &kube::Client,
    name: &str,
) -> Result<Option<Duration>, NamespaceError> {
    let api: Api<Namespace> = Api::all(client.clone());
    // Several controllers edit a terminating namespace: always work on the latest state.
    let Some(ns) = api.get_opt(name).await? else {
        return Ok(None);
    };
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(None);
    }
    let ns = match ensure_terminating(&api, ns).await {
        Ok(ns) => ns,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !spec_finalizers(&ns).iter().any(|f| f == FINALIZER) {
        return Ok(None);
    }
    let outcome = content::delete_all(client, name).await;
    let conds = conditions::from_outcome(&outcome);
    if let Err(e) = conditions::update(&api, &ns, conds).await
        && !is_not_found(&e)
    {
        tracing::debug!(
            namespace = name,
            "updating namespace conditions failed: {e}"
        );
    }
    if let Some(err) = outcome.error {
        return Err(err);
    }
    if outcome.estimate_secs > 0 {
        // As upstream: look again halfway through the estimate.
        let secs = u64::try_from(outcome.estimate_secs / 2 + 1).unwrap_or(1);
        return Ok(Some(Duration::from_secs(secs)));
    }
    match finalize(&api, ns).await {
        Ok(()) => Ok(None),
        Err(NamespaceError::Api(e)) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn spec_finalizers(ns: &Namespace) -> Vec<String> {
    ns.spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default()
}

/// Make sure the phase says Terminating (the API server normally did so already).
async fn ensure_terminating(api: &Api<Namespace>, ns: Namespace) -> Result<Namespace, kube::Error> {
    let phase = ns.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase == Some("Terminating") {
        return Ok(ns);
    }
    let name = ns.metadata.name.clone().unwrap_or_default();
    let patch = serde_json::json!({"status": {"phase": "Terminating"}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

/// Remove our token from `spec.finalizers` (retrying on conflicts against the latest state).
async fn finalize(api: &Api<Namespace>, mut ns: Namespace) -> Result<(), NamespaceError> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    let uid = ns.metadata.uid.clone();
    for _ in 0..5 {
        let mut rest: Vec<String> = spec_finalizers(&ns)
            .into_iter()
            .filter(|f| f != FINALIZER)
            .collect();
        rest.sort();
        rest.dedup();
        let mut body = ns.clone();
        body.spec.get_or_insert_with(Default::default).finalizers = Some(rest);
        match api
            .replace_subresource("finalize", &name, &PostParams::default(), &body)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) => {
                ns = api.get(&name).await?;
                if ns.metadata.uid != uid {
                    return Err(NamespaceError::UidChanged);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(NamespaceError::Content("finalize kept conflicting".into()))
}

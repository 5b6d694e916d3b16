//! CustomResourceDefinitions take effect here: a stored CRD serves its resource at once
//! ([`serve`]), a deleted one stops serving it and its objects are removed with it
//! ([`retire`]); at start every stored CRD is served again ([`serve_stored`]).
//!
//! Upstream removes the objects through a finalizer and a cleanup controller (so their
//! own finalizers are honoured); here they go with the CRD's delete.

use r8s_api::catalog::{ResourceInfo, custom};
use r8s_store::{DynStore, ListOptions};
use serde_json::Value;

const GROUP: &str = "apiextensions.k8s.io";
const PLURAL: &str = "customresourcedefinitions";

/// Whether `info` is CustomResourceDefinitions.
pub(super) fn is_definition(info: &ResourceInfo) -> bool {
    info.group == GROUP && info.plural == PLURAL
}

/// Serve what the stored CRD defines.
pub(super) fn serve(crd: &Value) {
    custom::register(crd);
}

/// The CRD is gone: stop serving its resource and delete the resource's objects.
pub(super) async fn retire(store: &DynStore, crd: &Value) {
    let text = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or("");
    let (group, plural) = (text("/spec/group"), text("/spec/names/plural"));
    if group.is_empty() || plural.is_empty() {
        return;
    }
    custom::unregister(group, plural);
    let prefix = format!("/registry/{group}/{plural}/");
    let Ok(objects) = store.list(&prefix, ListOptions::default()).await else {
        tracing::warn!(%prefix, "could not list the objects of a deleted CRD");
        return;
    };
    for kv in objects.items {
        if let Err(e) = store.delete(&kv.key, None).await {
            tracing::debug!(key = %kv.key, error = %e, "deleting a custom object");
        }
    }
}

/// Serve every CRD in the store (at start).
pub async fn serve_stored(store: &DynStore) -> r8s_store::Result<()> {
    let list = store
        .list(
            &format!("/registry/{GROUP}/{PLURAL}/"),
            ListOptions::default(),
        )
        .await?;
    for kv in list.items {
        if let Ok(crd) = serde_json::from_slice::<Value>(&kv.value) {
            serve(&crd);
        }
    }
    Ok(())
}

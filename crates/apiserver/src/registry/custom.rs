//! CustomResourceDefinitions take effect here ([`Definitions`]): a CRD this server stores
//! serves its resource at once, one it deletes stops serving it and its objects are
//! removed with it. At start every stored CRD is served again, and a store watch then
//! follows the CRDs other API servers on the same store write. Each change is applied
//! only if it is newer than the last one applied for that CRD, so a late watch event
//! never undoes this server's own newer write (a CRD deleted and created again).
//!
//! Upstream removes the objects through a finalizer and a cleanup controller (so their
//! own finalizers are honoured); here they go with the CRD's delete.

use super::watched::{Followed, start_following};
use r8s_api::catalog::{ResourceInfo, custom};
use r8s_store::{DynStore, KeyValue, ListOptions, Revision};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

const GROUP: &str = "apiextensions.k8s.io";
const PLURAL: &str = "customresourcedefinitions";

/// Whether `info` is CustomResourceDefinitions.
pub(super) fn is_definition(info: &ResourceInfo) -> bool {
    info.group == GROUP && info.plural == PLURAL
}

fn prefix() -> String {
    format!("/registry/{GROUP}/{PLURAL}/")
}

/// The served CRDs of this server.
#[derive(Default)]
pub(super) struct Definitions {
    /// The revision of the last change applied per CRD name.
    applied: Mutex<HashMap<String, Revision>>,
    /// Dropped with the registry, which stops the watch task.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Definitions {
    /// Records a change of CRD `name` at `rev`; `false` if a newer one was applied.
    fn newer(&self, name: &str, rev: Revision) -> bool {
        let Ok(mut applied) = self.applied.lock() else {
            return false;
        };
        match applied.get(name) {
            Some(&at) if at > rev => false,
            _ => {
                applied.insert(name.to_string(), rev);
                true
            }
        }
    }

    /// The CRD `crd` was stored at `rev`: serve what it defines.
    pub(super) fn stored(&self, crd: &Value, rev: Revision) {
        if self.newer(crate::meta::name(crd), rev) {
            custom::register(crd);
        }
    }

    /// CRD `name` (`<plural>.<group>`) was deleted at `rev`: stop serving it.
    fn deleted(&self, name: &str, rev: Revision) {
        if self.newer(name, rev)
            && let Some((plural, group)) = name.split_once('.')
        {
            custom::unregister(group, plural);
        }
    }

    /// This server deleted `crd` at `rev`: stop serving it and delete its objects.
    pub(super) async fn retire(&self, store: &DynStore, crd: &Value, rev: Revision) {
        self.deleted(crate::meta::name(crd), rev);
        let text = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or("");
        let (group, plural) = (text("/spec/group"), text("/spec/names/plural"));
        if group.is_empty() || plural.is_empty() {
            return;
        }
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

    fn stored_kv(&self, kv: &KeyValue, rev: Revision) {
        if let Ok(crd) = serde_json::from_slice::<Value>(&kv.value) {
            self.stored(&crd, rev);
        }
    }
}

/// Serve every CRD in the store (at start, before the server reports ready), then follow
/// the CRDs other API servers write.
pub(super) async fn serve_stored(
    store: &DynStore,
    definitions: &Arc<Definitions>,
) -> r8s_store::Result<()> {
    let list = store.list(&prefix(), ListOptions::default()).await?;
    for kv in &list.items {
        definitions.stored_kv(kv, kv.mod_revision);
    }
    start_following(definitions, store, &definitions.stop);
    Ok(())
}

impl Followed for Definitions {
    fn prefix(&self) -> String {
        prefix()
    }

    fn reset(&self, listed: Option<(&[KeyValue], Revision)>) {
        for kv in listed.map(|(items, _)| items).unwrap_or_default() {
            self.stored_kv(kv, kv.mod_revision);
        }
    }

    fn change(&self, kv: &KeyValue, rev: Revision, deleted: bool) {
        if deleted {
            let name = kv.key.strip_prefix(&prefix()).unwrap_or("");
            self.deleted(name, rev);
        } else {
            self.stored_kv(kv, rev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd() -> Value {
        json!({"metadata": {"name": "things.follow-test.example.com"}, "spec": {
            "group": "follow-test.example.com", "scope": "Namespaced",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [{"name": "v1", "served": true, "storage": true}]
        }})
    }

    fn served() -> bool {
        r8s_api::catalog::find("follow-test.example.com", "v1", "things").is_some()
    }

    #[test]
    fn late_events_do_not_undo_newer_changes() {
        let defs = Definitions::default();
        defs.stored(&crd(), 10);
        assert!(served());
        // This server deleted it at 11 and created it again at 12; the watch then
        // delivers the delete at 11: the CRD stays served.
        defs.deleted("things.follow-test.example.com", 11);
        assert!(!served());
        defs.stored(&crd(), 12);
        defs.deleted("things.follow-test.example.com", 11);
        assert!(served());
        defs.deleted("things.follow-test.example.com", 13);
        assert!(!served());
    }
}

//! A registry on a fresh SQLite store for the admission dispatch tests (webhooks and
//! policies), with namespaces created outside any request.
#![allow(clippy::unwrap_used)]

use super::{Allocators, Registry, WriteOptions};
use r8s_api::catalog::{self, ResourceInfo};
use serde_json::{Value, json};

pub fn info(group: &str, version: &str, plural: &str) -> &'static ResourceInfo {
    catalog::find(group, version, plural).unwrap()
}

/// A registry holding the namespaces `(name, labels)`; keep the directory alive.
pub async fn registry_with(namespaces: &[(&str, Value)]) -> (Registry, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = r8s_store::open("", &dir.path().join("state.db"))
        .await
        .unwrap();
    let alloc = Allocators::new(store.clone(), "10.43.0.0/16").unwrap();
    let registry = Registry::new(store, alloc);
    for (name, labels) in namespaces {
        namespace(&registry, name, labels.clone()).await;
    }
    (registry, dir)
}

async fn namespace(registry: &Registry, name: &str, labels: Value) {
    registry
        .create(
            info("", "v1", "namespaces"),
            None,
            json!({"metadata": {"name": name, "labels": labels}}),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
}

//! A registry on a fresh SQLite store for the admission dispatch tests (webhooks and
//! policies), with namespaces created outside any request.
#![allow(clippy::unwrap_used)]

use super::{Allocators, Registry, WriteOptions};
use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::registry::RequestScope;
use crate::request::ResourcePath;
use axum::response::Response;
use r8s_api::catalog::{self, ResourceInfo};
use serde_json::{Value, json};
use std::future::Future;
use std::sync::{Arc, Mutex};

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

/// What a request answered: the written object or the error, and its warnings.
pub struct Answer {
    pub result: ApiResult<Value>,
    pub warnings: Vec<String>,
}

/// Runs `write` as the API request for `group`/`resource` made by alice (field manager
/// `tests`).
pub async fn as_request<F>(group: &str, resource: &str, write: F) -> Answer
where
    F: Future<Output = ApiResult<Value>>,
{
    let (mut parts, _) = axum::http::Request::builder()
        .method("POST")
        .uri("/x?fieldManager=tests")
        .body(())
        .unwrap()
        .into_parts();
    parts
        .extensions
        .insert(UserInfo::new("alice", vec!["devs".into()]));
    let target = ResourcePath {
        group: group.into(),
        version: "v1".into(),
        resource: resource.into(),
        namespace: None,
        name: None,
        subresource: None,
        legacy_watch: false,
    };
    let out = Arc::new(Mutex::new(None));
    let slot = out.clone();
    let response = RequestScope::of(&parts, &target)
        .run(async move {
            let result = write.await;
            let failed = result.is_err();
            *slot.lock().unwrap() = Some(result);
            if failed {
                return Err(ApiError::bad_request("failed"));
            }
            Ok(Response::default())
        })
        .await;
    let warnings = match &response {
        Ok(r) => r
            .headers()
            .get_all("warning")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect(),
        Err(_) => Vec::new(),
    };
    let result = out.lock().unwrap().take().unwrap();
    Answer { result, warnings }
}

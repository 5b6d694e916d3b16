//! The generic registry: one implementation of create/get/list/update/delete/watch for
//! every kind, parameterised by the kind's [`ResourceInfo`] and [`Strategy`] — upstream's
//! `genericregistry.Store`.
//!
//! Objects travel as JSON `Value`s; the stored bytes are JSON without `resourceVersion`,
//! which is always the store's mod-revision of the key.

mod admission;
mod alloc;
mod delete;
mod list;
mod watch;
mod write;

pub use alloc::Allocators;
pub use delete::{DeleteOptions, Deleted};
pub use list::{ListPage, ListParams};
pub use watch::{ApiEvent, WatchParams};
pub use write::WriteOptions;

use crate::error::{ApiError, ApiResult};
use r8s_api::catalog::ResourceInfo;
use r8s_store::{DynStore, KeyValue};
use serde_json::Value;

/// The generic registry over one store.
#[derive(Clone)]
pub struct Registry {
    store: DynStore,
    alloc: Allocators,
    admission: admission::Admission,
}

impl Registry {
    /// A registry over `store`, allocating ClusterIPs from `service_cidr`.
    pub fn new(store: DynStore, alloc: Allocators) -> Self {
        Registry {
            store,
            alloc,
            admission: admission::Admission::default(),
        }
    }

    /// The Service address allocators.
    pub fn allocators(&self) -> &Allocators {
        &self.alloc
    }

    /// The underlying store.
    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// Read one object.
    pub async fn get(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<Value> {
        let key = object_key(info, namespace, name);
        match self.store.get(&key, 0).await? {
            Some(kv) => decode(info, &kv),
            None => Err(ApiError::not_found(info.group, info.plural, name)),
        }
    }

    /// Read one object and its raw key-value (for preconditions).
    async fn get_kv(
        &self,
        info: &'static ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<(Value, KeyValue)> {
        let key = object_key(info, namespace, name);
        match self.store.get(&key, 0).await? {
            Some(kv) => Ok((decode(info, &kv)?, kv)),
            None => Err(ApiError::not_found(info.group, info.plural, name)),
        }
    }
}

/// Storage key of one object.
pub fn object_key(info: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    match namespace.filter(|_| info.namespaced) {
        Some(ns) => format!("{}{ns}/{name}", info.key_prefix()),
        None => format!("{}{name}", info.key_prefix()),
    }
}

/// Storage key prefix of a collection (all namespaces when `namespace` is `None`).
pub fn collection_prefix(info: &ResourceInfo, namespace: Option<&str>) -> String {
    match namespace.filter(|_| info.namespaced) {
        Some(ns) => format!("{}{ns}/", info.key_prefix()),
        None => info.key_prefix(),
    }
}

/// Stored bytes → object with `resourceVersion` and the served apiVersion/kind.
pub fn decode(info: &ResourceInfo, kv: &KeyValue) -> ApiResult<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    set_resource_version(&mut obj, kv.mod_revision);
    set_type_meta(info, &mut obj);
    Ok(obj)
}

/// Object → stored bytes (without `resourceVersion`).
fn encode(obj: &Value) -> ApiResult<Vec<u8>> {
    let mut copy = obj.clone();
    if let Some(m) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&copy).map_err(|e| ApiError::internal(e.to_string()))
}

/// Set `metadata.resourceVersion` to a store revision.
pub fn set_resource_version(obj: &mut Value, rev: i64) {
    crate::meta::metadata_mut(obj).insert("resourceVersion".into(), Value::String(rev.to_string()));
}

/// Convert a storage-form object to the version served by `info` and set its
/// apiVersion/kind.
pub fn set_type_meta(info: &ResourceInfo, obj: &mut Value) {
    r8s_api::conversion::from_storage(info, obj);
    if let Some(map) = obj.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(info.api_version()));
        map.insert("kind".into(), Value::String(info.kind.to_string()));
    }
}

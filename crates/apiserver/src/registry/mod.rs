//! The generic registry: one implementation of create/get/list/update/delete/watch for
//! every kind, parameterised by the kind's [`ResourceInfo`] and [`Strategy`] — upstream's
//! `genericregistry.Store`.
//!
//! Objects travel as JSON `Value`s; the stored bytes are JSON without `resourceVersion`,
//! which is always the store's mod-revision of the key.

mod admission;
mod alloc;
mod custom;
mod delete;
mod event_cache;
mod list;
mod namespaces;
mod watch;
mod watched;
// Beside admission.rs's plugins, declared here so admission.rs stays as it is.
#[path = "admission/policy/mod.rs"]
mod policy;
#[cfg(test)]
#[path = "admission/test_registry.rs"]
mod test_registry;
#[path = "admission/webhook/mod.rs"]
mod webhook;
mod write;

pub use alloc::Allocators;
pub use delete::{DeleteOptions, Deleted};
pub use event_cache::{Form, SharedObject, watch_line};
pub use list::{ListPage, ListParams};
pub use watch::{ApiEvent, WatchParams};
pub use webhook::RequestScope;
pub use write::WriteOptions;

use crate::error::{ApiError, ApiResult};
use r8s_api::catalog::ResourceInfo;
use r8s_store::{DynStore, KeyValue};
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::sync::Arc;

/// The generic registry over one store.
#[derive(Clone)]
pub struct Registry {
    store: DynStore,
    alloc: Allocators,
    admission: admission::Admission,
    /// Watch objects decoded once for all watchers of a change.
    events: Arc<event_cache::EventCache>,
    /// Namespaces that accept creates, from a watch.
    namespaces: Arc<namespaces::NamespaceCache>,
    /// LimitRanges and ResourceQuotas for admission, from watches.
    limit_ranges: Arc<watched::KindCache>,
    quotas: Arc<watched::KindCache>,
    /// Stored CRDs, followed so every API server on the store serves them.
    definitions: Arc<custom::Definitions>,
    /// Admission webhook configurations, from watches.
    webhooks: Arc<webhook::Webhooks>,
}

impl Registry {
    /// A registry over `store`, allocating ClusterIPs from `service_cidr`.
    pub fn new(store: DynStore, alloc: Allocators) -> Self {
        Registry {
            store,
            alloc,
            admission: admission::Admission::default(),
            events: Arc::default(),
            namespaces: Arc::default(),
            limit_ranges: Arc::new(watched::KindCache::new(builtin("limitranges"))),
            quotas: Arc::new(watched::KindCache::new(builtin("resourcequotas"))),
            definitions: Arc::default(),
            webhooks: Arc::new(webhook::Webhooks::new()),
        }
    }

    /// Serve the custom resources of every stored CRD, and follow CRDs from then on.
    pub async fn serve_custom_resources(&self) -> ApiResult<()> {
        custom::serve_stored(&self.store, &self.definitions).await?;
        Ok(())
    }

    /// Bookkeeping after this server committed a write of `info` at `rev`: the admission
    /// caches must see it before they answer again, and a CustomResourceDefinition
    /// starts or stops serving its resource.
    async fn wrote(&self, info: &ResourceInfo, rev: i64, written: Written<'_>) {
        for cache in [&self.limit_ranges, &self.quotas] {
            if cache.caches(info) {
                cache.wrote(rev);
            }
        }
        self.webhooks.wrote(info, rev);
        if custom::is_definition(info) {
            match written {
                Written::Stored(crd) => self.definitions.stored(crd, rev),
                Written::Deleted(crd) => self.definitions.retire(&self.store, crd, rev).await,
            }
        }
    }

    /// Whether an admission webhook or ValidatingAdmissionPolicy may be configured
    /// (requests then carry what admission needs to know about them).
    pub fn webhooks_configured(&self) -> bool {
        self.webhooks.any()
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

/// What a committed write left in the store.
enum Written<'a> {
    /// The object as stored.
    Stored(&'a Value),
    /// The object just removed.
    Deleted(&'a Value),
}

/// A core/v1 kind the registry itself needs; the catalog always lists these.
#[allow(clippy::expect_used)]
fn builtin(plural: &str) -> &'static ResourceInfo {
    r8s_api::catalog::find("", "v1", plural).expect("core/v1 kinds are in the catalog")
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
    decode_at(info, kv, kv.mod_revision)
}

/// [`decode`] with another `resourceVersion` (a delete's, for the last state).
fn decode_at(info: &ResourceInfo, kv: &KeyValue, resource_version: i64) -> ApiResult<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is not JSON: {e}", kv.key)))?;
    set_resource_version(&mut obj, resource_version);
    set_type_meta(info, &mut obj);
    Ok(obj)
}

/// Object → stored bytes (without `resourceVersion`).
fn encode(obj: &Value) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(&Stored(obj)).map_err(|e| ApiError::internal(e.to_string()))
}

/// Serializes an object as it is stored: `metadata.resourceVersion` left out, everything
/// else as serde_json writes it (so without copying the object to drop one field).
struct Stored<'a>(&'a Value);

impl Serialize for Stored<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Value::Object(map) = self.0 else {
            return self.0.serialize(s);
        };
        s.collect_map(map.iter().map(|(k, v)| match v {
            Value::Object(m) if k == "metadata" => (k, Field::Metadata(m)),
            _ => (k, Field::Plain(v)),
        }))
    }
}

/// A top-level field; an object `metadata` is written without `resourceVersion`.
enum Field<'a> {
    Plain(&'a Value),
    Metadata(&'a serde_json::Map<String, Value>),
}

impl Serialize for Field<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Metadata(m) => s.collect_map(m.iter().filter(|(k, _)| *k != "resourceVersion")),
            Field::Plain(v) => v.serialize(s),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `encode` did before: copy, drop the field, serialize.
    fn encode_by_copy(obj: &Value) -> Vec<u8> {
        let mut copy = obj.clone();
        if let Some(m) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        serde_json::to_vec(&copy).expect("json")
    }

    #[test]
    fn encode_drops_only_the_resource_version() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "a", "resourceVersion": "5", "labels": {"x": "y"},
                    "annotations": {"resourceVersion": "kept"}},
                "data": {"resourceVersion": "kept", "q": "\"\n\u{e9}"}}),
            json!({"metadata": {"resourceVersion": "5"}}),
            json!({"metadata": {}, "spec": {"metadata": {"resourceVersion": "kept"}}}),
            json!({"metadata": "odd", "n": [1, 2.5, null, true]}),
            json!({}),
            json!([1, 2]),
        ];
        for obj in objects {
            assert_eq!(encode(&obj).expect("encode"), encode_by_copy(&obj), "{obj}");
        }
        let bytes =
            encode(&json!({"metadata": {"name": "a", "resourceVersion": "5"}})).expect("encode");
        assert_eq!(bytes, br#"{"metadata":{"name":"a"}}"#);
    }
}

//! The OpenAPI documents kubectl reads from `/openapi/v3` (and `/openapi/v2`).
//!
//! kubectl 1.32 uses them for three things:
//! - deciding whether the server validates fields itself: it looks in
//!   `/openapi/v3/apis/G/V` for a PATCH operation tagged with the object's
//!   `x-kubernetes-group-version-kind` that takes the `fieldValidation` query parameter, and
//!   otherwise falls back to client-side validation against `/openapi/v2`;
//! - computing client-side-apply strategic merge patches from the schemas'
//!   `x-kubernetes-patch-merge-key` / `x-kubernetes-patch-strategy`;
//! - `kubectl explain`, which renders the v3 schemas and their descriptions.
//!
//! The schemas come from the k8s-openapi types (their `schemars` implementations carry
//! upstream's definition names and descriptions); this module reshapes them the way the
//! upstream API server publishes them (`allOf`-wrapped references, int-or-string and quantity
//! as `oneOf`, group-version-kind tags) and adds the list/patch metadata that k8s-openapi
//! drops. Documents are built once per process and cached: they are large.

mod extensions;
#[rustfmt::skip]
mod extensions_data;
mod params;
mod paths;
mod schemas;
mod types;
mod v2;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::catalog::ResourceInfo;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub use extensions::{
    ListType, MapType, PatchStrategy, list_type, list_types, map_types, patch_strategies,
    patch_strategy,
};
pub use schemas::{all_definitions, definition_name};
pub use v2::{V2_PROTOBUF_ACCEPT, V2_PROTOBUF_CONTENT_TYPE, v2_document};

/// One served group-version document, serialized once.
struct Document {
    bytes: Arc<Vec<u8>>,
    hash: String,
}

/// Documents keyed by their `/openapi/v3/` path (`api/v1`, `apis/apps/v1`).
fn documents() -> &'static BTreeMap<String, Document> {
    static DOCS: OnceLock<BTreeMap<String, Document>> = OnceLock::new();
    DOCS.get_or_init(|| {
        group_versions(crate::catalog::all())
            .into_iter()
            .filter_map(|(group, version)| {
                let doc = Document::of(&build_document(group, version))?;
                Some((path_key(group, version), doc))
            })
            .collect()
    })
}

impl Document {
    /// A built document, serialized and hashed.
    fn of(value: &Value) -> Option<Document> {
        // Serializing a `Value` only fails for non-string map keys, which it cannot hold.
        let bytes = serde_json::to_vec(value).ok()?;
        let hash = hex_sha256(&bytes);
        Some(Document {
            bytes: Arc::new(bytes),
            hash,
        })
    }
}

/// The documents of custom resource group-versions, rebuilt when a CRD changes.
fn custom_documents() -> Arc<BTreeMap<String, Document>> {
    type Cache = Mutex<Option<(u64, Arc<BTreeMap<String, Document>>)>>;
    static CACHE: Cache = Mutex::new(None);
    let generation = crate::catalog::custom::generation();
    let Ok(mut cache) = CACHE.lock() else {
        return Arc::default();
    };
    if let Some((built, docs)) = cache.as_ref()
        && *built == generation
    {
        return docs.clone();
    }
    let docs: BTreeMap<String, Document> = group_versions(crate::catalog::custom::all())
        .into_iter()
        .filter_map(|(group, version)| {
            let resources = crate::catalog::resources_in(group, version);
            let value = json!({
                "openapi": "3.0.0",
                "info": { "title": "Kubernetes CRD Swagger", "version": "v0.1.0" },
                "paths": paths::paths(group, version, &resources),
                "components": { "schemas": schemas::custom_document_schemas(&resources) },
            });
            Some((path_key(group, version), Document::of(&value)?))
        })
        .collect();
    let docs = Arc::new(docs);
    *cache = Some((generation, docs.clone()));
    docs
}

/// The document stored under `key`, built-in or custom.
fn document(key: &str) -> Option<(Arc<Vec<u8>>, String)> {
    if let Some(d) = documents().get(key) {
        return Some((d.bytes.clone(), d.hash.clone()));
    }
    custom_documents()
        .get(key)
        .map(|d| (d.bytes.clone(), d.hash.clone()))
}

/// The group-versions of `resources`, in their order, without repeats.
fn group_versions<'a>(
    resources: impl IntoIterator<Item = &'a ResourceInfo>,
) -> Vec<(&'static str, &'static str)> {
    let mut seen = Vec::new();
    for r in resources {
        if !seen.contains(&(r.group, r.version)) {
            seen.push((r.group, r.version));
        }
    }
    seen
}

/// `api/v1` for the core group, `apis/G/V` otherwise.
fn path_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The OpenAPI 3.0 document of one group-version, as a JSON value.
fn build_document(group: &str, version: &str) -> Value {
    let resources: Vec<_> = crate::catalog::resources_in(group, version);
    let paths = paths::paths(group, version, &resources);
    let components = schemas::document_schemas(group, version, &resources);
    let title = "Kubernetes";
    json!({
        "openapi": "3.0.0",
        "info": { "title": title, "version": schemas::KUBERNETES_VERSION },
        "paths": paths,
        "components": { "schemas": components },
    })
}

/// The `/openapi/v3` discovery document: every group-version with its hashed URL.
///
/// kubectl caches a document under its `hash`, so the URL changes whenever the document
/// does.
pub fn v3_index() -> Value {
    let mut paths = Map::new();
    let custom = custom_documents();
    for (key, doc) in documents().iter().chain(custom.iter()) {
        paths.insert(
            key.clone(),
            json!({ "serverRelativeURL": format!("/openapi/v3/{key}?hash={}", doc.hash) }),
        );
    }
    json!({ "paths": paths })
}

/// The serialized OpenAPI 3.0 JSON document for `group`/`version` ("" for core), if served.
pub fn v3_document(group: &str, version: &str) -> Option<Arc<Vec<u8>>> {
    document(&path_key(group, version)).map(|(bytes, _)| bytes)
}

/// The hash in the document's `serverRelativeURL` (upper-case hex SHA-256 of its bytes).
pub fn v3_hash(group: &str, version: &str) -> Option<String> {
    document(&path_key(group, version)).map(|(_, hash)| hash)
}

/// The document behind an `/openapi/v3/…` path suffix (`apis/apps/v1`, `api/v1`).
pub fn v3_document_at(path: &str) -> Option<(Arc<Vec<u8>>, String)> {
    document(path.trim_matches('/'))
}

#[cfg(test)]
mod tests;

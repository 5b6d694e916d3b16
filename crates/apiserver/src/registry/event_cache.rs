//! Decoded watch objects shared by every watcher of one store event — upstream's
//! `cachingObject`. Without it each watcher JSON-decodes, converts and re-serializes the
//! same change, so one write costs N decodes and N encodes for N watchers; here it costs
//! one of each (per served version: conversion differs, e.g. core/v1 vs events.k8s.io/v1
//! Events, autoscaling v1 vs v2).
//!
//! A stored value at a given (key, mod-revision) never changes, so entries never go stale;
//! the cache is only bounded (oldest first out) so that lagging watchers cannot pin memory.
//! A watcher that lags past the bound simply decodes its own copy.

use super::decode_at;
use crate::error::ApiResult;
use r8s_api::catalog::ResourceInfo;
use r8s_store::{KeyValue, Revision};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};

/// At most this many decoded objects are kept … (a watcher task runs ahead of the others
/// by up to a tokio budget of events, 128, before yielding; twice that leaves slack).
const MAX_ENTRIES: usize = 256;
/// … and at most this many stored bytes' worth of them: decoded, an object takes ~10 times
/// its JSON size (a pod's managedFields are many small maps), so this is a few MB of heap.
const MAX_BYTES: usize = 256 << 10;

/// One object as sent to watchers, with its serialized forms computed at most once.
pub struct SharedObject {
    value: Value,
    json: OnceLock<Vec<u8>>,
    metadata_json: OnceLock<Vec<u8>>,
}

/// Which serialized form of a [`SharedObject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The object itself.
    Object,
    /// Its `PartialObjectMetadata` (rendered by the caller).
    Metadata,
}

impl SharedObject {
    /// Wrap an object; it is immutable from now on, as every watcher may hold it.
    pub fn new(value: Value) -> Arc<SharedObject> {
        Arc::new(SharedObject {
            value,
            json: OnceLock::new(),
            metadata_json: OnceLock::new(),
        })
    }

    /// The object.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The object, cloned only when someone else still holds it.
    pub fn into_value(self: Arc<Self>) -> Value {
        match Arc::try_unwrap(self) {
            Ok(me) => me.value,
            Err(shared) => shared.value.clone(),
        }
    }

    /// The object as compact JSON, serialized on first use.
    pub fn json(&self) -> &[u8] {
        self.json
            .get_or_init(|| serde_json::to_vec(&self.value).unwrap_or_default())
    }

    /// A serialized form; `render` runs once per object and form (the first caller's
    /// `render` wins, so every caller must render the same way).
    pub fn encoded(&self, form: Form, render: impl FnOnce(&Value) -> Vec<u8>) -> &[u8] {
        match form {
            Form::Object => self.json(),
            Form::Metadata => self.metadata_json.get_or_init(|| render(&self.value)),
        }
    }
}

impl std::fmt::Debug for SharedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.value.fmt(f)
    }
}

impl PartialEq for SharedObject {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

/// Whether serde_json writes `{"type":…,"object":…}` as `{"object":…,"type":…}` (sorted
/// maps, the default) or in insertion order (its `preserve_order` feature).
static OBJECT_FIRST: LazyLock<bool> = LazyLock::new(|| {
    let probe = serde_json::json!({"type": 0, "object": 0});
    probe
        .as_object()
        .and_then(|m| m.keys().next())
        .is_some_and(|k| k == "object")
});

/// One watch line, `{"type":kind,"object":…}` plus a newline, byte for byte what
/// serializing that JSON object would give, around an already serialized object.
pub fn watch_line(kind: &str, object_json: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(object_json.len() + kind.len() + 24);
    // Writing a string into a Vec cannot fail.
    let push_kind = |line: &mut Vec<u8>| {
        let _ = serde_json::to_writer(&mut *line, kind);
    };
    if *OBJECT_FIRST {
        line.extend_from_slice(b"{\"object\":");
        line.extend_from_slice(object_json);
        line.extend_from_slice(b",\"type\":");
        push_kind(&mut line);
    } else {
        line.extend_from_slice(b"{\"type\":");
        push_kind(&mut line);
        line.extend_from_slice(b",\"object\":");
        line.extend_from_slice(object_json);
    }
    line.extend_from_slice(b"}\n");
    line
}

/// What a decoded object depends on: the stored bytes (named by key and mod-revision),
/// the served version (the `ResourceInfo`, by address: catalog entries are statics) and
/// the resourceVersion it carries (a delete's, or the stored mod-revision).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    key: String,
    mod_revision: Revision,
    info: usize,
    resource_version: Revision,
}

/// A decode in progress or done; `None` when the stored bytes were not JSON.
type Slot = Arc<OnceLock<Option<Arc<SharedObject>>>>;

#[derive(Default)]
struct Entries {
    map: HashMap<CacheKey, (Slot, usize)>,
    order: VecDeque<CacheKey>,
    bytes: usize,
}

/// Bounded map of recently decoded watch objects, shared by clones of a registry.
#[derive(Default)]
pub struct EventCache {
    entries: Mutex<Entries>,
    limits: Limits,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    entries: usize,
    bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            entries: MAX_ENTRIES,
            bytes: MAX_BYTES,
        }
    }
}

impl EventCache {
    #[cfg(test)]
    fn with_limits(entries: usize, bytes: usize) -> EventCache {
        EventCache {
            entries: Mutex::default(),
            limits: Limits { entries, bytes },
        }
    }

    /// `kv` decoded for `info` with `resource_version`, shared with every other caller
    /// asking for the same; concurrent callers wait for one decode rather than each doing
    /// their own. `None` when the stored bytes are not JSON (such values are skipped).
    pub fn decode(
        &self,
        info: &'static ResourceInfo,
        kv: &KeyValue,
        resource_version: Revision,
    ) -> Option<Arc<SharedObject>> {
        let slot = self.slot(
            CacheKey {
                key: kv.key.clone(),
                mod_revision: kv.mod_revision,
                info: std::ptr::from_ref(info) as usize,
                resource_version,
            },
            kv.value.len(),
        );
        slot.get_or_init(|| {
            let decoded: ApiResult<Value> = decode_at(info, kv, resource_version);
            decoded.ok().map(SharedObject::new)
        })
        .clone()
    }

    /// The slot for `key`, inserted (evicting the oldest beyond the limits) when new.
    fn slot(&self, key: CacheKey, size: usize) -> Slot {
        let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((slot, _)) = e.map.get(&key) {
            return slot.clone();
        }
        let slot = Slot::default();
        e.order.push_back(key.clone());
        e.map.insert(key, (slot.clone(), size));
        e.bytes += size;
        while e.map.len() > self.limits.entries.max(1)
            || (e.bytes > self.limits.bytes && e.map.len() > 1)
        {
            let Some(old) = e.order.pop_front() else {
                break;
            };
            if let Some((_, n)) = e.map.remove(&old) {
                e.bytes -= n;
            }
        }
        slot
    }

    /// How many objects are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }
}

#[cfg(test)]
#[path = "event_cache_tests.rs"]
mod tests;

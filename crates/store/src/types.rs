//! Values the store hands out.

use futures::stream::BoxStream;

/// A store revision (etcd's mod-revision); strictly increasing, cluster-wide. 0 = none/latest.
pub type Revision = i64;

/// A lease id; keys attached to a lease are deleted when it expires.
pub type LeaseId = i64;

/// One key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created this incarnation of the key.
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
    /// Lease the key is attached to (0 = none).
    pub lease: LeaseId,
}

/// How to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// List at this revision (0 = latest). Fails with `Compacted` if compacted away.
    pub revision: Revision,
    /// At most this many keys (0 = no limit).
    pub limit: i64,
    /// Only keys strictly greater than this one (for continuing a paged list).
    pub start_after: Option<String>,
}

/// A page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    pub items: Vec<KeyValue>,
    /// The revision the list is consistent at; pass it back in [`ListOptions::revision`]
    /// with `start_after` = last key to get the next page.
    pub revision: Revision,
    /// More keys follow the last one returned.
    pub more: bool,
    /// How many live keys follow the last one returned, at `revision` (0 unless `more`):
    /// upstream's `remainingItemCount`.
    pub remaining: i64,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A create or an update (`prev` tells which).
    Put,
    Delete,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    /// The key after the change. For a delete: the key, empty value, and
    /// `mod_revision` = the revision of the delete.
    pub kv: KeyValue,
    /// The value before the change (always set for deletes and updates, `None` for creates).
    pub prev: Option<KeyValue>,
}

impl WatchEvent {
    /// The revision of the change.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A watch: events in revision order; an `Err` item ends it.
pub type WatchStream = BoxStream<'static, crate::Result<WatchEvent>>;

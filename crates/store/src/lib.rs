//! Revisioned key-value store with etcd semantics.
//!
//! One [`Store`] trait, two backends: [`sqlite::SqliteStore`] (embedded, the default) and
//! [`etcd::EtcdStore`] (an etcd v3 cluster). The API server only ever talks to the trait.
//!
//! Semantics (the same for both backends, checked by the shared conformance suite in
//! `tests/conformance.rs`):
//! - every write gets a new, strictly increasing cluster-wide revision;
//! - `create` fails with [`Error::AlreadyExists`] if the key exists; `update`/`delete` take
//!   the expected mod-revision and fail with [`Error::Conflict`] on a mismatch;
//! - `list` is consistent at one revision and pages with `limit` + `start_after`;
//! - `watch` yields every change after a revision, in order, none skipped or duplicated,
//!   with the previous value for deletes and updates; a compacted start revision fails with
//!   [`Error::Compacted`].

mod error;
pub mod etcd;
pub mod migrate;
pub mod snapshot;
pub mod sqlite;
#[doc(hidden)]
pub mod testsuite;
mod types;

pub use error::{Error, Result};
pub use types::*;

use async_trait::async_trait;
use std::sync::Arc;

/// The storage contract the API server relies on. All methods are cancel-safe: a dropped
/// future never leaves a half-applied write.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Create `key`; fails with [`Error::AlreadyExists`] if it exists. Returns the new revision.
    async fn create(&self, key: &str, value: Vec<u8>, lease: Option<LeaseId>) -> Result<Revision>;

    /// Replace `key` if its current mod-revision is `expected`; [`Error::Conflict`] (carrying
    /// the current value, if any) otherwise, [`Error::NotFound`] if the key is absent.
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: Revision,
        lease: Option<LeaseId>,
    ) -> Result<Revision>;

    /// Delete `key`, if `expected` is given only when its mod-revision matches. Returns the
    /// deleted value (with its last mod-revision) and the revision of the delete.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<(KeyValue, Revision)>;

    /// Read one key at the latest revision (`rev == 0`) or at `rev`.
    async fn get(&self, key: &str, rev: Revision) -> Result<Option<KeyValue>>;

    /// List keys under `prefix` (see [`ListOptions`]), consistent at one revision.
    async fn list(&self, prefix: &str, opts: ListOptions) -> Result<ListResult>;

    /// Number of live keys under `prefix` at the latest revision.
    async fn count(&self, prefix: &str) -> Result<i64>;

    /// Every change under `prefix` with a revision greater than `after`, in revision order.
    /// `after == 0` means "from now on". Fails with [`Error::Compacted`] when `after` is
    /// older than the compacted revision. The stream ends (with an error item) if the
    /// watcher falls too far behind; callers re-list then.
    async fn watch(&self, prefix: &str, after: Revision) -> Result<WatchStream>;

    /// The latest revision of the store.
    async fn current_revision(&self) -> Result<Revision>;

    /// Drop history at and below `rev` (latest values of live keys are always kept).
    async fn compact(&self, rev: Revision) -> Result<()>;

    /// The revision history has been compacted up to (0 if never).
    async fn compacted_revision(&self) -> Result<Revision>;

    /// Grant a lease that expires after `ttl_seconds` unless kept alive; keys attached to
    /// it are deleted (with watch events) when it expires.
    async fn grant_lease(&self, ttl_seconds: i64) -> Result<LeaseId>;

    /// Renew a lease for another full TTL.
    async fn keep_alive(&self, lease: LeaseId) -> Result<()>;

    /// A short name of the backend, for logs and `/readyz` (`sqlite`, `etcd`).
    fn backend(&self) -> &'static str;

    /// Check the backend is reachable and healthy.
    async fn health(&self) -> Result<()>;
}

/// A shared handle to any backend.
pub type DynStore = Arc<dyn Store>;

/// Open the store named by a `--datastore-endpoint` value: empty means embedded SQLite at
/// `sqlite_path`; `http://h:2379[,http://h2:2379…]` means an etcd v3 cluster.
pub async fn open(endpoint: &str, sqlite_path: &std::path::Path) -> Result<DynStore> {
    let endpoint = endpoint.trim();
    if endpoint.is_empty() || endpoint.starts_with("sqlite://") {
        let path = endpoint
            .strip_prefix("sqlite://")
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| sqlite_path.to_path_buf());
        Ok(Arc::new(
            sqlite::SqliteStore::open(&path, sqlite::Options::default()).await?,
        ))
    } else if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        let endpoints: Vec<String> = endpoint.split(',').map(|s| s.trim().to_string()).collect();
        Ok(Arc::new(
            etcd::EtcdStore::connect(&endpoints, etcd::Options::default()).await?,
        ))
    } else {
        Err(Error::InvalidArgument(format!(
            "unsupported datastore endpoint {endpoint:?}: use an empty value (embedded SQLite) or http://host:2379[,http://host2:2379]"
        )))
    }
}

//! Store errors. The API server maps each to a Kubernetes `Status`.

use crate::{KeyValue, Revision};

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Create of a key that exists.
    #[error("key {0:?} already exists")]
    AlreadyExists(String),
    /// The key does not exist.
    #[error("key {0:?} not found")]
    NotFound(String),
    /// The expected revision did not match; carries the current value (if the key exists).
    #[error("revision conflict on key {key:?}")]
    Conflict {
        key: String,
        current: Option<Box<KeyValue>>,
    },
    /// The requested revision was compacted away (the API server answers 410 Gone).
    #[error("required revision {requested} has been compacted (compacted revision {compacted})")]
    Compacted {
        requested: Revision,
        compacted: Revision,
    },
    /// The requested revision is in the future.
    #[error("required revision {0} is a future revision")]
    FutureRevision(Revision),
    /// A watcher fell too far behind and must re-list.
    #[error("watcher fell behind and was dropped; re-list and watch again")]
    WatcherLagged,
    /// The lease does not exist (or expired).
    #[error("lease {0} not found")]
    LeaseNotFound(i64),
    /// Bad argument from the caller.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The database file is not an r8s store or is damaged.
    #[error("datastore {path}: {reason}")]
    Corrupt { path: String, reason: String },
    /// The backend cannot be reached (etcd down, database closed).
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
    /// The disk is full: nothing was written.
    #[error("datastore {0}: disk full, nothing was written")]
    DiskFull(String),
    /// Any other backend failure.
    #[error("datastore error: {0}")]
    Internal(String),
}

/// `Result` with the store's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

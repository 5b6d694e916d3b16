//! Shared controller plumbing: a client-go style work queue and informer helpers.

pub mod discovery;
pub mod informer;
pub mod workqueue;

pub use informer::{Informer, InformerEvent};
pub use workqueue::{WorkQueue, run_workers};

/// Whether a kube error is an API `404 NotFound`.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether a kube error is an API `409 Conflict` (stale resourceVersion or AlreadyExists).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Whether a kube error is `409 AlreadyExists` specifically.
pub fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}

//! Shared controller plumbing: a client-go style work queue, informers and the shared
//! informer factory; ControllerRef claiming, pod helpers and the sync error type of the
//! StatefulSet and DaemonSet controllers.

pub mod controller_ref;
pub mod discovery;
pub mod error;
pub mod informer;
pub mod podutil;
pub mod selector;
pub mod shared;
pub mod workqueue;

pub use informer::{Informer, InformerEvent, Registration};
pub use shared::SharedInformers;
pub use workqueue::{WorkQueue, run_workers};

/// Aborts a spawned task when dropped, so a helper task ends with the controller (or
/// informer) that started it, e.g. when lost leadership drops the controller's future.
pub struct AbortOnDrop(pub tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

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

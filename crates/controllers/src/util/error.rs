//! The error type of a StatefulSet or DaemonSet sync (any error re-queues the object with
//! backoff).

use crate::history::HistoryError;

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API request failed.
    #[error("{action}: {source}")]
    Api {
        /// What was being done, e.g. `creating pod ns/web-0`.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// Revision bookkeeping failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The object cannot be processed as it is (bad selector, stale collision count…).
    #[error("{0}")]
    Invalid(String),
    /// Several independent operations failed.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Many(Vec<Error>),
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wrap a client error with what was being done.
    pub fn api(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Api {
            action: action.into(),
            source,
        }
    }

    /// One error for many (`Ok` if none).
    pub fn aggregate(mut errs: Vec<Error>) -> Result<()> {
        match errs.len() {
            0 => Ok(()),
            1 => Err(errs.remove(0)),
            _ => Err(Error::Many(errs)),
        }
    }
}

pub use super::{is_already_exists, is_not_found};

/// 409 Conflict from a stale resourceVersion (unlike [`super::is_conflict`], not
/// AlreadyExists).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason != "AlreadyExists")
}

/// Whether a create was refused because the namespace is terminating (upstream marks it with
/// a `NamespaceTerminating` cause; the message is checked too for servers that do not).
pub fn is_namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403
        && (s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating"))
            || s.message.contains("because it is being terminated")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_shapes() {
        assert!(Error::aggregate(vec![]).is_ok());
        let one = Error::aggregate(vec![Error::Invalid("a".into())]).unwrap_err();
        assert_eq!(one.to_string(), "a");
        let many = Error::aggregate(vec![Error::Invalid("a".into()), Error::Invalid("b".into())])
            .unwrap_err();
        assert_eq!(many.to_string(), "a; b");
    }
}

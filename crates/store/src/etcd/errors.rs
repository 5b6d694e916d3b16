//! Classify etcd client failures into the store's [`Error`]s.
//!
//! etcd reports most semantic failures as gRPC statuses whose messages are fixed strings
//! (etcd's `rpctypes` package), so the message is what identifies them; the status code
//! decides between "etcd is unreachable/leaderless" and "etcd refused the request".

use crate::Error;
use tonic::Code;

/// What an etcd failure means for the store. `Compacted` and `FutureRevision` need the
/// requested revision (and the compacted one), which only the caller knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Compacted,
    FutureRevision,
    LeaseNotFound,
    NoSpace,
    Invalid(String),
    Unavailable(String),
    Other(String),
}

const COMPACTED: &str = "required revision has been compacted";
const FUTURE_REV: &str = "required revision is a future revision";
const LEASE_NOT_FOUND: &str = "requested lease not found";
const NO_SPACE: &str = "database space exceeded";
const TOO_LARGE: &str = "request is too large";
const TTL_TOO_LARGE: &str = "too large lease TTL";

/// Classify a gRPC status by code and message.
pub(crate) fn classify_status(code: Code, message: &str) -> Failure {
    if message.contains(COMPACTED) {
        Failure::Compacted
    } else if message.contains(FUTURE_REV) {
        Failure::FutureRevision
    } else if message.contains(LEASE_NOT_FOUND) {
        Failure::LeaseNotFound
    } else if message.contains(NO_SPACE) {
        Failure::NoSpace
    } else if message.contains(TOO_LARGE) || message.contains(TTL_TOO_LARGE) {
        Failure::Invalid(message.to_string())
    } else {
        match code {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::Unknown
            | Code::ResourceExhausted => Failure::Unavailable(message.to_string()),
            Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
                Failure::Invalid(message.to_string())
            }
            _ => Failure::Other(message.to_string()),
        }
    }
}

/// Classify any etcd client error.
pub(crate) fn classify(err: &etcd_client::Error) -> Failure {
    use etcd_client::Error as E;
    match err {
        E::GRpcStatus(status) => classify_status(status.code(), status.message()),
        E::TransportError(e) => Failure::Unavailable(e.to_string()),
        E::IoError(e) => Failure::Unavailable(e.to_string()),
        E::LeaseKeepAliveError(msg) if msg.contains("not found") => Failure::LeaseNotFound,
        E::InvalidArgs(msg) => Failure::Invalid(msg.clone()),
        E::InvalidUri(e) => Failure::Invalid(e.to_string()),
        other => Failure::Other(other.to_string()),
    }
}

/// The store error for a failure that needs no revision context.
/// `what` names the operation and `endpoints` the cluster, for messages people can act on.
pub(crate) fn simple_error(f: Failure, what: &str, endpoints: &str, lease: i64) -> Error {
    match f {
        Failure::LeaseNotFound => Error::LeaseNotFound(lease),
        Failure::NoSpace => Error::DiskFull(format!(
            "etcd at {endpoints} ({what}): database space exceeded (NOSPACE alarm)"
        )),
        Failure::Invalid(m) => Error::InvalidArgument(format!("etcd rejected {what}: {m}")),
        Failure::Unavailable(m) => Error::Unavailable(format!("etcd at {endpoints} ({what}): {m}")),
        Failure::Compacted => Error::Internal(format!("etcd {what}: revision compacted")),
        Failure::FutureRevision => Error::Internal(format!("etcd {what}: future revision")),
        Failure::Other(m) => Error::Internal(format!("etcd {what}: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_messages_are_recognised() {
        assert_eq!(
            classify_status(
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted"
            ),
            Failure::Compacted
        );
        assert_eq!(
            classify_status(
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision"
            ),
            Failure::FutureRevision
        );
        assert_eq!(
            classify_status(Code::NotFound, "etcdserver: requested lease not found"),
            Failure::LeaseNotFound
        );
        assert_eq!(
            classify_status(
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded"
            ),
            Failure::NoSpace
        );
        assert!(matches!(
            classify_status(Code::InvalidArgument, "etcdserver: request is too large"),
            Failure::Invalid(_)
        ));
        assert!(matches!(
            classify_status(Code::Unavailable, "etcdserver: no leader"),
            Failure::Unavailable(_)
        ));
        assert!(matches!(
            classify_status(Code::PermissionDenied, "etcdserver: permission denied"),
            Failure::Other(_)
        ));
    }

    #[test]
    fn simple_errors_name_the_endpoints() {
        let e = simple_error(
            Failure::Unavailable("connection refused".into()),
            "get",
            "http://127.0.0.1:1",
            0,
        );
        assert!(matches!(&e, Error::Unavailable(m) if m.contains("127.0.0.1:1")));
        assert!(matches!(
            simple_error(Failure::LeaseNotFound, "create", "x", 7),
            Error::LeaseNotFound(7)
        ));
    }
}

//! Typed errors of the node agent.

use std::path::PathBuf;

/// Errors from the kubelet's runtime, image, network and API interactions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("CRI {op}: {status}")]
    Cri {
        op: &'static str,
        status: Box<tonic::Status>,
    },
    #[error("connecting to the CRI socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("container runtime: {0}")]
    Runtime(String),
    #[error("image import of {file}: {message}")]
    Import { file: PathBuf, message: String },
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Result alias for the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a gRPC status from the CRI runtime.
    pub fn cri(op: &'static str, status: tonic::Status) -> Self {
        Error::Cri {
            op,
            status: Box::new(status),
        }
    }

    /// The gRPC code when this is a CRI error.
    pub fn cri_code(&self) -> Option<tonic::Code> {
        match self {
            Error::Cri { status, .. } => Some(status.code()),
            _ => None,
        }
    }

    /// True for a CRI NotFound (already gone: fine for stop/remove).
    pub fn is_not_found(&self) -> bool {
        self.cri_code() == Some(tonic::Code::NotFound)
    }
}

/// Adds I/O context to `std::io::Result`.
pub trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

//! The crate's one error type, and how each error maps to a gRPC status.

use std::path::PathBuf;

/// Everything that can go wrong in the schema service.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is unusable.
    #[error("invalid {field}: {reason}")]
    Config {
        /// The flag (and environment variable) at fault.
        field: &'static str,
        /// Why it is unusable.
        reason: String,
    },
    /// The data directory cannot be created or read.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A schema file could not be written.
    #[error("cannot write schema {name}:{version}: {source}")]
    Write {
        /// Schema name.
        name: String,
        /// Schema version.
        version: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A payload is not JSON.
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    /// A schema document is not acceptable.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// A version string is not acceptable.
    #[error("invalid version {0:?}: use 1 to 64 letters, digits, '.', '_' or '-'")]
    InvalidVersion(String),
    /// No schema has that name (and version).
    #[error("schema {0} not found")]
    NotFound(String),
    /// A blocking task of the registry failed.
    #[error("registry task failed: {0}")]
    Task(String),
    /// The gRPC server failed.
    #[error(transparent)]
    Serve(#[from] sse_runtime::serve::ServeError),
}

impl Error {
    /// Whether the error is the operator's configuration (exit code 64) rather than a runtime fault.
    pub fn is_config(&self) -> bool {
        matches!(self, Error::Config { .. } | Error::DataDir { .. })
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::NotJson(_) | Error::InvalidSchema(_) | Error::InvalidVersion(_) => {
                tonic::Status::invalid_argument(msg)
            }
            Error::NotFound(_) => tonic::Status::not_found(msg),
            Error::Config { .. } => tonic::Status::failed_precondition(msg),
            Error::DataDir { .. } | Error::Write { .. } | Error::Task(_) | Error::Serve(_) => {
                tonic::Status::internal(msg)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_by_kind() {
        let s: tonic::Status = Error::NotJson("x".into()).into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let s: tonic::Status = Error::NotFound("A:1".into()).into();
        assert_eq!(s.code(), tonic::Code::NotFound);
        assert!(
            Error::Config {
                field: "--listen",
                reason: "x".into()
            }
            .is_config()
        );
    }
}

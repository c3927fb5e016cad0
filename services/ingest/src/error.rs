//! The crate's one error type, and how it maps to gRPC status codes.

use std::path::PathBuf;

/// Why ingest could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resources directory is missing (a configuration fault: exit code 64).
    #[error("resources dir {0} does not exist")]
    ResourcesDirMissing(PathBuf),
    /// The resources directory could not be listed.
    #[error("cannot read resources dir {path}: {reason}")]
    ResourcesDir {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A setting is invalid.
    #[error("{0}")]
    Config(String),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Serve(#[from] sse_runtime::serve::ServeError),
}

impl Error {
    /// Whether the error is bad configuration (the binary exits with code 64).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Error::ResourcesDirMissing(_)
                | Error::ResourcesDir { .. }
                | Error::Config(_)
                | Error::Serve(sse_runtime::serve::ServeError::HealthBind { .. })
        )
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        match e {
            Error::ResourcesDirMissing(_) | Error::ResourcesDir { .. } | Error::Config(_) => {
                tonic::Status::failed_precondition(e.to_string())
            }
            Error::Serve(_) => tonic::Status::internal(e.to_string()),
        }
    }
}

impl sse_runtime::process::Fault for Error {
    fn is_config(&self) -> bool {
        Error::is_config(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_path_and_map_to_failed_precondition() {
        let e = Error::ResourcesDirMissing(PathBuf::from("/nope/res"));
        assert!(e.is_config());
        assert!(e.to_string().contains("/nope/res"));
        let s: tonic::Status = e.into();
        assert_eq!(s.code(), tonic::Code::FailedPrecondition);
    }
}

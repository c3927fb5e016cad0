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
    /// A request's text is larger than an event may be.
    #[error("{what} is {bytes} bytes, over the event size limit of {max} bytes")]
    TooLarge {
        /// Which field.
        what: &'static str,
        /// Its size.
        bytes: usize,
        /// The limit (`sse_contract::limits::EVENT_BYTES_MAX`).
        max: usize,
    },
    /// A payload is over one of the inference limits (depth, members, size).
    #[error("payload is {reason} ({flag} {value})")]
    OverLimit {
        /// What is over, in words.
        reason: &'static str,
        /// The flag setting the limit.
        flag: &'static str,
        /// The limit's value.
        value: usize,
    },
    /// Storing a schema would take the registry's files over their cap.
    #[error(
        "schema registry full: storing this schema would take its files over {max_bytes} bytes (--max-registry-bytes)"
    )]
    RegistryFull {
        /// The cap, in bytes.
        max_bytes: u64,
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
    /// A new version's numbers are written with leading zeros (`01`, `1.02`): each version
    /// takes one spelling, so two cannot read the same.
    #[error(
        "invalid version {version:?}: a number in a version has no leading zeros, so each version has one spelling; use {canonical:?}"
    )]
    VersionSpelling {
        /// The version as sent (already a safe version string, at most 64 bytes).
        version: String,
        /// The same version without the leading zeros.
        canonical: String,
    },
    /// A list request's paging field is unusable (a negative `page_size`, a `page_token` the
    /// call did not make).
    #[error("invalid {field}: {reason}")]
    InvalidPage {
        /// The request field at fault.
        field: &'static str,
        /// Why it is unusable.
        reason: String,
    },
    /// No schema has that name (and version).
    #[error("schema {0} not found")]
    NotFound(String),
    /// A version cannot be deleted: subjects use it, or the registry has no delete.
    #[error("cannot delete schema {name}:{version}: {reason}")]
    NotDeletable {
        /// Schema name.
        name: String,
        /// Version.
        version: String,
        /// Why.
        reason: String,
    },
    /// A blocking task of the registry failed.
    #[error("registry task failed: {0}")]
    Task(String),
    /// The external registry answered with an error (`{code, message}`).
    #[error("schema registry refused the request ({code}): {message}")]
    Registry {
        /// The registry's status code (400, 404, 500, ...).
        code: u16,
        /// The registry's message.
        message: String,
    },
    /// The external registry could not be reached or did not answer in time.
    #[error("schema registry unavailable: {0}")]
    RegistryUnavailable(String),
    /// The gRPC server failed.
    #[error(transparent)]
    Serve(#[from] sse_runtime::serve::ServeError),
}

impl Error {
    /// Whether the error is the operator's configuration (exit code 64) rather than a runtime fault.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Error::Config { .. }
                | Error::DataDir { .. }
                | Error::Serve(sse_runtime::serve::ServeError::HealthBind { .. })
        )
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::NotJson(_)
            | Error::InvalidSchema(_)
            | Error::InvalidVersion(_)
            | Error::VersionSpelling { .. }
            | Error::TooLarge { .. }
            | Error::OverLimit { .. }
            | Error::InvalidPage { .. } => tonic::Status::invalid_argument(msg),
            Error::RegistryFull { .. } => tonic::Status::resource_exhausted(msg),
            Error::NotFound(_) | Error::Registry { code: 404, .. } => tonic::Status::not_found(msg),
            Error::Registry { code: 400, .. } => tonic::Status::invalid_argument(msg),
            Error::Registry { .. } | Error::RegistryUnavailable(_) => {
                tonic::Status::unavailable(msg)
            }
            Error::Config { .. } | Error::NotDeletable { .. } => {
                tonic::Status::failed_precondition(msg)
            }
            Error::DataDir { .. } | Error::Write { .. } | Error::Task(_) | Error::Serve(_) => {
                tonic::Status::internal(msg)
            }
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
    fn statuses_by_kind() {
        let s: tonic::Status = Error::NotJson("x".into()).into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let s: tonic::Status = Error::NotFound("A:1".into()).into();
        assert_eq!(s.code(), tonic::Code::NotFound);
        let s: tonic::Status = Error::Registry {
            code: 400,
            message: "bad".into(),
        }
        .into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let s: tonic::Status = Error::RegistryFull { max_bytes: 9 }.into();
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(s.message().contains("--max-registry-bytes"), "{s:?}");
        let s: tonic::Status = Error::RegistryUnavailable("x".into()).into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(
            Error::Config {
                field: "--listen",
                reason: "x".into()
            }
            .is_config()
        );
    }
}

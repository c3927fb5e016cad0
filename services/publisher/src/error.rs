//! The crate's error type and the gRPC status each error becomes.

use sse_contract::topics::Refusal;

/// Why something failed. Never contains a password or payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Bad configuration (exit code 64 at start).
    #[error("configuration: {0}")]
    Config(String),
    /// An event or request that cannot be published as it is.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The topic is not a valid MQTT topic name.
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        reason: Refusal,
    },
    /// The destination is well-formed, but this caller may not write to it: a topic the
    /// connector owns, or the state store outside ingest's routes.
    #[error("permission denied: {reason} (topic {topic:?})")]
    NotAllowed {
        /// The topic.
        topic: String,
        /// The rule that refuses it.
        reason: Refusal,
    },
    /// The broker cannot take this message (size, QoS or retain it does not support).
    #[error("broker cannot take the message: {0}")]
    Unsupported(String),
    /// The broker refused the message with an MQTT 5 reason code.
    #[error("broker rejected the message: {0}")]
    Rejected(String),
    /// The state store did not set the key: its answer, or no answer, after bounded attempts.
    #[error("state store: {0}")]
    StateStore(String),
    /// No broker connection (in time).
    #[error("mqtt broker unavailable")]
    Unavailable,
    /// The publisher is stopping.
    #[error("publisher shutting down")]
    ShuttingDown,
    /// gRPC serving failed.
    #[error("serving: {0}")]
    Serve(String),
}

impl Error {
    /// The error of a destination `topic` refused by `reason`: not allowed when well-formed.
    pub fn topic(topic: &str, reason: Refusal) -> Self {
        let topic = topic.to_string();
        if reason.is_permission() {
            Error::NotAllowed { topic, reason }
        } else {
            Error::InvalidTopic { topic, reason }
        }
    }

    /// Whether re-sending the same message can never succeed (it is acked with an error).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Error::Invalid(_)
                | Error::InvalidTopic { .. }
                | Error::NotAllowed { .. }
                | Error::Unsupported(_)
                | Error::Rejected(_)
                | Error::StateStore(_)
        )
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::Invalid(_) | Error::InvalidTopic { .. } => tonic::Status::invalid_argument(msg),
            Error::NotAllowed { .. } => tonic::Status::permission_denied(msg),
            Error::Unsupported(_) | Error::Rejected(_) | Error::StateStore(_) => {
                tonic::Status::failed_precondition(msg)
            }
            Error::Unavailable | Error::ShuttingDown => tonic::Status::unavailable(msg),
            Error::Config(_) | Error::Serve(_) => tonic::Status::internal(msg),
        }
    }
}

/// Only a configuration error (exit 64 at start) is the operator's.
impl sse_runtime::process::Fault for Error {
    fn is_config(&self) -> bool {
        matches!(self, Error::Config(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_grpc_codes() {
        let s: tonic::Status = Error::topic("a/#", Refusal::Wildcard).into();
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        let rule = sse_contract::topics::OwnedTopic::Checkpoint;
        let e = Error::topic("sse-connector/checkpoint/x", Refusal::Owned(rule));
        assert!(e.is_permanent());
        let s: tonic::Status = e.into();
        assert_eq!(s.code(), tonic::Code::PermissionDenied);
        assert!(s.message().contains(&rule.to_string()), "{}", s.message());
        let s: tonic::Status = Error::Unavailable.into();
        assert_eq!(s.code(), tonic::Code::Unavailable);
        assert!(Error::Rejected("NotAuthorized".into()).is_permanent());
        assert!(!Error::Unavailable.is_permanent());
    }
}

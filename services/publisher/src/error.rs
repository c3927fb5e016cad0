//! The crate's error type and the gRPC status each error becomes.

use sse_contract::topics::Refusal;

/// Why something failed. Never contains a password or payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Bad configuration (exit code 64 at start).
    #[error("{0}")]
    Config(String),
    /// An event or request that cannot be published as it is.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The topic is not a valid MQTT topic name.
    #[error("invalid topic {}: {reason}", sse_runtime::echo::quoted(.topic))]
    InvalidTopic {
        /// The topic.
        topic: String,
        /// What is wrong with it.
        reason: Refusal,
    },
    /// The destination is well-formed, but this caller may not write to it: a topic the
    /// connector owns, or the state store outside ingest's routes.
    #[error("permission denied: {reason} (topic {})", sse_runtime::echo::quoted(.topic))]
    NotAllowed {
        /// The topic.
        topic: String,
        /// The rule that refuses it.
        reason: Refusal,
    },
    /// The broker cannot take this message (size, QoS or retain it does not support).
    #[error("broker cannot take the message: {0}")]
    Unsupported(String),
    /// The message is over the broker's or the connector's maximum packet size.
    #[error("broker cannot take the message: {0}")]
    TooLarge(String),
    /// The broker refused the message with an MQTT 5 reason code.
    #[error("broker rejected the message: {detail}")]
    Rejected {
        /// The reason code in snake case (`not_authorized`): the `error.type` of metrics and
        /// spans.
        code: &'static str,
        /// The reason code and the broker's reason string, for people.
        detail: String,
    },
    /// The state store did not set the key: its answer, or no answer, after bounded attempts.
    #[error("state store: {0}")]
    StateStore(String),
    /// The event failed for good and went to its dead-letter topic instead: the ack's error,
    /// so status still says the event missed its destination.
    #[error("dead-lettered to {topic}: {cause}")]
    DeadLettered {
        /// The dead-letter topic.
        topic: String,
        /// Why the event failed.
        cause: String,
    },
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
                | Error::TooLarge(_)
                | Error::Rejected { .. }
                | Error::StateStore(_)
        )
    }

    /// The `error.type` of a span that failed with this error: the broker's reason code when
    /// it refused the PUBLISH, else the drop reason (`_OTHER` for the rest).
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Rejected { code, .. } => code,
            e => e.drop_reason().unwrap_or("_OTHER"),
        }
    }

    /// The `sse.reason` an event dropped for this error is counted under (a fixed set:
    /// `sse_contract::publish_drops`); `None` for an error after which the event is re-sent.
    pub fn drop_reason(&self) -> Option<&'static str> {
        use sse_contract::publish_drops as why;
        Some(match self {
            Error::Invalid(_) => why::INVALID_EVENT,
            Error::InvalidTopic { .. } => why::INVALID_TOPIC,
            Error::NotAllowed { .. } => why::NOT_ALLOWED,
            Error::TooLarge(_) => why::TOO_LARGE,
            Error::Unsupported(_) => why::UNSUPPORTED,
            Error::Rejected { .. } => why::BROKER_REFUSED,
            Error::StateStore(_) => why::STATE_STORE,
            Error::Config(_)
            | Error::Unavailable
            | Error::ShuttingDown
            | Error::Serve(_)
            | Error::DeadLettered { .. } => {
                return None;
            }
        })
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        let msg = e.to_string();
        match e {
            Error::Invalid(_) | Error::InvalidTopic { .. } => tonic::Status::invalid_argument(msg),
            Error::NotAllowed { .. } => tonic::Status::permission_denied(msg),
            Error::Unsupported(_)
            | Error::TooLarge(_)
            | Error::Rejected { .. }
            | Error::StateStore(_)
            | Error::DeadLettered { .. } => tonic::Status::failed_precondition(msg),
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

    /// A megabyte topic makes a short error, not a megabyte one.
    #[test]
    fn a_long_topic_is_quoted_cut_with_its_size() {
        let topic = format!("f/{}", "a".repeat(3_000_000));
        let e = Error::topic(&topic, Refusal::Wildcard).to_string();
        assert!(e.len() < 300, "{} bytes", e.len());
        assert!(e.contains("(3000002 bytes)"), "{e}");
        let rule = sse_contract::topics::OwnedTopic::Checkpoint;
        let owned = format!("sse-connector/checkpoint/{}", "x".repeat(100_000));
        let e = Error::topic(&owned, Refusal::Owned(rule)).to_string();
        assert!(e.len() < 400 && e.contains("bytes)"), "{e}");
    }

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
        assert!(
            Error::Rejected {
                code: "not_authorized",
                detail: "NotAuthorized".into()
            }
            .is_permanent()
        );
        assert!(!Error::Unavailable.is_permanent());
    }

    #[test]
    fn every_permanent_error_has_a_drop_reason_of_the_contract() {
        let permanent = [
            Error::Invalid(String::new()),
            Error::topic("a/#", Refusal::Wildcard),
            Error::topic(
                "x",
                Refusal::Owned(sse_contract::topics::OwnedTopic::Checkpoint),
            ),
            Error::TooLarge(String::new()),
            Error::Unsupported(String::new()),
            Error::Rejected {
                code: "quota_exceeded",
                detail: String::new(),
            },
            Error::StateStore(String::new()),
        ];
        let mut reasons: Vec<&str> = permanent
            .iter()
            .map(|e| {
                assert!(e.is_permanent(), "{e}");
                e.drop_reason().unwrap()
            })
            .collect();
        // A failed dead letter is counted by the dead-letter path, not by an error of its own.
        reasons.push(sse_contract::publish_drops::DEAD_LETTER_FAILED);
        reasons.sort_unstable();
        let mut all = sse_contract::publish_drops::PUBLISH_DROP_REASONS.to_vec();
        all.sort_unstable();
        assert_eq!(reasons, all);
        assert_eq!(
            Error::Unavailable.drop_reason(),
            None,
            "re-sent, not dropped"
        );
    }
}

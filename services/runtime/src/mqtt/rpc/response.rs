//! Reading an RPC response: its status headers, and the error a call ends with.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::Publish;

/// How a call failed, before the service's own payload is read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// Not connected, no answer in time, or the connection dropped: worth retrying.
    #[error("{0}")]
    Network(String),
    /// The executor answered with a status other than 200/204 (or a payload the caller could
    /// not use, reported as 500).
    #[error("status {code}: {message}")]
    Status {
        /// The `__stat` code (HTTP semantics).
        code: u16,
        /// `__stMsg`, or what was wrong with the answer.
        message: String,
        /// `__apErr` was `true`: the service's application failed, not the protocol.
        application: bool,
    },
    /// The process is shutting down: the call was abandoned.
    #[error("shutting down")]
    Cancelled,
}

impl RpcError {
    /// Whether the SDK retries this failure: network errors and status 500.
    pub fn is_retryable(&self) -> bool {
        match self {
            RpcError::Network(_) => true,
            RpcError::Status { code, .. } => *code == 500,
            RpcError::Cancelled => false,
        }
    }

    /// A 500 for an answer the caller could not read: its payload is not what the contract says.
    pub fn unreadable(what: impl std::fmt::Display) -> Self {
        RpcError::Status {
            code: 500,
            message: format!("unreadable response: {what}"),
            application: false,
        }
    }
}

/// A response as the protocol defines it: status headers and the raw payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `__stat` (200 when absent, as the schema registry client always read it).
    pub status: u16,
    /// `__stMsg`, empty when absent.
    pub status_message: String,
    /// `__apErr` is `true`.
    pub application_error: bool,
    /// The payload, read by the caller only on 200/204.
    pub payload: Bytes,
}

impl Response {
    /// Reads the headers of a response publish; an unreadable `__stat` is a 500.
    pub fn read(p: &Publish) -> Result<Self, RpcError> {
        let user = |k: &str| {
            p.properties.as_ref().and_then(|pp| {
                pp.user_properties
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.as_str())
            })
        };
        let status = match user("__stat") {
            None => 200,
            Some(s) => s.trim().parse().map_err(|_| RpcError::Status {
                code: 500,
                message: format!("unreadable status {s:?}"),
                application: false,
            })?,
        };
        Ok(Self {
            status,
            status_message: user("__stMsg").unwrap_or_default().to_string(),
            application_error: user("__apErr").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            payload: p.payload.clone(),
        })
    }

    /// Whether the status says the payload holds the answer (2xx; the SDK reads 200 and 204).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The payload of a successful response, or the status as an error.
    pub fn into_payload(self) -> Result<Bytes, RpcError> {
        if self.is_success() {
            Ok(self.payload)
        } else {
            Err(self.into_error())
        }
    }

    /// The status of this response as an error (for a caller that found no answer in it).
    pub fn into_error(self) -> RpcError {
        RpcError::Status {
            code: self.status,
            message: self.status_message,
            application: self.application_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::PublishProperties;

    use super::*;

    fn publish(user: &[(&str, &str)]) -> Publish {
        let mut p = Publish::new("t", QoS::AtLeastOnce, b"{}".to_vec(), None);
        p.properties = Some(PublishProperties {
            user_properties: user
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        });
        p
    }

    #[test]
    fn reads_status_headers() {
        let r = Response::read(&publish(&[
            ("__stat", "500"),
            ("__stMsg", "boom"),
            ("__apErr", "true"),
        ]))
        .unwrap();
        assert_eq!(
            r.clone().into_payload(),
            Err(RpcError::Status {
                code: 500,
                message: "boom".into(),
                application: true
            })
        );
        assert!(r.into_error().is_retryable());
        let ok = Response::read(&publish(&[("__stat", "200")])).unwrap();
        assert_eq!(ok.into_payload().unwrap(), Bytes::from_static(b"{}"));
        let bad = Response::read(&publish(&[("__stat", "4o0")])).unwrap_err();
        assert!(matches!(bad, RpcError::Status { code: 500, .. }), "{bad:?}");
        let client = Response::read(&publish(&[("__stat", "400")])).unwrap();
        assert!(!client.into_error().is_retryable());
    }
}

//! Why a broker connection failed or dropped, in words that name the problem (refused
//! credentials, an untrusted broker certificate, a rejected client certificate, a broker not
//! listening, a packet over the limit), never a secret.

use rumqttc::v5::mqttbytes::v5::ConnectReturnCode;
use rumqttc::v5::{ConnectionError, StateError};

use super::SAT_METHOD;

/// Describes a connection error for the log and for health.
pub fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => refused(*code),
        ConnectionError::MqttState(StateError::ConnFail { reason }) => refused(*reason),
        ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code,
            reason_string,
        }) => format!(
            "the broker disconnected: {reason_code:?}{}",
            reason_string
                .as_deref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        ),
        ConnectionError::Timeout(_) => "no CONNACK from the broker in time".to_string(),
        other => match find_tls_error(other) {
            Some(tls) => describe_tls(tls),
            None => match find_io_kind(other) {
                Some(std::io::ErrorKind::ConnectionRefused) => {
                    "the broker refused the TCP connection (not listening?)".to_string()
                }
                _ => other.to_string(),
            },
        },
    }
}

fn refused(code: ConnectReturnCode) -> String {
    match code {
        ConnectReturnCode::BadUserNamePassword => {
            "the broker refused the credentials: bad user name or password (check the user name and the password file)".to_string()
        }
        ConnectReturnCode::NotAuthorized => {
            "the broker refused the connection: not authorized (check the user name and password file, or the service account token)".to_string()
        }
        ConnectReturnCode::BadAuthenticationMethod => format!(
            "the broker refused the authentication method (the service account token uses {SAT_METHOD})"
        ),
        other => format!("the broker refused the connection: {other:?}"),
    }
}

fn describe_tls(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(why) => format!(
            "TLS: the broker's certificate is not trusted ({why:?}); check the broker CA (--mqtt-ca-file)"
        ),
        rustls::Error::AlertReceived(alert) => format!(
            "TLS: the broker rejected the handshake ({alert:?}); check the client certificate and key (--mqtt-cert-file, --mqtt-key-file)"
        ),
        other => format!("TLS: {other}"),
    }
}

/// The rustls error somewhere in the cause chain of `e`.
fn find_tls_error(e: &ConnectionError) -> Option<&rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                return Some(t);
            }
            cur = inner.source();
            continue;
        }
        cur = cause(err);
    }
    None
}

/// The next error in the chain, also through rumqttc's `StateError::Deserialization`, which
/// does not expose its cause as a `source`.
fn cause<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    if let Some(StateError::Deserialization(inner)) = err.downcast_ref::<StateError>() {
        return Some(inner);
    }
    err.source()
}

fn find_io_kind(e: &ConnectionError) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = cause(err);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_connect_failures_without_secrets() {
        let e = ConnectionError::ConnectionRefused(ConnectReturnCode::BadUserNamePassword);
        assert!(describe(&e).contains("bad user name or password"));
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let d = describe(&ConnectionError::Io(io));
        assert!(
            d.contains("not trusted") && d.contains("UnknownIssuer"),
            "{d}"
        );
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        );
        let wrapped = ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::v5::mqttbytes::Error::Io(io),
        ));
        let d = describe(&wrapped);
        assert!(d.contains("client certificate"), "{d}");
    }
}

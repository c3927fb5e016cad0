//! TLS for the stream client: no client certificate towards another origin, and TLS failures
//! named for the person who must act on them.

use std::error::Error as StdError;
use std::sync::Arc;

/// `tls` without a client certificate, for a redirect target of another origin: a client
/// certificate identifies the device's client to the device's own server only.
pub(super) fn without_client_cert(tls: &Arc<rustls::ClientConfig>) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::clone(tls);
    config.client_auth_cert_resolver = Arc::new(NoClientCert);
    Arc::new(config)
}

/// Offers no client certificate.
#[derive(Debug)]
struct NoClientCert;

impl rustls::client::ResolvesClientCert for NoClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// The TLS failure in an error's source chain, named for the person who must act on it:
/// the server's certificate (expired, untrusted, wrong name) or ours (rejected by the server).
/// `None` for anything else (network errors keep the ordinary backoff).
pub(super) fn tls_problem(error: &(dyn StdError + 'static), url: &url::Url) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(describe_tls(r, url.host_str().unwrap_or("")));
        }
        // tokio-rustls wraps rustls errors in (nested) io::Errors, whose
        // `source()` skips the wrapped error: step into it instead.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

/// A rustls error as a status message.
fn describe_tls(error: &rustls::Error, host: &str) -> String {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match error {
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "server certificate expired".to_owned()
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "server certificate not yet valid".to_owned()
        }
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            format!("server certificate is not valid for host name {host}")
        }
        E::InvalidCertificate(C::UnknownIssuer) => {
            "server certificate untrusted: unknown issuer (add its CA to the trust bundle or the endpoint's trust list)".to_owned()
        }
        E::InvalidCertificate(C::BadSignature) => {
            "server certificate untrusted: its chain does not verify against the trusted CAs (bad signature)".to_owned()
        }
        E::InvalidCertificate(other) => format!("server certificate rejected: {other:?}"),
        E::AlertReceived(A::CertificateRequired) => {
            "client certificate rejected by the server: it requires one and none was sent".to_owned()
        }
        E::AlertReceived(
            alert @ (A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied),
        ) => format!("client certificate rejected by the server (TLS alert {alert:?})"),
        E::AlertReceived(alert) => format!("TLS handshake refused by the server (TLS alert {alert:?})"),
        other => format!("TLS error: {other}"),
    }
}

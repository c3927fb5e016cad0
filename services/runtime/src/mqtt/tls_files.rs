//! The TLS material of a broker connection, named by file and read afresh at every connect, so a
//! rotated CA or client certificate is used on the next connection without a restart.

use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use super::MqttError;

/// Where the TLS material comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM files of CAs trusted on top of the system roots.
    pub ca_files: Vec<PathBuf>,
    /// Client certificate chain and private key, for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    /// A rustls client configuration from the files (ring provider, system roots plus the CAs).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, MqttError> {
        let mut roots = crate::tls::system_roots();
        for path in &self.ca_files {
            for c in crate::tls::load_certs(path).map_err(MqttError::Ca)? {
                roots.add(c)?;
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match &self.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = crate::tls::load_certs(cert).map_err(MqttError::ClientCertificate)?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|_| MqttError::ClientKey(key.clone()))?;
                builder.with_client_auth_cert(chain, key_der)?
            }
        };
        Ok(Arc::new(config))
    }
}

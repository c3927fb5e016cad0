//! TLS client configuration: rustls with the ring provider, system roots plus extra CAs from PEM.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be built. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read certificates from {path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A PEM file held no certificate.
    #[error("no certificate in {0}")]
    Empty(PathBuf),
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// PEM text held no certificate (`what` names its origin, e.g. a secret reference).
    #[error("{what}: no PEM certificate")]
    NoCertificate {
        /// Where the text came from.
        what: String,
    },
    /// The end-entity certificate cannot be parsed.
    #[error("{what}: {reason}")]
    BadCertificate {
        /// Where the certificate came from.
        what: String,
        /// What is wrong with it.
        reason: crate::spki::SpkiError,
    },
    /// PEM text held no usable private key. Deliberately without the parser's detail, which
    /// may quote the text.
    #[error("{what}: no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey {
        /// Where the text came from.
        what: String,
    },
    /// The private key is of a type or size the ring provider cannot sign with.
    #[error("{what}: unsupported private key (RSA, ECDSA P-256/P-384 or Ed25519 expected)")]
    UnsupportedKey {
        /// Where the key came from.
        what: String,
    },
    /// The CA bundle cannot verify client certificates.
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    /// The private key is not the one of the certificate's public key.
    #[error("{key} does not match {cert}")]
    KeyMismatch {
        /// Where the key came from.
        key: String,
        /// Where the certificate came from.
        cert: String,
    },
}

/// The ring crypto provider, the only one this project uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty(path.to_path_buf()));
    }
    Ok(certs)
}

/// Every certificate of PEM text; `what` names its origin in errors.
pub fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::NoCertificate {
            what: what.to_owned(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key of PEM text: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or
/// SEC1 (`EC PRIVATE KEY`). Errors never quote the text.
pub fn parse_private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| TlsError::NoKey {
        what: what.to_owned(),
    })
}

/// A client identity for rustls: `chain` (end-entity certificate first) and its private key,
/// checked to belong together before any connection is made.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_what: &str,
    key_what: &str,
) -> Result<CertifiedKey, TlsError> {
    let signer =
        provider()
            .key_provider
            .load_private_key(key)
            .map_err(|_| TlsError::UnsupportedKey {
                what: key_what.to_owned(),
            })?;
    let end_entity = chain.first().ok_or_else(|| TlsError::NoCertificate {
        what: cert_what.to_owned(),
    })?;
    // Not `CertifiedKey::keys_match`: its webpki parse refuses X.509 v1 certificates, which
    // OpenSSL servers accept (see `spki`).
    let bad = |reason: crate::spki::SpkiError| TlsError::BadCertificate {
        what: cert_what.to_owned(),
        reason,
    };
    let cert_key = crate::spki::certificate_spki(end_entity)
        .and_then(crate::spki::public_key_bits)
        .map_err(bad)?;
    // A key type whose public half the provider cannot compute: nothing to compare against.
    if let Some(key_spki) = signer.public_key() {
        let key = crate::spki::public_key_bits(&key_spki).map_err(bad)?;
        if key != cert_key {
            return Err(TlsError::KeyMismatch {
                key: key_what.to_owned(),
                cert: cert_what.to_owned(),
            });
        }
    }
    Ok(CertifiedKey::new(chain, signer))
}

/// The system's root certificates (unreadable ones are skipped with a warning). Read once per
/// process and then copied: the system store changes with the image, not while running.
pub fn system_roots() -> RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::warn!(error = %e, "could not load some system root certificates");
            }
            let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
            roots
        })
        .clone()
}

/// A client configuration trusting the system roots and `extra` CAs, without client auth.
pub fn client_config(extra: Vec<CertificateDer<'static>>) -> Result<ClientConfig, TlsError> {
    let mut roots = system_roots();
    for c in extra {
        roots.add(c)?;
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

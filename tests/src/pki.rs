//! Certificates generated in the test (rcgen): a root CA, an intermediate CA, server and client
//! certificates (one expired, one for the wrong name), written as PEM files where a test needs
//! files, and rustls server configurations for the TLS SSE sources.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate with its key, as PEM and DER.
#[derive(Clone)]
pub struct Leaf {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The issuing intermediate, PEM (to send as the chain).
    pub chain_pem: String,
    cert_der: CertificateDer<'static>,
    chain_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Leaf {
    /// The certificate followed by its chain, DER.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert_der.clone(), self.chain_der.clone()]
    }

    /// The private key, DER.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A small PKI: root -> intermediate -> leaves.
pub struct Pki {
    /// The root CA certificate, PEM (what a trust list holds).
    pub ca_pem: String,
    ca_der: CertificateDer<'static>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

fn ca_params(cn: &str) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

impl Pki {
    /// A fresh root and intermediate CA.
    pub fn new() -> anyhow::Result<Self> {
        let root = CertifiedIssuer::self_signed(
            ca_params("sse-connector test root")?,
            KeyPair::generate()?,
        )?;
        let intermediate = CertifiedIssuer::signed_by(
            ca_params("sse-connector test intermediate")?,
            KeyPair::generate()?,
            &root,
        )?;
        Ok(Self {
            ca_pem: root.pem(),
            ca_der: root.der().clone(),
            intermediate,
        })
    }

    fn leaf(&self, names: &[&str], client: bool, expired: bool) -> anyhow::Result<Leaf> {
        let mut p =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        p.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
            p.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        }
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.intermediate)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            chain_pem: self.intermediate.pem(),
            cert_der: cert.der().clone(),
            chain_der: self.intermediate.der().clone(),
            key_der: key.serialize_der(),
        })
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> anyhow::Result<Leaf> {
        self.leaf(names, false, false)
    }

    /// A server certificate for `names` that expired yesterday.
    pub fn expired_server(&self, names: &[&str]) -> anyhow::Result<Leaf> {
        self.leaf(names, false, true)
    }

    /// A client certificate with common name `cn`.
    pub fn client(&self, cn: &str) -> anyhow::Result<Leaf> {
        self.leaf(&[cn], true, false)
    }

    /// A rustls server config presenting `leaf`; with `require_client_cert`, clients must present
    /// a certificate issued under this PKI's root.
    pub fn server_config(
        &self,
        leaf: &Leaf,
        require_client_cert: bool,
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let cfg = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone())?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()?;
            builder
                .with_client_cert_verifier(verifier)
                .with_single_cert(leaf.chain(), leaf.key())?
        } else {
            builder
                .with_no_client_auth()
                .with_single_cert(leaf.chain(), leaf.key())?
        };
        Ok(Arc::new(cfg))
    }
}

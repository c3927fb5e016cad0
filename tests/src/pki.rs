//! Certificates generated in the test (rcgen): a root CA, an intermediate CA, server and client
//! certificates (one expired, one for the wrong name), written as PEM files where a test needs
//! files, and rustls server configurations for the TLS SSE sources.
//!
//! Client keys come in every form an endpoint secret may hold: RSA, ECDSA P-256 and Ed25519, as
//! PKCS#8, PKCS#1 (RSA) or SEC1 (ECDSA). ring cannot generate RSA keys and rcgen writes PKCS#8
//! only, so the RSA and ECDSA keys are fixed test keys (generated once with openssl, used for
//! nothing else); their certificates are still issued afresh by each test's CA.

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

/// The algorithm and PEM encoding of a client key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// RSA 2048, PKCS#8 (`PRIVATE KEY`).
    RsaPkcs8,
    /// RSA 2048, PKCS#1 (`RSA PRIVATE KEY`).
    RsaPkcs1,
    /// ECDSA P-256, PKCS#8 (`PRIVATE KEY`).
    EcdsaPkcs8,
    /// ECDSA P-256, SEC1 (`EC PRIVATE KEY`).
    EcdsaSec1,
    /// Ed25519, PKCS#8 (`PRIVATE KEY`), generated afresh.
    Ed25519Pkcs8,
}

impl KeyForm {
    /// Every form.
    pub const ALL: [KeyForm; 5] = [
        KeyForm::RsaPkcs8,
        KeyForm::RsaPkcs1,
        KeyForm::EcdsaPkcs8,
        KeyForm::EcdsaSec1,
        KeyForm::Ed25519Pkcs8,
    ];

    /// The key pair (for rcgen) and its PEM text in this form.
    fn key(self) -> anyhow::Result<(KeyPair, String)> {
        Ok(match self {
            KeyForm::RsaPkcs8 | KeyForm::RsaPkcs1 => {
                let kp = KeyPair::from_pkcs8_pem_and_sign_algo(RSA_PKCS8, &rcgen::PKCS_RSA_SHA256)?;
                let pem = if self == KeyForm::RsaPkcs8 {
                    RSA_PKCS8
                } else {
                    RSA_PKCS1
                };
                (kp, pem.to_string())
            }
            KeyForm::EcdsaPkcs8 | KeyForm::EcdsaSec1 => {
                let kp = KeyPair::from_pkcs8_pem_and_sign_algo(
                    EC_PKCS8,
                    &rcgen::PKCS_ECDSA_P256_SHA256,
                )?;
                let pem = if self == KeyForm::EcdsaPkcs8 {
                    EC_PKCS8
                } else {
                    EC_SEC1
                };
                (kp, pem.to_string())
            }
            KeyForm::Ed25519Pkcs8 => {
                let kp = KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
                let pem = kp.serialize_pem();
                (kp, pem)
            }
        })
    }
}

/// Test-only RSA 2048 key, PKCS#8.
const RSA_PKCS8: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCWiJ6BnLatVTMm\nmkpMpvl69MSJLLQRWkCz5cstt7iTgUY0wz6DxxFBQt6PzozVYMYu0zvw2nTf/FWD\nZSeupzW5ZbVI/NxFoT37m6KWbwVv2uz40pjzGHEaGlrYSBc/kua6r6+Uw9ppq6h9\nd8UGWFFxnMQvQyvGvUfLbTUdqPeUoi4DuC/9flWxNZp2gDX4i+DJYCR0hXVtnreQ\nj6aL2BIUU7pLc5VAQgqPZbvIRPJYNtRAN8V3yrU50vxM/lBTt9mJui7DhIjhVdxZ\neo+LJukwKIb+J76TWN77Em+kzbLg+zRqt5x6QgX7wtmNxN/eS+B7Z23Q1ZYZQCj0\nYymClo71AgMBAAECggEAFC/A9ceita7Ru7EAGrRfi04MlwqgIR2VxKohq4FSJrG0\nzPmLxhcpaLODbgx4VVrzaK8aACwDdU/81bB4eFLjAPgzLdT+4vWC/t05mevMcloM\n4jc3nI3gCOyU1yEfwP49o7ZQmOYEwZvr7dtkV/v6+/3WTzI2SiHy4URFVbNldBBw\n7bBTzc38+05/0OMWChNLa571rhHuZoqYxZ5gOeodkUd+DXc5XyAXqEhbLXpOrnNJ\n77nOrNwACw9t0k/nyHuj8iuISLgOMI29G8gYIToIMKuZwiU4ufnD8m4S2Of4xfe/\naNELl8EBXD1098qmHmkIB2KPMgFit3pINfY6onzORwKBgQDE2eNCLc4pxwJp9HfB\n5s3BAOD+XY4MeU87N9qreODKqoqRNZWbKQLDhgYAWp10EBGEGjXWi0UWNh39fjfV\nuRpVZ2/oBKAR0bXgjUAHByeeLXFGbJh3f9n/K5KE+ocvFTEiYiwHgYI4tY6DpJ+b\n+fE/nKjO2Oz90zQYUXiGFGz77wKBgQDDw+qlEofZRHEsIJl1pvI09mDYjCnkL22F\n7HWZwqIBIMltc8zLqeIsTMNxGJVijt8sfoJDjaTOend2vT9j+VhOyiz1mX7Z76hw\n2hpKQfUHCEGlZDEfONMaWqXvu/KLmriRSAw31m60FchoG+20TItC0Kh+w7FJeBr1\nfuLBlkoPWwKBgGYCq9xdtFq+AKg7wdu/6Zw9AluOy8/3BXIgrbbyeztLSWeapx6z\nD/WW/IEudC3zLcCRfJjjrzelb8EvqWud8uGTKtDHpNPXIzNsv2Nk98jmr67ZE+HJ\nZYTwZYt38Jobl0zEJyD0ojEVFPdvVi8URUq7ulcG3zliO7rmbVi+OQQNAoGAfI5Q\n40qRCNoVL8BmI4dfH/eK0v0LQlYy1z0F7hj6PsF/p5ZAPW0PrKQCzhiYI6dHs+Wi\nOB0NORqOnAv5I0DowOi+Bl3tafikMXlztL+WiSzlp7fB0V20Y1Y9sfThc5WzzSwM\nKhLTSN17L1JlwYvaJ17fdhhI2rgCXySmXgmjgXUCgYAvIFE62zbccugQdo01+vYD\nG3y8IcrSKjSPzD+bEcdz65AW0gLl/SREmZo7mW0Xs2ou57exGcVEKCJm+78uP05f\nDgPUYrJfaRojfiTAdkP8tEBjzHjTAWauAiLB6zbwcQwYwhAwnnQ7OHcdsgdqAwc+\nzQsb33oRXNbGUl+Ez36Jgg==\n-----END PRIVATE KEY-----\n";
/// The same key, PKCS#1.
const RSA_PKCS1: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEogIBAAKCAQEAloiegZy2rVUzJppKTKb5evTEiSy0EVpAs+XLLbe4k4FGNMM+\ng8cRQULej86M1WDGLtM78Np03/xVg2Unrqc1uWW1SPzcRaE9+5uilm8Fb9rs+NKY\n8xhxGhpa2EgXP5Lmuq+vlMPaaauofXfFBlhRcZzEL0Mrxr1Hy201Haj3lKIuA7gv\n/X5VsTWadoA1+IvgyWAkdIV1bZ63kI+mi9gSFFO6S3OVQEIKj2W7yETyWDbUQDfF\nd8q1OdL8TP5QU7fZibouw4SI4VXcWXqPiybpMCiG/ie+k1je+xJvpM2y4Ps0arec\nekIF+8LZjcTf3kvge2dt0NWWGUAo9GMpgpaO9QIDAQABAoIBABQvwPXHorWu0bux\nABq0X4tODJcKoCEdlcSqIauBUiaxtMz5i8YXKWizg24MeFVa82ivGgAsA3VP/NWw\neHhS4wD4My3U/uL1gv7dOZnrzHJaDOI3N5yN4AjslNchH8D+PaO2UJjmBMGb6+3b\nZFf7+vv91k8yNkoh8uFERVWzZXQQcO2wU83N/PtOf9DjFgoTS2ue9a4R7maKmMWe\nYDnqHZFHfg13OV8gF6hIWy16Tq5zSe+5zqzcAAsPbdJP58h7o/IriEi4DjCNvRvI\nGCE6CDCrmcIlOLn5w/JuEtjn+MX3v2jRC5fBAVw9dPfKph5pCAdijzIBYrd6SDX2\nOqJ8zkcCgYEAxNnjQi3OKccCafR3webNwQDg/l2ODHlPOzfaq3jgyqqKkTWVmykC\nw4YGAFqddBARhBo11otFFjYd/X431bkaVWdv6ASgEdG14I1ABwcnni1xRmyYd3/Z\n/yuShPqHLxUxImIsB4GCOLWOg6Sfm/nxP5yoztjs/dM0GFF4hhRs++8CgYEAw8Pq\npRKH2URxLCCZdabyNPZg2Iwp5C9thex1mcKiASDJbXPMy6niLEzDcRiVYo7fLH6C\nQ42kznp3dr0/Y/lYTsos9Zl+2e+ocNoaSkH1BwhBpWQxHzjTGlql77vyi5q4kUgM\nN9ZutBXIaBvttEyLQtCofsOxSXga9X7iwZZKD1sCgYBmAqvcXbRavgCoO8Hbv+mc\nPQJbjsvP9wVyIK228ns7S0lnmqcesw/1lvyBLnQt8y3AkXyY4683pW/BL6lrnfLh\nkyrQx6TT1yMzbL9jZPfI5q+u2RPhyWWE8GWLd/CaG5dMxCcg9KIxFRT3b1YvFEVK\nu7pXBt85Yju65m1YvjkEDQKBgHyOUONKkQjaFS/AZiOHXx/3itL9C0JWMtc9Be4Y\n+j7Bf6eWQD1tD6ykAs4YmCOnR7PlojgdDTkajpwL+SNA6MDovgZd7Wn4pDF5c7S/\nloks5ae3wdFdtGNWPbH04XOVs80sDCoS00jdey9SZcGL2ide33YYSNq4Al8kpl4J\no4F1AoGALyBROts23HLoEHaNNfr2Axt8vCHK0io0j8w/mxHHc+uQFtIC5f0kRJma\nO5ltF7NqLue3sRnFRCgiZvu/Lj9OXw4D1GKyX2kaI34kwHZD/LRAY8x40wFmrgIi\nwes28HEMGMIQMJ50Ozh3HbIHagMHPs0LG996EVzWxlJfhM9+iYI=\n-----END RSA PRIVATE KEY-----\n";
/// Test-only ECDSA P-256 key, PKCS#8.
const EC_PKCS8: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgQsGr97rVhmVlaP3a\n6JOEjk8tcoumYQ3I/qKreXeRMlKhRANCAAQXpYBirUattURFx49hmk9ANMN/xm1m\nR8MxmWxb8HbgYnnsH2Gt0Ky0lEFRyax6rJqpt+ON3VBa/rrjooraasd2\n-----END PRIVATE KEY-----\n";
/// The same key, SEC1.
const EC_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIELBq/e61YZlZWj92uiThI5PLXKLpmENyP6iq3l3kTJSoAoGCCqGSM49\nAwEHoUQDQgAEF6WAYq1GrbVERcePYZpPQDTDf8ZtZkfDMZlsW/B24GJ57B9hrdCs\ntJRBUcmseqyaqbfjjd1QWv6646KK2mrHdg==\n-----END EC PRIVATE KEY-----\n";

impl Leaf {
    /// The certificate, DER (what a server sees as the peer certificate).
    pub fn cert_der(&self) -> &[u8] {
        self.cert_der.as_ref()
    }

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
        // Distinct names per PKI, so two PKIs of one test are strangers, not look-alikes.
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        let root = CertifiedIssuer::self_signed(
            ca_params(&format!("sse-connector test root {id}"))?,
            KeyPair::generate()?,
        )?;
        let intermediate = CertifiedIssuer::signed_by(
            ca_params(&format!("sse-connector test intermediate {id}"))?,
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
        self.leaf_with(names, Some(client), expired, None)
    }

    fn leaf_with(
        &self,
        names: &[&str],
        client: Option<bool>,
        expired: bool,
        form: Option<KeyForm>,
    ) -> anyhow::Result<Leaf> {
        let mut p =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        p.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = match client {
            Some(true) => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Some(false) => vec![ExtendedKeyUsagePurpose::ServerAuth],
            None => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        if expired {
            p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
            p.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        }
        let (key, key_pem) = match form {
            Some(f) => f.key()?,
            None => {
                let key = KeyPair::generate()?;
                let pem = key.serialize_pem();
                (key, pem)
            }
        };
        let cert = p.signed_by(&key, &self.intermediate)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem,
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

    /// A certificate for both ends of a service-to-service link (server and client auth), with
    /// `names` as its SANs (an IP address becomes an IP SAN).
    pub fn service(&self, names: &[&str]) -> anyhow::Result<Leaf> {
        self.leaf_with(names, None, false, None)
    }

    /// A client certificate with common name `cn`.
    pub fn client(&self, cn: &str) -> anyhow::Result<Leaf> {
        self.leaf(&[cn], true, false)
    }

    /// A client certificate with common name `cn` whose key has algorithm and PEM form `form`
    /// (`key_pem` is in that form; `key()` stays PKCS#8 DER).
    pub fn client_with_key(&self, cn: &str, form: KeyForm) -> anyhow::Result<Leaf> {
        self.leaf_with(&[cn], Some(true), false, Some(form))
    }

    /// A rustls server config presenting `leaf`; with `require_client_cert`, clients must present
    /// a certificate issued under this PKI's root.
    pub fn server_config(
        &self,
        leaf: &Leaf,
        require_client_cert: bool,
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        self.server_config_with(leaf, require_client_cert.then_some(true))
    }

    /// A rustls server config presenting `leaf` that asks clients for a certificate issued under
    /// this PKI's root but also serves those that send none (what a client offers shows in
    /// `SeenRequest::client_cert`).
    pub fn server_config_asking_client_cert(
        &self,
        leaf: &Leaf,
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        self.server_config_with(leaf, Some(false))
    }

    /// `client_cert`: `None` asks for none, `Some(required)` asks for one.
    fn server_config_with(
        &self,
        leaf: &Leaf,
        client_cert: Option<bool>,
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let cfg = if let Some(required) = client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone())?;
            let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            if !required {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build()?;
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

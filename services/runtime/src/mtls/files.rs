//! A service's own mTLS material (CA bundle, certificate, key), turned into rustls server and
//! client configurations and rebuilt when the files change, so that cert-manager's rotation
//! takes effect at the next handshake without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::PrivateKeyDer;

use crate::reload::Reloaded;
use crate::tls::{self, TlsError};

/// ALPN of gRPC: HTTP/2 only.
const H2: &[u8] = b"h2";

/// Where a service's mTLS files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtlsFiles {
    /// CA certificates (PEM) that sign every service's certificate: trusted for peers both ways.
    pub ca: PathBuf,
    /// This service's certificate chain (PEM), presented as server and as client.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// The configurations built from one version of the files.
#[derive(Clone)]
struct Built {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

/// The mTLS configurations of a service, current with its files.
pub struct Mtls {
    files: MtlsFiles,
    built: Reloaded<Built, 3>,
}

impl std::fmt::Debug for Mtls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mtls").field("files", &self.files).finish()
    }
}

impl Mtls {
    /// Loads the files now: an error here is a configuration error (exit 64).
    pub fn load(files: MtlsFiles) -> Result<Self, TlsError> {
        let paths = [files.ca.clone(), files.cert.clone(), files.key.clone()];
        let built = Reloaded::load(paths, "gRPC TLS certificates", |_| build(&files))?;
        Ok(Self { files, built })
    }

    /// The files this service's identity comes from.
    pub fn files(&self) -> &MtlsFiles {
        &self.files
    }

    /// The server configuration for the next handshake.
    pub fn server(&self) -> Arc<ServerConfig> {
        self.current().server
    }

    /// The client configuration for the next connection to a peer.
    pub fn client(&self) -> Arc<ClientConfig> {
        self.current().client
    }

    /// The configurations of the files as they are now ([`Reloaded::current`]).
    fn current(&self) -> Built {
        self.built.current(|_| build(&self.files))
    }
}

fn build(files: &MtlsFiles) -> Result<Built, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in tls::load_certs(&files.ca)? {
        roots.add(c)?;
    }
    let roots = Arc::new(roots);
    let chain = tls::load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let cert_what = files.cert.display().to_string();
    let key_what = files.key.display().to_string();
    // Checks that the key is the certificate's, with an error naming both files.
    tls::certified_key(chain.clone(), key.clone_key(), &cert_what, &key_what)?;

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), tls::provider())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut server = ServerConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())?;
    server.alpn_protocols = vec![H2.to_vec()];

    let mut client = ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    client.alpn_protocols = vec![H2.to_vec()];
    Ok(Built {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = path.display().to_string();
    let pem = std::fs::read(path).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        reason: e.kind().to_string(),
    })?;
    tls::parse_private_key(&pem, &what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn put(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    #[test]
    fn a_rotation_is_picked_up_and_a_broken_one_keeps_the_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let files = MtlsFiles {
            ca: dir.path().join("ca.crt"),
            cert: dir.path().join("tls.crt"),
            key: dir.path().join("tls.key"),
        };
        let (cert, key) = identity("a");
        put(&files.ca, &cert);
        put(&files.cert, &cert);
        put(&files.key, &key);
        let mtls = Mtls::load(files.clone()).unwrap();
        let first = mtls.server();
        assert!(
            Arc::ptr_eq(&first, &mtls.server()),
            "unchanged files: same config"
        );

        // Half-way through a rotation: the new certificate, the old key.
        let (cert2, key2) = identity("b");
        put(&files.cert, &cert2);
        assert!(
            Arc::ptr_eq(&first, &mtls.server()),
            "a mismatched pair keeps the last good"
        );
        put(&files.key, &key2);
        let second = mtls.server();
        assert!(
            !Arc::ptr_eq(&first, &second),
            "the completed rotation is used"
        );

        // At start, the same mismatch is a configuration error naming both files.
        put(&files.key, &key);
        let err = Mtls::load(files.clone()).unwrap_err().to_string();
        assert!(err.contains("tls.key") && err.contains("tls.crt"), "{err}");
        assert!(!err.contains("BEGIN"), "{err}");
    }
}

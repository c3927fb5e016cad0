//! Per-endpoint credentials and trust, read from files at every connection attempt so rotated
//! secrets, keys and CAs apply without a restart.
//!
//! A [`Connector`] gives the SSE client two things: a rustls configuration built once, whose
//! server certificate verifier and client certificate resolver use whatever was loaded last,
//! and a header source the client calls before each connection. That call re-reads the trust
//! (system roots, the trust bundle directory, the endpoint's trust list) and the credentials
//! (HTTP Basic secrets, or the client certificate and key, checked to match), so a bad file is
//! reported before connecting, by name, never by value.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, header::AUTHORIZATION};
use rustls::client::ResolvesClientCert;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

mod bearer;
mod headers;
mod oauth2;
mod secrets;
mod trust;

pub use oauth2::{
    EXPIRY_MARGIN_MAX, MAX_TOKEN_RESPONSE_BYTES, TOKEN_REQUEST_TIMEOUT, TokenCache,
    UNKNOWN_LIFETIME,
};

pub use secrets::*;
pub use trust::*;

use crate::akri::mounts::{CredentialKind, EndpointFiles};
use crate::resources::Auth;
use crate::resources::options::{HttpAuth, RequestOptions};
use crate::sse::{HeaderSource, Tokens};

/// One endpoint's way of connecting: a TLS configuration and a header source that reloads
/// trust and credentials at each connection attempt.
#[derive(Debug, Clone)]
pub struct Connector {
    live: Arc<Live>,
    tls: Arc<rustls::ClientConfig>,
    /// `additionalConfiguration.authentication`: a bearer token file or OAuth2.
    http_auth: Option<HttpAuth>,
    /// The OAuth2 token the endpoint's streams share.
    tokens: Option<Arc<TokenCache>>,
    /// The endpoint's request headers and proxy credentials ([`headers`]).
    request: Arc<RequestOptions>,
}

/// What a connection attempt loads, and what was loaded last.
struct Live {
    auth: Auth,
    trust_list: Option<String>,
    secrets_dir: Option<PathBuf>,
    trust: TrustSources,
    /// Whether the endpoint is `https` (then a missing root store is an error before connecting).
    https: bool,
    /// The endpoint's own files in the Akri mounts (the ADR resource source only): where a
    /// missing secret or trust list folder is looked for.
    akri: Option<EndpointFiles>,
    verifier: Mutex<Option<Arc<WebPkiServerVerifier>>>,
    identity: Mutex<Option<Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the loaded key.
        f.debug_struct("Live")
            .field("trust_list", &self.trust_list)
            .field("https", &self.https)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// The connector of an endpoint at `url` with `auth` and its optional trust list.
    pub fn new(
        url: &url::Url,
        auth: &Auth,
        trust_list: Option<&str>,
        secrets_dir: Option<PathBuf>,
        trust: TrustSources,
    ) -> Result<Self, String> {
        Self::with_akri(url, auth, trust_list, secrets_dir, trust, None)
    }

    /// [`Self::new`], also reading the Akri mounts' layouts of the endpoint `akri` names
    /// ([`mounts`]) where ours has no file.
    pub fn with_akri(
        url: &url::Url,
        auth: &Auth,
        trust_list: Option<&str>,
        secrets_dir: Option<PathBuf>,
        trust: TrustSources,
        akri: Option<EndpointFiles>,
    ) -> Result<Self, String> {
        let provider = sse_runtime::tls::provider();
        let live = Arc::new(Live {
            auth: auth.clone(),
            trust_list: trust_list.map(str::to_owned),
            secrets_dir,
            trust,
            https: url.scheme() == "https",
            akri,
            verifier: Mutex::new(None),
            identity: Mutex::new(None),
        });
        let verifier = Arc::new(CurrentTrust {
            live: live.clone(),
            algorithms: provider.signature_verification_algorithms,
        });
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls configuration: {e}"))?
            // Not a relaxation: CurrentTrust delegates to rustls' WebPKI verifier, rebuilt from
            // the trust files at each connection attempt.
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut tls = match auth {
            Auth::Certificate { .. } => {
                builder.with_client_cert_resolver(Arc::new(CurrentIdentity(live.clone())))
            }
            Auth::Anonymous | Auth::UsernamePassword { .. } => builder.with_no_client_auth(),
        };
        // A resumed session skips both certificate checks and keeps the old client identity:
        // every connection does a full handshake, so rotated trust and keys always apply.
        tls.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            live,
            tls: Arc::new(tls),
            http_auth: None,
            tokens: None,
            request: Arc::default(),
        })
    }

    /// This connector with the endpoint's extra authentication: a bearer token file (read in
    /// [`Self::prepare`]) or OAuth2 client credentials, whose token the streams of `endpoint`
    /// (`<device>/<endpoint>`) share ([`Self::token_source`]).
    pub fn with_http_auth(mut self, auth: Option<&HttpAuth>, endpoint: &str) -> Self {
        self.tokens = match auth {
            Some(HttpAuth::OAuth2(config)) => {
                let live = &self.live;
                let files = oauth2::Files {
                    secrets_dir: live.secrets_dir.clone(),
                    trust: live.trust.clone(),
                    trust_list: live.trust_list.clone(),
                    akri: live.akri.clone(),
                };
                Some(TokenCache::shared(endpoint, config, files))
            }
            _ => None,
        };
        self.http_auth = auth.cloned();
        self
    }

    /// The OAuth2 token source for the SSE client, if the endpoint uses OAuth2.
    pub fn token_source(&self) -> Option<Tokens> {
        self.tokens.clone().map(|t| t as Tokens)
    }

    /// Whether a 401 may be cured by credentials the next connect reads afresh (a bearer token
    /// file, an OAuth2 token): the client then retries once at once instead of backing off.
    pub fn renews_after_401(&self) -> bool {
        self.http_auth.is_some()
    }

    /// The same connector, also sending the endpoint's `headers` and proxy credentials.
    pub fn with_request(mut self, request: RequestOptions) -> Self {
        self.request = Arc::new(request);
        self
    }

    /// The TLS configuration (its trust and client certificate follow the last [`Self::prepare`]).
    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// Whether [`Self::prepare`] reads files: trust for `https`, secrets for credentials.
    pub fn reads_files(&self) -> bool {
        self.live.https
            || !matches!(self.live.auth, Auth::Anonymous)
            || self.http_auth.is_some()
            || !self.request.secret_refs().is_empty()
    }

    /// The header source for the SSE client: [`Self::prepare`] at every connection attempt.
    pub fn header_source(&self) -> HeaderSource {
        let this = self.clone();
        Arc::new(move || this.prepare())
    }

    /// Re-reads trust and credentials for the next connection; returns the request headers.
    pub fn prepare(&self) -> Result<HeaderMap, String> {
        let live = &self.live;
        // Plain `http` needs no roots (a redirect to `https` builds them when it gets there):
        // thousands of idle plain streams then hold no root store each.
        let verifier = if live.https {
            match build_verifier(&live.trust, live.trust_list.as_deref(), live.akri.as_ref())? {
                Some(v) => Some(v),
                None => {
                    return Err(
                        "no trusted certificate authority: system roots are off and no trust bundle or trust list holds a certificate"
                            .to_owned(),
                    );
                }
            }
        } else {
            None
        };
        *lock(&live.verifier) = verifier;
        let dir = live.secrets_dir.as_deref();
        let unified = |kind| live.akri.as_ref().map(|ep| (ep, kind));
        let mut headers = HeaderMap::new();
        match &live.auth {
            Auth::Anonymous => {}
            Auth::UsernamePassword { username, password } => {
                let user = read_secret_text(dir, username, unified(CredentialKind::Username))?;
                let pass = read_secret_text(dir, password, unified(CredentialKind::Password))?;
                headers.insert(AUTHORIZATION, basic_value(&user, &pass)?);
            }
            Auth::Certificate {
                certificate,
                key,
                intermediates,
            } => {
                let refs = (certificate, key, intermediates.as_ref());
                let identity = client_identity(dir, refs, live.akri.as_ref())?;
                *lock(&live.identity) = Some(Arc::new(identity));
            }
        }
        bearer::add(self.http_auth.as_ref(), dir, &mut headers)?;
        headers::append(&mut headers, &self.request, dir)?;
        Ok(headers)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Verifies servers with the WebPKI verifier of the trust loaded last.
#[derive(Debug)]
struct CurrentTrust {
    live: Arc<Live>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for CurrentTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut current = lock(&self.live.verifier).clone();
        if current.is_none() && !self.live.https {
            // An `http` endpoint redirected to `https`: load its trust now.
            let live = &self.live;
            current = build_verifier(&live.trust, live.trust_list.as_deref(), live.akri.as_ref())
                .map_err(rustls::Error::General)?;
        }
        match current {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Presents the client certificate loaded last.
struct CurrentIdentity(Arc<Live>);

impl std::fmt::Debug for CurrentIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CurrentIdentity")
    }
}

impl ResolvesClientCert for CurrentIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        lock(&self.0.identity).clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::resources::SecretRef;

    fn secret(s: &str) -> SecretRef {
        SecretRef::parse(s).unwrap()
    }

    fn write(dir: &Path, rel: &str, value: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, value).unwrap();
    }

    fn connector(url: &str, auth: Auth, secrets: Option<&Path>, trust: TrustSources) -> Connector {
        Connector::new(
            &url.parse().unwrap(),
            &auth,
            None,
            secrets.map(Path::to_path_buf),
            trust,
        )
        .unwrap()
    }

    fn basic(user: &str, pass: &str) -> Auth {
        Auth::UsernamePassword {
            username: secret(user),
            password: secret(pass),
        }
    }

    #[test]
    fn credentials_over_plain_http_are_refused_unless_allowed() {
        use crate::resources::options::parse;
        let http: url::Url = "http://h/s".parse().unwrap();
        let https: url::Url = "https://h/s".parse().unwrap();
        let auth = basic("c/u", "c/p");
        let config = |text: &str| {
            let v = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text).unwrap();
            parse(Some(&v)).unwrap()
        };
        let none = config("''");
        let e = refuse_insecure_credentials(&http, &auth, &none).unwrap_err();
        assert!(e.contains("over plain http:// refused"), "{e}");
        assert!(e.contains("allowInsecureCredentials"), "{e}");
        assert!(refuse_insecure_credentials(&https, &auth, &none).is_ok());
        assert!(refuse_insecure_credentials(&http, &Auth::Anonymous, &none).is_ok());
        // As Azure keeps it: a JSON string; or written as a YAML mapping.
        let allowed = config(r#"'{"allowInsecureCredentials": true}'"#);
        assert!(refuse_insecure_credentials(&http, &auth, &allowed).is_ok());
        let mapping = config("{ allowInsecureCredentials: true }");
        assert!(refuse_insecure_credentials(&http, &auth, &mapping).is_ok());
        let denied = config(r#"'{"allowInsecureCredentials": false, "x": 1}'"#);
        assert!(refuse_insecure_credentials(&http, &auth, &denied).is_err());
        // A bearer token, a secret header, proxy credentials: the same rule.
        for json in [
            r#"'{"authentication": {"method": "Bearer", "token": {"secretRef": "t/k"}}}'"#,
            r#"'{"headers": {"x-api-key": {"secretRef": "t/k"}}}'"#,
        ] {
            let e =
                refuse_insecure_credentials(&http, &Auth::Anonymous, &config(json)).unwrap_err();
            assert!(e.contains("over plain http:// refused"), "{json}: {e}");
            assert!(refuse_insecure_credentials(&https, &Auth::Anonymous, &config(json)).is_ok());
        }
        let proxied = config(
            r#"'{"proxy": {"url": "http://p:3128", "username": "u", "password": {"secretRef": "p/pw"}}}'"#,
        );
        let e = refuse_insecure_credentials(&https, &Auth::Anonymous, &proxied).unwrap_err();
        assert!(e.contains("plain http:// proxy refused"), "{e}");
        // An inline header is no credential.
        let plain = config(r#"'{"headers": {"x-tenant": "acme"}}'"#);
        assert!(refuse_insecure_credentials(&http, &Auth::Anonymous, &plain).is_ok());
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(b64(i.as_bytes()), o);
        }
    }

    #[test]
    fn anonymous_sends_no_header() {
        let c = connector("https://h", Auth::Anonymous, None, TrustSources::default());
        assert!(c.prepare().unwrap().is_empty());
    }

    #[test]
    fn basic_header_from_secret_files_and_rotation_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "creds/user", "Aladdin\n");
        write(dir.path(), "creds/pass", "open sesame\r\n");
        let c = connector(
            "http://h",
            basic("creds/user", "creds/pass"),
            Some(dir.path()),
            TrustSources::default(),
        );
        let src = c.header_source();
        let h = src().unwrap();
        assert_eq!(h[AUTHORIZATION], "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(h[AUTHORIZATION].is_sensitive());
        write(dir.path(), "creds/pass", "rotated");
        let h = src().unwrap();
        assert_eq!(
            h[AUTHORIZATION],
            format!("Basic {}", b64(b"Aladdin:rotated")).as_str()
        );
    }

    #[test]
    fn missing_secret_error_names_the_reference_not_a_value() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "creds/user", "top-secret-user");
        let c = connector(
            "http://h",
            basic("creds/user", "creds/missing"),
            Some(dir.path()),
            TrustSources::default(),
        );
        let e = c.prepare().unwrap_err();
        assert_eq!(e, "secret creds/missing is missing");
        let none = connector(
            "http://h",
            basic("creds/user", "creds/user"),
            None,
            TrustSources::default(),
        );
        assert!(none.prepare().unwrap_err().contains("no secrets dir"));
    }

    #[test]
    fn a_missing_secret_falls_back_to_its_endpoints_unified_file_in_adr_mode_only() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "dev_sse_username", "Aladdin\n");
        write(dir.path(), "dev_sse_password", "open sesame");
        let auth = basic("creds/user", "creds/pass");
        let with_akri = |ep: Option<EndpointFiles>| {
            let url = "http://h".parse().unwrap();
            let secrets = Some(dir.path().to_path_buf());
            Connector::with_akri(&url, &auth, None, secrets, TrustSources::default(), ep).unwrap()
        };
        let adr = with_akri(Some(EndpointFiles::new("dev", "sse").unwrap()));
        let h = adr.prepare().unwrap();
        assert_eq!(h[AUTHORIZATION], "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        let files = with_akri(None).prepare().unwrap_err();
        assert_eq!(files, "secret creds/user is missing");
        std::fs::remove_file(dir.path().join("dev_sse_password")).unwrap();
        assert_eq!(
            adr.prepare().unwrap_err(),
            "secret creds/pass is missing, and so is its unified file dev_sse_password"
        );
    }

    #[test]
    fn a_trust_list_without_its_folder_is_the_endpoints_file_in_adr_mode_only() {
        let ca = rcgen::generate_simple_self_signed(vec!["device.local".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "dev_sse", &ca.cert.pem());
        let trust = TrustSources {
            trust_dir: Some(dir.path().to_path_buf()),
            trust_bundle: None,
            system_roots: false,
        };
        let ep = EndpointFiles::new("dev", "sse").unwrap();
        assert!(
            build_verifier(&trust, Some("ca"), Some(&ep))
                .unwrap()
                .is_some()
        );
        let e = build_verifier(&trust, Some("ca"), None).unwrap_err();
        assert!(e.contains("trust list ca: cannot read"), "{e}");
        let other = EndpointFiles::new("dev", "other").unwrap();
        let e = build_verifier(&trust, Some("ca"), Some(&other)).unwrap_err();
        assert!(e.contains("nor the endpoint's file"), "{e}");
    }

    #[test]
    fn trust_list_loads_every_certificate_file() {
        let dir = tempfile::tempdir().unwrap();
        let trust = TrustSources {
            trust_dir: Some(dir.path().to_path_buf()),
            ..TrustSources::default()
        };
        // No trust list: system roots only.
        assert!(build_verifier(&trust, None, None).is_ok());
        let e = build_verifier(&trust, Some("ca"), None).unwrap_err();
        assert!(e.contains("trust list ca"), "{e}");
        std::fs::create_dir_all(dir.path().join("ca")).unwrap();
        let e = build_verifier(&trust, Some("ca"), None).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
        write(dir.path(), "ca/bad.pem", "not a certificate");
        assert!(build_verifier(&trust, Some("ca"), None).is_err());
        let e = build_verifier(&TrustSources::default(), Some("ca"), None).unwrap_err();
        assert!(e.contains("no trust dir"), "{e}");
    }

    #[test]
    fn trust_list_and_bundle_with_pem_certificates_and_hidden_entries_skipped() {
        let ca = rcgen::generate_simple_self_signed(vec!["device.local".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "trust/ca/ca.crt", &ca.cert.pem());
        // Kubernetes mount bookkeeping is not a certificate and must be ignored.
        write(dir.path(), "trust/ca/..data", "not a certificate");
        write(dir.path(), "bundle/a.pem", &ca.cert.pem());
        write(dir.path(), "bundle/..2026_01_01", "not a certificate");
        let trust = TrustSources {
            trust_dir: Some(dir.path().join("trust")),
            trust_bundle: Some(dir.path().join("bundle")),
            system_roots: false,
        };
        assert!(build_verifier(&trust, Some("ca"), None).unwrap().is_some());
        assert!(build_verifier(&trust, None, None).unwrap().is_some());
        write(dir.path(), "bundle/b.pem", "garbage");
        let e = build_verifier(&trust, None, None).unwrap_err();
        assert!(e.contains("trust bundle"), "{e}");
    }

    #[test]
    fn no_roots_at_all_fails_https_before_connecting_but_not_http() {
        let dir = tempfile::tempdir().unwrap();
        let trust = TrustSources {
            trust_dir: None,
            trust_bundle: Some(dir.path().to_path_buf()),
            system_roots: false,
        };
        let c = connector("https://h", Auth::Anonymous, None, trust.clone());
        let e = c.prepare().unwrap_err();
        assert!(e.contains("no trusted certificate authority"), "{e}");
        let c = connector("http://h", Auth::Anonymous, None, trust);
        assert!(c.prepare().is_ok());
    }

    fn client_cert(key: &rcgen::KeyPair) -> String {
        let mut p = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "client");
        p.self_signed(key).unwrap().pem()
    }

    #[test]
    fn certificate_auth_loads_a_matching_pair_and_refuses_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        write(dir.path(), "c/cert", &client_cert(&key));
        write(dir.path(), "c/key", &key.serialize_pem());
        write(dir.path(), "c/other", &other.serialize_pem());
        let auth = |k: &str| Auth::Certificate {
            certificate: secret("c/cert"),
            key: secret(k),
            intermediates: None,
        };
        let c = connector(
            "https://h",
            auth("c/key"),
            Some(dir.path()),
            TrustSources::default(),
        );
        assert!(c.prepare().unwrap().is_empty(), "no header for mTLS");
        assert!(lock(&c.live.identity).is_some());
        let e = connector(
            "https://h",
            auth("c/other"),
            Some(dir.path()),
            TrustSources::default(),
        )
        .prepare()
        .unwrap_err();
        assert_eq!(
            e,
            "client key c/other does not match client certificate c/cert"
        );
        let e = connector(
            "https://h",
            auth("c/missing"),
            Some(dir.path()),
            TrustSources::default(),
        )
        .prepare()
        .unwrap_err();
        assert_eq!(e, "secret c/missing is missing");
        // A key file that is not a key: named, not quoted.
        write(
            dir.path(),
            "c/bad",
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXZhbHVl\n",
        );
        let e = connector(
            "https://h",
            auth("c/bad"),
            Some(dir.path()),
            TrustSources::default(),
        )
        .prepare()
        .unwrap_err();
        assert!(e.starts_with("client key c/bad: "), "{e}");
        assert!(!e.contains("c2VjcmV0"), "{e}");
    }
}

//! Device credentials from secret files (HTTP Basic, client certificates), read at every
//! connection attempt; errors name the secret reference, never its value.

use crate::resources::options::{EndpointOptions, OptionValue, Proxy};
use std::path::Path;

use http::HeaderValue;
use rustls::sign::CertifiedKey;

use crate::akri::mounts::{self, CredentialKind, EndpointFiles};
use crate::resources::{Auth, SecretRef};

/// The endpoint whose unified secretsync file stands in for a missing secret file, and which of
/// its credentials the secret is (the ADR resource source only).
pub type Unified<'a> = Option<(&'a EndpointFiles, CredentialKind)>;

/// Reads one secret file `<dir>/<secret>/<key>` as bytes. Errors name the reference and the
/// problem, never the value.
pub fn read_secret_bytes(dir: Option<&Path>, r: &SecretRef) -> Result<Vec<u8>, String> {
    read_secret_file(dir, r, None)
}

/// Reads one secret file as bytes: `<dir>/<secret>/<key>`, else the `unified` endpoint's file
/// of that credential ([`mounts::credential_path`]). Errors name the reference and the files,
/// never the value.
pub fn read_secret_file(
    dir: Option<&Path>,
    r: &SecretRef,
    unified: Unified<'_>,
) -> Result<Vec<u8>, String> {
    let dir = dir.ok_or_else(|| format!("secret {r}: no secrets dir is configured"))?;
    let path = mounts::credential_path(dir, r, unified);
    std::fs::read(&path).map_err(|e| match (e.kind(), unified) {
        (std::io::ErrorKind::NotFound, Some((ep, kind))) => format!(
            "secret {r} is missing, and so is its unified file {}",
            ep.credential(kind)
        ),
        (std::io::ErrorKind::NotFound, None) => format!("secret {r} is missing"),
        (kind, _) => format!("secret {r} is unreadable: {kind}"),
    })
}

/// Reads one secret file `<dir>/<secret>/<key>` as text, trailing newline trimmed. Errors name
/// the reference and the problem, never the value.
pub fn read_secret(dir: Option<&Path>, r: &SecretRef) -> Result<String, String> {
    read_secret_text(dir, r, None)
}

/// An option's string (`additionalConfiguration`): written inline, or read from its secret.
pub fn read_option_value(dir: Option<&Path>, v: &OptionValue) -> Result<String, String> {
    match v {
        OptionValue::Literal(text) => Ok(text.clone()),
        OptionValue::Secret(r) => read_secret(dir, r),
    }
}

/// [`read_secret_file`] as text, trailing newline trimmed.
pub fn read_secret_text(
    dir: Option<&Path>,
    r: &SecretRef,
    unified: Unified<'_>,
) -> Result<String, String> {
    let bytes = read_secret_file(dir, r, unified)?;
    let mut text = String::from_utf8(bytes).map_err(|_| format!("secret {r} is not UTF-8 text"))?;
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    Ok(text)
}

/// Refuses credentials of any kind (HTTP Basic, a bearer or OAuth2 token, a secret header, proxy
/// credentials) that would cross the network in clear: to a plain `http://` address, or to a
/// plain `http://` proxy. `"allowInsecureCredentials": true` in the endpoint's
/// `additionalConfiguration` allows it. The error is the endpoint's configuration error, shown in
/// its status.
pub fn refuse_insecure_credentials(
    address: &url::Url,
    auth: &Auth,
    options: &EndpointOptions,
) -> Result<(), String> {
    if options.allow_insecure_credentials {
        return Ok(());
    }
    let allow = "use https, or set \"allowInsecureCredentials\": true in the endpoint's additionalConfiguration";
    if address.scheme() == "http" {
        if matches!(auth, Auth::UsernamePassword { .. }) {
            return Err(format!(
                "UsernamePassword credentials over plain http:// refused: {allow}"
            ));
        }
        if options.sends_credentials() {
            return Err(format!(
                "credentials from additionalConfiguration over plain http:// refused: {allow}"
            ));
        }
    }
    if let Proxy::Via {
        url,
        password: Some(_),
        ..
    } = &options.request.proxy
        && url.scheme() == "http"
    {
        return Err(format!(
            "proxy credentials to a plain http:// proxy refused: {allow}"
        ));
    }
    Ok(())
}

/// The `Authorization: Basic` value for a user and password, marked sensitive.
pub fn basic_value(user: &str, password: &str) -> Result<HeaderValue, String> {
    let encoded = b64(format!("{user}:{password}").as_bytes());
    let mut v = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| "credentials do not make a valid header".to_string())?;
    v.set_sensitive(true);
    Ok(v)
}

/// The client identity of a `Certificate` endpoint: certificate chain (plus the intermediates
/// secret) and key, checked to belong together; each file falls back to the `akri` endpoint's
/// unified file. Errors name the secret references only.
pub fn client_identity(
    dir: Option<&Path>,
    (certificate, key, intermediates): (&SecretRef, &SecretRef, Option<&SecretRef>),
    akri: Option<&EndpointFiles>,
) -> Result<CertifiedKey, String> {
    let read = |r, kind| read_secret_file(dir, r, akri.map(|ep| (ep, kind)));
    let cert_what = format!("client certificate {certificate}");
    let mut chain =
        sse_runtime::tls::parse_certs(&read(certificate, CredentialKind::Certificate)?, &cert_what)
            .map_err(|e| e.to_string())?;
    if let Some(r) = intermediates {
        let what = format!("intermediate certificates {r}");
        let pem = read(r, CredentialKind::IntermediateCertificates)?;
        chain.extend(sse_runtime::tls::parse_certs(&pem, &what).map_err(|e| e.to_string())?);
    }
    let key_what = format!("client key {key}");
    let key_pem = read(key, CredentialKind::CertificateKey)?;
    let key_der =
        sse_runtime::tls::parse_private_key(&key_pem, &key_what).map_err(|e| e.to_string())?;
    sse_runtime::tls::certified_key(chain, key_der, &cert_what, &key_what)
        .map_err(|e| e.to_string())
}

/// Standard base64 (RFC 4648, padded), as HTTP Basic uses it.
pub(super) fn b64(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

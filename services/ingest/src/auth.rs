//! Per-endpoint credentials and trust: the header source the SSE client calls at each connect
//! (so rotated secrets apply) and the TLS configuration with the endpoint's extra CAs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};

use crate::resources::{Auth, SecretRef};
use crate::sse::HeaderSource;

/// Reads one secret file `<dir>/<secret>/<key>`, trailing newline trimmed. Errors name the
/// reference and the problem, never the value.
pub fn read_secret(dir: Option<&Path>, r: &SecretRef) -> Result<String, String> {
    let dir = dir.ok_or_else(|| format!("secret {r}: no secrets dir is configured"))?;
    let path = dir.join(&r.secret).join(&r.key);
    let bytes = std::fs::read(&path).map_err(|e| format!("secret {r}: cannot read: {e}"))?;
    let mut text = String::from_utf8(bytes).map_err(|_| format!("secret {r}: not UTF-8 text"))?;
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    Ok(text)
}

/// The `Authorization: Basic` value for a user and password.
pub fn basic_value(user: &str, password: &str) -> Result<HeaderValue, String> {
    let encoded = base64(format!("{user}:{password}").as_bytes());
    let mut v = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| "credentials do not make a valid header".to_string())?;
    v.set_sensitive(true);
    Ok(v)
}

/// The headers to send at each connect for `auth`; reads secrets each time it is called.
pub fn header_source(auth: &Auth, secrets_dir: Option<PathBuf>) -> HeaderSource {
    match auth.clone() {
        Auth::Anonymous => Arc::new(|| Ok(HeaderMap::new())),
        Auth::UsernamePassword { username, password } => Arc::new(move || {
            let dir = secrets_dir.as_deref();
            let user = read_secret(dir, &username)?;
            let pass = read_secret(dir, &password)?;
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, basic_value(&user, &pass)?);
            Ok(h)
        }),
    }
}

/// The TLS client configuration for an endpoint: system roots plus every certificate file in
/// `<trust dir>/<trust list>/` when the endpoint names a trust list.
pub fn tls_config(
    trust_dir: Option<&Path>,
    trust_list: Option<&str>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut extra = Vec::new();
    if let Some(list) = trust_list {
        let base =
            trust_dir.ok_or_else(|| format!("trust list {list}: no trust dir is configured"))?;
        let dir = base.join(list);
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| format!("trust list {list}: cannot read {}: {e}", dir.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            // Kubernetes mounts keep bookkeeping entries (`..data`) beside the files.
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| !n.starts_with('.'))
                    && p.is_file()
            })
            .collect();
        files.sort();
        for f in &files {
            extra.extend(
                sse_runtime::tls::load_certs(f).map_err(|e| format!("trust list {list}: {e}"))?,
            );
        }
        if extra.is_empty() {
            return Err(format!(
                "trust list {list}: no certificate in {}",
                dir.display()
            ));
        }
    }
    sse_runtime::tls::client_config(extra)
        .map(Arc::new)
        .map_err(|e| e.to_string())
}

/// Standard base64 with padding (RFC 4648), for HTTP Basic.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretRef {
        SecretRef::parse(s).unwrap()
    }

    fn write(dir: &Path, rel: &str, value: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, value).unwrap();
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
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn anonymous_sends_no_header() {
        let h = header_source(&Auth::Anonymous, None)().unwrap();
        assert!(h.is_empty());
    }

    #[test]
    fn basic_header_from_secret_files_and_rotation_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "creds/user", "Aladdin\n");
        write(dir.path(), "creds/pass", "open sesame\r\n");
        let src = header_source(
            &Auth::UsernamePassword {
                username: secret("creds/user"),
                password: secret("creds/pass"),
            },
            Some(dir.path().to_path_buf()),
        );
        let h = src().unwrap();
        assert_eq!(h[AUTHORIZATION], "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(h[AUTHORIZATION].is_sensitive());
        write(dir.path(), "creds/pass", "rotated");
        let h = src().unwrap();
        assert_eq!(
            h[AUTHORIZATION],
            format!("Basic {}", base64(b"Aladdin:rotated")).as_str()
        );
    }

    #[test]
    fn missing_secret_error_names_the_reference_not_a_value() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "creds/user", "top-secret-user");
        let src = header_source(
            &Auth::UsernamePassword {
                username: secret("creds/user"),
                password: secret("creds/missing"),
            },
            Some(dir.path().to_path_buf()),
        );
        let e = src().unwrap_err();
        assert!(e.contains("creds/missing"), "{e}");
        assert!(!e.contains("top-secret-user"), "{e}");
        let none = header_source(
            &Auth::UsernamePassword {
                username: secret("creds/user"),
                password: secret("creds/user"),
            },
            None,
        );
        assert!(none().unwrap_err().contains("no secrets dir"));
    }

    #[test]
    fn trust_list_loads_every_certificate_file() {
        // No trust list: system roots only.
        assert!(tls_config(None, None).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let e = tls_config(Some(dir.path()), Some("ca")).unwrap_err();
        assert!(e.contains("trust list ca"), "{e}");
        std::fs::create_dir_all(dir.path().join("ca")).unwrap();
        let e = tls_config(Some(dir.path()), Some("ca")).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
        write(dir.path(), "ca/bad.pem", "not a certificate");
        assert!(tls_config(Some(dir.path()), Some("ca")).is_err());
        assert!(
            tls_config(None, Some("ca"))
                .unwrap_err()
                .contains("no trust dir")
        );
    }

    #[test]
    fn trust_list_with_a_pem_certificate_builds_and_hidden_entries_are_skipped() {
        let ca = rcgen::generate_simple_self_signed(vec!["device.local".to_string()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "ca/ca.crt", &ca.cert.pem());
        // Kubernetes mount bookkeeping is not a certificate and must be ignored.
        write(dir.path(), "ca/..data", "not a certificate");
        assert!(tls_config(Some(dir.path()), Some("ca")).is_ok());
    }
}

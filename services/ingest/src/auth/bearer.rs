//! `Authorization: Bearer <token>` (RFC 6750) from a secret file, read at every connection
//! attempt so a rotated token applies on the next connection; the header is marked sensitive
//! (never logged, never indexed by an HTTP/2 peer). OAuth2 tokens use the same header.

use std::path::Path;

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};

use crate::resources::SecretRef;
use crate::resources::options::HttpAuth;

use super::read_secret_text;

/// Sets `Authorization` from the token file of a `Bearer` authentication (OAuth2 sets it later,
/// from its token source).
pub fn add(
    auth: Option<&HttpAuth>,
    dir: Option<&Path>,
    headers: &mut HeaderMap,
) -> Result<(), String> {
    if let Some(HttpAuth::Bearer { token }) = auth {
        headers.insert(AUTHORIZATION, from_secret(dir, token)?);
    }
    Ok(())
}

/// The bearer header of the token in secret `token` (errors name the secret, never the value).
pub fn from_secret(dir: Option<&Path>, token: &SecretRef) -> Result<HeaderValue, String> {
    let value = read_secret_text(dir, token, None)?;
    header(value.trim()).map_err(|why| format!("secret {token} {why}"))
}

/// `Bearer <token>`, sensitive; the error says what is wrong with the token, never what it is.
pub fn header(token: &str) -> Result<HeaderValue, &'static str> {
    if token.is_empty() {
        return Err("is empty: no bearer token");
    }
    // RFC 6750's b64token is narrower, but providers issue opaque tokens: refuse only what
    // cannot be a header value (control characters, line breaks) or would split the header.
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("is not a valid bearer token (it holds spaces or control characters)");
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "is not a valid bearer token (not a header value)")?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_becomes_a_sensitive_bearer_header_and_rotation_applies() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("api")).unwrap();
        let file = dir.path().join("api/token");
        let secret = SecretRef::parse("api/token").unwrap();
        std::fs::write(&file, "tok-1\n").unwrap();
        let h = from_secret(Some(dir.path()), &secret).unwrap();
        assert_eq!(h, "Bearer tok-1");
        assert!(h.is_sensitive());
        assert!(!format!("{h:?}").contains("tok-1"), "Debug hides it");
        std::fs::write(&file, "tok-2").unwrap();
        assert_eq!(
            from_secret(Some(dir.path()), &secret).unwrap(),
            "Bearer tok-2"
        );
    }

    #[test]
    fn bad_tokens_are_named_by_their_secret_not_their_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("api")).unwrap();
        let secret = SecretRef::parse("api/token").unwrap();
        for (text, why) in [
            ("\n", "is empty"),
            ("abc def-secret", "spaces or control"),
            ("abc\u{7f}secret", "spaces or control"),
        ] {
            std::fs::write(dir.path().join("api/token"), text).unwrap();
            let e = from_secret(Some(dir.path()), &secret).unwrap_err();
            assert!(e.starts_with("secret api/token "), "{e}");
            assert!(e.contains(why), "{e}");
            assert!(
                !e.contains("secret\u{7f}") && !e.contains("def-secret"),
                "{e}"
            );
        }
        let e = from_secret(Some(dir.path()), &SecretRef::parse("api/none").unwrap()).unwrap_err();
        assert_eq!(e, "secret api/none is missing");
    }
}

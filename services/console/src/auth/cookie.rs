//! The console's two cookies: the session (after a login) and the pre-session cookie that binds
//! the CSRF token of a caller without a session. Both are HttpOnly (no script reads them),
//! `SameSite=Strict` (no other site's page sends them) and `Secure` when served over HTTPS.

use std::time::Duration;

use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};

/// The session cookie, set by a login.
pub const SESSION: &str = "sse_console_session";
/// The pre-session cookie: a random id the CSRF token of a caller without a session derives from.
pub const PRE: &str = "sse_console_pre";

/// The value of the cookie `name` the request carries, if any.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for `name`; `max_age` `None` lasts as long as the browser runs.
pub fn set(name: &str, value: &str, secure: bool, max_age: Option<Duration>) -> HeaderValue {
    let mut c = format!("{name}={value}; HttpOnly; SameSite=Strict; Path=/");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if secure {
        c.push_str("; Secure");
    }
    // Names are constants and values hex: always a valid header value.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// Adds a `Set-Cookie` that removes the cookie `name`.
pub fn clear(headers: &mut HeaderMap, name: &str, secure: bool) {
    headers.append(SET_COOKIE, set(name, "", secure, Some(Duration::ZERO)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cookie_among_several_headers() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1; sse_console_pre=abc"));
        h.append(COOKIE, HeaderValue::from_static("sse_console_session=def"));
        assert_eq!(get(&h, PRE), Some("abc"));
        assert_eq!(get(&h, SESSION), Some("def"));
        assert_eq!(get(&h, "b"), None);
    }

    #[test]
    fn cookies_are_httponly_strict_and_secure_over_https() {
        let c = set(SESSION, "x", true, Some(Duration::from_secs(60)));
        let c = c.to_str().unwrap();
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Path=/",
            "Max-Age=60",
            "Secure",
        ] {
            assert!(c.contains(part), "{c}");
        }
        let plain = set(PRE, "y", false, None);
        assert!(!plain.to_str().unwrap().contains("Secure"));
    }
}

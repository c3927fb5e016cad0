//! Where a request says it goes (its authority: HTTP/2's `:authority`, which hyper puts in the
//! request's URI, else the `Host` header of HTTP/1.1) and where it comes from (`Origin`,
//! `Sec-Fetch-Site`). Both checks read the authority the same way: over HTTP/2 a browser sends
//! no `Host`, and a check reading only `Host` refused every POST.
//! On loopback the `Host` must name loopback and the console's port: DNS rebinding lets a page
//! of `evil.example` resolve its own name to 127.0.0.1, but the browser still sends
//! `Host: evil.example`. Unsafe requests from another site are refused on any address.

use std::net::IpAddr;

use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, Uri};

/// The authority a request names: the URI's (HTTP/2's `:authority`, or HTTP/1.1's absolute
/// form) or its `Host` header.
pub fn authority<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(HOST).and_then(|h| h.to_str().ok()))
}

/// Whether `authority` names a loopback host (`localhost`, 127.0.0.0/8, `[::1]`) and `port`
/// (no port: the scheme's default, 443 over HTTPS, else 80).
pub fn is_loopback(authority: &str, port: u16, https: bool) -> bool {
    let Some((host, given)) = split(authority) else {
        return false;
    };
    let default = if https { 443 } else { 80 };
    if given.unwrap_or(default) != port {
        return false;
    }
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `host[:port]` or `[v6][:port]` into the host and the port, if it parses.
fn split(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// Whether an unsafe request (a POST) may come from where it says it comes from: a
/// `Sec-Fetch-Site` other than `same-origin` or `none` (typed by the user) is refused, and so
/// is an `Origin` whose host and port are not the request's [`authority`]. Clients that send
/// neither (curl, scripts) pass here and still need the CSRF token.
pub fn same_origin(uri: &Uri, headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.as_bytes(), b"same-origin" | b"none")
    {
        return false;
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return true;
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    match (origin_host, authority(uri, headers)) {
        (Some(o), Some(h)) => o.eq_ignore_ascii_case(h),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn loopback_names_with_the_right_port_pass() {
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
            "127.1.2.3:8080",
        ] {
            assert!(is_loopback(ok, 8080, false), "{ok}");
        }
        assert!(is_loopback("localhost", 80, false));
        assert!(is_loopback("localhost", 443, true));
    }

    #[test]
    fn other_names_or_ports_are_refused() {
        for bad in [
            "evil.example:8080",
            "evil.example",
            "192.0.2.1:8080",
            "localhost:8081",
            "localhost",
            "[::1]",
            "[::1]x",
            "localhost:port",
            "localhost.evil.example:8080",
            "",
        ] {
            assert!(!is_loopback(bad, 8080, false), "{bad}");
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    /// Whether a request with HTTP/1.1's origin-form URI and `h` is same-origin.
    fn same(h: &[(&'static str, &'static str)]) -> bool {
        same_origin(&Uri::from_static("/login"), &headers(h))
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(same(&[]));
        assert!(same(&[("sec-fetch-site", "same-origin")]));
        assert!(same(&[("sec-fetch-site", "none")]));
        assert!(!same(&[("sec-fetch-site", "cross-site")]));
        assert!(!same(&[("sec-fetch-site", "same-site")]));
        let host = ("host", "console.example:8443");
        assert!(same(&[host, ("origin", "https://console.example:8443")]));
        assert!(!same(&[host, ("origin", "https://evil.example")]));
        assert!(!same(&[host, ("origin", "null")]));
        assert!(!same(&[("origin", "https://console.example:8443")]));
    }

    #[test]
    fn over_http2_the_origin_is_checked_against_the_authority() {
        // HTTP/2: the authority is in the URI and a browser sends no `Host`.
        let uri = Uri::from_static("https://console.example:8443/login");
        let post = |h: &[(&'static str, &'static str)]| same_origin(&uri, &headers(h));
        let site = ("sec-fetch-site", "same-origin");
        assert!(post(&[site, ("origin", "https://console.example:8443")]));
        assert!(!post(&[("origin", "https://evil.example")]));
        assert!(!post(&[("sec-fetch-site", "cross-site")]));
        // A `Host` naming another site does not make another origin pass.
        let forged = ("host", "evil.example");
        assert!(!post(&[forged, ("origin", "https://evil.example")]));
    }
}

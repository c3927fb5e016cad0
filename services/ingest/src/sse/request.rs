//! The stream request of one hop: method, body and headers, and how a redirect changes them
//! (RFC 9110 section 15.4, as browsers do: 303, and 301/302 after a POST, become a GET without
//! body; 307 and 308 resend the method and the body).

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

/// What every connection of a stream sends besides its per-connection headers.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// `GET` (the default) or `POST`.
    pub method: Method,
    /// The POST body, sent again on every reconnect.
    pub body: Option<Arc<[u8]>>,
    /// The body's `Content-Type`.
    pub content_type: HeaderValue,
    /// Send `Accept-Encoding: gzip, deflate` (the response is then decoded).
    pub compression: bool,
}

impl Default for RequestSpec {
    fn default() -> Self {
        Self {
            method: Method::GET,
            body: None,
            content_type: HeaderValue::from_static("application/json"),
            compression: false,
        }
    }
}

/// The method and body of one hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The method.
    pub method: Method,
    /// Whether the body goes with it.
    pub with_body: bool,
}

impl RequestSpec {
    /// The first hop: the configured method, with the body for a POST.
    pub fn first_hop(&self) -> Hop {
        Hop {
            with_body: self.method == Method::POST,
            method: self.method.clone(),
        }
    }

    /// The body of `hop`, if it carries one.
    pub fn body_of(&self, hop: &Hop) -> Option<&[u8]> {
        if !hop.with_body {
            return None;
        }
        Some(self.body.as_deref().unwrap_or_default())
    }
}

/// The hop after a redirect with `status`.
pub fn after_redirect(hop: &Hop, status: StatusCode) -> Hop {
    match status.as_u16() {
        307 | 308 => hop.clone(),
        303 if hop.method != Method::HEAD => Hop {
            method: Method::GET,
            with_body: false,
        },
        301 | 302 if hop.method == Method::POST => Hop {
            method: Method::GET,
            with_body: false,
        },
        _ => hop.clone(),
    }
}

/// The request of one hop: SSE headers, the caller's headers (same origin only),
/// `Last-Event-ID`, and for a body its `Content-Type` and `Content-Length`.
pub fn build_request(
    url: &url::Url,
    extra: Option<&HeaderMap>,
    last_event_id: &str,
    (spec, hop): (&RequestSpec, &Hop),
) -> Result<Request<()>, String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("unsupported URL scheme {:?}", url.scheme()));
    }
    let uri: http::Uri = url
        .as_str()
        .parse()
        .map_err(|_| "URL is not a valid request URI".to_owned())?;
    let mut request = Request::new(());
    *request.uri_mut() = uri;
    *request.method_mut() = hop.method.clone();
    let headers = request.headers_mut();
    if let Some(extra) = extra {
        headers.extend(extra.clone());
    }
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if spec.compression {
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip, deflate"),
        );
    }
    if let Some(body) = spec.body_of(hop) {
        headers.insert(header::CONTENT_TYPE, spec.content_type.clone());
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    if !last_event_id.is_empty() {
        match HeaderValue::from_bytes(last_event_id.as_bytes()) {
            Ok(value) => {
                headers.insert("last-event-id", value);
            }
            Err(_) => tracing::warn!(
                len = last_event_id.len(),
                "last event ID is not a valid header value; connecting without Last-Event-ID"
            ),
        }
    }
    Ok(request)
}

/// Whether `status` is a redirect the client follows.
pub fn is_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// Where a redirect points, resolved against the current URL.
pub fn redirect_target(current: &url::Url, response: &Response<()>) -> Result<url::Url, String> {
    let status = crate::text::status_text(response.status());
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("redirect without a valid Location ({status})"))?;
    let next = current
        .join(location)
        .map_err(|_| format!("redirect to an invalid Location ({status})"))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(format!("redirect to an unsupported scheme ({status})"));
    }
    if current.scheme() == "https" && next.scheme() == "http" {
        return Err(format!(
            "redirect from https to plain http refused ({status} to {})",
            crate::stream_key::shown_url(&next)
        ));
    }
    Ok(without_credentials(&next))
}

/// The URL without user name and password (never sent, never logged).
pub fn without_credentials(url: &url::Url) -> url::Url {
    let mut url = url.clone();
    // Only fails for URLs that cannot have credentials, which then have none.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sse::http::{Wire, encode};

    fn encode_for_test(r: &Request<()>, w: Wire<'_>) -> Vec<u8> {
        encode(r, w).unwrap()
    }

    fn post() -> RequestSpec {
        RequestSpec {
            method: Method::POST,
            body: Some(Arc::from(&b"{\"q\":1}"[..])),
            content_type: HeaderValue::from_static("application/json"),
            compression: true,
        }
    }

    #[test]
    fn a_post_goes_on_the_wire_with_its_body_length_and_type() {
        let spec = post();
        let url = url::Url::parse("http://h:8080/s?x=1").unwrap();
        let mut extra = HeaderMap::new();
        extra.insert("x-api-key", HeaderValue::from_static("k"));
        let req = build_request(&url, Some(&extra), "7", (&spec, &spec.first_hop())).unwrap();
        let body = spec.body_of(&spec.first_hop());
        let wire = encode_for_test(&req, Wire { body, proxy: None });
        let text = String::from_utf8(wire).unwrap();
        assert!(
            text.starts_with("POST /s?x=1 HTTP/1.1\r\nhost: h:8080\r\n"),
            "{text}"
        );
        for line in [
            "x-api-key: k\r\n",
            "accept: text/event-stream\r\n",
            "accept-encoding: gzip, deflate\r\n",
            "content-type: application/json\r\n",
            "content-length: 7\r\n",
            "last-event-id: 7\r\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from {text}");
        }
        assert!(text.ends_with("\r\n\r\n{\"q\":1}"), "{text}");
        // Through a proxy: absolute form, with the proxy's credentials.
        let auth = HeaderValue::from_static("Basic eDp5");
        let proxied = Wire {
            body,
            proxy: Some(Some(&auth)),
        };
        let text = String::from_utf8(encode_for_test(&req, proxied)).unwrap();
        assert!(
            text.starts_with("POST http://h:8080/s?x=1 HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(
            text.contains("proxy-authorization: Basic eDp5\r\n"),
            "{text}"
        );
        // A GET has no body headers.
        let get = RequestSpec::default();
        let req = build_request(&url, None, "", (&get, &get.first_hop())).unwrap();
        let text = String::from_utf8(encode_for_test(&req, Wire::default())).unwrap();
        assert!(text.starts_with("GET /s?x=1 HTTP/1.1\r\n"), "{text}");
        assert!(
            !text.contains("content-") && !text.contains("accept-encoding"),
            "{text}"
        );
    }

    #[test]
    fn redirects_change_the_method_as_browsers_do() {
        let spec = post();
        let post = spec.first_hop();
        let get = Hop {
            method: Method::GET,
            with_body: false,
        };
        for (code, expect) in [
            (301, &get),
            (302, &get),
            (303, &get),
            (307, &post),
            (308, &post),
        ] {
            let next = after_redirect(&post, StatusCode::from_u16(code).unwrap());
            assert_eq!(&next, expect, "{code}");
        }
        // A GET stays a GET; a body is only on a hop that carries one.
        assert_eq!(after_redirect(&get, StatusCode::TEMPORARY_REDIRECT), get);
        assert_eq!(spec.body_of(&get), None);
        assert_eq!(spec.body_of(&post), Some(&b"{\"q\":1}"[..]));
    }
}

//! The request-side options of `additionalConfiguration`: `headers`, `proxy`, `compression` and
//! `request` (method, body, content type).

use http::header::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::{
    OptionValue, Path, object, only_keys, optional_bool, optional_str, present, required_str,
    secret_ref, value,
};
use crate::resources::SecretRef;

/// Most request headers an endpoint may add.
pub const MAX_HEADERS: usize = 32;
/// Longest inline header value, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;

/// Headers that describe one hop of a connection, not the request (RFC 9110 section 7.6.1), and
/// headers the connector sets itself: an endpoint may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "accept",
    "accept-encoding",
    "last-event-id",
    "cache-control",
    "pragma",
];

/// The stream request's method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    /// `GET`, the default and what EventSource sends.
    #[default]
    Get,
    /// `POST` with a body (LLM and agent APIs, event gateways).
    Post,
}

/// How to reach the endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Proxy {
    /// Absent: `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` of ingest's environment decide.
    #[default]
    FromEnvironment,
    /// `"none"`: connect directly, whatever the environment says.
    Direct,
    /// `{"url": ..., "username": ..., "password": ...}`: through this HTTP proxy.
    Via {
        /// The proxy (`http://host:port`; `https://` proxies are refused).
        url: url::Url,
        /// Proxy user name, inline or from a secret.
        username: Option<OptionValue>,
        /// Proxy password (a secret reference only).
        password: Option<SecretRef>,
    },
}

/// What the stream request carries and how it travels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOptions {
    /// Extra request headers, in the order written (names lower case).
    pub headers: Vec<(HeaderName, OptionValue)>,
    /// The proxy to go through.
    pub proxy: Proxy,
    /// `compression`: send `Accept-Encoding: gzip, deflate` and decode the body (off by default).
    pub compression: bool,
    /// `request.method`.
    pub method: Method,
    /// `request.body` (POST only): a JSON string is sent as is, any other JSON value serialized.
    pub body: Option<Vec<u8>>,
    /// `request.contentType` of the body (default `application/json`).
    pub content_type: Option<String>,
}

impl RequestOptions {
    /// Every secret it references, with the option naming it.
    pub fn secret_refs(&self) -> Vec<(String, &SecretRef)> {
        let mut refs: Vec<(String, &SecretRef)> = self
            .headers
            .iter()
            .filter_map(|(name, v)| Some((format!("headers.{name}"), v.secret()?)))
            .collect();
        if let Proxy::Via {
            username, password, ..
        } = &self.proxy
        {
            if let Some(r) = username.as_ref().and_then(OptionValue::secret) {
                refs.push(("proxy.username".to_owned(), r));
            }
            if let Some(r) = password {
                refs.push(("proxy.password".to_owned(), r));
            }
        }
        refs
    }

    /// Whether a header of this name is set (to refuse `Authorization` next to another scheme).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(n, _)| n == name)
    }
}

/// Parses `headers`, `proxy`, `compression` and `request` of the configuration object.
pub(super) fn parse(obj: &Map<String, Value>, at: &Path) -> Result<RequestOptions, String> {
    let mut options = RequestOptions {
        compression: optional_bool(obj, "compression", at)?.unwrap_or(false),
        ..RequestOptions::default()
    };
    if let Some(v) = present(obj, "headers") {
        options.headers = headers(v, &at.key("headers"))?;
    }
    if let Some(v) = present(obj, "proxy") {
        options.proxy = proxy(v, &at.key("proxy"))?;
    }
    if let Some(v) = present(obj, "request") {
        request(v, &at.key("request"), &mut options)?;
    }
    Ok(options)
}

fn headers(v: &Value, at: &Path) -> Result<Vec<(HeaderName, OptionValue)>, String> {
    let map = object(v, at)?;
    if map.len() > MAX_HEADERS {
        return Err(at.error(&format!("more than {MAX_HEADERS} headers")));
    }
    let mut out = Vec::with_capacity(map.len());
    for (name, v) in map {
        let here = at.key(name);
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| here.error("is not a valid header name"))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(here.error("is a hop-by-hop header or one the connector sets itself"));
        }
        let v = value(v, &here)?;
        if let OptionValue::Literal(text) = &v {
            if text.len() > MAX_HEADER_VALUE_BYTES {
                return Err(here.error(&format!("longer than {MAX_HEADER_VALUE_BYTES} bytes")));
            }
            HeaderValue::from_str(text).map_err(|_| here.error("is not a valid header value"))?;
        }
        out.push((header, v));
    }
    Ok(out)
}

fn proxy(v: &Value, at: &Path) -> Result<Proxy, String> {
    if v.as_str() == Some("none") {
        return Ok(Proxy::Direct);
    }
    let obj = v
        .as_object()
        .ok_or_else(|| at.error("must be \"none\" or {\"url\": \"http://host:port\", ...}"))?;
    only_keys(obj, &["url", "username", "password"], at)?;
    let url = url::Url::parse(required_str(obj, "url", at)?)
        .map_err(|e| at.key("url").error(&format!("not a URL: {e}")))?;
    if url.scheme() == "https" {
        // TLS to the proxy would wrap the tunnel's TLS in a second TLS stream, which the SSE
        // client's connection does not hold; CONNECT keeps an https stream encrypted anyway.
        return Err(at.key("url").error(
            "https:// proxies are not supported: use http://host:port (an https stream stays encrypted through the CONNECT tunnel)",
        ));
    }
    if url.scheme() != "http" || url.host_str().is_none() {
        return Err(at.key("url").error("must be http://host:port"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(at
            .key("url")
            .error("must not hold credentials: use username and password"));
    }
    let username = present(obj, "username")
        .map(|v| value(v, &at.key("username")))
        .transpose()?;
    let password = present(obj, "password")
        .map(|v| secret_ref(v, &at.key("password")))
        .transpose()?;
    if username.is_some() != password.is_some() {
        return Err(at.error("username and password go together"));
    }
    Ok(Proxy::Via {
        url,
        username,
        password,
    })
}

fn request(v: &Value, at: &Path, options: &mut RequestOptions) -> Result<(), String> {
    let obj = object(v, at)?;
    only_keys(obj, &["method", "body", "contentType"], at)?;
    options.method = match optional_str(obj, "method", at)? {
        None | Some("GET") => Method::Get,
        Some("POST") => Method::Post,
        Some(_) => return Err(at.key("method").error("must be GET or POST")),
    };
    if let Some(body) = present(obj, "body") {
        if options.method != Method::Post {
            return Err(at.key("body").error("needs \"method\": \"POST\""));
        }
        options.body = Some(match body {
            Value::String(s) => s.clone().into_bytes(),
            other => serde_json::to_vec(other).map_err(|_| at.key("body").error("is not JSON"))?,
        });
    }
    if let Some(ct) = optional_str(obj, "contentType", at)? {
        HeaderValue::from_str(ct)
            .map_err(|_| at.key("contentType").error("is not a valid header value"))?;
        options.content_type = Some(ct.to_owned());
    }
    Ok(())
}

//! Reaching an SSE server through an HTTP proxy: `CONNECT host:port` for `https` targets (the TLS
//! handshake then runs through the tunnel, so the proxy sees neither the stream nor the
//! credentials) and absolute-form requests for `http` targets. The proxy is the endpoint's
//! (`proxy.url`) or ingest's environment's (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, as curl reads
//! them). Only `http://` proxies: TLS to the proxy itself would wrap the tunnel's TLS in another
//! TLS stream, which the connection type does not hold.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::http::{self as transport, Conn, HttpError};

/// Largest proxy answer to `CONNECT` read (status line and headers): a proxy is a peer too.
pub const MAX_PROXY_HEAD_BYTES: usize = 16 * 1024;

/// One HTTP proxy, named by `host:port` in every error (never by its credentials).
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyAddr {
    host: String,
    port: u16,
    /// `Proxy-Authorization` from user info in an environment proxy URL (marked sensitive).
    auth: Option<HeaderValue>,
}

impl fmt::Debug for ProxyAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials.
        write!(f, "ProxyAddr({})", self.name())
    }
}

impl ProxyAddr {
    /// The proxy of an `http://host:port` URL (port 80, the scheme's, when absent: the URL
    /// parser drops `:80`, so an absent port cannot mean curl's 1080); user info becomes
    /// `Proxy-Authorization: Basic`.
    pub fn from_url(url: &url::Url) -> Result<Self, String> {
        let shown = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port().unwrap_or(80)
        );
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(format!(
                    "proxy {shown}: https:// proxies are not supported, use an http:// proxy (CONNECT keeps the stream encrypted end to end)"
                ));
            }
            other => return Err(format!("proxy {shown}: unsupported scheme {other:?}")),
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err("proxy URL has no host".to_owned()),
        };
        let auth =
            if url.username().is_empty() {
                None
            } else {
                let user = percent_decoded(url.username());
                let pass = percent_decoded(url.password().unwrap_or(""));
                Some(crate::auth::basic_value(&user, &pass).map_err(|_| {
                    format!("proxy {shown}: credentials do not make a valid header")
                })?)
            };
        Ok(Self {
            port: url.port().unwrap_or(80),
            host,
            auth,
        })
    }

    /// The credentials of the proxy URL (environment proxies only).
    pub fn auth(&self) -> Option<&HeaderValue> {
        self.auth.as_ref()
    }

    /// `host:port`, for errors and logs.
    pub fn name(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map_or_else(String::new, |(_, v)| v.into_owned())
}

/// How a stream's connections travel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxyConfig {
    /// Straight to the server.
    #[default]
    Direct,
    /// Through this proxy, for every URL.
    Via(ProxyAddr),
    /// As ingest's environment says, per URL.
    Environment(Arc<EnvProxies>),
    /// The environment names a proxy that cannot be used: the stream stops with this message.
    Unusable(String),
}

impl ProxyConfig {
    /// The proxy for `url`, if any.
    pub fn for_url(&self, url: &url::Url) -> Option<&ProxyAddr> {
        match self {
            Self::Direct | Self::Unusable(_) => None,
            Self::Via(p) => Some(p),
            Self::Environment(env) => env.for_url(url),
        }
    }

    /// The environment's proxies (read now), or `Unusable` naming the variable at fault.
    pub fn from_env() -> Self {
        match EnvProxies::from_vars(|k| std::env::var(k).ok()) {
            Ok(env) if env.is_empty() => Self::Direct,
            Ok(env) => Self::Environment(Arc::new(env)),
            Err(e) => Self::Unusable(e),
        }
    }
}

/// `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` (lower case first, as curl reads them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvProxies {
    http: Option<ProxyAddr>,
    https: Option<ProxyAddr>,
    no_proxy: NoProxy,
}

impl EnvProxies {
    /// Reads the variables through `get` (the process environment, or a test's map).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |lower: &str, upper: &str| {
            get(lower)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (lower.to_owned(), v))
                .or_else(|| {
                    get(upper)
                        .filter(|v| !v.trim().is_empty())
                        .map(|v| (upper.to_owned(), v))
                })
        };
        let proxy = |(name, value): (String, String)| -> Result<ProxyAddr, String> {
            let value = value.trim();
            // curl takes `host:port` without a scheme as http.
            let text = if value.contains("://") {
                value.to_owned()
            } else {
                format!("http://{value}")
            };
            let url = url::Url::parse(&text)
                .map_err(|_| format!("environment variable {name} is not a proxy URL"))?;
            ProxyAddr::from_url(&url).map_err(|e| format!("environment variable {name}: {e}"))
        };
        Ok(Self {
            http: var("http_proxy", "HTTP_PROXY").map(proxy).transpose()?,
            https: var("https_proxy", "HTTPS_PROXY").map(proxy).transpose()?,
            no_proxy: NoProxy::parse(&var("no_proxy", "NO_PROXY").unwrap_or_default().1),
        })
    }

    fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none()
    }

    /// The proxy for `url`: by scheme, unless `NO_PROXY` matches its host.
    pub fn for_url(&self, url: &url::Url) -> Option<&ProxyAddr> {
        let proxy = match url.scheme() {
            "https" => self.https.as_ref(),
            _ => self.http.as_ref(),
        }?;
        (!self.no_proxy.matches(url)).then_some(proxy)
    }
}

/// `NO_PROXY` with curl's rules: a comma-separated list; `*` alone matches every host; a name
/// matches itself and its subdomains (a leading dot is ignored); an IP address matches itself and
/// `addr/bits` a network. Names compare case-insensitively; ports in the list are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    names: Vec<String>,
    networks: Vec<(IpAddr, u8)>,
}

impl NoProxy {
    /// Parses the variable's value.
    pub fn parse(value: &str) -> Self {
        let mut out = Self::default();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                out.all = true;
                continue;
            }
            let (addr, bits) = match entry.split_once('/') {
                Some((a, b)) => (a, b.parse::<u8>().ok()),
                None => (entry, None),
            };
            let bare = addr
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or(addr);
            if let Ok(ip) = bare.parse::<IpAddr>() {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                out.networks.push((ip, bits.unwrap_or(max).min(max)));
                continue;
            }
            // `host:port`: curl matches the host only.
            let name = entry.split(':').next().unwrap_or(entry);
            let name = name.trim_start_matches('.').trim_end_matches('.');
            if !name.is_empty() {
                out.names.push(name.to_ascii_lowercase());
            }
        }
        out
    }

    /// Whether `url`'s host is to be reached directly.
    pub fn matches(&self, url: &url::Url) -> bool {
        if self.all {
            return true;
        }
        match url.host() {
            Some(url::Host::Domain(d)) => {
                let host = d.trim_end_matches('.').to_ascii_lowercase();
                self.names.iter().any(|n| {
                    host == *n
                        || (host.len() > n.len()
                            && host.ends_with(n.as_str())
                            && host.as_bytes()[host.len() - n.len() - 1] == b'.')
                })
            }
            Some(url::Host::Ipv4(a)) => self.has_ip(IpAddr::V4(a)),
            Some(url::Host::Ipv6(a)) => self.has_ip(IpAddr::V6(a)),
            None => false,
        }
    }

    fn has_ip(&self, ip: IpAddr) -> bool {
        self.networks
            .iter()
            .any(|&(net, bits)| in_network(ip, net, bits))
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return false,
    };
    if bits == 0 {
        return true;
    }
    let shift = width - u32::from(bits);
    (ip >> shift) == (net >> shift)
}

/// Opens a connection to `url` through `proxy`: a `CONNECT` tunnel then TLS for `https`, a
/// plain connection for `http` (whose request then goes in absolute form: `true`).
/// `auth` is the endpoint's `Proxy-Authorization`, used when the proxy URL carries none.
pub async fn connect(
    proxy: &ProxyAddr,
    url: &url::Url,
    tls: &Arc<rustls::ClientConfig>,
    auth: Option<&HeaderValue>,
) -> Result<(Conn, bool), HttpError> {
    let auth = proxy.auth.as_ref().or(auth);
    let fail = |what: String| HttpError::Proxy(format!("proxy {}: {what}", proxy.name()));
    let tcp = transport::tcp_connect(&proxy.host, proxy.port)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if url.scheme() != "https" {
        return Ok((tokio_util::either::Either::Left(tcp), true));
    }
    let (host, port) = transport::host_port(url)?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut tcp = tcp;
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n").into_bytes();
    if let Some(v) = auth {
        head.extend_from_slice(b"proxy-authorization: ");
        head.extend_from_slice(v.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    tcp.write_all(&head)
        .await
        .map_err(|e| fail(format!("connection error: {e}")))?;
    let status = read_connect_answer(&mut tcp).await.map_err(fail)?;
    match status {
        200..=299 => {}
        // Only the proxy answers CONNECT: a 401 (as tinyproxy sends) is about its credentials too.
        code @ (401 | 407) if auth.is_some() => {
            return Err(fail(format!("refused the proxy credentials (HTTP {code})")));
        }
        code @ (401 | 407) => {
            return Err(fail(format!("requires authentication (HTTP {code})")));
        }
        other => {
            return Err(fail(format!(
                "refused CONNECT to {authority} (HTTP {other})"
            )));
        }
    }
    transport::tls_handshake(host, tcp, tls)
        .await
        .map(|c| (c, false))
}

/// Reads the proxy's answer to `CONNECT`, byte by byte up to the blank line (the tunnel's bytes
/// follow it and belong to TLS), within [`MAX_PROXY_HEAD_BYTES`]; returns its status code.
async fn read_connect_answer(tcp: &mut tokio::net::TcpStream) -> Result<u16, String> {
    let mut buf = Vec::with_capacity(256);
    loop {
        if buf.len() >= MAX_PROXY_HEAD_BYTES {
            return Err(format!(
                "answer to CONNECT larger than {MAX_PROXY_HEAD_BYTES} bytes"
            ));
        }
        let byte = tcp
            .read_u8()
            .await
            .map_err(|_| "closed the connection before answering CONNECT".to_owned())?;
        buf.push(byte);
        if buf.ends_with(b"\r\n\r\n") || buf.ends_with(b"\n\n") {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut headers);
            return match parsed.parse(&buf) {
                Ok(httparse::Status::Complete(_)) => parsed
                    .code
                    .ok_or_else(|| "invalid answer to CONNECT".to_owned()),
                _ => Err("invalid answer to CONNECT".to_owned()),
            };
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn no_proxy_follows_curls_rules() {
        let np =
            NoProxy::parse(" example.com, .internal ,10.0.0.0/8,192.168.1.7, [::1], host:8080");
        for direct in [
            "http://example.com/",
            "http://EXAMPLE.com./x",
            "https://a.b.example.com/",
            "http://svc.internal/",
            "http://internal/",
            "http://10.1.2.3/",
            "http://192.168.1.7:8080/",
            "http://[::1]/",
            "http://host/",
        ] {
            assert!(np.matches(&url(direct)), "{direct} should be direct");
        }
        for proxied in [
            "http://notexample.com/",
            "http://example.com.evil/",
            "http://11.0.0.1/",
            "http://192.168.1.8/",
            "http://[::2]/",
            "http://otherhost/",
        ] {
            assert!(!np.matches(&url(proxied)), "{proxied} should be proxied");
        }
        assert!(NoProxy::parse("*").matches(&url("http://anything/")));
        assert!(!NoProxy::parse("").matches(&url("http://anything/")));
        assert!(!NoProxy::parse("*.example.com").matches(&url("http://a.example.com/")));
    }

    #[test]
    fn environment_picks_by_scheme_lower_case_first_and_honours_no_proxy() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let env = EnvProxies::from_vars(vars(&[
            ("HTTP_PROXY", "http://upper:1"),
            ("http_proxy", "lower:3128"),
            ("HTTPS_PROXY", "http://user:p%40ss@secure:8080"),
            ("NO_PROXY", "localhost"),
        ]))
        .unwrap();
        assert_eq!(env.for_url(&url("http://x/")).unwrap().name(), "lower:3128");
        let https = env.for_url(&url("https://x/")).unwrap();
        assert_eq!(https.name(), "secure:8080");
        let expected = crate::auth::basic_value("user", "p@ss").unwrap();
        assert_eq!(https.auth.as_ref().unwrap(), &expected);
        assert!(https.auth.as_ref().unwrap().is_sensitive());
        assert!(!format!("{https:?}").contains("user"));
        assert!(env.for_url(&url("https://localhost/")).is_none());
        let e = EnvProxies::from_vars(vars(&[("HTTPS_PROXY", "https://p:443")])).unwrap_err();
        assert!(
            e.contains("HTTPS_PROXY") && e.contains("not supported"),
            "{e}"
        );
        assert!(EnvProxies::from_vars(vars(&[])).unwrap().is_empty());
    }

    /// An in-test proxy that answers CONNECT with `answer`; the error names it by host:port.
    #[tokio::test]
    async fn a_refused_connect_is_a_proxy_error_naming_host_and_port() {
        for (answer, expect) in [
            (
                &b"HTTP/1.1 403 Forbidden\r\n\r\n"[..],
                "refused CONNECT to example.com:443 (HTTP 403)",
            ),
            (
                b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n",
                "requires authentication",
            ),
            (
                b"HTTP/1.1 200 OK\r\nx: ",
                "closed the connection before answering",
            ),
        ] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0; 1024];
                let n = s.read(&mut buf).await.unwrap();
                s.write_all(answer).await.unwrap();
                String::from_utf8_lossy(&buf[..n]).into_owned()
            });
            let proxy = ProxyAddr::from_url(&url(&format!("http://127.0.0.1:{port}"))).unwrap();
            let tls = Arc::new(
                rustls::ClientConfig::builder_with_provider(sse_runtime::tls::provider())
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            );
            let e = connect(&proxy, &url("https://example.com/s"), &tls, None)
                .await
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains(&format!("proxy 127.0.0.1:{port}")), "{e}");
            assert!(e.contains(expect), "{e}");
            let sent = server.await.unwrap();
            assert!(
                sent.starts_with("CONNECT example.com:443 HTTP/1.1\r\n"),
                "{sent}"
            );
        }
    }
}

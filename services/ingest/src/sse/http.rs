//! HTTP/1.1 for one SSE stream: connect (TCP, then TLS with rustls for `https`; [`super::proxy`]
//! for a proxy), send one request (GET, or POST with its body),
//! read the response head (parsed by `httparse`), and decode the body (chunked, by length, or
//! until close) straight into the caller's sink.
//!
//! Why not hyper's client: it keeps about 24 KiB per connection for its whole life (an 8 KiB
//! read buffer, an 8 KiB header write buffer and an 8 KiB request channel block), plus a
//! connection task; with 10,000 mostly idle streams that was more than half of ingest's memory.
//! Here an idle stream holds no buffer at all: every read goes through one per-thread scratch
//! buffer and is decoded before the next await (docs/performance.md has the numbers).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::either::Either;

/// Largest response head accepted (status line and headers).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most response headers accepted.
const MAX_HEADERS: usize = 128;
/// Size of the per-thread read buffer.
const SCRATCH_BYTES: usize = 16 * 1024;
/// TCP keep-alive idle time, so a vanished peer is noticed even between server comments.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Longest chunk size line accepted (hex digits).
const MAX_CHUNK_SIZE_DIGITS: u8 = 16;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
}

/// A connection to an SSE server, plain or TLS.
pub type Conn = Either<TcpStream, tokio_rustls::client::TlsStream<TcpStream>>;

/// Why a request failed; TLS failures keep the rustls error reachable through `source()`.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The host name did not resolve.
    #[error("dns lookup of {host} failed: {source}")]
    Resolve {
        /// The host looked up.
        host: String,
        /// Why it failed.
        source: io::Error,
    },
    /// No address of the host accepted a TCP connection.
    #[error("tcp connect error: {0}")]
    Connect(#[source] io::Error),
    /// The TLS handshake failed (the rustls error is the source's inner error).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] io::Error),
    /// Reading or writing the connection failed.
    #[error("connection error: {0}")]
    Io(#[source] io::Error),
    /// The server sent something that is not HTTP/1.1, or broke its framing.
    #[error("invalid HTTP response: {0}")]
    Protocol(String),
    /// The proxy could not be reached or refused the tunnel; names it by `host:port` only.
    #[error("{0}")]
    Proxy(String),
}

/// Opens a connection to the URL's host and port (TLS for `https` with `tls`).
pub async fn connect(url: &url::Url, tls: &Arc<rustls::ClientConfig>) -> Result<Conn, HttpError> {
    let (host, port) = host_port(url)?;
    let tcp = tcp_connect(&host, port).await?;
    if url.scheme() != "https" {
        return Ok(Either::Left(tcp));
    }
    tls_handshake(host, tcp, tls).await
}

/// The URL's host (IPv6 without brackets) and port.
pub fn host_port(url: &url::Url) -> Result<(String, u16), HttpError> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| HttpError::Protocol("URL has no port".into()))?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_owned(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => return Err(HttpError::Protocol("URL has no host".into())),
    };
    Ok((host, port))
}

/// A TCP connection to the first address of `host` that accepts one, with keep-alive.
pub async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream, HttpError> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| HttpError::Resolve {
            host: host.to_owned(),
            source,
        })?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let tcp = tcp.ok_or(HttpError::Connect(last))?;
    tcp.set_nodelay(true).map_err(HttpError::Connect)?;
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE);
    socket2::SockRef::from(&tcp)
        .set_tcp_keepalive(&keepalive)
        .map_err(HttpError::Connect)?;
    Ok(tcp)
}

/// The TLS handshake with `host` over `tcp` (a direct connection or a proxy tunnel).
pub async fn tls_handshake(
    host: String,
    tcp: TcpStream,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<Conn, HttpError> {
    let name = rustls::pki_types::ServerName::try_from(host)
        .map_err(|_| HttpError::Protocol("host is not a valid TLS server name".into()))?;
    let stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(HttpError::Tls)?;
    Ok(Either::Right(stream))
}

/// How a request goes on the wire besides its head: its body, and for a plain `http` request
/// through a proxy, the absolute form and the proxy's credentials.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wire<'a> {
    /// The body (its `Content-Length` and `Content-Type` are among the request's headers).
    pub body: Option<&'a [u8]>,
    /// Through a proxy: `Some` (with its `Proxy-Authorization`, if any); the request target is
    /// then the absolute URI.
    pub proxy: Option<Option<&'a HeaderValue>>,
}

/// Writes `request` (its URI absolute) and its body on `conn`, in one write.
pub async fn send(conn: &mut Conn, request: &Request<()>, wire: Wire<'_>) -> Result<(), HttpError> {
    let head = encode(request, wire)?;
    conn.write_all(&head).await.map_err(HttpError::Io)?;
    conn.flush().await.map_err(HttpError::Io)
}

/// The request's bytes: request line, headers, body.
pub(crate) fn encode(request: &Request<()>, wire: Wire<'_>) -> Result<Vec<u8>, HttpError> {
    let uri = request.uri();
    let authority = uri
        .authority()
        .ok_or_else(|| HttpError::Protocol("request URI has no host".into()))?;
    let body = wire.body.unwrap_or_default();
    let mut head = Vec::with_capacity(256 + body.len());
    head.extend_from_slice(request.method().as_str().as_bytes());
    head.push(b' ');
    if wire.proxy.is_some() {
        head.extend_from_slice(uri.to_string().as_bytes());
    } else {
        head.extend_from_slice(uri.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    }
    head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    head.extend_from_slice(authority.as_str().as_bytes());
    head.extend_from_slice(b"\r\n");
    let proxy_auth = wire
        .proxy
        .flatten()
        .map(|v| (&header::PROXY_AUTHORIZATION, v));
    for (name, value) in request.headers().iter().chain(proxy_auth) {
        if name == header::HOST {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head.extend_from_slice(body);
    Ok(head)
}

/// Reads the response head (skipping 1xx interim responses, which count towards the head's
/// size: a server sending them forever is cut off like one with an endless head); returns it
/// and the body decoder, which holds the body bytes read with the head.
pub async fn read_head(conn: &mut Conn) -> Result<(Response<()>, Body), HttpError> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut interim = 0;
    loop {
        if let Some((response, used)) = parse_head(&buf)? {
            buf.drain(..used);
            if response.status().is_informational()
                && response.status() != StatusCode::SWITCHING_PROTOCOLS
            {
                interim += used;
                continue;
            }
            let body = Body::new(&response, buf)?;
            return Ok((response, body));
        }
        if interim + buf.len() >= MAX_HEAD_BYTES {
            return Err(HttpError::Protocol(format!(
                "response head larger than {MAX_HEAD_BYTES} bytes"
            )));
        }
        buf.reserve(4096);
        if conn.read_buf(&mut buf).await.map_err(HttpError::Io)? == 0 {
            return Err(HttpError::Protocol(
                "connection closed before the response head".into(),
            ));
        }
    }
}

/// Parses a complete head at the start of `buf`: the response and the bytes it used.
fn parse_head(buf: &[u8]) -> Result<Option<(Response<()>, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut headers);
    let used = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::Protocol(format!(
                "response head with more than {MAX_HEADERS} headers"
            )));
        }
        Err(e) => return Err(HttpError::Protocol(e.to_string())),
    };
    let status = parsed
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or_else(|| HttpError::Protocol("invalid status code".into()))?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    let map: &mut HeaderMap = response.headers_mut();
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HttpError::Protocol(format!("invalid header name {:?}", h.name)))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| HttpError::Protocol(format!("invalid value of header {name}")))?;
        map.append(name, value);
    }
    Ok(Some((response, used)))
}

/// How the body ends.
#[derive(Debug)]
enum Framing {
    /// After this many more bytes.
    Length(u64),
    /// When the server closes the connection.
    Close,
    /// After the last chunk and the trailers.
    Chunked(Chunk),
}

/// Where a chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex size (value so far, digits seen).
    Size(u64, u8),
    /// Skipping a chunk extension up to the end of the line.
    Extension(u64),
    /// After the size line's CR.
    SizeLf(u64),
    /// Inside a chunk's data (bytes left).
    Data(u64),
    /// After a chunk's data: its CR.
    DataCr,
    /// After a chunk's data: its LF.
    DataLf,
    /// In the trailer section (whether at the start of a line).
    Trailer(bool),
    /// The body is complete.
    Done,
}

/// The body decoder of one response; holds nothing but its state (and, until the first
/// [`Body::read`], the body bytes that came with the head).
#[derive(Debug)]
pub struct Body {
    framing: Framing,
    early: Vec<u8>,
}

impl Body {
    /// The decoder for `response` (RFC 9112 section 6.3), starting with `early` bytes.
    fn new(response: &Response<()>, early: Vec<u8>) -> Result<Self, HttpError> {
        let headers = response.headers();
        let framing = if let Some(te) = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
        {
            let last = te.to_str().unwrap_or("").rsplit(',').next().unwrap_or("");
            if last.trim().eq_ignore_ascii_case("chunked") {
                Framing::Chunked(Chunk::Size(0, 0))
            } else {
                Framing::Close
            }
        } else if let Some(len) = headers.get(header::CONTENT_LENGTH) {
            let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
            if values.any(|v| v != len) {
                return Err(HttpError::Protocol("conflicting Content-Length".into()));
            }
            let n = len
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| HttpError::Protocol("invalid Content-Length".into()))?;
            Framing::Length(n)
        } else {
            Framing::Close
        };
        Ok(Self { framing, early })
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        matches!(
            self.framing,
            Framing::Length(0) | Framing::Chunked(Chunk::Done)
        )
    }

    /// Waits for data and passes the body bytes in it to `sink`. `Ok(false)` when the body has
    /// ended (cleanly); an error when the connection broke or the framing is invalid.
    pub async fn read(
        &mut self,
        conn: &mut Conn,
        mut sink: impl FnMut(&[u8]),
    ) -> Result<bool, HttpError> {
        if !self.early.is_empty() {
            let early = std::mem::take(&mut self.early);
            self.decode(&early, &mut sink)?;
            return Ok(!self.is_done());
        }
        if self.is_done() {
            return Ok(false);
        }
        std::future::poll_fn(|cx| {
            SCRATCH.with_borrow_mut(|scratch| {
                let mut rb = ReadBuf::new(scratch);
                match Pin::new(&mut *conn).poll_read(cx, &mut rb) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => Poll::Ready(Err(HttpError::Io(e))),
                    Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                        Poll::Ready(match self.framing {
                            Framing::Close => {
                                self.framing = Framing::Length(0);
                                Ok(false)
                            }
                            _ => Err(HttpError::Protocol(
                                "connection closed before the end of the body".into(),
                            )),
                        })
                    }
                    Poll::Ready(Ok(())) => Poll::Ready(
                        self.decode(rb.filled(), &mut sink)
                            .map(|()| !self.is_done()),
                    ),
                }
            })
        })
        .await
    }

    /// Decodes `input`, passing body bytes to `sink`; bytes after the end are ignored.
    fn decode(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) -> Result<(), HttpError> {
        match &mut self.framing {
            Framing::Close => {
                sink(input);
                Ok(())
            }
            Framing::Length(left) => {
                let n = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                if n > 0 {
                    sink(&input[..n]);
                }
                *left -= n as u64;
                Ok(())
            }
            Framing::Chunked(state) => decode_chunked(state, input, sink),
        }
    }
}

/// Runs the chunked decoder over `input`.
fn decode_chunked(
    state: &mut Chunk,
    mut input: &[u8],
    sink: &mut impl FnMut(&[u8]),
) -> Result<(), HttpError> {
    let bad = |what: &str| Err(HttpError::Protocol(format!("invalid chunked body: {what}")));
    while let Some((&b, rest)) = input.split_first() {
        match *state {
            Chunk::Data(left) => {
                let n = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                sink(&input[..n]);
                input = &input[n..];
                *state = match left - n as u64 {
                    0 => Chunk::DataCr,
                    more => Chunk::Data(more),
                };
                continue;
            }
            Chunk::Done => return Ok(()),
            Chunk::Size(value, digits) => {
                *state = match (b as char).to_digit(16) {
                    Some(d) if digits < MAX_CHUNK_SIZE_DIGITS => {
                        Chunk::Size(value << 4 | u64::from(d), digits + 1)
                    }
                    Some(_) => return bad("chunk size too long"),
                    None if digits == 0 => return bad("chunk size expected"),
                    None => match b {
                        b';' | b' ' | b'\t' => Chunk::Extension(value),
                        b'\r' => Chunk::SizeLf(value),
                        b'\n' => after_size(value),
                        _ => return bad("unexpected byte in chunk size"),
                    },
                };
            }
            Chunk::Extension(value) => {
                if b == b'\n' {
                    *state = after_size(value);
                }
            }
            Chunk::SizeLf(value) => {
                if b != b'\n' {
                    return bad("CR without LF after chunk size");
                }
                *state = after_size(value);
            }
            Chunk::DataCr => {
                *state = match b {
                    b'\r' => Chunk::DataLf,
                    b'\n' => Chunk::Size(0, 0),
                    _ => return bad("chunk data longer than its size"),
                };
            }
            Chunk::DataLf => {
                if b != b'\n' {
                    return bad("CR without LF after chunk data");
                }
                *state = Chunk::Size(0, 0);
            }
            Chunk::Trailer(line_start) => {
                *state = match b {
                    b'\n' if line_start => Chunk::Done,
                    b'\n' => Chunk::Trailer(true),
                    b'\r' => Chunk::Trailer(line_start),
                    _ => Chunk::Trailer(false),
                };
            }
        }
        input = rest;
    }
    Ok(())
}

fn after_size(value: u64) -> Chunk {
    if value == 0 {
        Chunk::Trailer(true)
    } else {
        Chunk::Data(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(headers: &[(&str, &str)]) -> Result<Body, HttpError> {
        let mut r = Response::new(());
        for (k, v) in headers {
            r.headers_mut().append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Body::new(&r, Vec::new())
    }

    /// Decodes `input` split at `at`; the body bytes and whether it ended.
    fn run(b: &mut Body, input: &[u8], at: usize) -> Result<(Vec<u8>, bool), HttpError> {
        let mut out = Vec::new();
        let (x, y) = input.split_at(at);
        b.decode(x, &mut |d| out.extend_from_slice(d))?;
        b.decode(y, &mut |d| out.extend_from_slice(d))?;
        Ok((out, b.is_done()))
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_split() {
        let wire =
            b"5\r\ndata:\r\n1;name=\"x\"\r\n \r\nC\r\nhello world\n\r\n0\r\nx-trailer: 1\r\n\r\n";
        for at in 0..=wire.len() {
            let mut b = body(&[("transfer-encoding", "chunked")]).unwrap();
            let (out, done) = run(&mut b, wire, at).unwrap();
            assert_eq!(out, b"data: hello world\n", "split at {at}");
            assert!(done, "split at {at}");
        }
        // Bare LF line ends are taken too; an unfinished body is not done.
        let mut b = body(&[("transfer-encoding", "gzip, chunked")]).unwrap();
        let (out, done) = run(&mut b, b"3\nabc\n2\nde", 4).unwrap();
        assert_eq!(out, b"abcde");
        assert!(!done);
    }

    /// Random bytes from the chunked grammar's alphabet: decoding never panics, and gives the
    /// same bytes and the same verdict whole or split anywhere.
    #[test]
    fn random_chunked_input_decodes_the_same_however_split() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        let alphabet = b"0123456789abcdefABCDEFxyz;= \t\r\n";
        for _ in 0..5000 {
            let len = rng.random_range(0..64);
            let wire: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let whole = {
                let mut b = body(&[("transfer-encoding", "chunked")]).unwrap();
                run(&mut b, &wire, 0).map_err(|e| e.to_string())
            };
            let at = rng.random_range(0..=wire.len());
            let split = {
                let mut b = body(&[("transfer-encoding", "chunked")]).unwrap();
                run(&mut b, &wire, at).map_err(|e| e.to_string())
            };
            assert_eq!(whole, split, "{wire:?} split at {at}");
        }
    }

    #[test]
    fn broken_chunked_framing_is_an_error() {
        for wire in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"3\r\nabcd\r\n",
            b"3\rx",
            b"11111111111111111\r\n",
        ] {
            let mut b = body(&[("transfer-encoding", "chunked")]).unwrap();
            let e = b.decode(wire, &mut |_| {}).unwrap_err();
            assert!(e.to_string().contains("invalid chunked body"), "{e}");
        }
    }

    #[test]
    fn length_and_close_framing() {
        let mut b = body(&[("content-length", "4")]).unwrap();
        let (out, done) = run(&mut b, b"abcdef", 2).unwrap();
        assert_eq!(out, b"abcd");
        assert!(done);
        let mut b = body(&[]).unwrap();
        let (out, done) = run(&mut b, b"abcdef", 3).unwrap();
        assert_eq!(out, b"abcdef");
        assert!(!done);
        // Transfer-Encoding wins over Content-Length; conflicting lengths are refused.
        let b = body(&[("transfer-encoding", "chunked"), ("content-length", "4")]).unwrap();
        assert!(matches!(b.framing, Framing::Chunked(_)));
        assert!(body(&[("content-length", "4"), ("content-length", "5")]).is_err());
        assert!(body(&[("content-length", "x")]).is_err());
    }

    /// What `read_head` makes of `wire`, sent by a server that then keeps the connection open.
    async fn head_from(wire: Vec<u8>) -> Result<StatusCode, HttpError> {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = s.write_all(&wire).await;
            // Held open: only the limits can end the read.
            std::future::pending::<()>().await;
        });
        let mut conn: Conn = Either::Left(TcpStream::connect(addr).await.unwrap());
        let read = tokio::time::timeout(Duration::from_secs(20), read_head(&mut conn));
        let out = read
            .await
            .expect("read_head never ended")
            .map(|(r, _)| r.status());
        server.abort();
        out
    }

    #[tokio::test]
    async fn a_head_that_never_ends_or_has_too_many_headers_is_refused() {
        let ok = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n".to_vec();
        assert_eq!(head_from(ok).await.unwrap(), StatusCode::OK);
        let mut endless = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
        endless.extend(b"a".repeat(2 * MAX_HEAD_BYTES));
        let e = head_from(endless).await.unwrap_err().to_string();
        assert!(e.contains("response head larger than 65536 bytes"), "{e}");
        let many = format!(
            "HTTP/1.1 200 OK\r\n{}\r\n",
            "X-A: 1\r\n".repeat(MAX_HEADERS + 1)
        );
        let e = head_from(many.into_bytes()).await.unwrap_err().to_string();
        assert!(e.contains("more than 128 headers"), "{e}");
        // Interim responses forever: cut off at the same size, not read for the read timeout.
        let interim = b"HTTP/1.1 102 Processing\r\n\r\n".repeat(4 * MAX_HEAD_BYTES / 28);
        let e = head_from(interim).await.unwrap_err().to_string();
        assert!(e.contains("response head larger than 65536 bytes"), "{e}");
    }

    #[test]
    fn heads_parse_with_their_headers() {
        let wire =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-A: 1\r\nX-A: 2\r\n\r\ndata";
        assert!(parse_head(&wire[..20]).unwrap().is_none());
        let (r, used) = parse_head(wire).unwrap().unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(r.headers().get_all("x-a").iter().count(), 2);
        assert_eq!(&wire[used..], b"data");
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }
}

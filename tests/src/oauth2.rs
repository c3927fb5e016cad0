//! An OAuth2 token endpoint over HTTPS on loopback (RFC 6749 section 4.4, client credentials):
//! it checks the client's HTTP Basic credentials, issues numbered bearer tokens and records
//! every request, for the tests of endpoints that authenticate with OAuth2.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What the endpoint saw of one token request.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// `POST`, or what else came.
    pub method: String,
    /// `Authorization`, if any.
    pub authorization: Option<String>,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The raw form body.
    pub body: String,
}

/// The credentials the endpoint accepts and what it issues.
#[derive(Debug, Clone)]
pub struct Client {
    /// `client_id`.
    pub id: String,
    /// `client_secret`.
    pub secret: String,
    /// `expires_in` of every token.
    pub expires_in: u64,
}

/// A running token endpoint.
pub struct TokenEndpoint {
    /// Where it listens.
    pub addr: SocketAddr,
    issued: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    token: CancellationToken,
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl TokenEndpoint {
    /// Serves over TLS with `tls` on a free loopback port until dropped.
    pub async fn start(tls: Arc<rustls::ServerConfig>, client: Client) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let this = Self {
            addr,
            issued: Arc::default(),
            requests: Arc::default(),
            token: CancellationToken::new(),
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let (issued, requests, token) = (
            this.issued.clone(),
            this.requests.clone(),
            this.token.clone(),
        );
        let client = Arc::new(client);
        tokio::spawn(async move {
            loop {
                let sock = tokio::select! {
                    () = token.cancelled() => return,
                    r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => continue },
                };
                let (acceptor, client) = (acceptor.clone(), client.clone());
                let (issued, requests) = (issued.clone(), requests.clone());
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(sock).await else {
                        return;
                    };
                    let svc = service_fn(move |req| {
                        let (client, issued, requests) =
                            (client.clone(), issued.clone(), requests.clone());
                        async move {
                            Ok::<_, Infallible>(answer(req, &client, &issued, &requests).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(this)
    }

    /// `https://127.0.0.1:<port>/oauth2/token`.
    pub fn url(&self) -> String {
        format!("https://{}/oauth2/token", self.addr)
    }

    /// Every token issued, in order.
    pub fn issued(&self) -> Vec<String> {
        self.issued.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// `Basic base64(urlencode(id):urlencode(secret))`, as RFC 6749 section 2.3.1 builds it.
pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    client: &Client,
    issued: &Mutex<Vec<String>>,
    requests: &Mutex<Vec<TokenRequest>>,
) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let seen = TokenRequest {
        method: req.method().to_string(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: String::new(),
    };
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    let seen = TokenRequest {
        body: String::from_utf8_lossy(&body.unwrap_or_default()).into_owned(),
        ..seen
    };
    let authorized = seen.authorization.as_deref()
        == Some(basic(&client.id, &client.secret).as_str())
        && seen.body.contains("grant_type=client_credentials");
    if let Ok(mut r) = requests.lock() {
        r.push(seen);
    }
    if !authorized {
        return json(
            401,
            r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#
                .to_string(),
        );
    }
    let mut issued = issued.lock().unwrap_or_else(|e| e.into_inner());
    let token = format!("tok-{}-{:08x}", issued.len() + 1, rand_u32());
    issued.push(token.clone());
    json(
        200,
        format!(
            r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
            client.expires_in
        ),
    )
}

fn json(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// A token suffix that differs between runs, so no test can pass on a remembered token.
fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id()
}

//! One OAuth2 token request: a POST of `application/x-www-form-urlencoded` parameters to the
//! `https` token endpoint with hyper's HTTP/1.1 client over rustls, verified with the endpoint's
//! trust (no client certificate: the client authenticates with its secret). The client id and
//! secret go in HTTP Basic (RFC 6749 section 2.3.1: every server must accept it, while secrets in
//! the body are "NOT RECOMMENDED" and may land in request logs). The answer is read up to
//! [`MAX_TOKEN_RESPONSE_BYTES`] within [`TOKEN_REQUEST_TIMEOUT`]; errors carry the endpoint's
//! status and RFC 6749 section 5.2 `error` / `error_description`, never the secret or a token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::Files;
use crate::auth::{basic_value, build_verifier, read_option_value, read_secret_text};
use crate::resources::options::OAuth2;
use crate::sse::TokenError;
use crate::text::status_text;

/// Largest token endpoint answer read (tokens, even JWTs with many claims, are a few KiB).
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;
/// Longest a token request may take, connect to last byte.
pub const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest `error` / `error_description` text of a refusal shown in a status.
const MAX_ERROR_CHARS: usize = 200;

/// A token and how long it lives.
pub(super) struct Token {
    /// `Bearer <access_token>`, sensitive.
    pub value: HeaderValue,
    /// `expires_in`, when the endpoint said.
    pub lifetime: Option<Duration>,
    /// When the request was sent (the lifetime counts from about then).
    pub issued: Instant,
}

/// What one request needs that is read from files: the client's credentials, the secret
/// parameters and the TLS configuration from the endpoint's trust.
pub(super) struct Inputs {
    client_id: String,
    client_secret: String,
    parameters: Vec<(String, String)>,
    tls: Arc<rustls::ClientConfig>,
}

impl Inputs {
    /// Reads the secrets and the trust (blocking file reads). Errors name files, not values.
    pub(super) fn load(config: &OAuth2, files: &Files) -> Result<Self, String> {
        let dir = files.secrets_dir.as_deref();
        let read = |v| read_option_value(dir, v);
        let client_id = read(&config.client_id)?;
        let client_secret = read_secret_text(dir, &config.client_secret, None)?;
        let parameters = config
            .parameters
            .iter()
            .map(|(k, v)| Ok((k.clone(), read(v)?)))
            .collect::<Result<_, String>>()?;
        let verifier = build_verifier(
            &files.trust,
            files.trust_list.as_deref(),
            files.akri.as_ref(),
        )?
        .ok_or("OAuth2 token endpoint: no trusted certificate authority (system roots are off and no trust bundle or trust list holds a certificate)")?;
        let tls = rustls::ClientConfig::builder_with_provider(sse_runtime::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("tls configuration: {e}"))?
            .with_webpki_verifier(verifier)
            .with_no_client_auth();
        Ok(Self {
            client_id,
            client_secret,
            parameters,
            tls: Arc::new(tls),
        })
    }
}

/// The form body: `grant_type`, `scope` (space-joined), `audience`, then the extra parameters.
pub(super) fn form(config: &OAuth2, parameters: &[(String, String)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if !config.scopes.is_empty() {
        form.append_pair("scope", &config.scopes.join(" "));
    }
    if let Some(audience) = &config.audience {
        form.append_pair("audience", audience);
    }
    for (name, value) in parameters {
        form.append_pair(name, value);
    }
    form.finish()
}

/// HTTP Basic of RFC 6749 section 2.3.1: id and secret form-urlencoded first, then base64.
pub(super) fn client_basic(id: &str, secret: &str) -> Result<HeaderValue, TokenError> {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    basic_value(&enc(id), &enc(secret))
        .map_err(|_| TokenError::lasting("OAuth2 client credentials are not a header value"))
}

/// Requests a token within [`TOKEN_REQUEST_TIMEOUT`].
pub(super) async fn fetch(config: &OAuth2, inputs: &Inputs) -> Result<Token, TokenError> {
    let shown = crate::stream_key::shown_url(&config.token_url);
    let issued = Instant::now();
    let exchange = tokio::time::timeout(TOKEN_REQUEST_TIMEOUT, post(config, inputs, &shown));
    let (status, body) = exchange.await.map_err(|_| {
        TokenError::passing(format!(
            "OAuth2 token endpoint {shown}: no answer within {}",
            humantime::format_duration(TOKEN_REQUEST_TIMEOUT)
        ))
    })??;
    let token = answer(status, &body, &inputs.client_secret).map_err(|e| TokenError {
        message: format!("OAuth2 token endpoint {shown} {}", e.message),
        ..e
    })?;
    Ok(Token { issued, ..token })
}

/// Sends the request and reads the answer's status and (bounded) body.
async fn post(
    config: &OAuth2,
    inputs: &Inputs,
    shown: &str,
) -> Result<(http::StatusCode, Bytes), TokenError> {
    let url = &config.token_url;
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        TokenError::passing(format!("OAuth2 token endpoint {shown}: {what}: {e}"))
    };
    let conn = crate::sse::http::connect(url, &inputs.tls)
        .await
        .map_err(|e| failed("cannot connect", &sse_runtime::error_chain(&e)))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
        .await
        .map_err(|e| failed("HTTP handshake failed", &e))?;
    let request = build(config, inputs)?;
    // The connection runs beside the exchange; it ends once the sender is dropped with it.
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| failed("request failed", &e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_TOKEN_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    TokenError::lasting(format!(
                        "OAuth2 token endpoint {shown}: answer larger than {MAX_TOKEN_RESPONSE_BYTES} bytes"
                    ))
                } else {
                    failed("reading the answer failed", &e)
                }
            })?
            .to_bytes();
        Ok((status, body))
    };
    let (answer, _) = futures::join!(exchange, connection);
    answer
}

/// The POST: form body, Basic client authentication, JSON asked for.
fn build(config: &OAuth2, inputs: &Inputs) -> Result<http::Request<Full<Bytes>>, TokenError> {
    let url = &config.token_url;
    let bad_url = || TokenError::lasting("OAuth2 token URL is not a valid request URI");
    let host = url.host_str().ok_or_else(bad_url)?;
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let body = form(config, &inputs.parameters);
    http::Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::ACCEPT, "application/json")
        .header(
            header::AUTHORIZATION,
            client_basic(&inputs.client_id, &inputs.client_secret)?,
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| bad_url())
}

/// The token of a 200 answer, or why there is none (the message follows the endpoint's URL).
pub(super) fn answer(
    status: http::StatusCode,
    body: &[u8],
    client_secret: &str,
) -> Result<Token, TokenError> {
    if !status.is_success() {
        let refusal = refusal(body, client_secret);
        let message = format!("answered {}{refusal}", status_text(status));
        // A refused client or grant needs someone to act; 5xx and 429 may pass.
        return Err(if status.is_server_error() || status.as_u16() == 429 {
            TokenError::passing(message)
        } else {
            TokenError::lasting(message)
        });
    }
    let bad = |what: &str| TokenError::lasting(format!("answered {}: {what}", status_text(status)));
    // Into a Value first: a typed parse's error could quote a field, and a field may be a token.
    let json: Value = serde_json::from_slice(body).map_err(|_| bad("not JSON"))?;
    let token = json["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no access_token"))?;
    match json["token_type"].as_str() {
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        Some(t) => {
            return Err(bad(&format!(
                "token_type {:?}, only Bearer is supported",
                crate::text::first_chars(t, 40)
            )));
        }
        None => return Err(bad("no token_type")),
    }
    // A number by RFC 6749; some providers (Entra ID v1) send a string of digits.
    let lifetime = match &json["expires_in"] {
        Value::Null => None,
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .map(Duration::from_secs);
    let value = super::super::bearer::header(token)
        .map_err(|why| bad(&format!("the access_token {why}")))?;
    Ok(Token {
        value,
        lifetime,
        issued: Instant::now(),
    })
}

/// `: <error>: <error_description>` of an RFC 6749 section 5.2 answer, truncated, control
/// characters dropped, the client secret blanked should the endpoint echo it; empty otherwise.
fn refusal(body: &[u8], client_secret: &str) -> String {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return String::new();
    };
    let clean = |v: &Value| {
        let text: String = v
            .as_str()?
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let text = if client_secret.is_empty() {
            text
        } else {
            text.replace(client_secret, "***")
        };
        let text = text.trim();
        (!text.is_empty()).then(|| crate::text::first_chars(text, MAX_ERROR_CHARS).to_owned())
    };
    match (clean(&json["error"]), clean(&json["error_description"])) {
        (Some(e), Some(d)) => format!(": {e}: {d}"),
        (Some(e), None) => format!(": {e}"),
        (None, Some(d)) => format!(": {d}"),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

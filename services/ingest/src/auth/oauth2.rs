//! OAuth2 client credentials (RFC 6749 section 4.4): one token per endpoint, shared by the
//! endpoint's streams, fetched when the first of them connects and kept until shortly before it
//! expires ([`refresh_after`]) or an SSE server refuses it (401). Concurrent connects share one
//! fetch. The token lives in memory only and is never logged; the fetch itself is in [`request`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::HeaderValue;

use super::TrustSources;
use crate::akri::mounts::EndpointFiles;
use crate::resources::options::OAuth2;
use crate::sse::{TokenError, TokenSource};

mod request;

pub use request::{MAX_TOKEN_RESPONSE_BYTES, TOKEN_REQUEST_TIMEOUT};

/// Longest time a token is renewed before it expires: a connect that takes a token just before
/// its expiry must still reach the SSE server with a valid one.
pub const EXPIRY_MARGIN_MAX: Duration = Duration::from_secs(30);
/// The margin as a share of the lifetime (divisor: 10 %), for short-lived tokens.
pub const EXPIRY_MARGIN_DIVISOR: u32 = 10;
/// How long a token without `expires_in` is used (RFC 6749 makes the field optional).
pub const UNKNOWN_LIFETIME: Duration = Duration::from_secs(300);
/// Longest lifetime believed: a wrong `expires_in` cannot keep a token for days.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long after it was issued a token is renewed: its lifetime less 10 % of it, at most
/// [`EXPIRY_MARGIN_MAX`] less.
pub fn refresh_after(lifetime: Option<Duration>) -> Duration {
    let lifetime = lifetime.unwrap_or(UNKNOWN_LIFETIME).min(MAX_LIFETIME);
    lifetime - (lifetime / EXPIRY_MARGIN_DIVISOR).min(EXPIRY_MARGIN_MAX)
}

/// What a token fetch reads besides the configuration: the secrets and the endpoint's trust.
#[derive(Debug, Clone)]
pub(super) struct Files {
    pub secrets_dir: Option<PathBuf>,
    pub trust: TrustSources,
    pub trust_list: Option<String>,
    pub akri: Option<EndpointFiles>,
}

/// One endpoint's token: cached, shared by its streams, fetched by one of them at a time.
pub struct TokenCache {
    config: OAuth2,
    files: Files,
    cached: Mutex<Option<Cached>>,
    /// Held during a fetch: concurrent connects wait for it instead of fetching too.
    fetching: tokio::sync::Mutex<()>,
    /// Fetches completed, so a waiter knows whether a fetch ended while it waited.
    fetches: AtomicU64,
    /// The error of the last fetch, handed to those who waited for it.
    failure: Mutex<Option<TokenError>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("TokenCache")
            .field(
                "token_url",
                &crate::stream_key::shown_url(&self.config.token_url),
            )
            .finish_non_exhaustive()
    }
}

struct Cached {
    value: HeaderValue,
    refresh_at: Instant,
}

/// The caches by endpoint (`<device>/<endpoint>`), weakly: a cache lives while a stream uses it.
fn registry() -> &'static Mutex<HashMap<String, Weak<TokenCache>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Weak<TokenCache>>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

impl TokenCache {
    /// The cache of endpoint `endpoint` for `config`: the one its other streams use, or a new
    /// one when there is none or the configuration changed.
    pub(super) fn shared(endpoint: &str, config: &OAuth2, files: Files) -> Arc<Self> {
        let mut all = super::lock(registry());
        all.retain(|_, cache| cache.strong_count() > 0);
        if let Some(cache) = all.get(endpoint).and_then(Weak::upgrade)
            && cache.config == *config
            && cache.files.trust_list == files.trust_list
            && cache.files.secrets_dir == files.secrets_dir
        {
            return cache;
        }
        let cache = Arc::new(Self::new(config.clone(), files));
        all.insert(endpoint.to_owned(), Arc::downgrade(&cache));
        cache
    }

    fn new(config: OAuth2, files: Files) -> Self {
        Self {
            config,
            files,
            cached: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
            failure: Mutex::new(None),
        }
    }

    /// The cached token while it is fresh.
    fn fresh(&self) -> Option<HeaderValue> {
        let cached = super::lock(&self.cached);
        cached
            .as_ref()
            .filter(|c| Instant::now() < c.refresh_at)
            .map(|c| c.value.clone())
    }

    /// The cached token, or a new one (one fetch at a time; who waited for a failed fetch gets
    /// its error rather than fetching again at once).
    pub async fn token(&self) -> Result<HeaderValue, TokenError> {
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        let seen = self.fetches.load(Ordering::Acquire);
        let _fetching = self.fetching.lock().await;
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        if self.fetches.load(Ordering::Acquire) != seen
            && let Some(error) = super::lock(&self.failure).clone()
        {
            return Err(error);
        }
        let fetched = self.fetch().await;
        *super::lock(&self.failure) = fetched.as_ref().err().cloned();
        self.fetches.fetch_add(1, Ordering::Release);
        let token = fetched?;
        *super::lock(&self.cached) = Some(Cached {
            value: token.value.clone(),
            refresh_at: token.issued + refresh_after(token.lifetime),
        });
        Ok(token.value)
    }

    /// One token request: secrets and trust read on the blocking pool, then the request.
    async fn fetch(&self) -> Result<request::Token, TokenError> {
        let (config, files) = (self.config.clone(), self.files.clone());
        let inputs = tokio::task::spawn_blocking(move || request::Inputs::load(&config, &files))
            .await
            .map_err(|e| TokenError::passing(format!("reading the OAuth2 secrets failed: {e}")))?
            .map_err(TokenError::lasting)?;
        let token = request::fetch(&self.config, &inputs).await;
        match &token {
            Ok(t) => tracing::info!(
                token_url = %crate::stream_key::shown_url(&self.config.token_url),
                expires_in_s = t.lifetime.map(|d| d.as_secs()),
                "oauth2 token obtained"
            ),
            Err(e) => tracing::warn!(error = %e, "oauth2 token request failed"),
        }
        token
    }

    /// Forgets the cached token if it is `sent` (a server refused it).
    pub fn refuse(&self, sent: &HeaderValue) {
        let mut cached = super::lock(&self.cached);
        if cached.as_ref().is_some_and(|c| c.value == *sent) {
            *cached = None;
        }
    }
}

impl TokenSource for TokenCache {
    fn authorization(&self) -> BoxFuture<'_, Result<HeaderValue, TokenError>> {
        Box::pin(self.token())
    }

    fn refused(&self, sent: &HeaderValue) {
        self.refuse(sent);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_a_tenth_of_their_lifetime_early_at_most_30_s() {
        let s = Duration::from_secs;
        assert_eq!(refresh_after(Some(s(3600))), s(3570));
        assert_eq!(refresh_after(Some(s(300))), s(270));
        assert_eq!(refresh_after(Some(s(60))), s(54));
        assert_eq!(refresh_after(Some(s(5))), Duration::from_millis(4500));
        assert_eq!(refresh_after(Some(Duration::ZERO)), Duration::ZERO);
        assert_eq!(refresh_after(None), s(270));
        assert_eq!(refresh_after(Some(s(10 * 24 * 3600))), s(24 * 3600 - 30));
    }

    /// Client credentials for `url` with client id `id` and the secret `c/s`.
    fn config(url: &str) -> OAuth2 {
        OAuth2 {
            token_url: url.parse().unwrap(),
            client_id: crate::resources::options::OptionValue::Literal("id".into()),
            client_secret: crate::resources::SecretRef::parse("c/s").unwrap(),
            scopes: vec![],
            audience: None,
            parameters: Default::default(),
        }
    }

    fn cache(endpoint: &str, url: &str) -> Arc<TokenCache> {
        let config = config(url);
        let files = Files {
            secrets_dir: None,
            trust: TrustSources::default(),
            trust_list: None,
            akri: None,
        };
        TokenCache::shared(endpoint, &config, files)
    }

    #[test]
    fn the_streams_of_an_endpoint_share_one_cache_until_its_configuration_changes() {
        let a = cache("dev/ep", "https://idp.example/token");
        let b = cache("dev/ep", "https://idp.example/token");
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache("dev/ep", "https://other.example/token");
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b, c));
        assert!(
            super::super::lock(registry())
                .get("dev/ep")
                .unwrap()
                .upgrade()
                .is_none()
        );
    }

    /// A plain-HTTP token endpoint answering every request with `status` and `body`; counts them.
    async fn endpoint(status: &'static str, body: &'static str) -> (String, Arc<AtomicU64>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let count = Arc::new(AtomicU64::new(0));
        let counted = count.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut seen = Vec::new();
                let mut buf = [0u8; 2048];
                while !String::from_utf8_lossy(&seen).contains("grant_type") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(answer.as_bytes()).await;
            }
        });
        (url, count)
    }

    /// A cache for `url` whose secret and trust (a generated CA in the bundle) are in `dir`.
    fn cache_in(dir: &std::path::Path, endpoint: &str, url: &str) -> Arc<TokenCache> {
        let ca = rcgen::generate_simple_self_signed(vec!["idp".to_string()]).unwrap();
        std::fs::create_dir_all(dir.join("c")).unwrap();
        std::fs::create_dir_all(dir.join("bundle")).unwrap();
        std::fs::write(dir.join("c/s"), "secret").unwrap();
        std::fs::write(dir.join("bundle/ca.pem"), ca.cert.pem()).unwrap();
        let config = config(url);
        let files = Files {
            secrets_dir: Some(dir.to_path_buf()),
            trust: TrustSources {
                trust_dir: None,
                trust_bundle: Some(dir.join("bundle")),
                system_roots: false,
            },
            trust_list: None,
            akri: None,
        };
        TokenCache::shared(endpoint, &config, files)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_connects_share_one_fetch_and_its_failure() {
        let dir = tempfile::tempdir().unwrap();
        let body = r#"{"access_token":"tok-1","token_type":"Bearer","expires_in":3600}"#;
        let (url, count) = endpoint("200 OK", body).await;
        let cache = cache_in(dir.path(), "dev/concurrent", &url);
        let all = futures::future::join_all((0..8).map(|_| cache.token())).await;
        assert!(all.iter().all(|t| t.as_ref().unwrap() == "Bearer tok-1"));
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "one fetch for eight connects"
        );
        assert_eq!(cache.token().await.unwrap(), "Bearer tok-1");
        assert_eq!(count.load(Ordering::SeqCst), 1, "cached");
        cache.refuse(&HeaderValue::from_static("Bearer tok-1"));
        assert_eq!(cache.token().await.unwrap(), "Bearer tok-1");
        assert_eq!(count.load(Ordering::SeqCst), 2, "fetched again after a 401");

        let refused = r#"{"error":"invalid_client"}"#;
        let (url, count) = endpoint("401 Unauthorized", refused).await;
        let cache = cache_in(dir.path(), "dev/refused", &url);
        let all = futures::future::join_all((0..8).map(|_| cache.token())).await;
        for e in all {
            let e = e.unwrap_err();
            assert!(e.lasting);
            assert!(
                e.message
                    .ends_with("answered HTTP 401 Unauthorized: invalid_client"),
                "{}",
                e.message
            );
            assert!(!e.message.contains("secret"), "{}", e.message);
        }
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "one failed fetch for eight connects"
        );

        // A token at the end of its life is not handed out again: the next connect fetches.
        let dying = r#"{"access_token":"tok-0","token_type":"Bearer","expires_in":0}"#;
        let (url, count) = endpoint("200 OK", dying).await;
        let cache = cache_in(dir.path(), "dev/expiring", &url);
        assert_eq!(cache.token().await.unwrap(), "Bearer tok-0");
        assert_eq!(cache.token().await.unwrap(), "Bearer tok-0");
        assert_eq!(
            count.load(Ordering::SeqCst),
            2,
            "an expired token is fetched again"
        );
    }

    #[test]
    fn a_refused_token_is_forgotten_but_not_a_newer_one() {
        let c = cache("dev/refuse", "https://refuse.example/token");
        let old = HeaderValue::from_static("Bearer old");
        let new = HeaderValue::from_static("Bearer new");
        let later = Instant::now() + Duration::from_secs(60);
        *super::super::lock(&c.cached) = Some(Cached {
            value: new.clone(),
            refresh_at: later,
        });
        c.refuse(&old);
        assert_eq!(c.fresh(), Some(new.clone()));
        c.refuse(&new);
        assert_eq!(c.fresh(), None);
        *super::super::lock(&c.cached) = Some(Cached {
            value: new,
            refresh_at: Instant::now(),
        });
        assert_eq!(c.fresh(), None, "expired at its refresh time");
    }
}

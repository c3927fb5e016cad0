//! Endpoints that want a bearer token, through the real services and a real Mosquitto: an OAuth2
//! token that the SSE server stops accepting mid-stream is renewed and not one event is lost; a
//! rotated bearer token file is used on the next connect; a refused client secret shows in the
//! stream's status as the token endpoint's answer, without the secret.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use sse_e2e::auth::{ANONYMOUS, last_error, tls_source};
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::numbered::{number_of, numbered_event};
use sse_e2e::oauth2::{Client, TokenEndpoint};
use sse_e2e::pki::Pki;
use sse_e2e::resources::device_with_asset;
use sse_e2e::source::{Feed, Reply, SeenRequest, SseSource, blocks_then_hold};
use sse_e2e::stack::{Pipeline, PipelineArgs};
use sse_e2e::{eventually, write_file as write};

const CLIENT_ID: &str = "sse-connector";
const CLIENT_SECRET: &str = "Cs-5b2e8f17-never-shown";
/// The trust list that alone trusts the token endpoint in the refused-secret test.
const TRUST_LIST: &str = "idp-ca";

/// Broker, subscriber on `tokens/#`, and the three services over `docs`, trusting `pki`'s CA
/// through the trust bundle, or only through the trust list `idp-ca` (`trust_list`, see
/// [`TRUST_LIST`]); no system roots; secrets under `<dir>/secrets`.
struct Rig {
    _broker: Mosquitto,
    sub: Subscriber,
    services: Pipeline,
}

impl Rig {
    async fn start(dir: &std::path::Path, pki: &Pki, docs: &str, trust_list: bool) -> Self {
        let s = |x: &str| x.to_string();
        let p = |rel: &str| dir.join(rel).display().to_string();
        let trust = if trust_list {
            write(dir, "trust/idp-ca/ca.pem", &pki.ca_pem);
            [s("--trust-dir"), p("trust")]
        } else {
            write(dir, "bundle/ca.pem", &pki.ca_pem);
            [s("--trust-bundle"), p("bundle")]
        };
        write(dir, "resources/tokens.yaml", docs);
        let broker = Mosquitto::start().await.unwrap();
        let sub = Subscriber::connect(broker.port, "tokens/#").await.unwrap();
        let services = Pipeline::start(PipelineArgs {
            mqtt_url: broker.url(),
            data_dir: p("schemas"),
            resources: p("resources"),
            publisher: vec![],
            ingest: vec![
                s("--secrets-dir"),
                p("secrets"),
                trust[0].clone(),
                trust[1].clone(),
                s("--no-system-roots"),
            ],
            // At debug level: not even a debug line may show a token or the client secret.
            env: Some(&|name: &str| {
                if name == "sse-ingest" {
                    vec![("RUST_LOG".to_string(), "debug".to_string())]
                } else {
                    vec![]
                }
            }),
        })
        .await
        .unwrap();
        Self {
            _broker: broker,
            sub,
            services,
        }
    }

    /// Waits until events `1..=total` all reached `tokens/<name>`; returns the numbers seen.
    async fn wait_for_all(&self, name: &str, total: u64) -> BTreeSet<u64> {
        let topic = format!("tokens/{name}");
        let numbers = |all: &[sse_e2e::mqtt::Received]| -> BTreeSet<u64> {
            all.iter()
                .filter(|m| m.topic == topic)
                .filter_map(|m| number_of(&m.payload))
                .collect()
        };
        let all = self
            .sub
            .wait_until(&format!("events 1..={total} on {topic}"), |all| {
                numbers(all).len() as u64 >= total
            })
            .await
            .unwrap();
        numbers(&all)
    }
}

/// A device `dev-<name>` at `address` whose `additionalConfiguration` is `config` (JSON).
fn device(name: &str, address: &str, config: &str) -> String {
    let auth = format!("authentication: {ANONYMOUS}");
    let options = format!("additionalConfiguration: '{config}'");
    device_with_asset(name, address, &[&auth, &options], "tokens")
}

/// [`device`], trusting the CAs of trust list `idp-ca` (for its SSE server and token endpoint).
fn device_with_trust_list(name: &str, address: &str, config: &str) -> String {
    let auth = format!("authentication: {ANONYMOUS}");
    let options = format!("additionalConfiguration: '{config}'");
    let trust = format!("trustSettings: {{ trustList: {TRUST_LIST} }}");
    device_with_asset(name, address, &[&auth, &options, &trust], "tokens")
}

fn oauth2_config(token_url: &str) -> String {
    format!(
        r#"{{"authentication": {{"method": "OAuth2", "tokenUrl": "{token_url}", "clientId": "{CLIENT_ID}", "clientSecret": {{"secretRef": "oauth/secret"}}, "scopes": ["events.read"], "audience": "sse"}}}}"#
    )
}

fn unauthorized() -> Reply {
    Reply::Status(
        401,
        vec![(
            "www-authenticate".into(),
            r#"Bearer error="invalid_token""#.into(),
        )],
        "unauthorized\n".into(),
    )
}

fn bearer(req: &SeenRequest) -> Option<String> {
    req.header("authorization")?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

/// Numbered events; each token serves `per_token` of them on one connection, is then revoked
/// and the connection ends (the client comes back with the same, cached, token and gets 401).
fn revoking_feed(tokens: Arc<TokenEndpoint>, total: u64, per_token: u64) -> Feed {
    let revoked = Arc::new(Mutex::new(HashSet::new()));
    Arc::new(move |req: &SeenRequest| {
        let Some(token) = bearer(req) else {
            return unauthorized();
        };
        let mut revoked = revoked.lock().unwrap();
        if !tokens.issued().contains(&token) || revoked.contains(&token) {
            return unauthorized();
        }
        let after: u64 = req
            .header("last-event-id")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let last = total.min(after + per_token);
        let blocks: Vec<String> = (after + 1..=last).map(numbered_event).collect();
        if last == total {
            return Reply::Sse(blocks_then_hold(blocks));
        }
        revoked.insert(token);
        Reply::Sse(Box::pin(futures::stream::iter(
            blocks.into_iter().map(Bytes::from),
        )))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth2_token_refused_mid_stream_is_renewed_and_no_event_is_lost() {
    const TOTAL: u64 = 30;
    let pki = Pki::new().unwrap();
    let leaf = pki.server(&["127.0.0.1"]).unwrap();
    let client = Client {
        id: CLIENT_ID.into(),
        secret: CLIENT_SECRET.into(),
        // Long-lived: only the SSE server's 401 can make the connector fetch a new one.
        expires_in: 3600,
    };
    let tokens = Arc::new(
        TokenEndpoint::start(pki.server_config(&leaf, false).unwrap(), client)
            .await
            .unwrap(),
    );
    let source = tls_source(&pki, &leaf, false, revoking_feed(tokens.clone(), TOTAL, 10)).await;
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "secrets/oauth/secret",
        &format!("{CLIENT_SECRET}\n"),
    );
    let docs = device("oauth", &source.https_url(), &oauth2_config(&tokens.url()));
    let rig = Rig::start(dir.path(), &pki, &docs, false).await;

    let numbers = rig.wait_for_all("oauth", TOTAL).await;
    assert_eq!(numbers, (1..=TOTAL).collect::<BTreeSet<_>>());

    // Three tokens, one per ten events: each 401 made exactly one fetch, and every connect in
    // between used the cached token.
    assert_eq!(tokens.issued().len(), 3, "{:?}", tokens.requests());
    for r in tokens.requests() {
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            r.body,
            "grant_type=client_credentials&scope=events.read&audience=sse"
        );
    }
    // Every connect, by the token it sent (1 = the first issued) and where it resumed: each
    // token opens one stream, is refused once after its ten events, and the next one resumes.
    let issued = tokens.issued();
    let connects: Vec<(usize, Option<String>)> = source
        .seen()
        .iter()
        .map(|r| {
            let token = bearer(r).unwrap_or_default();
            let n = issued.iter().position(|t| *t == token).map_or(0, |i| i + 1);
            (n, r.header("last-event-id").map(str::to_string))
        })
        .collect();
    let at = |n: usize, id: Option<&str>| (n, id.map(str::to_string));
    assert_eq!(
        connects,
        vec![
            at(1, None),
            at(1, Some("10")),
            at(2, Some("10")),
            at(2, Some("20")),
            at(3, Some("20")),
        ]
    );
    let log = rig.services.ingest.log_text();
    assert!(
        log.contains("oauth2 token obtained"),
        "the debug log was read"
    );
    assert!(
        issued.iter().all(|t| !log.contains(t.as_str())),
        "no token in the log"
    );
    assert!(!log.contains(CLIENT_SECRET), "no client secret in the log");
    let basic = sse_e2e::oauth2::basic(CLIENT_ID, CLIENT_SECRET);
    assert!(!log.contains(basic.trim_start_matches("Basic ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_bearer_token_file_is_used_on_the_next_connect() {
    let pki = Pki::new().unwrap();
    let leaf = pki.server(&["127.0.0.1"]).unwrap();
    // Token A serves event 1 and holds the connection until the test has rotated the file;
    // then the connection ends and only token B is accepted, for event 2.
    let rotated = Arc::new(tokio::sync::Notify::new());
    let (notify, valid) = (rotated.clone(), Arc::new(Mutex::new("tok-A".to_string())));
    let feed: Feed = Arc::new(move |req: &SeenRequest| {
        let mut valid = valid.lock().unwrap();
        if bearer(req).as_deref() != Some(valid.as_str()) {
            return unauthorized();
        }
        if *valid == "tok-A" {
            *valid = "tok-B".into();
            let notify = notify.clone();
            let first = futures::stream::once(async { Bytes::from(numbered_event(1)) });
            let until_rotated = futures::stream::once(async move {
                notify.notified().await;
                Bytes::from_static(b": rotated\n\n")
            });
            return Reply::Sse(Box::pin(first.chain(until_rotated)));
        }
        Reply::Sse(blocks_then_hold(vec![numbered_event(2)]))
    });
    let source = tls_source(&pki, &leaf, false, feed).await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secrets/api/token", "tok-A\n");
    let config = r#"{"authentication": {"method": "Bearer", "token": {"secretRef": "api/token"}}}"#;
    let rig = Rig::start(
        dir.path(),
        &pki,
        &device("bearer", &source.https_url(), config),
        false,
    )
    .await;

    rig.wait_for_all("bearer", 1).await;
    write(dir.path(), "secrets/api/token", "tok-B\n");
    rotated.notify_one();
    let numbers = rig.wait_for_all("bearer", 2).await;
    assert_eq!(numbers, BTreeSet::from([1, 2]));
    let seen: Vec<(Option<String>, Option<String>)> = source
        .seen()
        .iter()
        .map(|r| (bearer(r), r.header("last-event-id").map(str::to_string)))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Some("tok-A".into()), None),
            (Some("tok-B".into()), Some("1".into()))
        ],
        "the new token on the very next connect, no 401 on the way"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_secret_shows_the_token_endpoints_answer_without_the_secret() {
    let pki = Pki::new().unwrap();
    let leaf = pki.server(&["127.0.0.1"]).unwrap();
    let client = Client {
        id: CLIENT_ID.into(),
        secret: "the-right-one".into(),
        expires_in: 3600,
    };
    let tokens = TokenEndpoint::start(pki.server_config(&leaf, false).unwrap(), client)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start_tls(
        listener,
        Arc::new(|_: &SeenRequest| unauthorized()),
        pki.server_config(&leaf, false).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "secrets/oauth/secret", CLIENT_SECRET);
    // Trusted through the endpoint's trust list only: the token request uses the endpoint's trust.
    let docs = device_with_trust_list("wrong", &source.https_url(), &oauth2_config(&tokens.url()));
    let rig = Rig::start(dir.path(), &pki, &docs, true).await;

    let (_, error) = last_error(
        &rig.services.ingest,
        "wrong",
        "the token endpoint's refusal",
    )
    .await;
    assert_eq!(
        error,
        format!(
            "OAuth2 token endpoint {} answered HTTP 401 Unauthorized: invalid_client: Client authentication failed",
            tokens.url()
        )
    );
    assert!(!error.contains(CLIENT_SECRET));
    eventually("the token request", || {
        let n = tokens.requests().len();
        async move { (n >= 1).then_some(()) }
    })
    .await
    .unwrap();
    assert!(source.seen().is_empty(), "no token, no SSE request");
    assert!(!rig.services.ingest.log_text().contains(CLIENT_SECRET));
}

//! The request side of an endpoint's `additionalConfiguration`, through the real `sse-ingest`
//! and a real Mosquitto: custom headers (inline and from a rotated secret), a real proxy
//! (`tinyproxy`: absolute form for `http`, `CONNECT` for `https`, credentials, the environment),
//! gzip streams and a gzip bomb, a POST stream that resumes with `Last-Event-ID`, and redirects
//! of a POST (303 becomes a GET, 307 resends the body).

#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use futures::StreamExt;
use sse_e2e::auth::{ANONYMOUS, last_error, stream_of, streams, tls_source};
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::{Received, Subscriber};
use sse_e2e::pki::Pki;
use sse_e2e::resources::device_with_asset;
use sse_e2e::source::{Chunks, Feed, Reply, SeenRequest, SseSource, block, blocks_then_hold};
use sse_e2e::stack::{EnvOf, Pipeline, PipelineArgs};
use sse_e2e::tinyproxy::Tinyproxy;
use sse_e2e::write_file as write;
use sse_e2e::{eventually, grpcurl};
use tokio::net::TcpListener;

/// A device `dev-<name>` at `address` with this `additionalConfiguration` (JSON), whose dataset
/// goes to `req/<name>`.
fn device(name: &str, address: &str, options: &str) -> String {
    let quoted = serde_json::to_string(options).unwrap();
    let lines = [
        format!("authentication: {ANONYMOUS}"),
        format!("additionalConfiguration: {quoted}"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    device_with_asset(name, address, &lines, "req")
}

async fn source(feed: Feed) -> SseSource {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    SseSource::start(listener, feed).unwrap()
}

/// Ingest (with the rest of the pipeline) on the resources, secrets and bundle in `d`.
async fn pipeline(
    broker: &Mosquitto,
    d: &std::path::Path,
    extra: &[&str],
    env: Option<&EnvOf<'_>>,
) -> Pipeline {
    let path = |rel: &str| d.join(rel).display().to_string();
    let mut ingest = vec![
        "--secrets-dir".to_owned(),
        path("secrets"),
        "--min-reconnect-delay".to_owned(),
        "100ms".to_owned(),
    ];
    ingest.extend(extra.iter().map(|s| (*s).to_owned()));
    Pipeline::start(PipelineArgs {
        mqtt_url: broker.url(),
        data_dir: path("schemas"),
        resources: path("resources"),
        publisher: vec![],
        ingest,
        env,
    })
    .await
    .unwrap()
}

/// The payloads received on `req/<name>`.
fn payloads(msgs: &[Received], name: &str) -> Vec<String> {
    let topic = format!("req/{name}");
    msgs.iter()
        .filter(|m| m.topic == topic)
        .map(Received::text)
        .collect()
}

/// One event per connection, then the server ends the response (so the client reconnects).
fn one_event_then_close(name: &'static str) -> Feed {
    let n = Arc::new(Mutex::new(0u32));
    Arc::new(move |_req| {
        let mut n = n.lock().unwrap();
        *n += 1;
        let text = format!(
            "retry: 100\n{}",
            block(None, None, &format!(r#"{{"{name}":{n}}}"#))
        );
        Reply::Sse(Box::pin(futures::stream::iter([Bytes::from(text)])))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_headers_inline_and_from_a_rotated_secret_reach_the_server() {
    let src = source(one_event_then_close("h")).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "secrets/keys/api", "key-one\n");
    let options = r#"{"allowInsecureCredentials": true,
        "headers": {"X-Tenant": "tenant-7", "X-Api-Key": {"secretRef": "keys/api"}}}"#;
    write(
        d,
        "resources/r.yaml",
        &device("h", &format!("{}/h", src.base_url()), options),
    );
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "req/#").await.unwrap();
    let _p = pipeline(&broker, d, &[], None).await;

    let has = |key: &str| {
        let key = key.to_owned();
        move |r: &SeenRequest| {
            r.header("x-tenant") == Some("tenant-7") && r.header("x-api-key") == Some(key.as_str())
        }
    };
    eventually("the headers with the first key", || {
        let ok = src.seen().iter().any(has("key-one"));
        async move { ok.then_some(()) }
    })
    .await
    .unwrap();
    sub.wait_until("an event on the broker", |m| !payloads(m, "h").is_empty())
        .await
        .unwrap();
    // A rotated secret is read on the next connect (the server closes after each event).
    write(d, "secrets/keys/api", "key-two");
    eventually("the headers with the rotated key", || {
        let ok = src.seen().iter().any(has("key-two"));
        async move { ok.then_some(()) }
    })
    .await
    .unwrap();
}

/// A redirect to another origin gets none of the endpoint's headers (the configured origin did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_headers_do_not_follow_a_redirect_to_another_origin() {
    let other = source(sse_e2e::auth::feed("moved")).await;
    let target = format!("{}/events", other.base_url());
    let origin = source(Arc::new(move |_req: &SeenRequest| {
        Reply::Status(
            302,
            vec![("location".into(), target.clone())],
            String::new(),
        )
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "secrets/keys/api", "key-one");
    let options = r#"{"allowInsecureCredentials": true,
        "headers": {"X-Tenant": "tenant-7", "X-Api-Key": {"secretRef": "keys/api"}}}"#;
    write(
        d,
        "resources/r.yaml",
        &device("moved", &origin.base_url(), options),
    );
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "req/#").await.unwrap();
    let _p = pipeline(&broker, d, &[], None).await;

    sub.wait_until("the redirected stream's event", |m| {
        !payloads(m, "moved").is_empty()
    })
    .await
    .unwrap();
    let first = &origin.seen()[0];
    assert_eq!(first.header("x-api-key"), Some("key-one"));
    assert_eq!(first.header("x-tenant"), Some("tenant-7"));
    for r in other.seen() {
        assert_eq!(r.header("x-api-key"), None, "{r:?}");
        assert_eq!(r.header("x-tenant"), None, "{r:?}");
    }
}

/// Streams through tinyproxy (with Basic credentials): an `http` target in absolute form, an
/// `https` target through CONNECT, both from the endpoint's `proxy`; one from ingest's
/// `HTTPS_PROXY` (credentials in its URL); one with `"proxy": "none"` that goes direct; and a
/// wrong password, named by the proxy's `host:port` and never shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_run_through_a_real_proxy_with_connect_and_absolute_form() {
    let proxy = Tinyproxy::start(Some(("proxy-user", "Proxy-Pw-4e1b")))
        .await
        .unwrap();
    let plain = source(sse_e2e::auth::feed("plain")).await;
    let pki = Pki::new().unwrap();
    let leaf = pki.server(&["127.0.0.1"]).unwrap();
    let tls = tls_source(&pki, &leaf, false, sse_e2e::auth::feed("tls")).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "bundle/ca.pem", &pki.ca_pem);
    write(d, "secrets/proxy/user", "proxy-user");
    write(d, "secrets/proxy/password", "Proxy-Pw-4e1b");
    write(d, "secrets/proxy/wrong", "Wrong-Pw-93c2");
    let via = |password: &str| {
        format!(
            r#"{{"allowInsecureCredentials": true, "proxy": {{"url": "{}", "username": {{"secretRef": "proxy/user"}}, "password": {{"secretRef": "proxy/{password}"}}}}}}"#,
            proxy.url()
        )
    };
    let docs = [
        device("plain", &plain.base_url(), &via("password")),
        device("tls", &tls.https_url(), &via("password")),
        device("env", &format!("{}/env", tls.https_url()), "{}"),
        device(
            "direct",
            &format!("{}/direct", plain.base_url()),
            r#"{"proxy": "none"}"#,
        ),
        device(
            "wrong",
            &format!("{}/wrong", tls.https_url()),
            &via("wrong"),
        ),
    ];
    write(d, "resources/r.yaml", &docs.concat());
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "req/#").await.unwrap();
    let env_proxy = format!("http://proxy-user:Proxy-Pw-4e1b@127.0.0.1:{}", proxy.port);
    let env = move |name: &str| {
        if name == "sse-ingest" {
            vec![
                ("HTTPS_PROXY".to_owned(), env_proxy.clone()),
                ("HTTP_PROXY".to_owned(), env_proxy.clone()),
            ]
        } else {
            vec![]
        }
    };
    let bundle = d.join("bundle").display().to_string();
    let extra = ["--trust-bundle", &bundle, "--no-system-roots"];
    let p = pipeline(&broker, d, &extra, Some(&env)).await;

    sub.wait_until("events of the proxied and direct streams", |m| {
        ["plain", "tls", "env", "direct"]
            .iter()
            .all(|n| !payloads(m, n).is_empty())
    })
    .await
    .unwrap();
    // The http stream came through the proxy (its Via header), the direct one did not.
    let seen = plain.seen();
    let via_proxy = |path: &str| {
        seen.iter()
            .filter(|r| r.path == path)
            .map(|r| r.header("via").is_some_and(|v| v.contains("tinyproxy")))
            .collect::<Vec<_>>()
    };
    assert!(!via_proxy("/events").is_empty() && via_proxy("/events").iter().all(|v| *v));
    assert!(!via_proxy("/direct/events").is_empty());
    assert!(via_proxy("/direct/events").iter().all(|v| !*v), "{seen:?}");
    // The https streams went through CONNECT tunnels.
    let log = proxy.log_text();
    let tunnel = format!("CONNECT 127.0.0.1:{}", tls.addr.port());
    assert!(log.matches(&tunnel).count() >= 2, "{log}");

    // tinyproxy answers a wrong password with 401 (RFC 9110 says 407): to CONNECT, only the
    // proxy answers, so it is the proxy's refusal either way.
    let (_, error) = last_error(&p.ingest, "wrong", "the refused proxy credentials").await;
    assert_eq!(
        error,
        format!(
            "proxy 127.0.0.1:{}: refused the proxy credentials (HTTP 401)",
            proxy.port
        )
    );
    let listed = grpcurl::call_json(
        &p.ingest.addr.to_string(),
        None,
        &["sseconnector.v1.IngestService/ListStreams"],
    )
    .await
    .unwrap()
    .to_string();
    for secret in ["Wrong-Pw-93c2", "Proxy-Pw-4e1b"] {
        assert!(!listed.contains(secret));
        assert!(!p.ingest.log_text().contains(secret));
    }
}

/// The stream `events` as gzip pieces, each event flushed on its own as a live server does.
fn gzip_events(events: impl Iterator<Item = String> + Send + 'static) -> Chunks {
    let encoder = GzEncoder::new(Vec::new(), Compression::default());
    Box::pin(
        futures::stream::iter(events)
            .scan(encoder, |e, text| {
                e.write_all(text.as_bytes()).unwrap();
                e.flush().unwrap();
                futures::future::ready(Some(Bytes::from(std::mem::take(e.get_mut()))))
            })
            .then(|piece| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                piece
            }),
    )
}

/// `data: aaaa...` of `bytes` without an end, gzipped: a few KiB on the wire.
fn bomb(bytes: usize) -> Bytes {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(b"data: ").unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..bytes / chunk.len() {
        e.write_all(&chunk).unwrap();
    }
    Bytes::from(e.finish().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_stream_is_decoded_and_a_bomb_is_cut_while_it_flows() {
    let bomb = bomb(16 * 1024 * 1024);
    let gzip: Feed = Arc::new(move |req: &SeenRequest| {
        let encoded = vec![("content-encoding".to_owned(), "gzip".to_owned())];
        if req.path.starts_with("/bomb") {
            let body = futures::stream::iter([bomb.clone()]).chain(blocks_then_hold(vec![]));
            return Reply::SseWith(encoded, Box::pin(body));
        }
        let events = (1..).map(|i| block(Some(&i.to_string()), None, &format!(r#"{{"n":{i}}}"#)));
        Reply::SseWith(encoded, gzip_events(events))
    });
    let src = source(gzip).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let on = r#"{"compression": true}"#;
    let docs = [
        device("gzip", &src.base_url(), on),
        device("bomb", &format!("{}/bomb", src.base_url()), on),
    ];
    write(d, "resources/r.yaml", &docs.concat());
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "req/#").await.unwrap();
    let p = pipeline(&broker, d, &["--max-event-bytes", "65536"], None).await;

    sub.wait_until("decoded events", |m| payloads(m, "gzip").len() >= 3)
        .await
        .unwrap();
    assert_eq!(
        payloads(&sub.all(), "gzip")[..3],
        [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]
    );
    assert!(
        src.seen()
            .iter()
            .all(|r| r.header("accept-encoding") == Some("gzip, deflate"))
    );
    let (_, error) = last_error(&p.ingest, "bomb", "the bomb cut").await;
    assert_eq!(
        error,
        "compressed stream: event over 65536 bytes after decoding, possible compression bomb"
    );
    // The other stream goes on after the cut.
    let before = payloads(&sub.all(), "gzip").len();
    sub.wait_until("more decoded events after the cut", |m| {
        payloads(m, "gzip").len() >= before + 3
    })
    .await
    .unwrap();
    assert!(payloads(&sub.all(), "bomb").is_empty());
    let all = streams(&p.ingest).await.unwrap();
    assert_eq!(stream_of(&all, "gzip").unwrap()["state"], "Connected");
}

/// A POST stream whose server sends the events after `Last-Event-ID`, two per connection, then
/// closes: every event arrives once, and each reconnect resends the method, body and id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_stream_resumes_with_last_event_id_and_its_body() {
    let feed: Feed = Arc::new(|req: &SeenRequest| {
        if req.method != "POST" || req.body != br#"{"subscribe":["line-1"]}"# {
            return Reply::Status(400, vec![], "want the POST body\n".into());
        }
        let after: u32 = req
            .header("last-event-id")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if after >= 6 {
            return Reply::Sse(blocks_then_hold(vec![]));
        }
        let blocks: Vec<Bytes> = (after + 1..=after + 2)
            .map(|i| {
                Bytes::from(block(
                    Some(&i.to_string()),
                    None,
                    &format!(r#"{{"n":{i}}}"#),
                ))
            })
            .collect();
        let head = Bytes::from_static(b"retry: 100\n\n");
        Reply::Sse(Box::pin(futures::stream::iter(
            std::iter::once(head).chain(blocks),
        )))
    });
    let src = source(feed).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let options = r#"{"request": {"method": "POST", "body": {"subscribe": ["line-1"]}}}"#;
    write(
        d,
        "resources/r.yaml",
        &device("post", &src.base_url(), options),
    );
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "req/#").await.unwrap();
    let _p = pipeline(&broker, d, &[], None).await;

    sub.wait_until("six events", |m| payloads(m, "post").len() >= 6)
        .await
        .unwrap();
    let expected: Vec<String> = (1..=6).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    assert_eq!(payloads(&sub.all(), "post"), expected);
    let seen = eventually("the reconnect after the sixth event", || {
        let seen = src.seen();
        async move { (seen.len() >= 4).then_some(seen) }
    })
    .await
    .unwrap();
    let ids: Vec<Option<&str>> = seen
        .iter()
        .take(4)
        .map(|r| r.header("last-event-id"))
        .collect();
    assert_eq!(ids, [None, Some("2"), Some("4"), Some("6")]);
    for r in &seen {
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("content-length"), Some("24"));
    }
}

/// A POST answered 303 follows as a GET without body; answered 307, as the same POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_303_becomes_a_get_and_a_307_resends_the_post() {
    let feed: Feed = Arc::new(|req: &SeenRequest| {
        let moved = |code: u16, to: &str| {
            Reply::Status(code, vec![("location".into(), to.into())], String::new())
        };
        let event = || {
            let text = format!(r#"{{"method":"{}","body":{}}}"#, req.method, req.body.len());
            Reply::Sse(blocks_then_hold(vec![block(Some("1"), None, &text)]))
        };
        match req.path.as_str() {
            "/see-other/events" => moved(303, "/got"),
            "/temporary/events" => moved(307, "/posted"),
            "/got" | "/posted" => event(),
            _ => Reply::not_found(),
        }
    });
    let src = source(feed).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let post = r#"{"request": {"method": "POST", "body": "{\"q\":1}"}}"#;
    let docs = [
        device("see-other", &format!("{}/see-other", src.base_url()), post),
        device("temporary", &format!("{}/temporary", src.base_url()), post),
    ];
    write(d, "resources/r.yaml", &docs.concat());
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "req/#").await.unwrap();
    let _p = pipeline(&broker, d, &[], None).await;

    let msgs = sub
        .wait_until("both redirected streams", |m| {
            !payloads(m, "see-other").is_empty() && !payloads(m, "temporary").is_empty()
        })
        .await
        .unwrap();
    assert_eq!(
        payloads(&msgs, "see-other")[0],
        r#"{"method":"GET","body":0}"#
    );
    assert_eq!(
        payloads(&msgs, "temporary")[0],
        r#"{"method":"POST","body":7}"#
    );
    let seen = src.seen();
    let got = seen.iter().find(|r| r.path == "/got").unwrap();
    assert_eq!(got.header("content-length"), None);
    let posted = seen.iter().find(|r| r.path == "/posted").unwrap();
    assert_eq!(posted.body, br#"{"q":1}"#);
}

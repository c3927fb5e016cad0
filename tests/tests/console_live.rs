//! Issue #24, the console's live parts through the real binaries and a real Mosquitto:
//! `sse-console`'s `/events/live?asset=A` (read as the SSE stream a browser reads) carries an
//! `article.event` for each of A's messages and none of another asset's; live views, and pages
//! following the streams table, are bounded and a closed one gives its place back; one console given two
//! ingest replicas shows both replicas' streams and both discovered lists; and `sse-connector
//! --console-listen` serves the console over its own three services.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use sse_e2e::broker::Mosquitto;
use sse_e2e::eventually;
use sse_e2e::procs::Service;
use sse_e2e::source::{Reply, SeenRequest, SseSource, block};
use sse_e2e::stack::{Pipeline, PipelineArgs};

/// A device reading `base` and an asset on it whose event group routes the type `reading` of
/// `path` to `topic` (so the type `gust` it also sends is discovered).
fn resources(base: &str, device: &str, asset: &str, path: &str) -> String {
    format!(
        "apiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Device\nmetadata: {{ name: {device} }}\nspec:\n  endpoints:\n    inbound:\n      sse-0: {{ endpointType: Microsoft.SSEHttp, address: \"{base}\" }}\n---\napiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Asset\nmetadata: {{ name: {asset} }}\nspec:\n  deviceRef: {{ deviceName: {device}, endpointName: sse-0 }}\n  eventGroups:\n    - name: g\n      dataSource: {path}\n      events:\n        - {{ name: reading, dataSource: reading, destinations: [ {{ target: Mqtt, configuration: {{ topic: e2e{path}, qos: Qos1 }} }} ] }}\n---\n"
    )
}

/// Every path: one unrouted `gust`, then a `reading` every 50 ms for as long as the test runs.
fn feed() -> sse_e2e::source::Feed {
    Arc::new(|_: &SeenRequest| {
        let ticks = futures::stream::unfold(0u64, |n| async move {
            let b = if n == 0 {
                block(None, Some("gust"), r#"{"speed":12.5}"#)
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                block(
                    Some(&n.to_string()),
                    Some("reading"),
                    &format!(r#"{{"n":{n}}}"#),
                )
            };
            Some((Bytes::from(b), n + 1))
        });
        Reply::Sse(Box::pin(ticks))
    })
}

async fn source() -> SseSource {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    SseSource::start(listener, feed()).unwrap()
}

/// An HTTP/1.1 GET of `path` on the console; its status and body stream.
async fn get(addr: SocketAddr, path: &str) -> (u16, hyper::body::Incoming) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    (resp.status().as_u16(), resp.into_body())
}

/// A page's HTML.
async fn page(addr: SocketAddr, path: &str) -> String {
    let (status, body) = get(addr, path).await;
    let bytes = body.collect().await.unwrap().to_bytes();
    let html = String::from_utf8_lossy(&bytes).to_string();
    assert_eq!(status, 200, "{path}: {html}");
    html
}

/// Waits until `path` shows every one of `needles`; the page.
async fn page_showing(addr: SocketAddr, path: &str, needles: &[&str]) -> String {
    eventually(&format!("{path} showing {needles:?}"), || async move {
        let html = page(addr, path).await;
        needles.iter().all(|n| html.contains(n)).then_some(html)
    })
    .await
    .unwrap()
}

/// `sse-console` over the given service URLs, on a free loopback port.
async fn console(ingest: &str, schema: &Service, publisher: &Service) -> Service {
    let args = [
        "--ingest".to_string(),
        ingest.to_string(),
        "--schema".to_string(),
        schema.url(),
        "--publisher".to_string(),
        publisher.url(),
    ];
    Service::start("sse-console", &args, &[]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_view_carries_its_assets_events_and_no_other_assets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().await.unwrap();
    let source = source().await;
    let res = dir.path().join("resources");
    let base = source.base_url();
    let both = resources(&base, "dev1", "line", "/a") + &resources(&base, "dev2", "press", "/b");
    sse_e2e::write_file(&res, "r.yaml", &both);
    let pipeline = Pipeline::start(PipelineArgs::plain(broker.url(), dir.path(), &res))
        .await
        .unwrap();
    let console = console(
        &pipeline.ingest.url(),
        &pipeline.schema,
        &pipeline.publisher,
    )
    .await;

    let events = page_showing(console.addr, "/events?asset=line", &["press"]).await;
    assert!(
        events.contains(r#"sse-connect="/events/live?asset=line""#),
        "{events}"
    );
    assert!(
        events.contains(r#"<option value="line" selected>"#),
        "{events}"
    );

    let (status, mut body) = get(console.addr, "/events/live?asset=line").await;
    assert_eq!(status, 200);
    let mut seen = String::new();
    let articles = |s: &str| s.matches(r#"<article class="event""#).count();
    let read = async {
        while articles(&seen) < 5 {
            let frame = body.frame().await.unwrap().unwrap();
            if let Some(data) = frame.data_ref() {
                seen.push_str(&String::from_utf8_lossy(data));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .unwrap_or_else(|_| panic!("five events within a minute; got: {seen}"));
    assert_eq!(
        seen.matches(r#"data-asset="line""#).count(),
        articles(&seen),
        "{seen}"
    );
    assert!(!seen.contains("press"), "{seen}");
    assert!(
        seen.contains("<code class=\"topic\">e2e/a</code>"),
        "{seen}"
    );
    assert!(seen.contains("event: event"), "{seen}");
}

/// Reads `body` until it carries an `article.event`; what it read.
async fn first_article(body: &mut hyper::body::Incoming) -> String {
    first_with(body, r#"<article class="event""#).await
}

/// Reads `body` until it carries `needle`, for at most a minute; what it read.
async fn first_with(body: &mut hyper::body::Incoming, needle: &str) -> String {
    let mut seen = String::new();
    let read = async {
        while !seen.contains(needle) {
            let Some(frame) = body.frame().await else {
                break; // the view ended: the assertion below shows why
            };
            if let Some(data) = frame.unwrap().data_ref() {
                seen.push_str(&String::from_utf8_lossy(data));
            }
        }
    };
    let timed_out = tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .is_err();
    assert!(
        !timed_out && seen.contains(needle),
        "{needle} within a minute; got: {seen}"
    );
    seen
}

/// The three services reading one device `dev1` whose asset `line` routes `/a`'s readings:
/// with what they use, kept alive by the caller.
async fn one_asset_pipeline() -> (tempfile::TempDir, Mosquitto, SseSource, Pipeline) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().await.unwrap();
    let source = source().await;
    let res = dir.path().join("resources");
    sse_e2e::write_file(
        &res,
        "r.yaml",
        &resources(&source.base_url(), "dev1", "line", "/a"),
    );
    let pipeline = Pipeline::start(PipelineArgs::plain(broker.url(), dir.path(), &res))
        .await
        .unwrap();
    (dir, broker, source, pipeline)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_views_are_bounded_and_a_closed_view_frees_its_tails() {
    let (_dir, _broker, _source, pipeline) = one_asset_pipeline().await;
    let args = [
        "--ingest".to_string(),
        pipeline.ingest.url(),
        "--publisher".to_string(),
        pipeline.publisher.url(),
        "--console-live-views-max=1".to_string(),
        "--console-event-payload-bytes=4".to_string(),
    ];
    let console = Service::start("sse-console", &args, &[]).await.unwrap();

    let (status, mut open) = get(console.addr, "/events/live?asset=line").await;
    assert_eq!(status, 200);
    let seen = first_article(&mut open).await;
    assert!(
        seen.contains(r#"<p class="truncated">cut: 4 of "#),
        "{seen}"
    );
    let (status, refused) = get(console.addr, "/events/live?asset=line").await;
    let refused = refused.collect().await.unwrap().to_bytes();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&refused));
    assert!(String::from_utf8_lossy(&refused).contains("--console-live-views-max"));
    drop(open);

    // More views, one after another, than a publisher has tail slots (8): each closed view must
    // have given its slot and its tail back, or the later ones would get no tail.
    for round in 0..10 {
        let mut body = eventually(&format!("view {round} admitted"), || async move {
            let (status, body) = get(console.addr, "/events/live?asset=line").await;
            (status == 200).then_some(body)
        })
        .await
        .unwrap();
        let seen = first_article(&mut body).await;
        assert!(!seen.contains("problem"), "round {round}: {seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_following_the_streams_table_are_bounded() {
    let (_dir, _broker, _source, pipeline) = one_asset_pipeline().await;
    let args = [
        "--ingest".to_string(),
        pipeline.ingest.url(),
        "--console-stream-views-max=2".to_string(),
    ];
    let console = Service::start("sse-console", &args, &[]).await.unwrap();
    // Each open page gets the table (its stream's row) every second.
    let row = r#"<tr data-stream="dev1/"#;
    let mut open = Vec::new();
    for _ in 0..2 {
        let (status, mut body) = get(console.addr, "/streams/live").await;
        assert_eq!(status, 200);
        let seen = first_with(&mut body, row).await;
        assert!(seen.contains("event: streams"), "{seen}");
        open.push(body);
    }
    let (status, refused) = get(console.addr, "/streams/live").await;
    let refused = refused.collect().await.unwrap().to_bytes();
    let refused = String::from_utf8_lossy(&refused);
    assert_eq!(status, 503, "{refused}");
    assert!(refused.contains("--console-stream-views-max"), "{refused}");
    // A page that goes away frees its place.
    drop(open.pop());
    let mut body = eventually("a page admitted after one closed", || async move {
        let (status, body) = get(console.addr, "/streams/live").await;
        (status == 200).then_some(body)
    })
    .await
    .unwrap();
    first_with(&mut body, row).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_console_shows_both_ingest_replicas_streams_and_discoveries() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().await.unwrap();
    let source = source().await;
    let base = source.base_url();
    let (res1, res2) = (dir.path().join("r1"), dir.path().join("r2"));
    sse_e2e::write_file(&res1, "r.yaml", &resources(&base, "dev1", "line", "/a"));
    sse_e2e::write_file(&res2, "r.yaml", &resources(&base, "dev2", "press", "/b"));
    let pipeline = Pipeline::start(PipelineArgs {
        mqtt_url: broker.url(),
        data_dir: dir.path().join("schemas").display().to_string(),
        resources: res1.display().to_string(),
        publisher: vec![],
        ingest: vec![],
        env: None,
    })
    .await
    .unwrap();
    let args = [
        "--schema".to_string(),
        pipeline.schema.url(),
        "--resources".to_string(),
        res2.display().to_string(),
    ];
    let second = Service::start("sse-ingest", &args, &[]).await.unwrap();
    let ingests = format!("{},{}", pipeline.ingest.url(), second.url());
    let console = console(&ingests, &pipeline.schema, &pipeline.publisher).await;

    page_showing(
        console.addr,
        "/streams",
        &[&format!("{base}/a"), &format!("{base}/b")],
    )
    .await;
    let discovered = page_showing(
        console.addr,
        "/discovered",
        &[r#"data-device="dev1""#, r#"data-device="dev2""#],
    )
    .await;
    assert!(
        discovered.contains(r#"<table id="discovered">"#),
        "{discovered}"
    );
    assert_eq!(
        discovered.matches(r#"data-type="gust""#).count(),
        2,
        "{discovered}"
    );
    assert!(
        discovered.contains(
            "/assets/new?device=dev2&amp;endpoint=sse-0&amp;event_name=gust&amp;event_type=gust"
        ),
        "{discovered}"
    );
    assert!(
        discovered.contains("&quot;speed&quot;"),
        "the inferred schema: {discovered}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_serves_the_console_over_its_own_services() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().await.unwrap();
    let source = source().await;
    let base = source.base_url();
    let res = dir.path().join("resources");
    sse_e2e::write_file(&res, "r.yaml", &resources(&base, "dev1", "line", "/a"));
    let path = |p: &str| dir.path().join(p).display().to_string();
    let args: Vec<String> = [
        "--schema-listen=127.0.0.1:0",
        "--publisher-listen=127.0.0.1:0",
        "--console-listen=127.0.0.1:0",
        "--mqtt-url",
        &broker.url(),
        "--resources",
        &res.display().to_string(),
        "--data-dir",
        &path("schemas"),
        "--checkpoint-store=none",
    ]
    .map(String::from)
    .to_vec();
    let connector = Service::start("sse-connector", &args, &[]).await.unwrap();
    let at = connector
        .printed_addr("sse-connector console listening on ")
        .await
        .unwrap();

    let streams = page_showing(at, "/streams", &[&format!("{base}/a")]).await;
    assert!(streams.contains(r#"<table id="streams">"#), "{streams}");
    page_showing(at, "/discovered", &[r#"data-type="gust""#]).await;
    let (status, mut body) = get(at, "/events/live?asset=line").await;
    assert_eq!(status, 200);
    let read = async {
        let mut seen = String::new();
        while !seen.contains(r#"data-asset="line""#) {
            let frame = body.frame().await.unwrap().unwrap();
            if let Some(data) = frame.data_ref() {
                seen.push_str(&String::from_utf8_lossy(data));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("a live event through the in-process publisher");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_console_off_loopback_without_a_token_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start().await.unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let (res, data) = (res.display().to_string(), dir.path().join("schemas"));
    let data = data.display().to_string();
    let url = broker.url();
    let args = [
        "--listen=127.0.0.1:0",
        "--schema-listen=127.0.0.1:0",
        "--publisher-listen=127.0.0.1:0",
        "--console-listen=0.0.0.0:0",
        "--mqtt-url",
        &url,
        "--resources",
        &res,
        "--data-dir",
        &data,
        "--checkpoint-store=none",
    ];
    let out = sse_e2e::procs::run_to_exit("sse-connector", &args)
        .await
        .unwrap();
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(
        out.stderr.contains("--console-token-file"),
        "{}",
        out.stderr
    );
}

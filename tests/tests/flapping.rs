//! A device that keeps dropping its stream must not flood the log: a source that closes every
//! connection at once makes ingest reconnect every 500 ms, and where each connect and each
//! disconnect used to be logged twice (about 7 lines a second), the trouble is now logged once
//! (the first connect, the first disconnect, the first reconnect), the repeats at debug. And a
//! stream whose configuration cannot work (an environment proxy of a scheme ingest cannot use)
//! is still `Stopped` for good, without a request.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sse_e2e::eventually;
use sse_e2e::numbered::resources_dir;
use sse_e2e::procs::Service;
use sse_e2e::source::{Reply, SeenRequest, SseSource};
use tokio::net::TcpListener;

/// A source answering every request with `retry: 0` and nothing else, then closing; `seen`
/// counts the requests.
async fn closing_source(seen: Arc<Mutex<usize>>) -> SseSource {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let feed = Arc::new(move |_req: &SeenRequest| {
        *seen.lock().unwrap() += 1;
        Reply::Sse(Box::pin(futures::stream::once(async {
            Bytes::from_static(b"retry: 0\n\n")
        })))
    });
    SseSource::start(listener, feed).unwrap()
}

/// Ingest reading `source`'s numbered resources (no schema service: the stream is read anyway).
async fn ingest(source: &SseSource, envs: &[(String, String)]) -> (Service, tempfile::TempDir) {
    let dir = resources_dir(&source.base_url(), "e2e/flap").unwrap();
    let args = [
        "--schema",
        "http://127.0.0.1:9",
        "--resources",
        &dir.path().join("resources").display().to_string(),
    ]
    .map(String::from);
    (
        Service::start("sse-ingest", &args, envs).await.unwrap(),
        dir,
    )
}

/// The log lines (any level) saying `what`, in any case.
fn lines(text: &str, what: &str) -> usize {
    text.lines()
        .filter(|l| l.to_lowercase().contains(what))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_stream_logs_its_trouble_once_not_every_reconnect() {
    let seen = Arc::new(Mutex::new(0));
    let source = closing_source(seen.clone()).await;
    let (ingest, _dir) = ingest(&source, &[]).await;
    eventually("eight connections", || {
        let n = *seen.lock().unwrap();
        async move { (n >= 8).then_some(()) }
    })
    .await
    .unwrap();
    eventually("the first disconnect logged", || {
        let text = ingest.log_text();
        async move { (lines(&text, "stream disconnected") > 0).then_some(()) }
    })
    .await
    .unwrap();
    let text = ingest.log_text();
    // Eight connects and seven disconnects: the first connect, the first disconnect and the
    // first connect after it, each once.
    assert_eq!(lines(&text, "stream disconnected"), 1, "{text}");
    assert!(lines(&text, "stream connected") <= 2, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_proxy_still_stops_the_stream_for_good() {
    let seen = Arc::new(Mutex::new(0));
    let source = closing_source(seen.clone()).await;
    let bad = "socks5://127.0.0.1:1".to_string();
    let envs = [("http_proxy".to_string(), bad)];
    let (ingest, _dir) = ingest(&source, &envs).await;
    let addr = ingest.addr.to_string();
    let stream = eventually("the stream stopped", || {
        let addr = addr.clone();
        async move {
            let l = sse_e2e::grpcurl::call_json(
                &addr,
                None,
                &["sseconnector.v1.IngestService/ListStreams"],
            )
            .await
            .ok()?;
            let s = l["streams"].as_array()?.first()?.clone();
            (s["state"] == "Stopped").then_some(s)
        }
    })
    .await
    .unwrap();
    let error = stream["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("http_proxy"), "{stream}");
    assert_eq!(*seen.lock().unwrap(), 0, "a stopped stream sent a request");
    assert_eq!(lines(&ingest.log_text(), "sse stream stopped"), 1);
}

//! A server's `retry:` cannot make the real `sse-ingest` reconnect in a hot loop: a source that
//! answers every request with `retry: 0` and closes sees each next request only after the
//! reconnect floor (`--min-reconnect-delay`, default 500 ms). The upper clamp (1 h) is a unit test
//! of the client (`server_retry_is_clamped_to_the_floor_and_an_hour`).

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sse_e2e::eventually;
use sse_e2e::numbered::resources_dir;
use sse_e2e::procs::Service;
use sse_e2e::source::{Reply, SeenRequest, SseSource};
use tokio::net::TcpListener;

/// When the source saw each request.
type Arrivals = Arc<Mutex<Vec<Instant>>>;

/// A source answering every request with `retry: <retry>` and nothing else, then closing.
async fn closing_source(retry: &'static str, arrivals: Arrivals) -> SseSource {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let feed = Arc::new(move |_req: &SeenRequest| {
        arrivals.lock().unwrap().push(Instant::now());
        let hello = format!("retry: {retry}\n\n");
        Reply::Sse(Box::pin(futures::stream::once(async move {
            Bytes::from(hello)
        })))
    });
    SseSource::start(listener, feed).unwrap()
}

/// Starts ingest (no schema service: the stream is read regardless) on `source` with `extra`
/// arguments, and returns the request arrivals once `count` were seen.
async fn arrivals_with(extra: &[&str], count: usize) -> (Vec<Instant>, Service) {
    let arrivals: Arrivals = Arc::default();
    let source = closing_source("0", arrivals.clone()).await;
    let dir = resources_dir(&source.base_url(), "e2e/retry").unwrap();
    let mut args = vec![
        "--schema".to_string(),
        "http://127.0.0.1:9".to_string(),
        "--resources".to_string(),
        dir.path().join("resources").display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let ingest = Service::start("sse-ingest", &args, &[]).await.unwrap();
    let seen = eventually("the source to see the reconnects", || {
        let v = arrivals.lock().unwrap().clone();
        async move { (v.len() >= count).then_some(v) }
    })
    .await
    .unwrap();
    (seen, ingest)
}

/// How many reconnects fit in the time the requests span at one per `floor`.
fn allowed(seen: &[Instant], floor: Duration) -> (usize, Duration) {
    let span = seen[seen.len() - 1].duration_since(seen[0]);
    let fit = (span.as_nanos() / floor.as_nanos()) as usize;
    (fit, span)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_zero_reconnects_no_faster_than_the_default_floor() {
    let (seen, ingest) = arrivals_with(&[], 6).await;
    // Every reconnect waits the floor after the previous connection closed, so n requests span
    // at least (n - 1) floors: count the reconnects against the span the source measured.
    let (fit, span) = allowed(&seen, Duration::from_millis(500));
    let reconnects = seen.len() - 1;
    eprintln!(
        "{reconnects} reconnects in {span:?}: {:.1} per 10 s",
        reconnects as f64 * 10.0 / span.as_secs_f64()
    );
    assert!(
        reconnects <= fit,
        "{reconnects} reconnects in {span:?}, more than one per 500 ms"
    );
    drop(ingest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_is_configurable() {
    let (seen, ingest) = arrivals_with(&["--min-reconnect-delay", "1500ms"], 3).await;
    let (fit, span) = allowed(&seen, Duration::from_millis(1500));
    let reconnects = seen.len() - 1;
    assert!(
        reconnects <= fit,
        "{reconnects} reconnects in {span:?}, more than one per 1.5 s"
    );
    drop(ingest);
}

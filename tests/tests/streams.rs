//! SSE stream behaviour seen end to end, from scripted HTTP servers to the broker: resume with
//! `Last-Event-ID` after a break (a partial block is never delivered, an `id:` reset omits the
//! header), 503 then 200 recovers, 204 and a wrong content type wait the long backoff (they used
//! to stop the stream until its resource changed), a resource file edited while
//! running takes effect without disturbing other streams, and the Azure Device Registry shaped
//! status is served over gRPC and as retained JSON on the status topic.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sse_e2e::mqtt::{Received, Subscriber};
use sse_e2e::resources::{asset, device};
use sse_e2e::source::{Feed, Reply, SeenRequest, block, blocks_then_hold};
use sse_e2e::stack::Stack;
use sse_e2e::{eventually, grpcurl};

/// Per path, how many requests came before this one.
#[derive(Clone, Default)]
struct Counter(Arc<Mutex<HashMap<String, usize>>>);

impl Counter {
    fn next(&self, req: &SeenRequest) -> usize {
        let mut m = self.0.lock().unwrap();
        let n = m.entry(req.path.clone()).or_default();
        *n += 1;
        *n - 1
    }
}

/// SSE text that ends (the server closes the response after it).
fn then_close(text: String) -> Reply {
    Reply::Sse(Box::pin(futures::stream::iter([Bytes::from(text)])))
}

fn numbers(msgs: &[Received], topic: &str) -> Vec<i64> {
    msgs.iter()
        .filter(|m| m.topic == topic)
        .filter_map(|m| serde_json::from_slice::<serde_json::Value>(&m.payload).ok())
        .filter_map(|v| v["n"].as_i64())
        .collect()
}

fn requests(seen: &[SeenRequest], path: &str) -> Vec<SeenRequest> {
    seen.iter().filter(|r| r.path == path).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_with_last_event_id_drops_partial_blocks_and_honours_id_reset() {
    let counter = Counter::default();
    let feed: Feed = Arc::new(move |req| match (req.path.as_str(), counter.next(req)) {
        // Two events, then a block cut off by the break: it must never be delivered.
        ("/n", 0) => then_close(format!(
            "retry: 50\n\n{}{}id: 99\ndata: {{\"n\":99}}",
            block(Some("1"), None, r#"{"n":1}"#),
            block(Some("2"), None, r#"{"n":2}"#),
        )),
        // Resumed after 2; then the server resets the last event ID before the break.
        ("/n", 1) => then_close(format!(
            "{}id\ndata: {{\"n\":4}}\n\n",
            block(Some("3"), None, r#"{"n":3}"#)
        )),
        ("/n", _) => Reply::Sse(blocks_then_hold(vec![block(None, None, r#"{"n":5}"#)])),
        _ => Reply::not_found(),
    });
    let (stack, sub) = Stack::start(feed, |base| {
        device(base) + &asset("counter", &[("numbers", "/n", "e2e/n")])
    })
    .await
    .unwrap();
    let msgs = sub
        .wait_until("events 1..5", |m| numbers(m, "e2e/n").len() >= 5)
        .await
        .unwrap();
    assert_eq!(
        numbers(&msgs, "e2e/n"),
        [1, 2, 3, 4, 5],
        "the partial block is not delivered"
    );
    let sseids: Vec<Option<&str>> = msgs.iter().map(|m| m.user("sseid")).collect();
    assert_eq!(sseids, [Some("1"), Some("2"), Some("3"), None, None]);
    let seen = requests(&stack.source.seen(), "/n");
    assert!(seen.len() >= 3);
    assert_eq!(seen[0].header("last-event-id"), None);
    assert_eq!(seen[1].header("last-event-id"), Some("2"));
    assert_eq!(
        seen[2].header("last-event-id"),
        None,
        "after `id:` reset the header is omitted, never sent empty"
    );
    for r in &seen {
        assert_eq!(r.header("accept"), Some("text/event-stream"));
        assert_eq!(r.header("cache-control"), Some("no-cache"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_recovers_while_204_and_wrong_type_wait_long_with_status() {
    let counter = Counter::default();
    let feed: Feed = Arc::new(move |req| match (req.path.as_str(), counter.next(req)) {
        ("/flaky", 0) => Reply::Status(
            503,
            vec![("retry-after".into(), "0".into())],
            "busy\n".into(),
        ),
        ("/flaky", _) => Reply::Sse(blocks_then_hold(vec![block(
            Some("f1"),
            None,
            r#"{"n":1}"#,
        )])),
        ("/gone", _) => Reply::Status(204, vec![], String::new()),
        ("/html", _) => Reply::Status(
            200,
            vec![("content-type".into(), "text/html".into())],
            "<p>not a stream</p>".into(),
        ),
        _ => Reply::not_found(),
    });
    let (stack, sub) = Stack::start(feed, |base| {
        device(base)
            + &asset(
                "plant",
                &[
                    ("flaky", "/flaky", "e2e/flaky"),
                    ("gone", "/gone", "e2e/gone"),
                    ("html", "/html", "e2e/html"),
                ],
            )
    })
    .await
    .unwrap();
    let status_sub = Subscriber::connect(stack.broker.port, "sse-connector/status/#")
        .await
        .unwrap();
    sub.wait_until("the event after the 503", |m| {
        numbers(m, "e2e/flaky") == [1]
    })
    .await
    .unwrap();

    // The ADR shaped status over gRPC: the recovered dataset is Available, the ones answered
    // without an event stream are Unavailable, waiting to be retried, with their reason.
    let addr = stack.ingest.addr.to_string();
    let asset = eventually("the datasets waiting long in status", || {
        let addr = addr.clone();
        async move {
            let s = grpcurl::call_json(&addr, None, &["sseconnector.v1.IngestService/GetStatus"])
                .await
                .ok()?;
            let asset = s["assets"]
                .as_array()?
                .iter()
                .find(|a| a["name"] == "plant")?
                .clone();
            let waiting = asset["datasets"]
                .as_array()?
                .iter()
                .filter(|d| d["runtimeHealth"]["reasonCode"] == "Disconnected")
                .count();
            (waiting == 2).then_some(asset)
        }
    })
    .await
    .unwrap();
    let ds = |name: &str| {
        asset["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(ds("flaky")["runtimeHealth"]["status"], "Available");
    // The delivered dataset shows the schema its messages follow, as the broker saw it.
    let reference = eventually("the schema reference in status", || {
        let addr = addr.clone();
        async move {
            let s = grpcurl::call_json(&addr, None, &["sseconnector.v1.IngestService/GetStatus"])
                .await
                .ok()?;
            let asset = s["assets"]
                .as_array()?
                .iter()
                .find(|a| a["name"] == "plant")?;
            let flaky = asset["datasets"]
                .as_array()?
                .iter()
                .find(|d| d["name"] == "flaky")?;
            let r = flaky.get("messageSchemaReference")?.clone();
            r.is_object().then_some(r)
        }
    })
    .await
    .unwrap();
    let dataschema = sub.all()[0].user("dataschema").unwrap().to_string();
    assert_eq!(
        dataschema,
        format!(
            "aio-sr://{}/{}:{}",
            reference["schemaRegistryNamespace"].as_str().unwrap(),
            reference["schemaName"].as_str().unwrap(),
            reference["schemaVersion"].as_str().unwrap()
        )
    );
    assert_eq!(ds("gone")["runtimeHealth"]["status"], "Unavailable");
    let gone = ds("gone")["runtimeHealth"]["message"].to_string();
    assert!(gone.contains("204"), "{gone}");
    let html = ds("html")["runtimeHealth"]["message"].to_string();
    assert!(html.contains("text/html"), "{html}");
    for message in [&gone, &html] {
        assert!(message.contains("long backoff"), "{message}");
    }

    // The same status, retained on the status topic.
    let retained = status_sub
        .wait_until("the asset status on the status topic", |m| {
            m.iter().any(|r| {
                r.topic == "sse-connector/status/asset/plant"
                    && r.text().contains("\"reasonCode\":\"Disconnected\"")
                    && r.text().contains("\"status\":\"Available\"")
            })
        })
        .await
        .unwrap();
    let msg = retained
        .iter()
        .rfind(|r| r.topic == "sse-connector/status/asset/plant")
        .unwrap();
    assert!(msg.retain, "status is retained");
    assert_eq!(msg.user("dataschema"), None, "status carries no schema");
    let late = Subscriber::connect(stack.broker.port, "sse-connector/status/device/dev")
        .await
        .unwrap();
    let dev = late
        .wait_until("the retained device status for a late subscriber", |m| {
            !m.is_empty()
        })
        .await
        .unwrap();
    let dev: serde_json::Value = serde_json::from_slice(&dev[0].payload).unwrap();
    assert!(dev["endpoints"]["inbound"]["sse-0"]["runtimeHealth"].is_object());

    // The recovered stream was asked again; how long the others wait is the client's unit
    // tests' (`status_204_is_retried_with_the_long_backoff`).
    let seen = stack.source.seen();
    assert!(requests(&seen, "/flaky").len() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_resource_file_takes_effect_without_disturbing_other_streams() {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Counter::default();
    let feed: Feed = {
        let served = served.clone();
        Arc::new(move |req| {
            let n = counter.next(req);
            served.fetch_add(1, Ordering::SeqCst);
            let last = req
                .header("last-event-id")
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            match req.path.as_str() {
                // Each connection sends the next number after the one it resumes from.
                "/a" | "/b" => Reply::Sse(blocks_then_hold(vec![block(
                    Some(&(last + 1).to_string()),
                    None,
                    &format!(r#"{{"n":{},"conn":{n}}}"#, last + 1),
                )])),
                _ => Reply::not_found(),
            }
        })
    };
    let (stack, sub) = Stack::start(feed, |base| {
        device(base) + &asset("one", &[("a", "/a", "e2e/a")])
    })
    .await
    .unwrap();
    let file = stack.dir.path().join("resources/resources.yaml");
    let base = stack.source.base_url();
    sub.wait_until("the first stream", |m| numbers(m, "e2e/a") == [1])
        .await
        .unwrap();

    // A new asset in a new file: its stream starts, the first one is not touched.
    std::fs::write(
        stack.dir.path().join("resources/more.yaml"),
        asset("two", &[("b", "/b", "e2e/b")]),
    )
    .unwrap();
    sub.wait_until("the added stream", |m| numbers(m, "e2e/b") == [1])
        .await
        .unwrap();
    assert_eq!(requests(&stack.source.seen(), "/a").len(), 1);

    // The second asset's destination changes: its stream reconnects, resuming after event 1,
    // and delivers to the new topic; the first stream is still not touched.
    std::fs::write(
        stack.dir.path().join("resources/more.yaml"),
        asset("two", &[("b", "/b", "e2e/b2")]),
    )
    .unwrap();
    sub.wait_until("the changed stream on its new topic", |m| {
        numbers(m, "e2e/b2") == [2]
    })
    .await
    .unwrap();
    let b = requests(&stack.source.seen(), "/b");
    assert_eq!(b.len(), 2);
    assert_eq!(b[1].header("last-event-id"), Some("1"));
    assert_eq!(requests(&stack.source.seen(), "/a").len(), 1);

    // The first asset is removed: its stream closes and leaves the status.
    std::fs::write(&file, device(&base)).unwrap();
    let addr = stack.ingest.addr.to_string();
    eventually("the removed stream gone from ListStreams", || {
        let addr = addr.clone();
        async move {
            let l = grpcurl::call_json(&addr, None, &["sseconnector.v1.IngestService/ListStreams"])
                .await
                .ok()?;
            let keys: Vec<String> = l["streams"]
                .as_array()
                .map(|a| a.iter().map(|s| s["key"].to_string()).collect())
                .unwrap_or_default();
            (keys.len() == 1 && keys[0].contains("/b")).then_some(())
        }
    })
    .await
    .unwrap();
    assert_eq!(numbers(&sub.all(), "e2e/a"), [1], "nothing re-read from /a");
}

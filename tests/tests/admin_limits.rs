//! End to end, the schema service's admin writes (`PutSchema`, `InferSchema`) against the real
//! `sse-schema` binary with grpcurl: an `InferSchema` of 42 MB (the request that once took the
//! schema pod 923 MiB over its memory limit) is refused from its frame header with
//! INVALID_ARGUMENT naming the event size limit, with no jump in the process's peak memory;
//! calls beyond the rate limit's burst are refused with RESOURCE_EXHAUSTED naming the rule,
//! while the event pipeline keeps flowing.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use sse_e2e::grpcurl::{self, Refusal};
use sse_e2e::procs::Service;
use sse_e2e::resources::{asset, device};
use sse_e2e::source::demo_feed;
use sse_e2e::stack::Stack;

const INFER: &str = "sseconnector.v1.SchemaService/InferSchema";
const PUT: &str = "sseconnector.v1.SchemaService/PutSchema";
const TOPIC: &str = "e2e/readings";

/// A small, valid `InferSchema` request.
const SMALL: &[u8] = br#"{"payload":"{\"t\":1}"}"#;

/// An `InferSchema` request whose payload is a JSON array of `bytes` bytes: decoded and
/// inferred, each element becomes a value of its own, many times the bytes.
fn infer_request_of(bytes: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes + 16);
    body.extend_from_slice(br#"{"payload":"["#);
    while body.len() < bytes {
        body.extend_from_slice(b"0,");
    }
    body.extend_from_slice(br#"0]"}"#);
    body
}

#[tokio::test]
async fn an_infer_schema_of_42_mb_is_refused_without_the_memory_jump() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("schemas").display().to_string();
    // No publisher: the registry API serves without one (the pipeline waits for it).
    let args = ["--publisher", "http://127.0.0.1:9", "--data-dir", &data_dir].map(String::from);
    let schema = Service::start("sse-schema", &args, &[]).await.unwrap();
    let addr = schema.addr.to_string();
    grpcurl::call_stdin(&addr, SMALL, &[INFER])
        .await
        .unwrap()
        .unwrap();
    let before = schema.peak_rss_kib().unwrap();

    let refused = grpcurl::call_stdin(&addr, &infer_request_of(42 << 20), &[INFER])
        .await
        .unwrap()
        .unwrap_err();
    let limit = sse_contract::limits::EVENT_BYTES_MAX;
    assert_eq!(refused.code, "InvalidArgument", "{refused:?}");
    assert!(
        refused.message.starts_with("InferSchema request is ")
            && refused
                .message
                .contains(&format!("over the event size limit of {limit} bytes")),
        "{refused:?}"
    );
    let after = schema.peak_rss_kib().unwrap();
    // Decoding and inferring it took the process 923 MiB; the guard holds it to buffers.
    assert!(
        after.saturating_sub(before) < 100 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
    let inferred = grpcurl::call_stdin(&addr, SMALL, &[INFER])
        .await
        .unwrap()
        .unwrap();
    assert!(inferred.contains("integer"), "{inferred}");
}

#[tokio::test]
async fn admin_writes_beyond_the_burst_are_refused_while_events_flow() {
    let env = [
        ("SCHEMA_ADMIN_WRITE_BURST", "2"),
        // One token per 100 s: none comes back during the test, however slow the machine.
        ("SCHEMA_ADMIN_WRITES_PER_SECOND", "0.01"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec();
    let (stack, sub) = Stack::start_with_schema_env(
        demo_feed(Duration::from_millis(50)),
        |base| device(base) + &asset("station", &[("readings", "/readings", TOPIC)]),
        env,
    )
    .await
    .unwrap();
    sub.wait_until("the first event", |m| m.iter().any(|r| r.topic == TOPIC))
        .await
        .unwrap();
    let addr = stack.schema.addr.to_string();
    // The burst: two admin writes, one of each method (they share the bucket).
    grpcurl::call_stdin(&addr, SMALL, &[INFER])
        .await
        .unwrap()
        .unwrap();
    grpcurl::call_stdin(&addr, br#"{"content":"{\"type\":\"object\"}"}"#, &[PUT])
        .await
        .unwrap()
        .unwrap();

    let is_rate_refusal = |r: &Refusal| {
        r.code == "ResourceExhausted"
            && r.message.contains("rate limit")
            && r.message.contains("--admin-writes-per-second")
            && r.message.contains("--admin-write-burst")
            && r.message.contains("bursts of 2")
    };
    for (path, body) in [
        (INFER, SMALL),
        (PUT, br#"{"content":"{\"type\":\"string\"}"}"#.as_slice()),
        // Refused before its body is decoded: a request over the size limit gets the same.
        (INFER, &infer_request_of(8 << 20)),
    ] {
        let refused = grpcurl::call_stdin(&addr, body, &[path])
            .await
            .unwrap()
            .unwrap_err();
        assert!(is_rate_refusal(&refused), "{path}: {refused:?}");
    }
    // Reads are not limited.
    let listed = grpcurl::call_json(&addr, None, &["sseconnector.v1.SchemaService/ListSchemas"])
        .await
        .unwrap();
    assert!(
        listed["schemas"].as_array().is_some_and(|s| !s.is_empty()),
        "{listed}"
    );
    // The event stream is not limited: events keep arriving after the bucket ran dry.
    let seen = sub.all().iter().filter(|r| r.topic == TOPIC).count();
    sub.wait_until("five more events", |m| {
        m.iter().filter(|r| r.topic == TOPIC).count() >= seen + 5
    })
    .await
    .unwrap();
}

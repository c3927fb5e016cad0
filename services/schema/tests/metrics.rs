//! The schema service's instruments, collected from a meter provider installed in this test
//! binary (its own binary: the provider is global): `sse_schema::run` in this process in front
//! of a fake publisher, fed known events over a `Process` stream.
#![allow(clippy::unwrap_used, missing_docs)]

mod harness;

use harness::*;
use sse_contract::metrics::{self as catalogue, attr};
use sse_e2e::meters;

/// The conventions' attributes of the schema service's processing, and `error.type` if any.
fn process(error: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
    let mut a = vec![
        (attr::MESSAGING_SYSTEM, "sse"),
        (attr::OPERATION_NAME, "process"),
        (attr::OPERATION_TYPE, "process"),
    ];
    a.extend(error.map(|e| (attr::ERROR_TYPE, e)));
    a
}

#[tokio::test]
async fn versions_failures_and_processing_time_are_recorded() {
    let meters = meters::install();
    let dir = tempfile::tempdir().unwrap();
    let (publisher, schema, _) = relaying(dir.path()).await;
    let mut stream = Stream::open(&schema).await;
    // Two shapes (two versions), one known shape, and three events without a schema: not JSON,
    // over --max-payload-bytes (4096), nested deeper than the default depth limit (32).
    let too_large = format!("{{\"s\":\"{}\"}}", "x".repeat(5000));
    let too_deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    stream
        .send(vec![
            dataset(1, r#"{"x":1}"#),
            dataset(2, r#"{"x":2}"#),
            dataset(3, "plain text"),
            dataset(4, r#"{"x":1,"y":"s"}"#),
            dataset(5, &too_large),
            dataset(6, &too_deep),
        ])
        .await;
    let acks = stream.acks(6).await;
    assert!(acks.iter().all(|a| a.error.is_empty()), "{acks:?}");

    let c = meters.collect();
    assert_eq!(c.value(catalogue::SCHEMA_VERSIONS_CREATED.name, &[]), 2.0);
    let failures = catalogue::SCHEMA_INFERENCE_FAILURES.name;
    for reason in ["not_json", "too_large", "too_deep"] {
        assert_eq!(
            c.value(failures, &[(attr::REASON, reason)]),
            1.0,
            "{reason}: {:?}",
            c.attribute_sets(failures)
        );
    }
    assert_eq!(
        c.value(failures, &[]),
        3.0,
        "{:?}",
        c.attribute_sets(failures)
    );
    let duration = catalogue::PROCESS_DURATION.name;
    let (n, _, min) = c.histogram(duration, &process(None)).unwrap();
    assert_eq!(n, 3, "{:?}", c.attribute_sets(duration));
    assert!(min >= 0.0);
    for reason in ["not_json", "too_large", "too_deep"] {
        let (n, _, _) = c.histogram(duration, &process(Some(reason))).unwrap();
        assert_eq!(n, 1, "{reason}");
    }
    schema.stop().await;
    publisher.stop().await;
}

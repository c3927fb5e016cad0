//! `--max-subjects` bounds the subjects the schema service holds state for (against
//! `sse_schema::run` with the generated client): resource churn used to leave every subject ever
//! seen in memory until a restart. Past the bound the least recently seen are forgotten, and a
//! forgotten subject's next event finds its schema in the registry again, with no new version.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sse_proto::v1::{Ack, ListSubjectsRequest, RouteKind};

mod harness;

use harness::*;

/// The `i`th event, of subject `asset/g/e<i % subjects>`.
fn of_subject(seq: u64, subject: usize) -> sse_proto::v1::Event {
    event(
        seq,
        RouteKind::Event,
        "g",
        &format!("e{subject}"),
        r#"{"t":1}"#,
    )
}

fn version(ack: &Ack) -> String {
    let s = ack.schema.as_ref().expect("tagged with a schema");
    format!("{}:{}", s.name, s.version)
}

#[tokio::test]
async fn past_max_subjects_the_least_recently_seen_are_forgotten_not_their_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start_with(dir.path(), paddr, &["--max-subjects", "10"]).await;
    schema.wait_serving().await;
    let mut stream = Stream::open(&schema).await;
    let n = 25;
    stream
        .send((0..n).map(|i| of_subject(i as u64 + 1, i)).collect())
        .await;
    let first = stream.acks(n).await;
    let mut c = schema.client().await;
    let held: Vec<String> = c
        .list_subjects(ListSubjectsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .subjects
        .into_iter()
        .map(|s| s.subject)
        .collect();
    assert!(held.len() <= 10, "{} subjects held: {held:?}", held.len());
    assert!(held.contains(&"asset/g/e24".to_string()), "{held:?}");
    assert!(!held.contains(&"asset/g/e0".to_string()), "{held:?}");

    // The forgotten subject's schema is still registered: the event is tagged with it.
    stream.send(vec![of_subject(n as u64 + 1, 0)]).await;
    let again = stream.acks(1).await;
    assert_eq!(version(&again[0]), version(&first[0]));
    let versions = c
        .list_schemas(sse_proto::v1::ListSchemasRequest::default())
        .await
        .unwrap()
        .into_inner()
        .schemas;
    assert_eq!(versions.len(), 1, "one shape, one version: {versions:?}");
    schema.stop().await;
    publisher.stop().await;
}

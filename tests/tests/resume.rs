//! Ingest resumes from its durable checkpoint: kill -9 ingest mid-stream and start it again, and
//! every numbered event still reaches the broker (checkpoint in a file, and as retained messages on
//! the broker); a source that drops the connection every few events loses and duplicates nothing.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::{Received, Subscriber};
use sse_e2e::numbered::{NumberedSource, Numbering, number_of};
use sse_e2e::procs::Service;
use sse_e2e::stack::{Pipeline, PipelineArgs};

struct Rig {
    broker: Mosquitto,
    source: NumberedSource,
    _publisher: Service,
    _schema: Service,
    ingest: Service,
    _dir: tempfile::TempDir,
    sub: Subscriber,
}

const TOPIC: &str = "e2e/numbered";

impl Rig {
    /// The whole pipeline over a numbered source, checkpoints in a file of the test's directory
    /// or (`mqtt_checkpoint`) as retained messages on the broker.
    async fn start(numbering: Numbering, mqtt_checkpoint: bool) -> Self {
        let broker = Mosquitto::start().await.unwrap();
        let source = NumberedSource::start(numbering).await.unwrap();
        let dir = sse_e2e::numbered::resources_dir(&source.base_url(), TOPIC).unwrap();
        let res = dir.path().join("resources");
        let sub = Subscriber::connect(broker.port, TOPIC).await.unwrap();
        let store = if mqtt_checkpoint {
            broker.url()
        } else {
            dir.path().join("checkpoints.json").display().to_string()
        };
        let s = |x: &str| x.to_string();
        let services = Pipeline::start(PipelineArgs {
            mqtt_url: broker.url(),
            data_dir: dir.path().join("schemas").display().to_string(),
            resources: res.display().to_string(),
            publisher: vec![],
            ingest: vec![
                s("--checkpoint-store"),
                store,
                s("--checkpoint-interval"),
                s("100ms"),
                s("--status-topic"),
                String::new(),
            ],
            env: None,
        })
        .await
        .unwrap();
        let Pipeline {
            publisher,
            schema,
            ingest,
        } = services;
        Self {
            broker,
            source,
            _publisher: publisher,
            _schema: schema,
            ingest,
            _dir: dir,
            sub,
        }
    }

    async fn wait_for(&self, what: &str, n: usize) -> Vec<Received> {
        self.sub
            .wait_until(what, |m| distinct(m).len() >= n)
            .await
            .unwrap()
    }
}

fn distinct(msgs: &[Received]) -> BTreeSet<u64> {
    msgs.iter().filter_map(|m| number_of(&m.payload)).collect()
}

/// Lost numbers, and the duplicated ones; fails if a duplicate carries another CloudEvents id.
fn count(msgs: &[Received], total: u64) -> (Vec<u64>, usize) {
    let mut ids: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    let mut dups = 0;
    for m in msgs {
        let n = number_of(&m.payload).unwrap();
        let set = ids.entry(n).or_default();
        if !set.is_empty() {
            dups += 1;
        }
        set.insert(m.user("id").unwrap().to_string());
    }
    for (n, set) in &ids {
        assert_eq!(
            set.len(),
            1,
            "event {n} was redelivered with another id: {set:?}"
        );
    }
    let lost = (1..=total).filter(|n| !ids.contains_key(n)).collect();
    (lost, dups)
}

async fn kill_ingest_and_resume(mqtt_checkpoint: bool) {
    let total = 600;
    let numbering = Numbering {
        total,
        interval: Duration::from_millis(4),
        drop_every: None,
    };
    let mut rig = Rig::start(numbering, mqtt_checkpoint).await;
    rig.wait_for("the first events", 100).await;
    rig.ingest.kill().await.unwrap();
    let before = distinct(&rig.sub.all()).last().copied().unwrap_or(0);
    rig.ingest.restart().await.unwrap();
    let msgs = rig
        .sub
        .wait_until("every numbered event after the restart", |m| {
            distinct(m).len() as u64 >= total
        })
        .await
        .unwrap();
    let (lost, dups) = count(&msgs, total);
    assert!(lost.is_empty(), "lost {lost:?}");
    // The restarted ingest resumed from its checkpoint, not from the start or the live end.
    let from = rig.source.resumed_from();
    let resumed: u64 = from
        .last()
        .cloned()
        .flatten()
        .expect("the restarted ingest sent Last-Event-ID")
        .parse()
        .unwrap();
    assert!(
        resumed >= 1 && resumed <= before,
        "resumed after {resumed}, but the broker had only up to {before}"
    );
    eprintln!(
        "kill -9 ingest ({} store): {total} events, 0 lost, {dups} duplicates, resumed after {resumed}",
        if mqtt_checkpoint { "broker" } else { "file" }
    );
    drop(rig.broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_ingest_resumes_from_the_file_checkpoint() {
    kill_ingest_and_resume(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_ingest_resumes_from_the_broker_checkpoint() {
    kill_ingest_and_resume(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_dropping_every_few_events_loses_and_duplicates_nothing() {
    let total = 300;
    let rig = Rig::start(
        Numbering {
            total,
            interval: Duration::from_millis(1),
            drop_every: Some(7),
        },
        false,
    )
    .await;
    let msgs = rig.wait_for("every numbered event", total as usize).await;
    let (lost, dups) = count(&msgs, total);
    assert!(lost.is_empty(), "lost {lost:?}");
    assert_eq!(
        dups, 0,
        "a clean end of stream resumes exactly after the last event"
    );
    let numbers: Vec<u64> = msgs.iter().filter_map(|m| number_of(&m.payload)).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(rig.source.resumed_from().len() as u64 >= total / 7);
}

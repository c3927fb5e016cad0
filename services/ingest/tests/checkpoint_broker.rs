//! The broker checkpoint store's save against a real Mosquitto: every changed stream's record is
//! one retained publish, and a save of many of them shares ingest's single runtime thread with
//! the streams' readers, so it must let them run every few records instead of holding the thread
//! for as many as rumqttc's request queue takes (64).

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sse_e2e::broker::Mosquitto;
use sse_ingest::checkpoint::{Checkpoints, RECORDS_PER_TURN, StoreConfig, lock};
use sse_runtime::mqtt::{Broker, BrokerAddress};
use tokio_util::sync::CancellationToken;

/// Streams whose records one save writes.
const STREAMS: u64 = 300;

async fn open(broker: &Mosquitto, token: CancellationToken) -> Checkpoints {
    let store = StoreConfig::Mqtt {
        broker: Broker::new(BrokerAddress::parse(&broker.url()).unwrap()),
        prefix: "test/checkpoints".into(),
        client_id: None,
    };
    Checkpoints::open(&store, token).await.unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn a_save_of_many_records_lets_the_other_tasks_run_between_them() {
    let broker = Mosquitto::start().await.unwrap();
    let token = CancellationToken::new();
    let checkpoints = open(&broker, token.clone()).await;
    for i in 0..STREAMS {
        let key = format!("device/sse|http://source/s/{i}");
        let (progress, _) = checkpoints.resume(&key);
        lock(&progress).sent(&[1], &format!("id-{i}"));
        checkpoints.acked(&key, 1);
    }
    // Another task on the same thread, as a stream's reader would be: it counts the turns it
    // gets while the save runs.
    let (turns, done) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let probe = tokio::spawn({
        let (turns, done) = (turns.clone(), done.clone());
        async move {
            while !done.load(Ordering::Relaxed) {
                turns.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
    });
    tokio::task::yield_now().await;
    let before = turns.load(Ordering::Relaxed);
    assert_eq!(checkpoints.save().await.unwrap(), STREAMS as usize);
    let during = turns.load(Ordering::Relaxed) - before;
    done.store(true, Ordering::Relaxed);
    probe.await.unwrap();
    let chunks = STREAMS / RECORDS_PER_TURN as u64;
    assert!(
        during >= chunks,
        "the other task ran {during} times while {STREAMS} records were saved, {RECORDS_PER_TURN} at a time: the save held the thread"
    );
    // Nothing is saved twice: the next save has nothing to write.
    assert_eq!(checkpoints.save().await.unwrap(), 0);
    token.cancel();
}

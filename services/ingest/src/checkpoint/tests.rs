//! The checkpoint progress, store settings and stores.

use super::*;

#[test]
fn commits_only_when_every_earlier_routed_event_is_acknowledged() {
    let mut p = Progress::default();
    p.sent(&[1, 2], "a"); // one SSE event, two routes
    p.sent(&[3], "b");
    p.sent(&[], "c"); // matched nothing
    p.sent(&[4], "d");
    assert_eq!(p.committed(), None);
    p.acked(3);
    assert_eq!(p.committed(), None, "b waits for a");
    p.acked(1);
    assert_eq!(p.committed(), None, "a has a route still out");
    p.acked(2);
    assert_eq!(p.committed(), Some("c"), "a, b and the unrouted c are done");
    p.acked(4);
    assert_eq!(p.committed(), Some("d"));
    p.acked(4);
    assert_eq!(p.committed(), Some("d"));
}

#[test]
fn unrouted_events_queue_no_copies_while_an_event_waits() {
    let mut p = Progress::default();
    p.sent(&[1], "a");
    for i in 0..1000 {
        p.sent(&[], &format!("u{i}"));
    }
    assert_eq!(p.events.len(), 1, "one entry, not one per unrouted event");
    assert_eq!(p.committed(), None);
    p.sent(&[2], "b");
    p.sent(&[], "c");
    assert_eq!(p.events.len(), 2);
    p.acked(1);
    assert_eq!(p.committed(), Some("u999"));
    p.acked(2);
    assert_eq!(p.committed(), Some("c"));
    assert!(p.events.is_empty());
}

#[test]
fn an_unrouted_first_event_commits_at_once() {
    let mut p = Progress::default();
    p.sent(&[], "x");
    assert_eq!(p.committed(), Some("x"));
    assert!(p.dirty);
}

#[test]
fn store_settings_parse() {
    assert_eq!(StoreConfig::parse("").unwrap(), StoreConfig::None);
    assert_eq!(
        StoreConfig::parse("file:///var/lib/x.json").unwrap(),
        StoreConfig::File("/var/lib/x.json".into())
    );
    assert_eq!(
        StoreConfig::parse("data/c.json").unwrap(),
        StoreConfig::File("data/c.json".into())
    );
    assert!(matches!(
        StoreConfig::parse("mqtts://broker:8883").unwrap(),
        StoreConfig::Mqtt { .. }
    ));
    // The scheme set is the shared MQTT stack's, in any case as URLs allow.
    assert!(matches!(
        StoreConfig::parse("MQTTS://broker:8883").unwrap(),
        StoreConfig::Mqtt { broker, .. } if broker.tls.is_some()
    ));
    assert!(matches!(
        StoreConfig::parse("ssl://broker").unwrap(),
        StoreConfig::Mqtt { broker, .. } if broker.tls.is_some() && broker.address.port == 8883
    ));
    assert_eq!(StoreConfig::parse("none").unwrap(), StoreConfig::None);
    assert!(StoreConfig::parse("http://x").is_err());
    // Every form of a local file URL is that file; one naming a host is refused.
    for local in [
        "file:/var/lib/x.json",
        "file://localhost/var/lib/x.json",
        "FILE:///var/lib/x.json",
    ] {
        assert_eq!(
            StoreConfig::parse(local).unwrap(),
            StoreConfig::File("/var/lib/x.json".into()),
            "{local}"
        );
    }
    assert_eq!(
        StoreConfig::parse("file:///var/lib/a%20b.json").unwrap(),
        StoreConfig::File("/var/lib/a b.json".into())
    );
    for bad in ["file://var/lib/x.json", "file:x.json"] {
        assert!(StoreConfig::parse(bad).is_err(), "{bad}");
    }
    // Neither an unknown scheme nor a bad broker URL shows the password, and the broker's
    // own reason is not dressed up as the setting.
    let e = StoreConfig::parse("http://u:hunter2@x")
        .unwrap_err()
        .to_string();
    assert!(!e.contains("hunter2"), "{e}");
    let e = StoreConfig::parse("mqtt://u:hunter2@x:99999")
        .unwrap_err()
        .to_string();
    assert!(
        !e.contains("hunter2") && e.starts_with("checkpoint store: broker URL"),
        "{e}"
    );
    assert!(
        StoreConfig::parse("mqtt://u:hunter2@b").is_err_and(|e| !e.to_string().contains("hunter2"))
    );
}

#[tokio::test]
async fn the_file_store_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/checkpoints.json");
    let cfg = StoreConfig::File(path.clone());
    let c = Checkpoints::open(&cfg, CancellationToken::new())
        .await
        .unwrap();
    let (p, from) = c.resume("s1");
    assert_eq!(from, "");
    lock(&p).sent(&[1], "41");
    c.acked("s1", 1);
    assert_eq!(c.save().await.unwrap(), 1);
    assert_eq!(c.save().await.unwrap(), 0, "nothing changed since");
    let again = Checkpoints::open(&cfg, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.resume("s1").1, "41");
    assert_eq!(again.resume("other").1, "");
    // A damaged file is not fatal.
    std::fs::write(&path, b"{oops").unwrap();
    let damaged = Checkpoints::open(&cfg, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(damaged.resume("s1").1, "");
}

/// #19 point 6: the file is `0600` in a `0700` directory, and a symlink planted where the
/// old code put its temp file (`<name>.tmp`) is not followed.
#[tokio::test]
async fn the_file_store_is_private_and_follows_no_planted_symlink() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let victim = root.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    let dir = root.path().join("state");
    let path = dir.join("checkpoints.json");
    let c = Checkpoints::open(&StoreConfig::File(path.clone()), CancellationToken::new())
        .await
        .unwrap();
    let (p, _) = c.resume("s1");
    lock(&p).sent(&[], "7");
    c.save().await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir), 0o700);
    std::os::unix::fs::symlink(&victim, path.with_extension("tmp")).unwrap();
    lock(&p).sent(&[], "8");
    c.save().await.unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    assert_eq!(mode(&path), 0o600);
    let again = Checkpoints::open(&StoreConfig::File(path), CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(again.resume("s1").1, "8");
}

/// The checkpoint age grows while a change cannot be written, the change is written by the
/// next save that can, and the age is zero once everything is written.
#[tokio::test]
async fn a_failing_store_ages_and_keeps_its_changes_for_the_next_save() {
    let root = tempfile::tempdir().unwrap();
    let blocker = root.path().join("state");
    let c = Checkpoints::open(
        &StoreConfig::File(blocker.join("checkpoints.json")),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    // A file where the store's directory (made at open) should be: every write fails.
    std::fs::remove_dir(&blocker).unwrap();
    std::fs::write(&blocker, b"not a directory").unwrap();
    assert_eq!(c.age(), Duration::ZERO, "nothing to write yet");
    let (p, _) = c.resume("s1");
    lock(&p).sent(&[], "41");
    assert!(c.age() > Duration::ZERO, "a change not written yet");
    assert!(c.save().await.is_err());
    let failed = c.age();
    assert!(failed > Duration::ZERO, "a change waits");
    assert!(c.save().await.is_err());
    assert!(c.age() >= failed, "it keeps waiting");
    std::fs::remove_file(&blocker).unwrap();
    assert_eq!(c.save().await.unwrap(), 1, "the change was kept");
    assert_eq!(c.age(), Duration::ZERO);
}

const DAY: u64 = 24 * 3600;

/// The stream keys and times in the checkpoint file at `path`.
fn file_records(path: &std::path::Path) -> Vec<(String, String, Option<u64>)> {
    let records: Vec<record::Record> =
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    records
        .into_iter()
        .map(|r| (r.stream, r.last_event_id, r.seen))
        .collect()
}

fn keys(list: &[&str]) -> HashSet<String> {
    list.iter().map(|k| k.to_string()).collect()
}

/// Opens the file store at `path` keeping absent streams' records for a day, at most `max`.
async fn day_store(path: &std::path::Path, max: usize) -> Checkpoints {
    let policy = Policy {
        retention: Duration::from_secs(DAY),
        absent_max: max,
    };
    Checkpoints::open(&StoreConfig::File(path.into()), CancellationToken::new())
        .await
        .unwrap()
        .with_retention(policy, true)
}

/// Streams of resources replaced by others used to keep their records for ever: the file grew
/// with every rename. Now a record outlives its stream's last plan by the retention, across a
/// restart, and a stream restored within it resumes from its checkpoint.
#[tokio::test]
async fn the_file_store_drops_records_of_streams_gone_for_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoints.json");
    let t0 = unix_now();
    let c = day_store(&path, 100).await;
    c.planned(keys(&["a", "b", "c"]));
    for (k, id) in [("a", "1"), ("b", "2"), ("c", "3")] {
        let (p, _) = c.resume(k);
        lock(&p).sent(&[], id);
    }
    assert_eq!(c.save_at(t0).await.unwrap(), 3);
    // b and c are removed: nothing to write yet, their records stay.
    c.planned(keys(&["a"]));
    c.save_at(t0 + 10).await.unwrap();
    assert_eq!(file_records(&path).len(), 3);
    // c comes back within the day: it resumes where it was.
    c.planned(keys(&["a", "c"]));
    assert_eq!(c.resume("c").1, "3");
    c.save_at(t0 + 20).await.unwrap();
    let full = std::fs::metadata(&path).unwrap().len();
    drop(c);
    // After a restart b's removal time is still known: kept until a day after it.
    let c = day_store(&path, 100).await;
    c.planned(keys(&["a", "c"]));
    c.save_at(t0 + DAY - 1).await.unwrap();
    assert_eq!(file_records(&path).len(), 3, "within the retention");
    // The next sweep after the day (sweeps come every minute when the plan is unchanged).
    c.save_at(t0 + DAY - 1 + save::SWEEP_EVERY).await.unwrap();
    let left: Vec<String> = file_records(&path).into_iter().map(|r| r.0).collect();
    assert_eq!(left, ["a", "c"]);
    assert!(
        std::fs::metadata(&path).unwrap().len() < full,
        "the file shrank"
    );
    assert_eq!(c.resume("b").1, "", "a dropped record is not resumed from");
}

/// A storm of renames within the retention is bounded by the cap: the records of the streams
/// gone longest go first, whatever the retention.
#[tokio::test]
async fn the_records_of_absent_streams_are_capped_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoints.json");
    let c = day_store(&path, 2).await;
    let t0 = unix_now();
    for round in 0..5u64 {
        let key = format!("dev-{round}");
        c.planned(keys(&[&key]));
        let (p, _) = c.resume(&key);
        lock(&p).sent(&[], "7");
        c.save_at(t0 + round).await.unwrap();
    }
    c.planned(keys(&["dev-4"]));
    c.save_at(t0 + 5).await.unwrap();
    let left: Vec<String> = file_records(&path).into_iter().map(|r| r.0).collect();
    assert_eq!(
        left,
        ["dev-2", "dev-3", "dev-4"],
        "two absent kept, the newest"
    );
}

/// A zero retention drops a removed stream's record at the next save; records of an older
/// version (no time) count from the load; nothing is dropped before the first plan.
#[tokio::test]
async fn zero_retention_legacy_records_and_no_plan_yet() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoints.json");
    std::fs::write(
        &path,
        br#"[{"stream":"old","lastEventId":"1"},{"stream":"live","lastEventId":"2"}]"#,
    )
    .unwrap();
    let c = day_store(&path, 100).await;
    let now = unix_now();
    c.save_at(now + 2 * DAY).await.unwrap();
    assert_eq!(file_records(&path).len(), 2, "no plan yet: nothing dropped");
    c.planned(keys(&["live"]));
    c.save_at(now).await.unwrap();
    let times: Vec<Option<u64>> = file_records(&path).into_iter().map(|r| r.2).collect();
    assert!(
        times.iter().all(|t| t.is_some_and(|t| t >= now)),
        "{times:?}"
    );
    c.save_at(now + DAY + 5).await.unwrap();
    assert_eq!(file_records(&path).len(), 1, "counted from the load");
    let zero = Policy {
        retention: Duration::ZERO,
        absent_max: 100,
    };
    let c = Checkpoints::open(&StoreConfig::File(path.clone()), CancellationToken::new())
        .await
        .unwrap()
        .with_retention(zero, false);
    c.planned(keys(&["other"]));
    c.save_at(now).await.unwrap();
    assert!(file_records(&path).is_empty());
}

/// A broker save shares ingest's one runtime thread with the streams' readers: another task
/// gets a turn at least every [`broker::RECORDS_PER_TURN`] records (before, 4 turns while 300
/// records were saved: the save held the thread for rumqttc's whole request queue at a time).
#[tokio::test(flavor = "current_thread")]
async fn a_broker_save_of_many_records_lets_the_other_tasks_run_between_them() {
    const STREAMS: usize = 300;
    let mosquitto = sse_e2e::broker::Mosquitto::start().await.unwrap();
    let token = CancellationToken::new();
    let store = StoreConfig::Mqtt {
        broker: Broker::new(BrokerAddress::parse(&mosquitto.url()).unwrap()),
        prefix: "test/checkpoints".into(),
        client_id: None,
    };
    let c = Checkpoints::open(&store, token.clone()).await.unwrap();
    for i in 0..STREAMS {
        let key = format!("device/sse|http://source/s/{i}");
        let (p, _) = c.resume(&key);
        lock(&p).sent(&[1], &format!("id-{i}"));
        c.acked(&key, 1);
    }
    let (saved, turns) = crate::report::yields_during(c.save()).await;
    assert_eq!(saved.unwrap(), STREAMS);
    let chunks = STREAMS / broker::RECORDS_PER_TURN;
    assert!(
        turns >= chunks,
        "the other task ran {turns} times while {STREAMS} records were saved, {} at a time: the save held the thread",
        broker::RECORDS_PER_TURN
    );
    assert_eq!(c.save().await.unwrap(), 0, "nothing is saved twice");
    token.cancel();
}

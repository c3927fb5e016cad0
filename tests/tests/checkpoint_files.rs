//! The file checkpoint store as an operator meets it: a `--checkpoint-store` path that cannot
//! work (a directory, a path under a regular file, a device) exits 64 naming the flag and the
//! path, where ingest used to retry it for ever and read no stream; and a huge file at the path
//! (300 MB, sparse) is neither read into memory nor replaced, but kept aside. The records of
//! streams whose resources are gone are dropped once gone for the retention.

#![allow(clippy::unwrap_used, missing_docs)]

use sse_e2e::procs::{Service, connector_args, run_to_exit};
use sse_e2e::{eventually, resources::device_with_asset};

#[tokio::test]
async fn an_unusable_checkpoint_path_exits_64_naming_the_flag_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir(&res).unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = file.join("ck.json").display().to_string();
    let a_dir = res.display().to_string();
    for path in [a_dir.as_str(), &under_file, "/dev/null"] {
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--resources",
            &a_dir,
            "--checkpoint-store",
            path,
        ];
        let out = run_to_exit("sse-ingest", &args).await.unwrap();
        assert_eq!(out.code, Some(64), "{path}: {}", out.stderr);
        assert!(out.stderr.contains("--checkpoint-store"), "{}", out.stderr);
        assert!(out.stderr.contains(path), "{}", out.stderr);
    }
    // The same in one process: sse-connector stops before it would read a stream.
    let data = dir.path().join("data");
    let mut args = connector_args("mqtt://127.0.0.1:1", &res, &data);
    args.extend(["--listen", "127.0.0.1:0", "--checkpoint-store", &a_dir].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_to_exit("sse-connector", &args).await.unwrap();
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(out.stderr.contains("--checkpoint-store"), "{}", out.stderr);
    assert!(out.stderr.contains(&a_dir), "{}", out.stderr);
}

/// A checkpoint file of 300 MB (sparse: no disk used) is not read: ingest starts without
/// checkpoints, its memory stays small, and the file is kept aside for a person to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_checkpoint_file_is_kept_aside_unread() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir(&res).unwrap();
    let path = dir.path().join("ck.json");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let args = [
        "--schema",
        "http://127.0.0.1:9",
        "--resources",
        &res.display().to_string(),
        "--checkpoint-store",
        &path.display().to_string(),
    ]
    .map(String::from);
    let ingest = Service::start("sse-ingest", &args, &[]).await.unwrap();
    eventually("the checkpoints loaded", || {
        let text = ingest.log_text();
        async move { text.contains("checkpoints loaded").then_some(()) }
    })
    .await
    .unwrap();
    let peak = ingest.peak_rss_kib().unwrap();
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB: the file was read");
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ck.json.damaged-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let text = ingest.log_text();
    assert!(
        text.contains(&kept[0]),
        "the warning names where it was kept"
    );
}

/// The stream keys in the checkpoint file, with whether each carries its time (`seen`).
fn stored(path: &std::path::Path) -> Vec<(String, bool)> {
    let text = std::fs::read(path).unwrap_or_default();
    let records: Vec<serde_json::Value> = serde_json::from_slice(&text).unwrap_or_default();
    let mut keys: Vec<(String, bool)> = records
        .iter()
        .map(|r| {
            (
                r["stream"].as_str().unwrap().to_string(),
                r["seen"].is_u64(),
            )
        })
        .collect();
    keys.sort();
    keys
}

/// Waits until the checkpoint file holds exactly `want` (stream keys).
async fn file_holds(path: &std::path::Path, want: &[&str]) -> Vec<(String, bool)> {
    eventually(&format!("the checkpoint file to hold {want:?}"), || {
        let keys = stored(path);
        let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        let done = names == want;
        async move { done.then_some(keys) }
    })
    .await
    .unwrap()
}

/// Device churn used to grow the checkpoint file for ever: every record of a device renamed or
/// deleted stayed. Now a record whose stream is in no plan is dropped once gone for
/// `CHECKPOINT_RETENTION`, counted from the time the record carries (from the start for a record
/// without one); with a zero retention a stream removed while ingest runs loses its record at the
/// next save. (The environment, not the flag: a build without it still starts, and fails here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_removed_streams_are_dropped_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir(&res).unwrap();
    let closed = "http://127.0.0.1:9";
    for name in ["a", "b"] {
        let yaml = device_with_asset(name, closed, &[], "e2e");
        std::fs::write(res.join(format!("{name}.yaml")), yaml).unwrap();
    }
    let live = |name: &str| format!("dev-{name}/sse-0|{closed}/events");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let path = dir.path().join("ck.json");
    let records = serde_json::json!([
        { "stream": "gone-2h/sse-0|http://h/x", "lastEventId": "1", "seen": now - 7200 },
        { "stream": "gone-10m/sse-0|http://h/x", "lastEventId": "2", "seen": now - 600 },
        { "stream": "gone-untimed/sse-0|http://h/x", "lastEventId": "3" },
        { "stream": live("a"), "lastEventId": "4" },
        { "stream": live("b"), "lastEventId": "5" },
    ]);
    std::fs::write(&path, records.to_string()).unwrap();
    let args = [
        "--schema",
        "http://127.0.0.1:9",
        "--resources",
        &res.display().to_string(),
        "--checkpoint-store",
        &path.display().to_string(),
        "--checkpoint-interval",
        "100ms",
        "--reload-debounce",
        "0s",
    ]
    .map(String::from);
    let retention = |r: &str| [("CHECKPOINT_RETENTION".to_string(), r.to_string())];
    let mut ingest = Service::start("sse-ingest", &args, &retention("1h"))
        .await
        .unwrap();
    let (a, b) = (live("a"), live("b"));
    let want = [
        &a,
        &b,
        "gone-10m/sse-0|http://h/x",
        "gone-untimed/sse-0|http://h/x",
    ];
    let kept = file_holds(&path, &want).await;
    assert!(kept.iter().all(|(_, timed)| *timed), "{kept:?}");
    let logs = ingest.log_text();
    assert!(logs.contains("dropped=1"), "{logs}");
    assert!(
        !logs.contains("gone-2h"),
        "the dropped key is not logged: {logs}"
    );
    ingest.kill().await.unwrap();

    // With no retention, every record of a stream in no plan goes at the first save, and a
    // stream whose resources are deleted while ingest runs goes at the next.
    let mut ingest = Service::start("sse-ingest", &args, &retention("0s"))
        .await
        .unwrap();
    file_holds(&path, &[&a, &b]).await;
    std::fs::remove_file(res.join("b.yaml")).unwrap();
    file_holds(&path, &[&a]).await;
    ingest.kill().await.unwrap();
}

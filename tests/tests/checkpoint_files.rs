//! The file checkpoint store as an operator meets it: a `--checkpoint-store` path that cannot
//! work (a directory, a path under a regular file, a device) exits 64 naming the flag and the
//! path, where ingest used to retry it for ever and read no stream; and a huge file at the path
//! (300 MB, sparse) is neither read into memory nor replaced, but kept aside.

#![allow(clippy::unwrap_used, missing_docs)]

use sse_e2e::eventually;
use sse_e2e::procs::{Service, connector_args, run_to_exit};

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

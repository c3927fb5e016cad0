//! The publisher's tail limits are the operator's: `--tail-readers-max` and `--tail-queue` (and
//! their environment variables) on `sse-publisher` and on `sse-connector`, which lists each once;
//! a value out of range exits 64 naming the flag, and a publisher started with one tail slot
//! refuses a second tail with `RESOURCE_EXHAUSTED` naming the flag and its value.

#![allow(clippy::unwrap_used, missing_docs)]

use sse_e2e::broker::Mosquitto;
use sse_e2e::procs::{
    CONNECTOR_PUBLISHER_PRINTS, Service, connector_args, run_to_exit, run_to_exit_with,
};
use sse_proto::v1 as pb;

const BINARIES: [&str; 2] = ["sse-publisher", "sse-connector"];

#[tokio::test]
async fn out_of_range_tail_limits_exit_64_naming_the_flag() {
    for bin in BINARIES {
        for (flag, value) in [
            ("--tail-readers-max", "0"),
            ("--tail-readers-max", "257"),
            ("--tail-queue", "0"),
            ("--tail-queue", "4097"),
        ] {
            let out = run_to_exit(bin, &[flag, value]).await.unwrap();
            assert_eq!(out.code, Some(64), "{bin} {flag} {value}: {}", out.stderr);
            assert!(out.stderr.contains(flag), "{bin}: {}", out.stderr);
        }
        // The environment variable is checked as the flag is.
        let out = run_to_exit_with(bin, &[], &[("TAIL_QUEUE", "0")])
            .await
            .unwrap();
        assert_eq!(out.code, Some(64), "{bin} TAIL_QUEUE=0: {}", out.stderr);
        assert!(out.stderr.contains("--tail-queue"), "{bin}: {}", out.stderr);
    }
}

#[tokio::test]
async fn help_lists_each_tail_flag_once_with_its_default() {
    for bin in BINARIES {
        let out = run_to_exit(bin, &["--help"]).await.unwrap();
        assert_eq!(out.code, Some(0), "{bin}: {}", out.stderr);
        for (flag, env, default) in [
            ("--tail-readers-max", "TAIL_READERS_MAX", "[default: 8]"),
            ("--tail-queue", "TAIL_QUEUE", "[default: 64]"),
        ] {
            let at: Vec<_> = out.stdout.match_indices(&format!("{flag} ")).collect();
            assert_eq!(
                at.len(),
                1,
                "{bin} --help names {flag} once:\n{}",
                out.stdout
            );
            let entry = &out.stdout[at[0].0..];
            let entry = &entry[..entry.find("\n\n").unwrap_or(entry.len())];
            assert!(entry.contains(env), "{bin} {flag}: {entry}");
            assert!(entry.contains(default), "{bin} {flag}: {entry}");
        }
    }
}

/// Opens a tail on `url` and returns the stream, or the refusal.
async fn tail(url: &str) -> Result<tonic::Streaming<pb::TailResponse>, tonic::Status> {
    let mut client = pb::publisher_service_client::PublisherServiceClient::connect(url.to_string())
        .await
        .unwrap();
    client
        .tail(pb::TailRequest::default())
        .await
        .map(tonic::Response::into_inner)
}

/// With one slot, the first tail holds it and the second is refused naming the flag and value;
/// once the first closes, a tail opens again.
async fn one_slot(url: &str) {
    let first = sse_e2e::eventually("the publisher answers Tail", || async {
        tail(url).await.ok()
    })
    .await
    .unwrap();
    let refused = tail(url).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
    assert!(
        refused.message().contains("--tail-readers-max=1"),
        "{}",
        refused.message()
    );
    drop(first);
    // The publisher frees the slot when it sees the stream reset: poll for it.
    sse_e2e::eventually("the closed tail's slot is free", || async {
        tail(url).await.ok()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_with_one_tail_slot_refuses_the_second_naming_the_flag() {
    let broker = Mosquitto::start().await.unwrap();
    let args = ["--mqtt-url", &broker.url(), "--tail-readers-max", "1"].map(String::from);
    let publisher = Service::start("sse-publisher", &args, &[]).await.unwrap();
    one_slot(&publisher.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_hands_the_tail_limit_to_its_publisher() {
    let broker = Mosquitto::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (res, data) = (dir.path().join("resources"), dir.path().join("schemas"));
    std::fs::create_dir_all(&res).unwrap();
    let mut args = connector_args(&broker.url(), &res, &data);
    args.push("--tail-readers-max=1".into());
    let connector = Service::start("sse-connector", &args, &[]).await.unwrap();
    let publisher = connector
        .printed_addr(CONNECTOR_PUBLISHER_PRINTS)
        .await
        .unwrap();
    one_slot(&format!("http://{publisher}")).await;
}

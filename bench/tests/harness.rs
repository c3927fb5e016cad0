//! The harness's own parts against real sockets and a real Mosquitto: the load source resumes
//! after `Last-Event-ID` and keeps its schedule, and the subscriber counts what the raw publisher
//! sends without loss, and the skeleton contender's three processes (plaintext and over mTLS)
//! and the connector contender carry every SSE event to it; a window reads the broker's CPU.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use sse_bench::contender::{Contender, Kind};
use sse_bench::payload;
use sse_bench::pipeline::Connector;
use sse_bench::raw::RawPublisher;
use sse_bench::skeleton::Skeleton;
use sse_bench::source::LoadSource;
use sse_bench::subscriber::Subscriber;
use sse_e2e::broker::Mosquitto;
use sse_e2e::mtls::{Client, Identity, grpcurl};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads the raw HTTP response of `path` until `until` appears, with a deadline.
async fn read_until(addr: &str, path: &str, header: &str, until: &str) -> String {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{header}\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut text = String::new();
    let mut buf = vec![0u8; 16 * 1024];
    tokio::time::timeout(Duration::from_secs(20), async {
        while !text.contains(until) {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed early: {text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {until:?} in {text}"));
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_resumes_after_last_event_id() {
    let src = LoadSource::start(2, Duration::from_secs(15)).await.unwrap();
    let addr = src.base_url().trim_start_matches("http://").to_string();
    src.send_until(4, None);
    let text = read_until(&addr, "/s/1", "Last-Event-ID: 2\r\n", "id: 4\n").await;
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    assert!(!text.contains("id: 2\n"), "resumed after 2: {text}");
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.len(), 2, "{text}");
    let stamp = payload::parse(data[0].as_bytes()).unwrap();
    assert_eq!((stamp.stream, stamp.seq), (1, 3));
    assert_eq!(data[0].len(), payload::PAYLOAD_BYTES);
    let missing = read_until(&addr, "/s/2", "", "\r\n\r\n").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_spreads_a_rated_burst_over_streams() {
    let src = LoadSource::start(2, Duration::from_secs(15)).await.unwrap();
    let addr = src.base_url().trim_start_matches("http://").to_string();
    let reader = tokio::spawn({
        let addr = addr.clone();
        async move { read_until(&addr, "/s/0", "", "id: 10\n").await }
    });
    sse_e2e::eventually("the stream open", || async {
        (src.open_streams() == 1).then_some(())
    })
    .await
    .unwrap();
    let start = std::time::Instant::now();
    // 20 events over 2 streams at 200 events/s: the 10th of stream 0 is due at 90 ms.
    src.send_until(10, Some(200.0));
    let text = reader.await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(90),
        "{:?}",
        start.elapsed()
    );
    let seqs: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| payload::parse(d.as_bytes()))
        .map(|s| s.seq)
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_counts_every_raw_event_at_qos1() {
    let broker = Mosquitto::start().await.unwrap();
    let mut sub = Subscriber::connect(broker.port, "t/raw", 3).await.unwrap();
    let raw = RawPublisher::connect(broker.port, "t/raw", 3)
        .await
        .unwrap();
    sub.expect(0, 500);
    raw.send(1, 500, None).await.unwrap();
    let out = sub.wait(Duration::from_secs(20)).await;
    assert_eq!(
        (out.expected, out.received, out.lost, out.duplicates),
        (1500, 1500, 0, 0)
    );
    assert_eq!(out.out_of_order, 0);
    assert_eq!(out.latencies_ns.len(), 1500);
    // Every counted event is in the window's latency series, in one 100 ms bucket or another.
    assert_eq!(out.series.count.iter().sum::<u64>(), 1500);
    assert_eq!(out.series.bucket_ms, 100);
    assert!(out.complete_at.is_some());
    // The next window: events of the first one count as duplicates, not as received.
    sub.expect(500, 505);
    raw.send(499, 505, None).await.unwrap();
    let out = sub.wait(Duration::from_secs(20)).await;
    assert_eq!((out.received, out.lost, out.duplicates), (15, 0, 6));
    broker.stop().await;
}

/// Starts the skeleton (over mTLS or not) for 3 streams of a new source, checks that it carries
/// 200 events of each to the broker at QoS 1, and returns it running.
async fn skeleton_carries_600(broker: &Mosquitto, mtls: bool, prefix: &str) -> Skeleton {
    let src = LoadSource::start(3, Duration::from_secs(15)).await.unwrap();
    let mut sub = Subscriber::connect(broker.port, prefix, 3).await.unwrap();
    let bins = sse_e2e::procs::bin_dir();
    let skeleton = Skeleton::start(&bins, broker, &src, 3, prefix, mtls)
        .await
        .unwrap();
    sse_e2e::eventually("the skeleton reading every stream", || async {
        (src.open_streams() == 3).then_some(())
    })
    .await
    .unwrap();
    sub.expect(0, 200);
    src.send_until(200, None);
    let out = sub.wait(Duration::from_secs(20)).await;
    assert_eq!(
        (out.expected, out.received, out.lost, out.duplicates),
        (600, 600, 0, 0),
        "{}",
        skeleton.log_tail()
    );
    assert_eq!(out.out_of_order, 0);
    skeleton
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skeleton_carries_every_sse_event_at_qos1() {
    let broker = Mosquitto::start().await.unwrap();
    skeleton_carries_600(&broker, false, "t/skel").await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skeleton_mtls_carries_every_event_and_mid_refuses_a_client_without_a_certificate() {
    let broker = Mosquitto::start().await.unwrap();
    let skeleton = skeleton_carries_600(&broker, true, "t/skel-mtls").await;
    let mid = skeleton.mid_addr().to_string();
    let pki = sse_bench::pipeline::test_ca().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let probe = Identity::issue(tmp.path(), pki, "probe", &pki.ca_pem).unwrap();
    let method = ["sseconnector.v1.SchemaService/ListSchemas"];
    // No client certificate: the TLS handshake fails, no gRPC call is made.
    let o = grpcurl(&mid, Client::NoCert { ca: &probe.ca }, None, &method)
        .await
        .unwrap();
    assert!(!o.ok, "call succeeded: {}", o.stdout);
    assert!(
        o.stderr.contains("Failed to dial target host"),
        "{}",
        o.stderr
    );
    // Plaintext: refused too, before any gRPC answer (a plaintext server would say it has no
    // reflection, as below).
    let o = grpcurl(&mid, Client::Plain, None, &method).await.unwrap();
    assert!(!o.ok, "call succeeded: {}", o.stdout);
    assert!(!o.stderr.contains("reflection"), "{o:?}");
    // A certificate of the CA gets a session (the skeleton serves no reflection, so grpcurl
    // stops at gRPC, after the handshake).
    let o = grpcurl(&mid, Client::As(&probe), None, &method)
        .await
        .unwrap();
    assert!(!o.stderr.contains("Failed to dial target host"), "{o:?}");
    assert!(o.stderr.contains("reflection"), "{o:?}");
    broker.stop().await;
}

#[test]
fn skeleton_exits_64_on_partial_tls_flags_or_a_plaintext_next_under_mtls() {
    let bin = sse_e2e::procs::bin_dir().join(sse_bench::skeleton::BINARY);
    let tmp = tempfile::tempdir().unwrap();
    let pki = sse_bench::pipeline::test_ca().unwrap();
    let id = Identity::issue(tmp.path(), pki, "skeleton-mid", &pki.ca_pem).unwrap();
    let run = |args: &[String]| {
        std::process::Command::new(&bin)
            .args(args)
            .output()
            .unwrap()
    };
    let mut partial = vec!["mid".into(), "--next".into(), "https://127.0.0.1:1".into()];
    partial.extend(id.flags().into_iter().take(4));
    let o = run(&partial);
    assert_eq!(o.status.code(), Some(64), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--grpc-tls-key missing"),
        "{o:?}"
    );
    let mut plain_next = vec!["mid".into(), "--next".into(), "http://127.0.0.1:1".into()];
    plain_next.extend(id.flags());
    let o = run(&plain_next);
    assert_eq!(o.status.code(), Some(64), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("https://"),
        "{o:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_contender_carries_every_sse_event_and_counts_its_cpu() {
    let broker = Mosquitto::start().await.unwrap();
    let src = LoadSource::start(3, Duration::from_secs(15)).await.unwrap();
    let mut sub = Subscriber::connect(broker.port, "t/conn", 3).await.unwrap();
    let bins = sse_e2e::procs::bin_dir();
    let connector = Connector::start(&bins, &broker, &src, 3, "t/conn")
        .await
        .unwrap();
    sse_e2e::eventually("the connector reading every stream", || async {
        (src.open_streams() == 3).then_some(())
    })
    .await
    .unwrap();
    let before = connector.cpu();
    sub.expect(0, 200);
    src.send_until(200, None);
    let out = sub.wait(Duration::from_secs(30)).await;
    assert_eq!(
        (out.expected, out.received, out.lost, out.duplicates),
        (600, 600, 0, 0),
        "{}",
        connector.log_tail()
    );
    assert_eq!(out.out_of_order, 0);
    assert!(connector.cpu() > before, "the connector's CPU time is read");
    broker.stop().await;
}

/// A window reads the broker's CPU time beside the contender's, so the cost a client's way of
/// writing moves into the broker is seen too; raw bridges nothing and has no CPU of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_reads_the_brokers_cpu_too() {
    let broker = Mosquitto::start().await.unwrap();
    let mut raw = Contender::start(Kind::Raw, &broker, 2).await.unwrap();
    let r = raw
        .window(100, Some(1000.0), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!((r.events, r.lost), (200, 0));
    assert_eq!(r.cpu_us_per_event, None);
    let broker_cpu = r
        .broker_cpu_us_per_event
        .expect("the broker's CPU time is read");
    assert!(broker_cpu >= 0.0 && broker_cpu.is_finite(), "{broker_cpu}");
    drop(raw);
    broker.stop().await;
}

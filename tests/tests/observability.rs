//! Observability end to end, with the real binaries: the admin port (`--admin-listen`) serves
//! Prometheus `/metrics`, `/healthz` and `/readyz` (following the same readiness as gRPC
//! health); metrics and logs reach an in-test OTLP receiver over gRPC (plaintext and TLS with
//! the Azure contract's CA variable) and over HTTP/protobuf, from the standard and the Azure
//! variables; the warning about a refused event carries that event's trace id; and a bad
//! telemetry setting exits 64 naming it.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;

use sse_contract::metrics as catalogue;
use sse_e2e::broker::Mosquitto;
use sse_e2e::otlp::OtlpReceiver;
use sse_e2e::pki::Pki;
use sse_e2e::procs::{Service, connector_args, run_to_exit_with};
use sse_e2e::{DEADLINE, admin, eventually};
use sse_proto::v1 as pb;
use sse_proto::v1::publisher_service_client::PublisherServiceClient;

const ADMIN: &str = "127.0.0.1:0";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    // Exports every 200 ms, so the test waits for data, not for the SDK's 60 s.
    let mut v = vec![("OTEL_METRIC_EXPORT_INTERVAL".to_string(), "200".to_string())];
    v.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    v
}

async fn admin_addr(s: &Service) -> SocketAddr {
    s.printed_addr(&format!("{} admin listening on ", s.name))
        .await
        .unwrap()
}

/// Waits until `/readyz` at `addr` answers `want`.
async fn until_readyz(addr: SocketAddr, want: u16) {
    eventually(&format!("/readyz {want}"), || async move {
        let r = admin::get(addr, "/readyz").await.ok()?;
        (r.status == want).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_port_serves_metrics_health_and_readiness() {
    let broker = Mosquitto::start().await.unwrap();
    // The schema service is ready while a publisher answers: none yet at this address. The
    // port stays held (connections wait unanswered in its backlog) until the publisher starts
    // on it, so no other test's process can take it meanwhile.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let publisher_at = holder.local_addr().unwrap();
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--publisher".to_string(),
        format!("http://{publisher_at}"),
        "--data-dir".into(),
        data.path().display().to_string(),
        "--admin-listen".into(),
        ADMIN.into(),
    ];
    let schema = Service::start("sse-schema", &args, &[]).await.unwrap();
    let addr = admin_addr(&schema).await;

    let health = admin::get(addr, "/healthz").await.unwrap();
    assert_eq!(health.status, 200, "{health:?}");
    let ready = admin::get(addr, "/readyz").await.unwrap();
    assert_eq!(ready.status, 503, "no publisher yet: {ready:?}");

    let args = ["--mqtt-url".to_string(), broker.url()];
    drop(holder);
    let _publisher = Service::start_on("sse-publisher", publisher_at, &args, &[])
        .await
        .unwrap();
    until_readyz(addr, 200).await;

    let metrics = admin::get(addr, "/metrics").await.unwrap();
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert!(metrics.body.contains("target_info{"), "{}", metrics.body);
    assert!(
        metrics.body.contains(r#"service_name="sse-schema""#),
        "{}",
        metrics.body
    );
    assert!(
        metrics.body.contains(catalogue::LABELS_FOLDED.prometheus),
        "{}",
        metrics.body
    );

    assert_eq!(admin::get(addr, "/nothing").await.unwrap().status, 404);
    // Bounded request heads: 16 KiB, 32 headers.
    let big = format!("X-Big: {}\r\n", "a".repeat(20 * 1024));
    let r = admin::send(addr, "GET", "/healthz", &big).await.unwrap();
    assert_eq!(r.status, 431, "{r:?}");
    let many: String = (0..40).map(|i| format!("X-{i}: v\r\n")).collect();
    let r = admin::send(addr, "GET", "/healthz", &many).await.unwrap();
    assert_eq!(r.status, 431, "{r:?}");
    let post = admin::request(addr, "POST", "/metrics").await.unwrap();
    assert_eq!(post.status, 405, "{post:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_has_one_admin_port_ready_when_all_three_are() {
    let broker = Mosquitto::start().await.unwrap();
    let help = run_to_exit_with("sse-connector", &["--help"], &[])
        .await
        .unwrap();
    assert_eq!(help.code, Some(0));
    assert_eq!(
        help.stdout.matches("--admin-listen").count(),
        1,
        "{}",
        help.stdout
    );
    assert_eq!(help.stdout.matches("--metrics-label-values").count(), 1);

    let data = tempfile::tempdir().unwrap();
    let resources = tempfile::tempdir().unwrap();
    let mut args = connector_args(&broker.url(), resources.path(), data.path());
    args.extend([
        "--checkpoint-store".into(),
        "none".into(),
        "--admin-listen".into(),
        ADMIN.into(),
    ]);
    let connector = Service::start("sse-connector", &args, &[]).await.unwrap();
    let addr = admin_addr(&connector).await;
    until_readyz(addr, 200).await;
    let metrics = admin::get(addr, "/metrics").await.unwrap();
    assert!(
        metrics.body.contains(r#"service_name="sse-connector""#),
        "{}",
        metrics.body
    );
}

/// An event for the publisher on `topic`, in the trace `traceparent` names.
fn event(seq: u64, topic: &str, traceparent: &str) -> pb::Event {
    pb::Event {
        id: format!("ev-{seq}"),
        seq,
        stream_key: "observability".into(),
        data: br#"{"n":1}"#.to_vec().into(),
        traceparent: traceparent.into(),
        route: Some(pb::Route {
            device: "dev".into(),
            endpoint: "sse-0".into(),
            asset: "a".into(),
            kind: pb::RouteKind::Dataset as i32,
            group: "g".into(),
            destination: Some(pb::Destination {
                target: Some(pb::destination::Target::Mqtt(pb::MqttDestination {
                    topic: topic.into(),
                    qos: pb::Qos::AtLeastOnce as i32,
                    retain: false,
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Sends `events` on one Publish stream and waits for their acks.
async fn publish(publisher: &Service, events: Vec<pb::Event>) -> Vec<pb::Ack> {
    let mut client = PublisherServiceClient::connect(publisher.url())
        .await
        .unwrap();
    let want = events.len();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::PublishRequest {
        events,
        ack_now: false,
    })
    .await
    .unwrap();
    let mut acks_stream = client
        .publish(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut acks = Vec::new();
    while acks.len() < want {
        let resp = tokio::time::timeout(DEADLINE, acks_stream.message())
            .await
            .expect("acks in time")
            .unwrap()
            .unwrap();
        acks.extend(resp.acks);
    }
    acks
}

/// Waits until `receiver` got `sse_connector.labels.folded` from `service`.
async fn until_metric(receiver: &OtlpReceiver, service: &str) {
    eventually(&format!("{service}'s metrics at the receiver"), || async {
        receiver
            .metrics()
            .iter()
            .any(|m| m.service == service && m.name == catalogue::LABELS_FOLDED.name)
            .then_some(())
    })
    .await
    .unwrap();
}

/// Waits until `receiver` got a log record from `service` whose body contains `text`.
async fn until_log(receiver: &OtlpReceiver, service: &str, text: &str) -> sse_e2e::otlp::LogRecord {
    eventually(
        &format!("{service}'s log {text:?} at the receiver"),
        || async {
            receiver
                .logs()
                .into_iter()
                .find(|l| l.service == service && l.body.contains(text))
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_logs_arrive_over_grpc_and_a_refusal_names_its_trace() {
    let broker = Mosquitto::start().await.unwrap();
    let receiver = OtlpReceiver::start().await.unwrap();
    let endpoint = receiver.endpoint();
    let envs = env(&[
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &endpoint),
    ]);
    let args = ["--mqtt-url".to_string(), broker.url()];
    let publisher = Service::start("sse-publisher", &args, &envs).await.unwrap();
    until_metric(&receiver, "sse-publisher").await;

    // An event on a topic the connector owns is refused; the warning about it carries its trace.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let acks = publish(&publisher, vec![event(1, "$SYS/e2e", &traceparent)]).await;
    assert!(acks[0].error.starts_with("permission denied"), "{acks:?}");
    let warning = until_log(&receiver, "sse-publisher", "event not published").await;
    assert_eq!(warning.trace_id, trace, "{warning:?}");
    assert_eq!(warning.severity, "WARN");
    assert_eq!(warning.span_id.len(), 16, "{warning:?}");
    assert!(
        receiver.spans().is_empty(),
        "no traces endpoint, no spans: {:?}",
        receiver.spans()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_in_an_exported_event_span_carries_that_span() {
    // The broker refuses one topic (its ACL): the publisher's warning about the refused event
    // is written inside the event's exported span, with no context attached by hand.
    let acl_dir = tempfile::tempdir().unwrap();
    let acl = sse_e2e::write_file(
        acl_dir.path(),
        "acl",
        "topic readwrite #\ntopic deny e2e/denied\n",
    );
    std::fs::set_permissions(
        acl_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(&acl, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let broker = Mosquitto::start_with(&[&format!("acl_file {acl}")])
        .await
        .unwrap();
    let receiver = OtlpReceiver::start().await.unwrap();
    let endpoint = receiver.endpoint();
    let envs = env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", &endpoint),
    ]);
    let args = ["--mqtt-url".to_string(), broker.url()];
    let publisher = Service::start("sse-publisher", &args, &envs).await.unwrap();

    let trace = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace}-b7ad6b7169203331-01");
    let acks = publish(&publisher, vec![event(1, "e2e/denied", &traceparent)]).await;
    assert_ne!(acks[0].error, "", "the broker refused it: {acks:?}");
    let warning = until_log(&receiver, "sse-publisher", "event not published").await;
    assert_eq!(warning.trace_id, trace, "{warning:?}");
    let span = eventually("the event's publish span", || async {
        receiver
            .spans()
            .into_iter()
            .find(|s| s.trace_id == trace && s.service == "sse-publisher")
    })
    .await
    .unwrap();
    assert_eq!(
        warning.span_id, span.span_id,
        "the log is the span's: {warning:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_grpc_variables_reach_a_tls_collector_trusting_its_ca_file() {
    let broker = Mosquitto::start().await.unwrap();
    let pki = Pki::new().unwrap();
    let leaf = pki.server(&["localhost"]).unwrap();
    let receiver = OtlpReceiver::start_tls(pki.server_config(&leaf, false).unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = sse_e2e::write_file(dir.path(), "ca.pem", &pki.ca_pem);
    let endpoint = receiver.endpoint();
    assert!(endpoint.starts_with("https://"), "{endpoint}");
    let envs = env(&[
        ("OTLP_GRPC_METRIC_ENDPOINT", &endpoint),
        ("OTLP_GRPC_LOG_ENDPOINT", &endpoint),
        ("FIRST_PARTY_OTLP_GRPC_METRICS_COLLECTOR_CA_PATH", &ca),
        ("FIRST_PARTY_OTLP_GRPC_LOG_COLLECTOR_CA_PATH", &ca),
    ]);
    let args = ["--mqtt-url".to_string(), broker.url()];
    let _publisher = Service::start("sse-publisher", &args, &envs).await.unwrap();
    until_metric(&receiver, "sse-publisher").await;
    until_log(&receiver, "sse-publisher", "exporting over OTLP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_logs_arrive_over_http_from_standard_and_azure_variables() {
    let broker = Mosquitto::start().await.unwrap();
    let args = ["--mqtt-url".to_string(), broker.url()];

    let receiver = OtlpReceiver::start_http().await.unwrap();
    let endpoint = receiver.endpoint();
    let envs = env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_TRACES_EXPORTER", "none"),
    ]);
    let _standard = Service::start("sse-publisher", &args, &envs).await.unwrap();
    until_metric(&receiver, "sse-publisher").await;
    until_log(&receiver, "sse-publisher", "exporting over OTLP").await;

    let receiver = OtlpReceiver::start_http().await.unwrap();
    let endpoint = receiver.endpoint();
    let envs = env(&[
        ("OTLP_HTTP_METRIC_ENDPOINT", &endpoint),
        ("OTLP_HTTP_LOG_ENDPOINT", &format!("{endpoint}/v1/logs")),
        ("OTEL_SERVICE_NAME", "azure-http"),
    ]);
    let _azure = Service::start("sse-publisher", &args, &envs).await.unwrap();
    until_metric(&receiver, "azure-http").await;
    until_log(&receiver, "azure-http", "exporting over OTLP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_export_reaches_a_tls_collector_trusting_the_azure_ca_file() {
    let broker = Mosquitto::start().await.unwrap();
    let pki = Pki::new().unwrap();
    let leaf = pki.server(&["localhost"]).unwrap();
    let receiver = OtlpReceiver::start_http_tls(pki.server_config(&leaf, false).unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = sse_e2e::write_file(dir.path(), "ca.pem", &pki.ca_pem);
    let endpoint = receiver.endpoint();
    let envs = env(&[
        ("OTLP_HTTP_METRIC_ENDPOINT", &endpoint),
        ("FIRST_PARTY_OTLP_GRPC_METRICS_COLLECTOR_CA_PATH", &ca),
    ]);
    let args = ["--mqtt-url".to_string(), broker.url()];
    let _publisher = Service::start("sse-publisher", &args, &envs).await.unwrap();
    until_metric(&receiver, "sse-publisher").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_logs_are_flushed_when_the_process_stops() {
    let broker = Mosquitto::start().await.unwrap();
    let receiver = OtlpReceiver::start().await.unwrap();
    let endpoint = receiver.endpoint();
    // The SDK's 60 s export period: only the flush at exit sends anything within the test.
    let envs: Vec<(String, String)> = [
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", endpoint.as_str()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "600000"),
        ("OTEL_BLRP_SCHEDULE_DELAY", "600000"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let args = [
        "--mqtt-url".to_string(),
        broker.url(),
        "--admin-listen".into(),
        ADMIN.into(),
    ];
    let mut publisher = Service::start("sse-publisher", &args, &envs).await.unwrap();
    // Ready: it runs its service, so SIGTERM is a shutdown, not a kill.
    until_readyz(admin_addr(&publisher).await, 200).await;
    let status = publisher.terminate(DEADLINE).await.unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        receiver
            .metrics()
            .iter()
            .any(|m| m.name == catalogue::LABELS_FOLDED.name),
        "{:?}",
        receiver.metrics()
    );
    assert!(
        receiver
            .logs()
            .iter()
            .any(|l| l.body == "exporting over OTLP"),
        "{:?}",
        receiver.logs()
    );
}

/// Extra flags, extra variables, and what the error message must name.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[tokio::test]
async fn bad_telemetry_settings_exit_64_naming_them() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let base = ["--mqtt-url", "mqtt://127.0.0.1:1"];
    let cases: Vec<Case> = vec![
        (
            vec![],
            vec![
                // (the kit removes OTEL_EXPORTER_OTLP_ENDPOINT from every child's environment)
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://127.0.0.1:4317",
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
            ],
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            vec![],
            vec![("OTLP_GRPC_METRIC_ENDPOINT", "collector:4317")],
            "OTLP_GRPC_METRIC_ENDPOINT",
        ),
        (
            vec![],
            vec![
                ("OTLP_GRPC_LOG_ENDPOINT", "https://localhost:4317"),
                (
                    "FIRST_PARTY_OTLP_GRPC_LOG_COLLECTOR_CA_PATH",
                    "/nonexistent/ca.pem",
                ),
            ],
            "/nonexistent/ca.pem",
        ),
        (
            vec!["--metrics-label-values", "0"],
            vec![],
            "--metrics-label-values",
        ),
        (
            vec!["--metrics-label-values", "10001"],
            vec![],
            "--metrics-label-values",
        ),
        (
            vec![],
            vec![("ADMIN_LISTEN", "not-an-address")],
            "--admin-listen",
        ),
        (vec!["--admin-listen", &taken], vec![], &taken),
    ];
    for (extra, envs, names) in cases {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let out = run_to_exit_with("sse-publisher", &args, &envs)
            .await
            .unwrap();
        assert_eq!(out.code, Some(64), "{args:?} {envs:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(names),
            "{args:?} {envs:?}: {}",
            out.stderr
        );
    }
}

//! End to end, readiness: the schema service is SERVING while a publisher answers and turns
//! NOT_SERVING when it loses every publisher, then SERVING again once one is back (grpcurl asks
//! `grpc.health.v1.Health/Check`, as a kubelet's probe does).

#![allow(clippy::unwrap_used, missing_docs)]

use sse_e2e::broker::Mosquitto;
use sse_e2e::mtls::health_check;
use sse_e2e::procs::Service;

/// Waits until `addr` reports `want` (`SERVING`, `NOT_SERVING`) for the overall status and
/// for `SchemaService`.
async fn until_status(addr: &str, want: &'static str) {
    let quoted = format!("\"{want}\"");
    for service in ["", "sseconnector.v1.SchemaService"] {
        sse_e2e::eventually(&format!("{service:?} {want} on {addr}"), || {
            let quoted = quoted.clone();
            async move {
                let out = health_check(addr, service).await.ok()?;
                out.stdout.contains(&quoted).then_some(())
            }
        })
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn schema_turns_not_serving_when_it_loses_every_publisher_and_back() {
    let broker = Mosquitto::start().await.unwrap();
    let mut publisher = Service::start("sse-publisher", &["--mqtt-url".into(), broker.url()], &[])
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let args = [
        "--publisher".to_string(),
        publisher.url(),
        "--data-dir".into(),
        data.path().display().to_string(),
    ];
    let schema = Service::start("sse-schema", &args, &[]).await.unwrap();
    let addr = schema.addr.to_string();
    until_status(&addr, "SERVING").await;

    publisher.kill().await.unwrap();
    until_status(&addr, "NOT_SERVING").await;

    publisher.restart().await.unwrap();
    until_status(&addr, "SERVING").await;
}

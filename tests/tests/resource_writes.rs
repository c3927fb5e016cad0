//! Resources written over gRPC, end to end: grpcurl calls `PutResource` / `DeleteResource` on
//! the real `sse-ingest`, the directory watcher applies what they wrote, and events flow to a
//! real Mosquitto. Bad documents are refused per field with INVALID_ARGUMENT, a read-only
//! resources directory, ADR mode and a device its assets still use with FAILED_PRECONDITION; under mTLS only the console
//! identity writes, and without it only over loopback.

#![allow(clippy::unwrap_used, missing_docs)]

use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::mtls::{Client, LoneIngest, grpcurl as grpcurl_as};
use sse_e2e::procs::Service;
use sse_e2e::source::{SseSource, block, by_path};
use sse_e2e::stack::{Pipeline, PipelineArgs};
use sse_e2e::{eventually, grpcurl};

const PUT: &str = "sseconnector.v1.IngestService/PutResource";
const DELETE: &str = "sseconnector.v1.IngestService/DeleteResource";
const GET: &str = "sseconnector.v1.IngestService/GetResource";
const STREAMS: &str = "sseconnector.v1.IngestService/ListStreams";
const STATUS: &str = "sseconnector.v1.IngestService/GetStatus";
const HEAD: &str = "apiVersion: namespaces.deviceregistry.microsoft.com/v1";

fn device(base: &str) -> String {
    format!(
        "{HEAD}\nkind: Device\nmetadata: {{ name: plant }}\nspec:\n  endpoints:\n    inbound:\n      sse: {{ endpointType: Microsoft.SSEHttp, address: \"{base}\" }}\n"
    )
}

fn asset(device: &str, qos: &str) -> String {
    format!(
        "{HEAD}\nkind: Asset\nmetadata: {{ name: line }}\nspec:\n  deviceRef: {{ deviceName: {device}, endpointName: sse }}\n  datasets:\n    - name: temps\n      dataSource: /temps\n      destinations: [ {{ target: Mqtt, configuration: {{ topic: e2e/temps, qos: {qos} }} }} ]\n"
    )
}

fn put(yaml: &str) -> String {
    json!({ "yaml": yaml }).to_string()
}

async fn streams(addr: &str) -> Vec<Value> {
    let v = grpcurl::call_json(addr, None, &[STREAMS]).await.unwrap();
    v["streams"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_written_over_grpc_start_and_stop_streams() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/#").await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(
        listener,
        by_path(|p| (p == "/temps").then(|| vec![block(Some("1"), None, r#"{"t":21.5}"#)])),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let pipeline = Pipeline::start(PipelineArgs::plain(broker.url(), dir.path(), &res))
        .await
        .unwrap();
    let addr = pipeline.ingest.addr.to_string();

    // An asset naming a device that does not exist is refused, naming the field.
    let r = grpcurl::call_refused(&addr, Some(&put(&asset("plant", "Qos1"))), &[PUT])
        .await
        .unwrap();
    assert_eq!(r.code, "InvalidArgument", "{r:?}");
    assert!(r.message.contains("spec.deviceRef.deviceName"), "{r:?}");
    // Reflection describes google.rpc's details, so grpcurl shows the field violation itself.
    assert!(
        r.details.contains(r#""field":"spec.deviceRef.deviceName""#),
        "{r:?}"
    );

    let d = grpcurl::call_json(&addr, Some(&put(&device(&source.base_url()))), &[PUT])
        .await
        .unwrap();
    assert_eq!(
        (d["kind"].as_str(), d["created"].as_bool()),
        (Some("Device"), Some(true))
    );
    assert!(res.join("device-plant.yaml").is_file());

    // A bad dataset: refused per field, nothing written.
    let r = grpcurl::call_refused(&addr, Some(&put(&asset("plant", "Qos9"))), &[PUT])
        .await
        .unwrap();
    assert_eq!(r.code, "InvalidArgument", "{r:?}");
    assert!(r.message.contains("spec.datasets[temps]"), "{r:?}");
    assert!(!res.join("asset-line.yaml").exists());

    // The good asset: the watcher starts its stream and the event arrives on MQTT.
    grpcurl::call_json(&addr, Some(&put(&asset("plant", "Qos1"))), &[PUT])
        .await
        .unwrap();
    let got = sub
        .wait_until("the event of the written asset", |m| {
            m.iter().any(|m| m.topic == "e2e/temps")
        })
        .await
        .unwrap();
    assert!(got.iter().any(|m| m.text().contains("21.5")), "{got:?}");
    let read = grpcurl::call_json(&addr, Some(r#"{"kind":"Asset","name":"line"}"#), &[GET])
        .await
        .unwrap();
    assert_eq!(read["yaml"].as_str(), Some(asset("plant", "Qos1").as_str()));
    assert!(read.get("readOnlyReason").is_none(), "{read}");

    // The device its asset still uses is not deleted: the asset would point at nothing.
    let plant = r#"{"kind":"Device","name":"plant"}"#;
    let r = grpcurl::call_refused(&addr, Some(plant), &[DELETE])
        .await
        .unwrap();
    assert_eq!(r.code, "FailedPrecondition", "{r:?}");
    assert!(
        r.message
            .contains("Device/plant is still used by 1 asset (line)"),
        "{r:?}"
    );
    assert!(res.join("device-plant.yaml").is_file());

    // Deleting the asset stops its stream.
    assert!(!streams(&addr).await.is_empty());
    grpcurl::call_json(&addr, Some(r#"{"kind":"Asset","name":"line"}"#), &[DELETE])
        .await
        .unwrap();
    eventually("the stream to stop", || {
        let addr = addr.clone();
        async move { streams(&addr).await.is_empty().then_some(()) }
    })
    .await
    .unwrap();
    assert!(!res.join("asset-line.yaml").exists());
    // Then its device goes.
    grpcurl::call_json(&addr, Some(plant), &[DELETE])
        .await
        .unwrap();
    assert!(!res.join("device-plant.yaml").exists());

    // A read-only directory (a ConfigMap mount) is not ours to write.
    let writable = grpcurl::call_json(&addr, None, &[STATUS]).await.unwrap();
    assert!(
        writable.get("resourcesReadOnlyReason").is_none(),
        "{writable}"
    );
    std::fs::set_permissions(&res, std::fs::Permissions::from_mode(0o555)).unwrap();
    let r = grpcurl::call_refused(&addr, Some(&put(&asset("plant", "Qos1"))), &[PUT])
        .await
        .unwrap();
    // GetStatus tells the same, so a console shows read-only lists without trying a write.
    let status = grpcurl::call_json(&addr, None, &[STATUS]).await.unwrap();
    std::fs::set_permissions(&res, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(r.code, "FailedPrecondition", "{r:?}");
    assert!(r.message.contains("read-only"), "{r:?}");
    let reason = status["resourcesReadOnlyReason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("read-only"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_mtls_only_the_console_writes_resources() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let LoneIngest {
        service: ingest,
        console,
        schema,
    } = LoneIngest::start(dir.path(), &res).await.unwrap();
    let addr = ingest.addr.to_string();
    let body = put(&device("http://127.0.0.1:9/"));

    // A peer service's certificate reads but does not write.
    let o = grpcurl_as(&addr, Client::As(&schema), Some(&body), &[PUT])
        .await
        .unwrap();
    assert!(
        !o.ok && o.stderr.contains("Code: PermissionDenied"),
        "{o:?}"
    );
    assert!(!res.join("device-plant.yaml").exists());
    let o = grpcurl_as(&addr, Client::As(&console), Some(&body), &[PUT])
        .await
        .unwrap();
    assert!(o.ok, "{o:?}");
    assert!(res.join("device-plant.yaml").is_file());
    let get = r#"{"kind":"Device","name":"plant"}"#;
    let o = grpcurl_as(&addr, Client::As(&schema), Some(get), &[GET])
        .await
        .unwrap();
    assert!(o.ok && o.stdout.contains("plant"), "{o:?}");
    let o = grpcurl_as(&addr, Client::As(&schema), Some(get), &[DELETE])
        .await
        .unwrap();
    assert!(
        !o.ok && o.stderr.contains("Code: PermissionDenied"),
        "{o:?}"
    );
    assert!(res.join("device-plant.yaml").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mtls_resource_writes_stay_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let s = |x: &str| x.to_string();
    let args = [
        s("--schema"),
        s("http://127.0.0.1:9"),
        s("--resources"),
        res.display().to_string(),
        s("--checkpoint-store"),
        s("none"),
    ];
    let exposed = Service::start_on("sse-ingest", "0.0.0.0:0".parse().unwrap(), &args, &[]);
    let exposed = exposed.await.unwrap();
    let at = format!("127.0.0.1:{}", exposed.addr.port());
    let body = put(&device("http://127.0.0.1:9/"));
    let o = grpcurl_as(&at, Client::Plain, Some(&body), &[PUT])
        .await
        .unwrap();
    assert!(
        !o.ok && o.stderr.contains("Code: PermissionDenied"),
        "{o:?}"
    );
    assert!(
        o.stderr.contains("admin writes and payload reads are off"),
        "{o:?}"
    );
    assert!(!res.join("device-plant.yaml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_adr_mode_resources_belong_to_azure_device_registry() {
    let s = sse_e2e::akri::Setup::start().await;
    let addr = s.connector.addr.to_string();
    let r = grpcurl::call_refused(&addr, Some(&put(&device("http://127.0.0.1:9/"))), &[PUT])
        .await
        .unwrap();
    assert_eq!(r.code, "FailedPrecondition", "{r:?}");
    assert!(r.message.contains("Azure Device Registry"), "{r:?}");
    let r = grpcurl::call_refused(
        &addr,
        Some(r#"{"kind":"Asset","name":"boiler"}"#),
        &[DELETE],
    )
    .await
    .unwrap();
    assert_eq!(r.code, "FailedPrecondition", "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_write_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("resources");
    std::fs::create_dir_all(&res).unwrap();
    let s = |x: &str| x.to_string();
    let args = [
        s("--schema"),
        s("http://127.0.0.1:9"),
        s("--resources"),
        res.display().to_string(),
        s("--checkpoint-store"),
        s("none"),
    ];
    let ingest = Service::start("sse-ingest", &args, &[]).await.unwrap();
    let addr = ingest.addr.to_string();
    // Over RESOURCE_WRITE_BYTES_MAX (1 MiB) and its request's 1 KiB of room.
    let padding = "#".repeat(1024 * 1024 + 2048);
    let body = put(&format!("{}{padding}\n", device("http://127.0.0.1:9/")));
    let r = grpcurl::call_stdin(&addr, body.as_bytes(), &[PUT])
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(r.code, "OutOfRange", "{r:?}");
    assert!(r.message.contains("too large"), "{r:?}");
    // Within the request limit but over the document limit: refused on the field.
    let padding = "#".repeat(1024 * 1024 - 100);
    let body = put(&format!("{}{padding}\n", device("http://127.0.0.1:9/")));
    let r = grpcurl::call_stdin(&addr, body.as_bytes(), &[PUT])
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(r.code, "InvalidArgument", "{r:?}");
    assert!(r.message.contains("yaml: the document is"), "{r:?}");
    assert_eq!(std::fs::read_dir(&res).unwrap().count(), 0);
}

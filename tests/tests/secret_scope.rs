//! End to end, secret scoping (`--secret-access`): two devices name the same HTTP Basic secret,
//! each at its own real SSE source that checks credentials. The device the allow-list names
//! connects and its events reach the broker; the other gets a configuration error in status
//! naming it and the secret, and its source never sees a request. A broken allow-list on reload
//! keeps the previous one; a fixed one lets the second device in. A broken file at start is a
//! configuration error (exit 64) of `sse-ingest` and `sse-connector` alike.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::procs::{Service, bin_dir};
use sse_e2e::resources::{device_with_asset, username_password};
use sse_e2e::source::{Feed, Reply, SseSource, basic_auth, block, blocks_then_hold};
use sse_e2e::stack::{Pipeline, PipelineArgs};
use sse_e2e::write_file as write;
use sse_e2e::{eventually, grpcurl};
use tokio::net::TcpListener;

const USER: &str = "scope-user";
const PASSWORD: &str = "Pw-5d1e0c7a-scoped";
const ACCESS_WARNING: &str = "cannot reload the secret access file";

/// Behind HTTP Basic: one event per connection, then the stream stays open.
async fn source(name: &'static str) -> SseSource {
    let events: Feed = Arc::new(move |_req| {
        Reply::Sse(blocks_then_hold(vec![block(
            Some("1"),
            None,
            &format!(r#"{{"device":"{name}"}}"#),
        )]))
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    SseSource::start(listener, basic_auth(USER, PASSWORD, events)).unwrap()
}

/// Device `dev-<name>` reading `address` with the `creds` secret (plain http allowed: the
/// sources are on loopback).
fn scoped_device(name: &str, address: &str) -> String {
    let auth = format!(
        "authentication: {}",
        username_password("creds/user", "creds/password")
    );
    let insecure = r#"additionalConfiguration: '{"allowInsecureCredentials": true}'"#;
    device_with_asset(name, address, &[&auth, insecure], "scope")
}

async fn get_status(ingest: &Service) -> String {
    grpcurl::call(
        &ingest.addr.to_string(),
        None,
        &["sseconnector.v1.IngestService/GetStatus"],
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_devices_a_secret_names_may_use_it() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "scope/#").await.unwrap();
    let (allowed, other) = (source("allowed").await, source("other").await);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let secrets = d.join("secrets").display().to_string();
    write(d, "secrets/creds/user", USER);
    write(d, "secrets/creds/password", PASSWORD);
    // The allow-list lives in a directory of its own, as a ConfigMap mount would.
    let access = write(d, "access/secret-access.yaml", "creds: [dev-allowed]\n");
    let resources = [
        scoped_device("allowed", &allowed.base_url()),
        scoped_device("other", &other.base_url()),
    ]
    .concat();
    write(d, "resources/devices.yaml", &resources);
    let s = |x: &str| x.to_string();
    let pipeline = Pipeline::start(PipelineArgs {
        mqtt_url: broker.url(),
        data_dir: d.join("schemas").display().to_string(),
        resources: d.join("resources").display().to_string(),
        publisher: vec![],
        ingest: vec![
            s("--secrets-dir"),
            secrets,
            s("--secret-access"),
            access.clone(),
        ],
        env: None,
    })
    .await
    .unwrap();
    let ingest = &pipeline.ingest;

    sub.wait_until("the allowed device's event", |m| {
        m.iter().any(|r| r.topic == "scope/allowed")
    })
    .await
    .unwrap();
    let refusal = r#"secret \"creds\" (usernameSecretName) is not allowed for device \"dev-other\" by the --secret-access file"#;
    let status = get_status(ingest).await;
    assert!(status.contains(refusal), "{status}");
    assert!(
        status.contains(r#"endpoint \"sse-0\" of device \"dev-other\" cannot be served"#),
        "{status}"
    );
    assert!(
        other.seen().is_empty(),
        "the refused device's source was asked"
    );
    assert!(!status.contains(PASSWORD) && !ingest.log_text().contains(PASSWORD));

    // A broken allow-list on reload is reported, and the previous one stays.
    write(d, "access/secret-access.yaml", "creds: [dev-allowed\n");
    eventually("the broken allow-list reported", || async {
        ingest.log_text().contains(ACCESS_WARNING).then_some(())
    })
    .await
    .unwrap();
    let log = ingest.log_text();
    assert!(log.contains("secret-access.yaml"), "{log}");
    assert!(get_status(ingest).await.contains(refusal));

    // The fixed allow-list is picked up without a restart: the other device connects.
    write(
        d,
        "access/secret-access.yaml",
        "creds: [dev-allowed, dev-other]\n",
    );
    sub.wait_until("the other device's event", |m| {
        m.iter().any(|r| r.topic == "scope/other")
    })
    .await
    .unwrap();
    assert!(
        other
            .seen()
            .iter()
            .any(|r| r.header("authorization").is_some())
    );
    assert!(
        !get_status(ingest)
            .await
            .contains("is not allowed for device")
    );
    assert!(!ingest.log_text().contains(PASSWORD));
}

#[tokio::test]
async fn a_broken_allow_list_at_start_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let access = write(d, "access.yaml", "creds: dev-a\n");
    let resources = d.join("resources");
    std::fs::create_dir_all(&resources).unwrap();
    let resources = resources.display().to_string();
    for bin in ["sse-ingest", "sse-connector"] {
        let out = tokio::process::Command::new(bin_dir().join(bin))
            .args(["--listen", "127.0.0.1:0", "--resources", &resources])
            .args(["--secret-access", &access])
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{bin}: {stderr}");
        assert!(
            stderr.contains(&format!("secret access file {access} (--secret-access)"))
                && stderr.contains(r#"secret "creds": expected a list of device names"#),
            "{bin}: {stderr}"
        );
    }

    // Without an allow-list, every device may use every secret, and ingest says so.
    let secrets = d.join("secrets").display().to_string();
    let args = [
        "--schema",
        "http://127.0.0.1:9",
        "--resources",
        &resources,
        "--secrets-dir",
        &secrets,
    ]
    .map(String::from);
    let ingest = Service::start("sse-ingest", &args, &[]).await.unwrap();
    eventually("the warning of no allow-list", || async {
        ingest
            .log_text()
            .contains("no --secret-access file: every device may use every secret")
            .then_some(())
    })
    .await
    .unwrap();
}

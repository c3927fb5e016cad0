//! `sse-connector` in Akri mode reports back to Azure Device Registry (the kit's in-test ADR
//! service on a real Mosquitto), as Microsoft's connectors do:
//!
//! - a dataset ADR defines on an owned topic arrives as that dataset's error in
//!   `updateAssetStatus`, with the definition's version and an RFC 3339 transition time, and the
//!   device endpoint's status arrives through `updateDeviceStatus`;
//! - the schema reference in the asset's ADR status is the `dataschema` of its events on the
//!   broker;
//! - runtime health telemetry turns Unavailable with a reason when the SSE source goes away and
//!   Available again when it returns, while the unchanged asset status is not sent again;
//! - an update that fails more often than the client retries is sent again on a later pass;
//! - `--adr-health-interval` under the SDK's minimum of 60 s, or unreadable, exits 64 naming it.

#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::{Value, json};
use sse_e2e::adr::AdrTelemetry;
use sse_e2e::akri::{CONNECTOR, Setup, T1};
use sse_e2e::eventually;

/// An asset of `dev`'s `sse` endpoint at definition version 7 whose only dataset writes to the
/// connector's own status topics.
fn forged() -> Value {
    json!({
        "deviceRef": {"deviceName": "dev", "endpointName": "sse"},
        "version": 7,
        "datasets": [{"name": "forged", "dataSource": "/alerts",
            "destinations": [{"target": "Mqtt", "configuration":
                {"topic": "sse-connector/status/asset/boiler", "qos": "Qos1"}}]}]
    })
}

/// Waits for the stored status of `asset` until `ready` holds for it.
async fn asset_status(s: &Setup, asset: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually(&format!("ADR status of {asset}"), || {
        let v = s.adr.asset_status("dev", "sse", asset).filter(&ready);
        async move { v }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_error_and_the_schema_reference_reach_adr_status() {
    let s = Setup::start().await;
    s.adr.put_asset("forged", forged());
    s.allocate(&["boiler", "forged"]);
    s.more_on(T1, 0, 3).await;

    // a. The rejected dataset's error, with ADR's version and a transition time.
    let status = asset_status(&s, "forged", |v| v["datasets"][0]["error"].is_object()).await;
    assert_eq!(status["config"]["version"], 7, "{status}");
    let when = status["config"]["lastTransitionTime"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(when).is_ok(), "{when}");
    let dataset = &status["datasets"][0];
    assert_eq!(dataset["name"], "forged");
    assert_eq!(dataset["error"]["code"], "InvalidConfiguration", "{status}");
    let message = dataset["error"]["message"].as_str().unwrap();
    assert!(message.contains("sse-connector/status"), "{message}");
    let device = eventually("ADR status of dev/sse", || {
        let v = s.adr.device_status("dev", "sse");
        async move { v }
    })
    .await
    .unwrap();
    assert_eq!(device["config"]["version"], 1, "{device}");
    assert_eq!(
        device["endpoints"]["inbound"],
        json!({"sse": {}}),
        "{device}"
    );

    // c. The schema reference boiler's status names is the dataschema of its events.
    let status = asset_status(&s, "boiler", |v| {
        v["datasets"][0]["messageSchemaReference"].is_object()
    })
    .await;
    let r = &status["datasets"][0]["messageSchemaReference"];
    let named = format!(
        "aio-sr://{}/{}:{}",
        r["schemaRegistryNamespace"].as_str().unwrap(),
        r["schemaName"].as_str().unwrap(),
        r["schemaVersion"].as_str().unwrap()
    );
    let events = s
        .sub
        .wait_until("an event on T1 with a dataschema", |m| {
            m.iter()
                .any(|r| r.topic == T1 && r.user("dataschema").is_some())
        })
        .await
        .unwrap();
    let last = events
        .iter()
        .rev()
        .find_map(|r| (r.topic == T1).then(|| r.user("dataschema")).flatten())
        .unwrap();
    assert_eq!(last, named, "ADR status {status}");
    let updates = s
        .adr
        .requests()
        .into_iter()
        .filter(|r| r.command.starts_with("update"))
        .collect::<Vec<_>>();
    assert!(
        updates.iter().all(|r| r.connector == CONNECTOR),
        "sent as the connector"
    );
}

/// The health of boiler's only dataset in a `datasetRuntimeHealthEvent`.
fn boiler(t: &AdrTelemetry) -> Option<Value> {
    let body = t.body();
    (t.name == "datasetRuntimeHealthEvent" && body["assetName"] == "boiler")
        .then(|| body["datasets"][0]["runtimeHealth"].clone())
}

/// The health in a `deviceEndpointRuntimeHealthEvent`.
fn endpoint(t: &AdrTelemetry) -> Option<Value> {
    (t.name == "deviceEndpointRuntimeHealthEvent").then(|| t.body()["runtimeHealth"].clone())
}

/// Waits for the first health event after the first `after` whose health (`of`) is `want`;
/// returns its health and the number of events up to it.
async fn turns(
    s: &Setup,
    after: usize,
    of: fn(&AdrTelemetry) -> Option<Value>,
    want: &str,
) -> (Value, usize) {
    eventually(&format!("health {want}"), || {
        let all = s.adr.health();
        let found = (all.iter().enumerate().skip(after))
            .find_map(|(i, t)| of(t).filter(|h| h["status"] == want).map(|h| (h, i + 1)));
        async move { found }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_source_and_an_unchanged_status_is_not_resent() {
    let mut s = Setup::start().await;
    s.allocate(&["boiler"]);
    s.more_on(T1, 0, 3).await;
    let (up, _) = turns(&s, 0, boiler, "Available").await;
    assert_eq!(up["version"], 1, "{up}");
    turns(&s, 0, endpoint, "Available").await;
    asset_status(&s, "boiler", |v| {
        v["datasets"][0]["messageSchemaReference"].is_object()
    })
    .await;
    let updates = s.adr.asset_status_updates("boiler");

    // b. The source goes away: Unavailable with a reason; it returns: Available again.
    let before = s.adr.health().len();
    s.source.stop();
    let (down, _) = turns(&s, before, boiler, "Unavailable").await;
    let reason = down["reasonCode"].as_str().unwrap_or_default();
    assert!(!reason.is_empty() && reason != "Connected", "{down}");
    assert!(down["message"].is_string(), "{down}");
    let (down, _) = turns(&s, before, endpoint, "Unavailable").await;
    assert!(down["reasonCode"].is_string(), "{down}");
    let before = s.adr.health().len();
    s.restart_source().await;
    let (up, _) = turns(&s, before, boiler, "Available").await;
    assert_eq!(up["version"], 1, "{up}");
    turns(&s, before, endpoint, "Available").await;
    let t1 = s.count(T1);
    s.more_on(T1, t1, 10).await;
    for t in s.adr.health() {
        assert_eq!(t.problem(), None, "{t:?}");
        assert_eq!(t.connector, CONNECTOR);
        assert_eq!((t.device.as_str(), t.endpoint.as_str()), ("dev", "sse"));
    }

    // d. Health changed twice, events flowed: the asset's ADR status said the same throughout.
    assert_eq!(
        s.adr.asset_status_updates("boiler"),
        updates,
        "an unchanged status is not sent again"
    );
}

#[tokio::test]
async fn a_health_interval_under_the_sdks_minimum_or_unreadable_exits_64() {
    let cases = [
        ("--adr-health-interval=59s", "minimum of 60 s"),
        ("--adr-health-interval=soon", "invalid value"),
    ];
    for (bad, why) in cases {
        let out = sse_e2e::procs::run_to_exit("sse-connector", &[bad])
            .await
            .unwrap();
        assert_eq!(out.code, Some(64), "{bad}: {}", out.stderr);
        let named = out.stderr.contains("--adr-health-interval") && out.stderr.contains(why);
        assert!(named, "{bad}: {}", out.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_update_that_keeps_failing_is_sent_again_on_a_later_pass() {
    let s = Setup::start().await;
    // More failures than the client's own attempts (5); forged's status never changes on its
    // own (no stream, no schema), so only a later pass can deliver it.
    s.adr.fail_next_of("updateAssetStatus", &[500; 6]);
    s.adr.put_asset("forged", forged());
    s.allocate(&["forged"]);
    let status = asset_status(&s, "forged", |v| v["datasets"][0]["error"].is_object()).await;
    assert_eq!(status["config"]["version"], 7, "{status}");
    assert_eq!(
        s.adr.asset_status_updates("forged"),
        7,
        "6 refused, then taken"
    );
}

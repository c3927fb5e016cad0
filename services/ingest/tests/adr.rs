//! The ADR base-service client against a real Mosquitto and the e2e kit's in-test ADR service
//! (which follows the service's Thing Model): reads, the service's error, status updates,
//! notifications, retries and topic token checks.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use serde_json::{Value, json};
use sse_e2e::DEADLINE;
use sse_e2e::adr::{AdrService, ERROR_TIMESTAMP};
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::{Subscriber, valid_hlc};
use sse_ingest::adr::{
    AdrClient, AdrError, AdrSettings, AkriErrorCode, AssetStatus, Notification,
    NotificationPreference, client_settings,
};
use sse_runtime::Shutdown;
use sse_runtime::mqtt::rpc::RpcError;
use sse_runtime::mqtt::{Broker, BrokerAddress};
use tokio::sync::mpsc;

const CONNECTOR: &str = "sse-connector-0";

fn device() -> Value {
    json!({
        "enabled": true,
        "endpoints": {"inbound": {"sse": {
            "address": "https://source.example/events", "endpointType": "Microsoft.SSE",
            "authentication": {"method": "UsernamePassword", "usernamePasswordCredentials":
                {"usernameSecretName": "dev_sse_username", "passwordSecretName": "dev_sse_password"}}
        }}},
        "lastTransitionTime": "2026-02-03T04:05:06Z",
        "version": 3
    })
}

fn asset(endpoint: &str) -> Value {
    json!({
        "deviceRef": {"deviceName": "dev", "endpointName": endpoint},
        "displayName": "Boiler",
        "version": 7,
        "datasets": [{"name": "temps", "dataSource": "temperature",
            "destinations": [{"target": "Mqtt", "configuration":
                {"topic": "plant/boiler", "qos": "Qos1", "retain": "Never", "ttl": 60}}],
            "dataPoints": [{"name": "t", "dataSource": "$.t"}]}],
        "eventGroups": [{"name": "alarms", "events": [{"name": "overheat", "dataSource": "alarm"}]}]
    })
}

struct Setup {
    _broker: Mosquitto,
    service: AdrService,
    client: AdrClient,
    notifications: mpsc::Receiver<Notification>,
    shutdown: Shutdown,
    port: u16,
}

impl Drop for Setup {
    fn drop(&mut self) {
        self.shutdown.token.cancel();
    }
}

async fn setup() -> Setup {
    let broker = Mosquitto::start().await.unwrap();
    let service = AdrService::start(broker.port).await.unwrap();
    service.put_device("dev", "sse", device());
    service.put_asset("boiler", asset("sse"));
    let address = BrokerAddress::parse(&format!("mqtt://127.0.0.1:{}", broker.port)).unwrap();
    let mut settings = AdrSettings::new(client_settings(Broker::new(address), CONNECTOR.into()));
    settings.retry_initial = Duration::from_millis(20);
    settings.update_attempts = 3;
    let shutdown = Shutdown::new();
    let (client, notifications) = AdrClient::start(&settings, &shutdown).unwrap();
    Setup {
        port: broker.port,
        _broker: broker,
        service,
        client,
        notifications,
        shutdown,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_device_and_asset_round_trip() {
    let s = setup().await;
    let got = s.client.get_device("dev", "sse").await.unwrap();
    // The typed device writes back exactly what the service sent: nothing lost, nothing added.
    assert_eq!(serde_json::to_value(&got).unwrap(), device());
    let a = s.client.get_asset("dev", "sse", "boiler").await.unwrap();
    assert_eq!(serde_json::to_value(&a).unwrap(), asset("sse"));

    let reqs = s.service.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let (get_device, get_asset) = (&reqs[0], &reqs[1]);
    assert_eq!(
        (get_device.connector.as_str(), get_device.device.as_str()),
        (CONNECTOR, "dev")
    );
    assert_eq!(get_device.command, "getDevice");
    assert!(get_device.payload.is_empty(), "getDevice sends zero bytes");
    assert_eq!(get_asset.json(), json!({"assetName": "boiler"}));
    for r in &reqs {
        let p = &r.props;
        assert_eq!(
            p.response_topic.as_deref(),
            Some(
                format!(
                    "clients/{CONNECTOR}/akri/connector/resources/{CONNECTOR}/dev/sse/{}",
                    r.command
                )
                .as_str()
            )
        );
        assert_eq!(p.correlation_data.as_ref().map(|c| c.len()), Some(16));
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        assert_eq!(p.payload_format_indicator, Some(1));
        assert_eq!(p.message_expiry_interval, Some(10));
        assert_eq!(r.user("__srcId"), Some(CONNECTOR));
        assert_eq!(r.user("__protVer"), Some("1.0"));
        assert_eq!(r.user("$partition"), Some(CONNECTOR));
        assert_eq!(r.user("$high_priority"), Some(""));
        assert!(
            r.user("__ts").is_some_and(valid_hlc),
            "{:?}",
            r.user("__ts")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_asset_is_the_services_error_and_not_retried() {
    let s = setup().await;
    match s.client.get_asset("dev", "sse", "nope").await {
        Err(AdrError::Service { command, error }) => {
            assert_eq!(command, "getAsset");
            assert_eq!(error.code, AkriErrorCode::BadRequest);
            assert_eq!(error.message, "asset nope not found");
            assert_eq!(error.timestamp, ERROR_TIMESTAMP);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.service.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_asset_status_sends_the_thing_models_shape() {
    let s = setup().await;
    let sent = json!({
        "config": {"version": 7, "lastTransitionTime": "2026-02-03T04:05:07Z"},
        "datasets": [{"name": "temps", "messageSchemaReference": {
            "schemaRegistryNamespace": "ns", "schemaName": "S1", "schemaVersion": "1"}}],
        "eventGroups": [{"name": "alarms", "events": [{"name": "overheat",
            "error": {"code": "InvalidConfiguration", "message": "no such source"}}]}]
    });
    let status: AssetStatus = serde_json::from_value(sent.clone()).unwrap();
    let back = s
        .client
        .update_asset_status("dev", "sse", "boiler", &status)
        .await
        .unwrap();
    assert_eq!(back, status);
    let reqs = s.service.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].command, "updateAssetStatus");
    assert_eq!(
        reqs[0].json(),
        json!({"assetStatusUpdate": {"assetName": "boiler", "assetStatus": sent}})
    );
    assert_eq!(s.service.asset_status("dev", "sse", "boiler"), Some(sent));

    let answer = s
        .client
        .set_asset_notifications("dev", "sse", "boiler", NotificationPreference::On)
        .await
        .unwrap();
    assert_eq!(answer, "Accepted");
    assert_eq!(
        s.service.requests()[1].json(),
        json!({"notificationPreferenceRequest": {"assetName": "boiler", "notificationPreference": "On"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asset_update_notification_reaches_the_client() {
    let mut s = setup().await;
    // A call answered means the connection's subscriptions are in place.
    s.client.get_device("dev", "sse").await.unwrap();
    let mut changed = asset("sse");
    changed["version"] = json!(8);
    s.service
        .notify_asset(CONNECTOR, "boiler", changed.clone())
        .await
        .unwrap();
    let n = tokio::time::timeout(DEADLINE, s.notifications.recv())
        .await
        .expect("a notification")
        .expect("the channel is open");
    match n {
        Notification::Asset {
            device_name,
            endpoint_name,
            asset_name,
            asset,
        } => {
            assert_eq!(
                (device_name.as_str(), endpoint_name.as_str()),
                ("dev", "sse")
            );
            assert_eq!(asset_name, "boiler");
            assert_eq!(serde_json::to_value(&asset).unwrap(), changed);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_500_is_retried_and_400_is_not() {
    let s = setup().await;
    s.service.fail_next(&[500, 500]);
    let a = s.client.get_asset("dev", "sse", "boiler").await.unwrap();
    assert_eq!(a.version, Some(7));
    assert_eq!(s.service.requests().len(), 3, "two 500s, then served");

    s.service.fail_next(&[400]);
    match s.client.get_asset("dev", "sse", "boiler").await {
        Err(AdrError::Rpc {
            source: RpcError::Status { code: 400, .. },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(s.service.requests().len(), 4, "400 is final");

    // Status updates give up after their attempts (3 here).
    s.service.fail_next(&[500; 10]);
    let status = AssetStatus::default();
    match s
        .client
        .update_asset_status("dev", "sse", "boiler", &status)
        .await
    {
        Err(AdrError::Rpc {
            source: RpcError::Status { code: 500, .. },
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(s.service.requests().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_topic_tokens_are_refused_before_sending() {
    let s = setup().await;
    let all = Subscriber::connect(s.port, "akri/#").await.unwrap();
    for (device, endpoint) in [("a+b", "sse"), ("dev", "/sse"), ("dev", ""), ("d ev", "x")] {
        // Bounded: reads retry until shutdown, so a token that slipped through would hang.
        let got = tokio::time::timeout(DEADLINE, s.client.get_device(device, endpoint)).await;
        match got.expect("refused at once, not retried") {
            Err(AdrError::BadToken(e)) => {
                let text = e.to_string();
                assert!(
                    text.contains("deviceName") || text.contains("inboundEndpointName"),
                    "{text}"
                );
            }
            other => panic!("{device}/{endpoint}: {other:?}"),
        }
    }
    assert!(matches!(
        s.client
            .update_asset_status("dev", "a//b", "boiler", &AssetStatus::default())
            .await,
        Err(AdrError::BadToken(_))
    ));
    // A good call after them: the broker delivers one client's messages in order, so once it
    // arrives nothing sent before it can still come.
    s.client.get_device("dev", "sse").await.unwrap();
    let seen = all
        .wait_until("the good request", |m| !m.is_empty())
        .await
        .unwrap();
    let topics: Vec<&str> = seen.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        [format!(
            "akri/connector/resources/{CONNECTOR}/dev/sse/getDevice"
        )]
    );
    assert_eq!(s.service.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_retry_until_shutdown() {
    let s = setup().await;
    s.service.fail_next(&[500; 10_000]);
    let client = s.client.clone();
    let call = tokio::spawn(async move { client.get_device("dev", "sse").await });
    // More attempts than status updates get (3): reads are not bounded by a count.
    sse_e2e::eventually("a fifth attempt", || {
        let n = s.service.requests().len();
        async move { (n >= 5).then_some(()) }
    })
    .await
    .unwrap();
    assert!(!call.is_finished());
    s.shutdown.token.cancel();
    let got = tokio::time::timeout(DEADLINE, call).await.unwrap().unwrap();
    assert!(
        matches!(
            got,
            Err(AdrError::Rpc {
                source: RpcError::Cancelled,
                ..
            })
        ),
        "{got:?}"
    );
}

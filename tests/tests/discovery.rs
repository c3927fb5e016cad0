//! Discovered event types end to end, through the real binaries and a real Mosquitto: an event
//! type no asset routes shows in `IngestService/ListDiscovered` (called with grpcurl) with the
//! JSON Schema of its sample and a ready Asset YAML, while routed types do not; a server sending
//! more types than `--discovery-max-types` shows the rest as `other`; the retained discovery JSON
//! arrives on `--discovery-topic`; and the Asset YAML, written into the resources as it is,
//! routes the type to its placeholder topic, after which it is no longer discovered.

#![allow(clippy::unwrap_used, missing_docs)]

use serde_json::Value;
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::source::{SseSource, block, by_path};
use sse_e2e::stack::{Pipeline, PipelineArgs};
use sse_e2e::{eventually, grpcurl};

const LIST: &str = "sseconnector.v1.IngestService/ListDiscovered";

/// `dev/sse-0` reads `/alerts`, whose event group routes `routed` only; `flood/sse-0` reads
/// `/flood` with a group routing nothing it sends.
fn resources(base: &str) -> String {
    format!(
        r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: dev }}
spec:
  endpoints:
    inbound:
      sse-0: {{ endpointType: Microsoft.SSEHttp, address: "{base}" }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: flood }}
spec:
  endpoints:
    inbound:
      sse-0: {{ endpointType: Microsoft.SSEHttp, address: "{base}" }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: station }}
spec:
  deviceRef: {{ deviceName: dev, endpointName: sse-0 }}
  eventGroups:
    - name: alerts
      dataSource: /alerts
      events:
        - {{ name: routed, dataSource: routed, destinations: [ {{ target: Mqtt, configuration: {{ topic: e2e/routed, qos: Qos1 }} }} ] }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: flooded }}
spec:
  deviceRef: {{ deviceName: flood, endpointName: sse-0 }}
  eventGroups:
    - name: g
      dataSource: /flood
      events:
        - {{ name: none, dataSource: never-sent, destinations: [ {{ target: Mqtt, configuration: {{ topic: e2e/none, qos: Qos1 }} }} ] }}
"#
    )
}

fn blocks(path: &str) -> Option<Vec<String>> {
    match path {
        "/alerts" => Some(vec![
            block(Some("1"), Some("routed"), r#"{"level":3}"#),
            block(
                Some("2"),
                Some("humidity"),
                r#"{"station":"ws-01","rh":48.5}"#,
            ),
            block(Some("3"), Some("routed"), r#"{"level":4}"#),
        ]),
        "/flood" => Some(
            (0..6)
                .map(|i| block(None, Some(&format!("t{i}")), &format!(r#"{{"i":{i}}}"#)))
                .collect(),
        ),
        _ => None,
    }
}

/// The endpoints of `ListDiscovered` (for `device`, or all), once `ready` holds for them.
async fn listed(addr: &str, device: Option<&str>, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let data = device.map(|d| format!(r#"{{"device":"{d}"}}"#));
    eventually("ListDiscovered to show the types", || {
        let data = data.clone();
        let ready = &ready;
        async move {
            let v = grpcurl::call_json(addr, data.as_deref(), &[LIST])
                .await
                .ok()?;
            let eps = v["endpoints"].as_array().cloned().unwrap_or_default();
            ready(&eps).then_some(eps)
        }
    })
    .await
    .unwrap()
}

fn type_names(ep: &Value) -> Vec<String> {
    ep["types"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| t["sseType"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrouted_types_are_listed_capped_published_and_routed_by_their_snippet() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect_filters(
        broker.port,
        &["e2e/#", "sse-connector/discovery/#", "discovered/#"],
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, by_path(blocks)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let res_dir = dir.path().join("resources");
    std::fs::create_dir_all(&res_dir).unwrap();
    let file = res_dir.join("resources.yaml");
    std::fs::write(&file, resources(&source.base_url())).unwrap();
    let s = |x: &str| x.to_string();
    let pipeline = Pipeline::start(PipelineArgs {
        mqtt_url: broker.url(),
        data_dir: dir.path().join("schemas").display().to_string(),
        resources: res_dir.display().to_string(),
        publisher: vec![],
        ingest: vec![
            s("--discovery-max-types"),
            s("3"),
            s("--discovery-topic"),
            s("sse-connector/discovery"),
        ],
        env: None,
    })
    .await
    .unwrap();
    let addr = pipeline.ingest.addr.to_string();

    // The routed type flows on as before.
    sub.wait_until("both routed events", |m| {
        m.iter().filter(|m| m.topic == "e2e/routed").count() >= 2
    })
    .await
    .unwrap();

    // The unrouted type is listed, with its schema; the routed one is not.
    let dev = listed(&addr, Some("dev"), |eps| {
        eps.len() == 1 && !type_names(&eps[0]).is_empty()
    })
    .await;
    let ep = &dev[0];
    assert_eq!(
        (ep["device"].as_str(), ep["endpoint"].as_str()),
        (Some("dev"), Some("sse-0"))
    );
    assert_eq!(type_names(ep), ["humidity"], "{ep}");
    let humidity = &ep["types"][0];
    assert_eq!(humidity["count"], "1");
    assert_eq!(humidity["streamDataSource"], "/alerts");
    assert!(
        humidity["firstSeen"].as_str().unwrap().ends_with('Z'),
        "{humidity}"
    );
    assert_ne!(humidity["sampleTruncated"], true);
    let schema: Value = serde_json::from_str(humidity["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["rh"]["type"], "number");
    assert_eq!(schema["properties"]["station"]["type"], "string");
    assert!(ep.get("other").is_none(), "{ep}");

    // Past the cap of 3: the rest count as `other`.
    let all = listed(&addr, None, |eps| {
        eps.iter()
            .any(|e| e["device"] == "flood" && e["other"]["count"] == "3")
    })
    .await;
    let flood = all.iter().find(|e| e["device"] == "flood").unwrap();
    assert_eq!(type_names(flood), ["t0", "t1", "t2"]);
    assert_eq!(flood["other"]["sseType"], "other");

    // ListStreams shows the count of discovered types on each stream's endpoint.
    let streams = grpcurl::call_json(&addr, None, &["sseconnector.v1.IngestService/ListStreams"])
        .await
        .unwrap();
    let of = |path: &str| {
        streams["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["url"].as_str().unwrap().ends_with(path))
            .map(|s| s["discoveredTypes"].clone())
    };
    assert_eq!(of("/alerts"), Some(Value::from("1")), "{streams}");
    assert_eq!(of("/flood"), Some(Value::from("3")), "{streams}");

    // The retained discovery JSON, shaped after ADR's discovered asset.
    let msgs = sub
        .wait_until("the discovery message of dev/sse-0", |m| {
            m.iter()
                .any(|m| m.topic == "sse-connector/discovery/dev/sse-0" && !m.payload.is_empty())
        })
        .await
        .unwrap();
    let m = msgs
        .iter()
        .find(|m| m.topic == "sse-connector/discovery/dev/sse-0")
        .unwrap();
    assert!(m.retain, "retained");
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(v["deviceRef"]["deviceName"], "dev");
    assert_eq!(v["deviceRef"]["endpointName"], "sse-0");
    let event = &v["eventGroups"][0]["events"][0];
    assert_eq!(event["dataSource"], "humidity");
    assert_eq!(event["schema"]["properties"]["rh"]["type"], "number");

    // The snippet, added to the resources as it is, routes the type; then it is not discovered.
    let yaml = ep["assetYaml"].as_str().unwrap();
    let mut with_snippet = resources(&source.base_url());
    with_snippet.push_str("---\n");
    with_snippet.push_str(yaml);
    std::fs::write(&file, with_snippet).unwrap();
    sub.wait_until("humidity on the snippet's placeholder topic", |m| {
        m.iter().any(|m| m.topic == "discovered/dev/sse-0/humidity")
    })
    .await
    .unwrap();
    listed(&addr, Some("dev"), |eps| eps.is_empty()).await;
    drop(pipeline);
}

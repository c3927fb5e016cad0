//! End to end: an SSE source, the three real binaries, a real Mosquitto, grpcurl and an OTLP
//! receiver. Checks what reaches the broker (payloads, topics, QoS, retain, expiry, every user
//! property) for a dataset and for event-group events, the gRPC APIs, one trace per event, and a
//! clean exit on SIGTERM.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashSet;

use sse_e2e::grpcurl;
use sse_e2e::mqtt::Received;
use sse_e2e::source::{Feed, Reply, block, blocks_then_hold};
use sse_e2e::stack::Stack;

const READING_1: &str = r#"{"station":"ws-01","temperature":21.5,"humidity":48}"#;
const READING_2: &str = r#"{"humidity":49,"station":"ws-01","temperature":22}"#;
const READING_3: &str = "plain text, not JSON";
const OVERHEAT: &str = r#"{"threshold":24.0,"temperature":25.5}"#;
const HEARTBEAT: &str = r#"{"status":"ok"}"#;

fn feed() -> Feed {
    std::sync::Arc::new(|req| {
        let path = req.path.clone();
        match path.as_str() {
            "/base/readings" => Reply::Sse(blocks_then_hold(vec![
                block(Some("1"), Some("reading"), READING_1),
                block(Some("2"), Some("reading"), READING_2),
                block(Some("3"), None, READING_3),
            ])),
            "/base" => Reply::Sse(blocks_then_hold(vec![
                block(Some("a1"), Some("temperature-threshold"), OVERHEAT),
                block(Some("a2"), Some("other"), r#"{"x":1}"#),
                block(Some("a3"), Some("heartbeat"), HEARTBEAT),
            ])),
            _ => Reply::not_found(),
        }
    })
}

fn resources(base: &str) -> String {
    format!(
        r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: station }}
spec:
  endpoints:
    inbound:
      sse-0:
        endpointType: microsoft.ssehttp
        address: {base}/base
        authentication: {{ method: Anonymous }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: asset-a }}
spec:
  deviceRef: {{ deviceName: station, endpointName: sse-0 }}
  defaultDatasetsDestinations:
    - {{ target: Mqtt, configuration: {{ topic: e2e/readings, qos: Qos1, retain: Never, ttl: 3600 }} }}
  defaultEventsDestinations:
    - {{ target: Mqtt, configuration: {{ topic: e2e/asset-default, qos: Qos1, retain: Never }} }}
  datasets:
    - name: readings
      dataSource: /readings
      typeRef: weather
  eventGroups:
    - name: alerts
      dataSource: ""
      defaultDestinations:
        - {{ target: Mqtt, configuration: {{ topic: e2e/alerts, qos: Qos1, retain: Never }} }}
      events:
        - name: overheat
          dataSource: temperature-threshold
          destinations:
            - {{ target: Mqtt, configuration: {{ topic: e2e/overheat, qos: Qos0, retain: Keep, ttl: 60 }} }}
        - name: beat
          dataSource: /heartbeat
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: orphan }}
spec:
  deviceRef: {{ deviceName: no-such-device, endpointName: sse-0 }}
  datasets:
    - name: lost
      dataSource: /readings
      destinations:
        - {{ target: Mqtt, configuration: {{ topic: e2e/lost }} }}
"#
    )
}

fn on<'a>(msgs: &'a [Received], topic: &str) -> Vec<&'a Received> {
    msgs.iter().filter(|m| m.topic == topic).collect()
}

fn is_traceparent(v: &str) -> bool {
    let p: Vec<&str> = v.split('-').collect();
    p.len() == 4
        && p[0] == "00"
        && p[1].len() == 32
        && p[2].len() == 16
        && p[1].chars().all(|c| c.is_ascii_hexdigit())
        && p[1] != "0".repeat(32)
}

fn check_common(m: &Received, subject: &str, sse_event: &str) {
    assert_eq!(m.user("specversion"), Some("1.0"), "{m:?}");
    assert_eq!(m.user("subject"), Some(subject), "{m:?}");
    assert_eq!(m.user("aiodeviceref"), Some("ms-aio:station/sse-0"));
    assert_eq!(m.user("aioassetref"), Some("ms-aio:asset-a"));
    assert_eq!(m.user("sseevent"), Some(sse_event));
    let id = m.user("id").expect("id");
    assert!(id.len() >= 16, "id {id}");
    let time = m.user("time").expect("time");
    humantime::parse_rfc3339(time).unwrap_or_else(|e| panic!("time {time}: {e}"));
    assert!(
        is_traceparent(m.user("traceparent").expect("traceparent")),
        "{m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_delivers_datasets_and_events_with_every_property() {
    let (stack, sub) = Stack::start(feed(), resources).await.unwrap();
    let msgs = sub
        .wait_until("3 readings, 1 overheat, 1 heartbeat", |m| {
            on(m, "e2e/readings").len() >= 3
                && !on(m, "e2e/overheat").is_empty()
                && !on(m, "e2e/alerts").is_empty()
        })
        .await
        .unwrap();

    // The dataset: every event of the path, in order, byte for byte.
    let readings = on(&msgs, "e2e/readings");
    let payloads: Vec<String> = readings.iter().map(|m| m.text()).collect();
    assert_eq!(payloads, vec![READING_1, READING_2, READING_3]);
    for (i, m) in readings.iter().enumerate() {
        check_common(
            m,
            "asset-a/readings",
            if i < 2 { "reading" } else { "message" },
        );
        assert_eq!(m.qos, 1);
        assert!(!m.retain);
        let expiry = m.props.message_expiry_interval.expect("expiry");
        assert!((3590..=3600).contains(&expiry), "expiry {expiry}");
        assert_eq!(m.user("source"), Some("ms-aio:station/readings"));
        assert_eq!(m.user("type"), Some("DataSet/weather"));
        assert_eq!(m.user("sseid"), Some((i + 1).to_string().as_str()));
    }
    assert_eq!(
        readings[0].props.content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(
        readings[2].props.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    // Same shape in another key order: same schema; text has none.
    let ds0 = readings[0].user("dataschema").expect("dataschema on JSON");
    let re = |s: &str| {
        let rest = s
            .strip_prefix("aio-sr://sse-connector/")
            .unwrap_or_else(|| panic!("{s}"));
        let (name, version) = rest.split_once(':').unwrap();
        assert_eq!(name.len(), 64, "{s}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
            "{s}"
        );
        assert_eq!(version, "1", "{s}");
    };
    re(ds0);
    assert_eq!(readings[1].user("dataschema"), Some(ds0));
    assert_eq!(readings[2].user("dataschema"), None);
    let ids: HashSet<&str> = msgs.iter().filter_map(|m| m.user("id")).collect();
    assert_eq!(ids.len(), msgs.len(), "ids are unique per event");

    // An event with its own destination: QoS 0, retained, short expiry.
    let o = on(&msgs, "e2e/overheat")[0];
    assert_eq!(o.text(), OVERHEAT);
    check_common(o, "asset-a/alerts/overheat", "temperature-threshold");
    assert_eq!(o.qos, 0);
    assert!(o.retain);
    assert!(o.props.message_expiry_interval.expect("expiry") <= 60);
    assert_eq!(o.user("type"), Some("Event"));
    assert_eq!(
        o.user("source"),
        Some("ms-aio:station/temperature-threshold")
    );
    assert_eq!(o.user("sseid"), Some("a1"));
    assert!(o.user("dataschema").is_some());

    // An event without its own destination uses the group's default, not the asset's.
    let b = on(&msgs, "e2e/alerts");
    assert_eq!(
        b.len(),
        1,
        "only the heartbeat goes to the group default: {b:?}"
    );
    assert_eq!(b[0].text(), HEARTBEAT);
    check_common(b[0], "asset-a/alerts/beat", "heartbeat");
    assert_eq!(b[0].props.message_expiry_interval, None);
    assert!(on(&msgs, "e2e/asset-default").is_empty());
    assert!(on(&msgs, "e2e/lost").is_empty());
    assert!(
        !msgs.iter().any(|m| m.text() == r#"{"x":1}"#),
        "unmatched type forwarded"
    );

    // The source saw SSE requests.
    let seen = stack.source.seen();
    let r = seen
        .iter()
        .find(|r| r.path == "/base/readings")
        .expect("readings request");
    assert_eq!(r.header("accept"), Some("text/event-stream"));
    assert_eq!(
        seen.iter().filter(|r| r.path == "/base/readings").count(),
        1,
        "one connection per URL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_apis_answer_grpcurl() {
    let (stack, sub) = Stack::start(feed(), resources).await.unwrap();
    let msgs = sub
        .wait_until("the first reading", |m| !on(m, "e2e/readings").is_empty())
        .await
        .unwrap();

    for (svc, own) in [
        (&stack.ingest, "sseconnector.v1.IngestService"),
        (&stack.schema, "sseconnector.v1.SchemaService"),
        (&stack.publisher, "sseconnector.v1.PublisherService"),
    ] {
        let addr = svc.addr.to_string();
        let list = grpcurl::call(&addr, None, &["list"]).await.unwrap();
        for expected in [
            own,
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
        ] {
            assert!(list.contains(expected), "{} lists {list}", svc.name);
        }
        let health = sse_e2e::eventually("SERVING", || {
            let addr = addr.clone();
            async move {
                let h = grpcurl::call_json(&addr, None, &["grpc.health.v1.Health/Check"])
                    .await
                    .ok()?;
                (h["status"] == "SERVING").then_some(h)
            }
        })
        .await;
        assert!(health.is_ok(), "{} health: {health:?}", svc.name);
    }

    // Ingest: streams and their state, the unmatched event type, and the broken asset.
    let ingest = stack.ingest.addr.to_string();
    let st = sse_e2e::eventually("ingest counts", || {
        let ingest = ingest.clone();
        async move {
            let v = grpcurl::call_json(
                &ingest,
                None,
                &["sseconnector.v1.IngestService/ListStreams"],
            )
            .await
            .ok()?;
            let streams = v["streams"].as_array()?.clone();
            let base = streams
                .iter()
                .find(|s| s["url"].as_str().is_some_and(|u| u.ends_with("/base")))?
                .clone();
            let unmatched: u64 = base["eventsUnmatched"].as_str()?.parse().ok()?;
            (unmatched >= 1 && base["lastEventId"] == "a3").then_some(v)
        }
    })
    .await
    .unwrap();
    let streams = st["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{st}");
    assert!(streams.iter().all(|s| s["connected"] == true), "{st}");
    let errors = st["resourceErrors"].to_string();
    assert!(
        errors.contains("orphan") && errors.contains("no-such-device"),
        "{st}"
    );

    // Schema: list, get by name and version, infer a payload.
    let schema = stack.schema.addr.to_string();
    let dataschema = on(&msgs, "e2e/readings")[0]
        .user("dataschema")
        .unwrap()
        .to_string();
    let (name, version) = dataschema
        .rsplit('/')
        .next()
        .unwrap()
        .split_once(':')
        .unwrap();
    let list = grpcurl::call_json(
        &schema,
        None,
        &["sseconnector.v1.SchemaService/ListSchemas"],
    )
    .await
    .unwrap();
    assert!(list.to_string().contains(name), "{list}");
    let got = grpcurl::call_json(
        &schema,
        Some(&format!(r#"{{"name":"{name}","version":"{version}"}}"#)),
        &["sseconnector.v1.SchemaService/GetSchema"],
    )
    .await
    .unwrap();
    let content: serde_json::Value =
        serde_json::from_str(got["schema"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(content["type"], "object", "{content}");
    assert_eq!(
        content["properties"]["temperature"]["type"], "number",
        "{content}"
    );
    let inferred = grpcurl::call_json(
        &schema,
        Some(r#"{"payload":"{\"a\": 1, \"b\": [\"x\"]}"}"#),
        &["sseconnector.v1.SchemaService/InferSchema"],
    )
    .await
    .unwrap();
    let c: serde_json::Value = serde_json::from_str(inferred["content"].as_str().unwrap()).unwrap();
    assert_eq!(c["properties"]["a"]["type"], "integer", "{c}");
    assert_eq!(c["properties"]["b"]["items"]["type"], "string", "{c}");
    assert_eq!(inferred["name"].as_str().unwrap().len(), 64);

    // Publisher: publish one message by hand.
    grpcurl::call(
        &stack.publisher.addr.to_string(),
        Some(r#"{"topic":"e2e/manual","payload":"hello","qos":"QOS_AT_LEAST_ONCE"}"#),
        &["sseconnector.v1.PublisherService/PublishMessage"],
    )
    .await
    .unwrap();
    let m = sub
        .wait_until("the manual message", |m| !on(m, "e2e/manual").is_empty())
        .await
        .unwrap();
    assert_eq!(on(&m, "e2e/manual")[0].text(), "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_per_event_across_all_services() {
    let (stack, sub) = Stack::start(feed(), resources).await.unwrap();
    let msgs = sub
        .wait_until("a reading", |m| !on(m, "e2e/readings").is_empty())
        .await
        .unwrap();
    let tp = on(&msgs, "e2e/readings")[0]
        .user("traceparent")
        .unwrap()
        .to_string();
    let trace_id = tp.split('-').nth(1).unwrap().to_string();
    let spans = sse_e2e::eventually("spans of all three services in the trace", || {
        let spans = stack.otlp.spans();
        let t = trace_id.clone();
        async move {
            let mine: Vec<_> = spans.into_iter().filter(|s| s.trace_id == t).collect();
            let services: HashSet<&str> = mine.iter().map(|s| s.service.as_str()).collect();
            (services.contains("sse-ingest")
                && services.contains("sse-schema")
                && services.contains("sse-publisher"))
            .then_some(mine)
        }
    })
    .await
    .unwrap();
    // The MQTT traceparent names a span of the trace (the publisher's), and the spans form one tree.
    let span_id = tp.split('-').nth(2).unwrap();
    let publisher_span = spans
        .iter()
        .find(|s| s.span_id == span_id)
        .expect("traceparent span exported");
    assert_eq!(publisher_span.service, "sse-publisher");
    let roots: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "one root span: {spans:?}");
    assert_eq!(roots[0].service, "sse-ingest");
    // Other events got other traces.
    let other = on(&msgs, "e2e/readings")
        .iter()
        .chain(on(&msgs, "e2e/overheat").iter())
        .filter_map(|m| m.user("traceparent"))
        .filter(|t| t.split('-').nth(1) != Some(trace_id.as_str()))
        .count();
    assert_eq!(
        other + 1,
        on(&msgs, "e2e/readings").len() + on(&msgs, "e2e/overheat").len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_exit_cleanly_on_sigterm() {
    let (mut stack, sub) = Stack::start(feed(), resources).await.unwrap();
    sub.wait_until("a reading", |m| !on(m, "e2e/readings").is_empty())
        .await
        .unwrap();
    for (name, status) in stack.terminate_all().await.unwrap() {
        assert!(status.success(), "{name} exited with {status}");
    }
}

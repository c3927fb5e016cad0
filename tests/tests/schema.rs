//! End to end, schema versions: a dataset whose JSON payloads gain an optional field, a null
//! and a float gets exactly the expected schema versions on the broker's `dataschema` property;
//! the schema service, restarted on the same data dir, keeps them (a known shape registers
//! nothing, the next change is the next version); grpcurl lists the versions, gets one by name
//! and version, infers a payload, and shows the subject's status. (pipeline.rs covers the other
//! properties, non-JSON payloads and the gRPC APIs in general.)

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use sse_e2e::grpcurl;
use sse_e2e::mqtt::Received;
use sse_e2e::procs::Service;
use sse_e2e::source::{Feed, Reply, block, blocks_then_hold};
use sse_e2e::stack::Stack;

const TOPIC: &str = "e2e/schema";
const SUBJECT: &str = "plant/readings";

/// (SSE id, payload, expected schema version). Before the restart of the schema service:
const BEFORE: &[(&str, &str, &str)] = &[
    ("1", r#"{"station":"ws","t":21}"#, "1"),
    ("2", r#"{"t":22,"station":"ws"}"#, "1"),
    // an optional field appears
    ("3", r#"{"station":"ws","t":23,"note":"x"}"#, "2"),
    ("4", r#"{"station":"ws","t":24}"#, "2"),
    // the field is null once
    ("5", r#"{"station":"ws","t":25,"note":null}"#, "3"),
    // a float where integers were
    ("6", r#"{"station":"ws","t":25.5}"#, "4"),
    ("7", r#"{"note":"y","station":"ws","t":26}"#, "4"),
];
/// After the restart:
const AFTER: &[(&str, &str, &str)] = &[
    // a known shape: no new version
    ("8", r#"{"station":"ws","t":27.25,"note":null}"#, "4"),
    // a new nested field: the next version
    ("9", r#"{"station":"ws","t":28,"pos":{"lat":1.5}}"#, "5"),
];

fn blocks(events: &[(&str, &str, &str)]) -> Vec<String> {
    let mut out = vec!["retry: 200\n\n".to_string()];
    out.extend(
        events
            .iter()
            .map(|(id, data, _)| block(Some(id), Some("reading"), data)),
    );
    out
}

/// The first connection gets BEFORE and ends; reconnections get 503 until `after` is set, then
/// AFTER (and hold).
fn feed(after: Arc<AtomicBool>) -> Feed {
    Arc::new(move |req| {
        if req.path != "/plant/readings" {
            return Reply::not_found();
        }
        match req.header("last-event-id") {
            None | Some("") => Reply::Sse(Box::pin(futures::stream::iter(
                blocks(BEFORE).into_iter().map(Bytes::from),
            ))),
            Some(_) if !after.load(Ordering::SeqCst) => {
                Reply::Status(503, vec![], "not yet\n".into())
            }
            Some(_) => Reply::Sse(blocks_then_hold(blocks(AFTER))),
        }
    })
}

fn resources(base: &str) -> String {
    format!(
        r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: plant-gw }}
spec:
  endpoints:
    inbound:
      sse-0:
        endpointType: Microsoft.SSEHttp
        address: {base}/plant
        authentication: {{ method: Anonymous }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: plant }}
spec:
  deviceRef: {{ deviceName: plant-gw, endpointName: sse-0 }}
  datasets:
    - name: readings
      dataSource: /readings
      destinations:
        - {{ target: Mqtt, configuration: {{ topic: {TOPIC}, qos: Qos1, retain: Never }} }}
"#
    )
}

/// `sseid` -> every `dataschema` seen for it (re-sends after the restart repeat an event).
fn by_id(msgs: &[Received]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in msgs.iter().filter(|m| m.topic == TOPIC) {
        let id = m.user("sseid").unwrap_or_default().to_string();
        let ds = m.user("dataschema").unwrap_or("<none>").to_string();
        let v = out.entry(id).or_default();
        if !v.contains(&ds) {
            v.push(ds);
        }
    }
    out
}

/// `aio-sr://<namespace>/<name>:<version>` -> (namespace, name, version).
fn parse(dataschema: &str) -> (String, String, String) {
    let rest = dataschema.strip_prefix("aio-sr://").unwrap();
    let (ns, name_ver) = rest.split_once('/').unwrap();
    let (name, ver) = name_ver.split_once(':').unwrap();
    (ns.into(), name.into(), ver.into())
}

fn check(seen: &BTreeMap<String, Vec<String>>, events: &[(&str, &str, &str)]) {
    for (id, data, version) in events {
        let ds = seen
            .get(*id)
            .unwrap_or_else(|| panic!("event {id} missing: {seen:?}"));
        assert_eq!(
            ds.len(),
            1,
            "event {id} ({data}) got several schemas: {ds:?}"
        );
        let (ns, name, v) = parse(&ds[0]);
        assert_eq!(ns, "sse-connector");
        assert_eq!(name.len(), 64);
        assert_eq!(v, *version, "event {id}: {data}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_on_the_broker_survive_a_schema_restart_and_grpcurl_shows_them() {
    let after = Arc::new(AtomicBool::new(false));
    let (mut stack, sub) = Stack::start(feed(after.clone()), resources).await.unwrap();
    let msgs = sub
        .wait_until("the events before the restart", |m| {
            let seen = by_id(m);
            BEFORE.iter().all(|(id, _, _)| seen.contains_key(*id))
        })
        .await
        .unwrap();
    let before = by_id(&msgs);
    check(&before, BEFORE);
    // One name per version, and a new version only when the shape changed.
    let names: BTreeMap<String, String> = before
        .values()
        .map(|d| parse(&d[0]))
        .map(|(_, name, v)| (v, name))
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let distinct: std::collections::HashSet<&String> = names.values().collect();
    assert_eq!(distinct.len(), 4, "{names:?}");

    // Restart the schema service on the same address and data dir, then let the stream go on.
    let status = stack
        .schema
        .terminate(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(status.success(), "{status:?}\n{}", stack.schema.log_text());
    stack.schema.restart().await.unwrap();
    after.store(true, Ordering::SeqCst);
    let msgs = sub
        .wait_until("the events after the restart", |m| {
            let seen = by_id(m);
            AFTER.iter().all(|(id, _, _)| seen.contains_key(*id))
        })
        .await
        .unwrap();
    let all = by_id(&msgs);
    check(&all, BEFORE);
    check(&all, AFTER);
    assert_eq!(
        parse(&all["8"][0]),
        parse(&before["7"][0]),
        "known shape, same version"
    );

    // grpcurl: the subject's versions, one of them by name and version, and inference.
    let schema = stack.schema.addr.to_string();
    let list = grpcurl::call_json(
        &schema,
        None,
        &["sseconnector.v1.SchemaService/ListSchemas"],
    )
    .await
    .unwrap();
    let mut versions: Vec<(String, String)> = list["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["subject"] == SUBJECT)
        .map(|s| {
            (
                s["version"].as_str().unwrap().to_string(),
                s["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    versions.sort();
    assert_eq!(
        versions.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>(),
        ["1", "2", "3", "4", "5"],
        "{list}"
    );
    let (_, v3_name, _) = parse(&all["5"][0]);
    let got = grpcurl::call_json(
        &schema,
        Some(&format!(r#"{{"name":"{v3_name}","version":"3"}}"#)),
        &["sseconnector.v1.SchemaService/GetSchema"],
    )
    .await
    .unwrap();
    let content: Value = serde_json::from_str(got["schema"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        content["properties"]["note"]["type"],
        serde_json::json!(["null", "string"]),
        "{content}"
    );
    assert_eq!(content["properties"]["t"]["type"], "integer", "{content}");
    assert_eq!(
        content["required"],
        serde_json::json!(["station", "t"]),
        "{content}"
    );
    let inferred = grpcurl::call_json(
        &schema,
        Some(r#"{"payload":"{\"t\": 1.5, \"note\": null}"}"#),
        &["sseconnector.v1.SchemaService/InferSchema"],
    )
    .await
    .unwrap();
    let c: Value = serde_json::from_str(inferred["content"].as_str().unwrap()).unwrap();
    assert_eq!(c["properties"]["t"]["type"], "number", "{c}");
    assert_eq!(c["properties"]["note"]["type"], "null", "{c}");
    let subjects = grpcurl::call_json(
        &schema,
        None,
        &["sseconnector.v1.SchemaService/ListSubjects"],
    )
    .await
    .unwrap();
    let s = subjects["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == SUBJECT)
        .unwrap_or_else(|| panic!("{subjects}"));
    assert_eq!(s["schema"]["version"], "5", "{subjects}");
    assert_eq!(s["schema"]["namespace"], "sse-connector", "{subjects}");
}

/// One `Process` event as grpcurl's JSON: a JSON payload on `e2e/kind`, with the given route
/// kind (`None`: left out, i.e. `ROUTE_KIND_UNSPECIFIED`).
fn process_event(seq: u64, kind: Option<&str>) -> Value {
    use base64::Engine as _;
    let mut route = serde_json::json!({
        "device": "dev",
        "endpoint": "ep",
        "asset": "plant",
        "group": "alerts",
        "event": "overheat",
        "destination": {"mqtt": {"topic": "e2e/kind", "qos": "QOS_AT_LEAST_ONCE"}},
    });
    if let Some(kind) = kind {
        route["kind"] = kind.into();
    }
    serde_json::json!({
        "id": format!("kind-{seq}"),
        "seq": seq.to_string(),
        "streamKey": "dev/ep http://x/alerts",
        "data": base64::engine::general_purpose::STANDARD.encode(r#"{"t":1}"#),
        "route": route,
    })
}

/// An event whose route kind is unspecified is refused one way by the real schema service and
/// publisher (sse-contract's rule): no schema is registered for it (schema used to guess an
/// event kind), its ack names the missing kind, and nothing reaches the broker, while an event
/// of a set kind on the same stream is tagged and delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unspecified_route_kind_is_refused_without_a_schema() {
    let broker = sse_e2e::broker::Mosquitto::start().await.unwrap();
    let sub = sse_e2e::mqtt::Subscriber::connect(broker.port, "e2e/#")
        .await
        .unwrap();
    let args = ["--mqtt-url".to_string(), broker.url()];
    let publisher = Service::start("sse-publisher", &args, &[]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("schemas").display().to_string();
    let args = ["--publisher", &publisher.url(), "--data-dir", &data_dir].map(String::from);
    let schema = Service::start("sse-schema", &args, &[]).await.unwrap();

    let request = serde_json::json!({"events": [
        process_event(1, None),
        process_event(2, Some("ROUTE_KIND_EVENT")),
    ]});
    let out = grpcurl::call_stdin(
        &schema.addr.to_string(),
        request.to_string().as_bytes(),
        &["sseconnector.v1.SchemaService/Process"],
    )
    .await
    .unwrap()
    .unwrap();
    let acks: Vec<Value> = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .flat_map(|r| r.unwrap()["acks"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(acks.len(), 2, "{out}");
    let unspecified = &acks[0];
    assert_eq!(unspecified["seq"], "1", "{out}");
    assert!(
        unspecified["error"]
            .as_str()
            .is_some_and(|e| e.contains("route kind not set")),
        "{out}"
    );
    assert_eq!(unspecified.get("schema"), None, "no schema guessed: {out}");
    assert_eq!(unspecified["noSchemaReason"], "NO_SCHEMA_REASON_NO_ROUTE");
    assert_eq!(acks[1]["seq"], "2", "{out}");
    assert_eq!(acks[1].get("error"), None, "{out}");
    assert!(acks[1].get("schema").is_some(), "{out}");

    let got = sub
        .wait_until("the event of a set kind", |m| !m.is_empty())
        .await
        .unwrap();
    assert_eq!(got[0].user("id"), Some("kind-2"));
    assert!(got[0].user("dataschema").is_some());
    assert!(sub.all().iter().all(|m| m.user("id") != Some("kind-1")));
    let list = grpcurl::call_json(
        &schema.addr.to_string(),
        None,
        &["sseconnector.v1.SchemaService/ListSchemas"],
    )
    .await
    .unwrap();
    assert_eq!(list["schemas"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["schemas"][0]["subject"], "plant/alerts/overheat");
}

//! The Azure IoT Operations Schema Registry backend against a real Mosquitto and an in-test
//! responder that follows the registry's published MQTT RPC contract: put/get round trips, the
//! per-subject numbering kept across a restart, retries on 500 and on no answer, no retry on 400,
//! `sse-schema --registry azure` serving its gRPC API from it, and a registry slow to answer
//! holding only the events that wait on it (one call for the many subjects of one new version).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use serde_json::{Value, json};
use sse_e2e::broker::Mosquitto;
use sse_e2e::schema_registry::{NAMESPACE, Responder, Seen};
use sse_proto::v1::schema_service_client::SchemaServiceClient;
use sse_proto::v1::{
    Event, GetSchemaRequest, ListSchemasRequest, PutSchemaRequest, Route, RouteKind,
};
use sse_runtime::Shutdown;
use sse_runtime::mqtt::{Broker, BrokerAddress};
use sse_schema::Error;
use sse_schema::azure::{AzureRegistry, AzureSettings, GET_TOPIC, PUT_TOPIC, client_settings};
use sse_schema::canonical::name_of;
use sse_schema::pipeline::{Limits, Outcome, Pipeline};
use sse_schema::registry::{FileRegistry, NewSchema, Registry};

mod harness;

use harness::{Publisher, Schema, Stream};

fn settings(port: u16, client_id: &str) -> AzureSettings {
    let address = BrokerAddress::parse(&format!("mqtt://127.0.0.1:{port}")).unwrap();
    AzureSettings {
        client: client_settings(Broker::new(address), client_id.into()),
        timeout: Duration::from_secs(10),
        attempts: 4,
        retry_initial: Duration::from_millis(20),
    }
}

fn registry(
    port: u16,
    client_id: &str,
    dir: &std::path::Path,
    shutdown: &Shutdown,
) -> AzureRegistry {
    let mirror = FileRegistry::open_mirror(dir, "sse-connector").unwrap();
    AzureRegistry::new(&settings(port, client_id), mirror, shutdown)
}

fn version_of(o: &Outcome) -> String {
    match o {
        Outcome::Schema(r) => r.version.clone(),
        other => panic!("no schema: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_versions_over_mqtt_rpc_and_across_a_restart() {
    let broker = Mosquitto::start().await.unwrap();
    let responder = Responder::start(broker.port).await;
    let dir = tempfile::tempdir().unwrap();
    let shutdown = Shutdown::new();
    let reg = Arc::new(registry(broker.port, "schema-a", dir.path(), &shutdown));
    let p = Pipeline::new(reg.clone(), "sse-connector", Limits::default());

    let v1 = p.tag("a/d", br#"{"t":21.5,"s":"x"}"#).await;
    assert_eq!(version_of(&v1), "1");
    assert_eq!(version_of(&p.tag("a/d", br#"{"s":"y","t":3}"#).await), "1");
    // Another subject reaching a version the mirror holds makes no call (counted below).
    assert_eq!(p.tag("b/d", br#"{"t":2.5,"s":"q"}"#).await, v1);
    let v2 = p.tag("a/d", br#"{"t":1.5,"s":"x","extra":true}"#).await;
    assert_eq!(version_of(&v2), "2");
    let Outcome::Schema(r2) = &v2 else {
        unreachable!()
    };
    // The registry's name and namespace make the reference.
    assert_eq!(r2.namespace, NAMESPACE);
    assert_eq!(r2.dataschema, format!("aio-sr://{NAMESPACE}/{}:2", r2.name));

    let seen = responder.seen();
    assert_eq!(seen.len(), 2, "one PUT per new shape: {seen:?}");
    for s in &seen {
        assert_eq!(s.topic, PUT_TOPIC);
        assert_eq!(
            s.props.response_topic.as_deref(),
            Some("clients/schema-a/adr/dtmi:ms:adr:SchemaRegistry;2/put")
        );
        assert_eq!(s.props.correlation_data.as_ref().map(Bytes::len), Some(16));
        assert_eq!(s.props.content_type.as_deref(), Some("application/json"));
        assert_eq!(s.props.payload_format_indicator, Some(1));
        assert_eq!(s.user("__protVer"), Some("1.0"));
        assert_eq!(s.user("__srcId"), Some("schema-a"));
        assert_eq!(s.user("$partition"), Some("schema-a"));
        assert_eq!(s.user("$high_priority"), Some(""));
        assert_eq!(s.props.message_expiry_interval, Some(10));
        assert!(s.user("__ts").is_some_and(|ts| ts.ends_with(":schema-a")));
        let keys: Vec<&str> = s
            .payload
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
        assert_eq!(s.payload["format"], "JsonSchema/draft-07");
        assert_eq!(s.payload["schemaType"], "MessageSchema");
        let content = s.payload["schemaContent"].as_str().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(content).unwrap()["$schema"],
            "http://json-schema.org/draft-07/schema#"
        );
    }
    assert_eq!(seen[1].payload["version"], "2");
    assert_ne!(
        seen[0].props.correlation_data, seen[1].props.correlation_data,
        "fresh correlation data per call"
    );
    // Our canonical content is what the registry hashed: the same name both sides.
    assert_eq!(
        r2.name,
        name_of(seen[1].payload["schemaContent"].as_str().unwrap())
    );

    // List and get answer from the mirror; another replica's get goes to the registry.
    let list = reg.list().await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter().any(|r| r.subjects == ["a/d", "b/d"]),
        "{list:?}"
    );
    assert_eq!(reg.get(&r2.name, Some("2")).await.unwrap().subject, "a/d");
    let other_dir = tempfile::tempdir().unwrap();
    let other = registry(broker.port, "schema-b", other_dir.path(), &shutdown);
    let fetched = other.get(&r2.name, Some("2")).await.unwrap();
    assert_eq!(fetched.namespace, NAMESPACE);
    assert_eq!(
        fetched.content,
        seen[1].payload["schemaContent"].as_str().unwrap()
    );
    assert!(matches!(
        other.get(&r2.name, Some("7")).await,
        Err(Error::NotFound(_))
    ));
    let gets: Vec<Seen> = responder
        .seen()
        .into_iter()
        .filter(|s| s.topic == GET_TOPIC)
        .collect();
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[0].payload, json!({"name": r2.name, "version": "2"}));
    assert_eq!(
        gets[0].props.response_topic.as_deref(),
        Some("clients/schema-b/adr/dtmi:ms:adr:SchemaRegistry;2/get")
    );

    // A restart resumes the subject's schema and numbering from the mirror: a known shape
    // registers nothing, a new one gets version 3.
    shutdown.token.cancel();
    shutdown.tracker.close();
    shutdown.tracker.wait().await;
    drop(p);
    drop(reg);
    let shutdown = Shutdown::new();
    let reg = Arc::new(registry(broker.port, "schema-a", dir.path(), &shutdown));
    let p = Pipeline::new(reg, "sse-connector", Limits::default());
    let puts = |r: &Responder| r.seen().iter().filter(|s| s.topic == PUT_TOPIC).count();
    let before = puts(&responder);
    assert_eq!(p.tag("a/d", br#"{"t":2,"s":"z","extra":false}"#).await, v2);
    assert_eq!(puts(&responder), before);
    let v3 = p.tag("a/d", br#"{"t":2,"s":null}"#).await;
    assert_eq!(version_of(&v3), "3");
    assert_eq!(puts(&responder), before + 1);
    shutdown.token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_500_and_silence_but_not_400() {
    let broker = Mosquitto::start().await.unwrap();
    let responder = Responder::start(broker.port).await;
    let dir = tempfile::tempdir().unwrap();
    let shutdown = Shutdown::new();
    let reg = registry(broker.port, "schema-r", dir.path(), &shutdown);
    let schema = |n: u64| {
        NewSchema::new(
            &json!({"type": "object", "properties": {format!("p{n}"): {}}}),
            "1",
            "a/d",
        )
    };

    // 500 twice, then served: three requests, one result.
    responder.fail_next(&[500, 500]);
    let r = reg.put(schema(1)).await.unwrap();
    assert_eq!(r.version, "1");
    assert_eq!(responder.seen().len(), 3);

    // 400 is final: one request, the registry's code and message.
    responder.fail_next(&[400]);
    match reg.put(schema(2)).await {
        Err(Error::Registry { code: 400, message }) => assert_eq!(message, "injected failure"),
        other => panic!("{other:?}"),
    }
    assert_eq!(responder.seen().len(), 4);

    // The responder's own validation: content that is not JSON is refused with 400.
    let bad = NewSchema {
        name: "X".into(),
        content: "not json".into(),
        version: "1".into(),
        subject: "a/d".into(),
    };
    match reg.put(bad).await {
        Err(Error::Registry { code: 400, message }) => {
            assert!(message.contains("schemaContent"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(responder.seen().len(), 5);

    // 500 on every attempt: gives up after the configured attempts.
    responder.fail_next(&[500; 10]);
    assert!(matches!(
        reg.put(schema(3)).await,
        Err(Error::Registry { code: 500, .. })
    ));
    assert_eq!(responder.seen().len(), 9);

    // Nobody answers: retried as a network error, then unavailable.
    drop(responder);
    let mut s = settings(broker.port, "schema-q");
    s.timeout = Duration::from_millis(300);
    s.attempts = 2;
    let quiet = AzureRegistry::new(
        &s,
        FileRegistry::open_mirror(tempfile::tempdir().unwrap().path(), "ns").unwrap(),
        &shutdown,
    );
    assert!(matches!(
        quiet.put(schema(4)).await,
        Err(Error::RegistryUnavailable(_))
    ));
    shutdown.token.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_with_azure_registry_serves_put_get_list() {
    let broker = Mosquitto::start().await.unwrap();
    let responder = Responder::start(broker.port).await;
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = sse_schema::Config::try_parse_from([
        "sse-schema".to_string(),
        "--publisher=http://127.0.0.1:1".into(),
        format!("--data-dir={}", dir.path().display()),
        "--registry=azure".into(),
        format!("--registry-mqtt-url=mqtt://127.0.0.1:{}", broker.port),
        "--registry-mqtt-client-id=schema-svc".into(),
    ])
    .unwrap();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(sse_schema::run(
        listener,
        config.settings().unwrap(),
        shutdown.clone(),
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = SchemaServiceClient::new(channel);
    let put = client
        .put_schema(PutSchemaRequest {
            content: r#"{"type":"object","properties":{"a":{"type":"integer"}}}"#.into(),
            version: "4".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .schema
        .unwrap();
    assert_eq!(
        (put.namespace.as_str(), put.version.as_str()),
        (NAMESPACE, "4")
    );
    assert_eq!(responder.seen().len(), 1);
    let got = client
        .get_schema(GetSchemaRequest {
            name: put.name.clone(),
            version: "4".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .schema
        .unwrap();
    assert_eq!(got, put);
    let list = client
        .list_schemas(ListSchemasRequest::default())
        .await
        .unwrap()
        .into_inner()
        .schemas;
    assert_eq!(list, vec![put]);
    shutdown.token.cancel();
    task.await.unwrap().unwrap();
}

/// The first event (`seq` 1) of dataset `dataset` of asset `plant`, on its own SSE stream.
fn dataset_event(dataset: &str, seq: u64, data: &str) -> Event {
    Event {
        id: format!("{dataset}-{seq}"),
        seq,
        stream_key: format!("stream {dataset}"),
        data: data.as_bytes().to_vec().into(),
        route: Some(Route {
            asset: "plant".into(),
            kind: RouteKind::Dataset as i32,
            group: dataset.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An asset of 1,000 datasets of one shape whose first events arrive together, in Azure mode,
/// while the registry holds its answer: another stream's events keep flowing meanwhile (they
/// used to wait behind the call, every stream of the Process stream did), the 1,000 subjects of
/// the one new version make one PUT call between them, and once it is answered all 1,000 events
/// go on tagged with that version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_registry_holds_only_the_events_that_wait_on_it() {
    const DATASETS: usize = 1000;
    let broker = Mosquitto::start().await.unwrap();
    let responder = Responder::start(broker.port).await;
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let url = format!("--registry-mqtt-url=mqtt://127.0.0.1:{}", broker.port);
    // A timeout longer than the test: the held call is one call, not retried.
    let flags = [
        "--registry=azure",
        url.as_str(),
        "--registry-mqtt-client-id=schema-slow",
        "--registry-timeout=600s",
    ];
    let schema = Schema::start_with(dir.path(), paddr, &flags).await;
    schema.wait_serving().await;
    let mut stream = Stream::open(&schema).await;
    stream
        .send(vec![dataset_event("warm", 1, r#"{"t":1}"#)])
        .await;
    stream.acks(1).await;
    assert_eq!(responder.puts(), 1);

    responder.hold_puts(true);
    let burst = (0..DATASETS)
        .map(|i| dataset_event(&format!("d{i}"), 1, r#"{"v":1.5,"ok":true}"#))
        .collect();
    stream.send(burst).await;
    // The first of them reached the registry, and is held there.
    harness::eventually("the burst's PUT", || async {
        (responder.puts() >= 2).then_some(())
    })
    .await;
    for seq in 2..=4 {
        stream
            .send(vec![dataset_event("warm", seq, r#"{"t":2}"#)])
            .await;
        let acks = stream.acks(1).await;
        assert_eq!(
            (acks.len(), acks[0].stream_key.as_str(), acks[0].seq),
            (1, "stream warm", seq),
            "the warm stream flows while the registry holds its answer"
        );
    }
    assert_eq!(
        responder.puts(),
        2,
        "one call for the new version's subjects"
    );

    responder.hold_puts(false);
    let acks = stream.acks(DATASETS).await;
    assert_eq!(acks.len(), DATASETS);
    assert!(acks.iter().all(|a| a.error.is_empty()), "{:?}", acks[0]);
    assert_eq!(
        responder.puts(),
        2,
        "one call for the new version's subjects"
    );
    let events = publisher.events();
    let tagged: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| e.stream_key != "stream warm")
        .map(|e| e.dataschema.as_str())
        .collect();
    assert_eq!(tagged.len(), 1, "{tagged:?}");
    let dataschema = tagged.into_iter().next().unwrap();
    assert!(dataschema.ends_with(":1"), "{dataschema}");
    // Every subject is listed under the one version (in the mirror).
    let listed = schema
        .client()
        .await
        .list_schemas(ListSchemasRequest::default())
        .await
        .unwrap()
        .into_inner()
        .schemas;
    let version = listed
        .iter()
        .find(|s| dataschema.contains(&s.name))
        .unwrap();
    assert_eq!(
        version.subjects.len(),
        DATASETS,
        "{:?}",
        version.subjects.first()
    );
    schema.stop().await;
    publisher.stop().await;
}

/// The registry fails (500 on every attempt) while 100 new datasets of one shape start: their
/// puts share one call and its retries, and fail together, their events going on without a
/// schema at once. Each subject used to make its own call with its own retries, in turn, on
/// the event path (5.6 s each with the default attempts: 1,000 datasets held every stream for
/// an hour and a half).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_registry_is_called_once_for_the_subjects_of_a_new_version() {
    const DATASETS: usize = 100;
    let broker = Mosquitto::start().await.unwrap();
    let responder = Responder::start(broker.port).await;
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let url = format!("--registry-mqtt-url=mqtt://127.0.0.1:{}", broker.port);
    let flags = [
        "--registry=azure",
        url.as_str(),
        "--registry-mqtt-client-id=schema-failing",
        "--registry-attempts=2",
    ];
    let schema = Schema::start_with(dir.path(), paddr, &flags).await;
    schema.wait_serving().await;
    let mut stream = Stream::open(&schema).await;
    responder.fail_next(&[500; 10 * DATASETS]);
    let burst = (0..DATASETS)
        .map(|i| dataset_event(&format!("d{i}"), 1, r#"{"v":1.5}"#))
        .collect();
    stream.send(burst).await;
    let acks = stream.acks(DATASETS).await;
    assert_eq!(acks.len(), DATASETS);
    assert_eq!(
        responder.puts(),
        2,
        "one call, tried twice, for the 100 subjects"
    );
    let events = publisher.events();
    assert_eq!(events.len(), DATASETS);
    assert!(
        events.iter().all(|e| e.dataschema.is_empty()),
        "{:?}",
        events[0]
    );
    schema.stop().await;
    publisher.stop().await;
}

/// Ingest asks for acks (`ack_now`, its window full) while one of its events waits on the
/// registry: once that event is sent, the publisher is asked again, so its ack comes without the
/// publisher's ack delay (here: never, unless asked). Without the second ask ingest waited the
/// whole delay, its window full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_asked_for_while_an_event_waits_come_once_it_is_sent() {
    let broker = Mosquitto::start().await.unwrap();
    let responder = Responder::start(broker.port).await;
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    publisher
        .fake
        .hold_acks
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let url = format!("--registry-mqtt-url=mqtt://127.0.0.1:{}", broker.port);
    let flags = [
        "--registry=azure",
        url.as_str(),
        "--registry-mqtt-client-id=schema-asked",
        "--registry-timeout=600s",
    ];
    let schema = Schema::start_with(dir.path(), paddr, &flags).await;
    schema.wait_serving().await;
    let mut stream = Stream::open(&schema).await;
    stream
        .send_asking(vec![dataset_event("warm", 1, r#"{"t":1}"#)])
        .await;
    assert_eq!(stream.acks(1).await[0].seq, 1);

    responder.hold_puts(true);
    stream
        .send_asking(vec![
            dataset_event("new", 1, r#"{"n":1}"#),
            dataset_event("warm", 2, r#"{"t":2}"#),
        ])
        .await;
    let acks = stream.acks(1).await;
    assert_eq!(
        (acks[0].stream_key.as_str(), acks[0].seq),
        ("stream warm", 2)
    );
    harness::eventually("the new subject's PUT", || async {
        (responder.puts() >= 2).then_some(())
    })
    .await;
    responder.hold_puts(false);
    let acks = stream.acks(1).await;
    assert_eq!(
        (acks[0].stream_key.as_str(), acks[0].seq),
        ("stream new", 1)
    );
    schema.stop().await;
    publisher.stop().await;
}

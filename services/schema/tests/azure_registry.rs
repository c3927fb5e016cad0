//! The Azure IoT Operations Schema Registry backend against a real Mosquitto and an in-test
//! responder that follows the registry's published MQTT RPC contract: put/get round trips, the
//! per-subject numbering kept across a restart, retries on 500 and on no answer, no retry on 400,
//! and `sse-schema --registry azure` serving its gRPC API from it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use serde_json::{Value, json};
use sse_e2e::broker::Mosquitto;
use sse_e2e::schema_registry::{NAMESPACE, Responder, Seen};
use sse_proto::v1::schema_service_client::SchemaServiceClient;
use sse_proto::v1::{GetSchemaRequest, ListSchemasRequest, PutSchemaRequest};
use sse_runtime::Shutdown;
use sse_runtime::mqtt::{Broker, BrokerAddress};
use sse_schema::Error;
use sse_schema::azure::{AzureRegistry, AzureSettings, GET_TOPIC, PUT_TOPIC, client_settings};
use sse_schema::canonical::name_of;
use sse_schema::pipeline::{Limits, Outcome, Pipeline};
use sse_schema::registry::{FileRegistry, NewSchema, Registry};

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

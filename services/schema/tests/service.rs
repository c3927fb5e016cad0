//! `sse_schema::run` on 127.0.0.1:0 with a temporary data dir, driven with the generated client,
//! in front of a fake in-test publisher (a tonic server that acks everything and records events).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use sse_proto::v1::{
    GetSchemaRequest, InferSchemaRequest, ListSchemasRequest, NoSchemaReason, PutSchemaRequest,
    RouteKind,
};
use tokio::net::TcpListener;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

mod harness;

use harness::*;

fn version(dataschema: &str) -> &str {
    dataschema.rsplit(':').next().unwrap()
}

/// `PutSchema` and `InferSchema` take the size limit of events (and `InferSchema` the inference
/// limits of the pipeline), answering INVALID_ARGUMENT naming the limit; `PutSchema` answers
/// RESOURCE_EXHAUSTED once the registry's files would pass `--max-registry-bytes`.
#[tokio::test]
async fn put_and_infer_take_the_event_limits_and_the_registry_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start_with(dir.path(), paddr, &["--max-registry-bytes=3000"]).await;
    let mut c = schema.client().await;
    let max = sse_contract::limits::EVENT_BYTES_MAX;
    // A JSON string of `n` bytes, and a schema document of `n` bytes.
    let string_of = |n: usize| format!("\"{}\"", "a".repeat(n - 2));
    let schema_of = |n: usize| format!(r#"{{"description":"{}"}}"#, "a".repeat(n - 18));
    assert_eq!(schema_of(100).len(), 100);

    let err = c
        .infer_schema(InferSchemaRequest {
            payload: string_of(max + 1),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("event size limit") && err.message().contains(&max.to_string()),
        "{err:?}"
    );
    // Within the event limit but over this service's --max-payload-bytes (4096).
    let err = c
        .infer_schema(InferSchemaRequest {
            payload: string_of(5000),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("--max-payload-bytes 4096"),
        "{err:?}"
    );
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let err = c
        .infer_schema(InferSchemaRequest { payload: deep })
        .await
        .unwrap_err();
    assert!(err.message().contains("--max-depth 32"), "{err:?}");
    c.infer_schema(InferSchemaRequest {
        payload: string_of(4096),
    })
    .await
    .unwrap();

    let err = c
        .put_schema(PutSchemaRequest {
            content: schema_of(max + 1),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("event size limit"), "{err:?}");
    // The registry cap: the first schema fits in 3000 bytes, a second one does not.
    c.put_schema(PutSchemaRequest {
        content: schema_of(1500),
        version: "1".into(),
    })
    .await
    .unwrap();
    let err = c
        .put_schema(PutSchemaRequest {
            content: schema_of(1500),
            version: "2".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("--max-registry-bytes"), "{err:?}");
    let listed = c
        .list_schemas(ListSchemasRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.schemas.len(), 1);
    schema.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn registry_api() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start(dir.path(), paddr).await;
    let mut c = schema.client().await;

    let inferred = c
        .infer_schema(InferSchemaRequest {
            payload: r#"{"b": ["x"], "a": 1}"#.into(),
        })
        .await
        .unwrap()
        .into_inner();
    let content: serde_json::Value = serde_json::from_str(&inferred.content).unwrap();
    assert_eq!(
        content["$schema"],
        "http://json-schema.org/draft-07/schema#"
    );
    assert_eq!(content["properties"]["a"]["type"], "integer");
    assert_eq!(content["properties"]["b"]["items"]["type"], "string");
    assert_eq!(
        inferred.name,
        sse_schema::canonical::name_of(&inferred.content)
    );
    let err = c
        .infer_schema(InferSchemaRequest {
            payload: "not json".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Put: content is stored canonical; version defaults to 1; same put is idempotent.
    let put = c
        .put_schema(PutSchemaRequest {
            content: r#"{ "type": "object", "properties": { "z": {}, "a": {} } }"#.into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .schema
        .unwrap();
    assert_eq!(put.version, "1");
    assert_eq!(put.subject, "");
    assert_eq!(put.namespace, "test-ns");
    assert_eq!(put.format, "JsonSchema/draft-07");
    assert_eq!(
        put.content,
        r#"{"properties":{"a":{},"z":{}},"type":"object"}"#
    );
    assert_eq!(put.name.len(), 64);
    let put2 = c
        .put_schema(PutSchemaRequest {
            content: put.content.clone(),
            version: "2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .schema
        .unwrap();
    assert_eq!(put2.name, put.name);
    for bad in ["not json", "[1]", "\"s\""] {
        let err = c
            .put_schema(PutSchemaRequest {
                content: bad.into(),
                version: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
    }
    let err = c
        .put_schema(PutSchemaRequest {
            content: "{}".into(),
            version: "../1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // Get: by version, highest when empty, NOT_FOUND when missing.
    let get = |name: &str, version: &str| GetSchemaRequest {
        name: name.into(),
        version: version.into(),
    };
    let got = c
        .get_schema(get(&put.name, "1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.schema.unwrap(), put);
    let got = c.get_schema(get(&put.name, "")).await.unwrap().into_inner();
    assert_eq!(got.schema.unwrap(), put2);
    for (name, version) in [(put.name.as_str(), "3"), ("ABC", "")] {
        let err = c.get_schema(get(name, version)).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }

    let list = c
        .list_schemas(ListSchemasRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.schemas, vec![put, put2]);

    schema.stop().await;
    publisher.stop().await;
}

/// `PutSchema` takes JSON Schema draft-07 documents only (checked against the draft-07
/// meta-schema; a document naming no draft-07 keyword is a payload put in its place) and each
/// version in one spelling: `01` and `1.02` are refused, `INVALID_ARGUMENT` naming the fault in a
/// bounded message that does not echo the content.
#[tokio::test]
async fn put_takes_draft07_documents_and_versions_in_one_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start(dir.path(), paddr).await;
    let mut c = schema.client().await;
    let put = |content: &str, version: &str| PutSchemaRequest {
        content: content.into(),
        version: version.into(),
    };
    let secret = "x".repeat(10_000);
    let refused = [
        (r#"{"type": 5}"#.to_string(), "/type"),
        (r#"{"foo": 1}"#.to_string(), "no draft-07 keyword"),
        (
            r#"{"temperature": 21.5, "station": "ws"}"#.to_string(),
            "no draft-07 keyword",
        ),
        (
            format!(r#"{{"properties": {{"a": {{"type": "{secret}\u0007"}}}}}}"#),
            "/properties/a/type",
        ),
        (r#"{"required": "a"}"#.to_string(), "/required"),
        (r#"{"minLength": -1}"#.to_string(), "/minLength"),
        (
            r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}"#
                .to_string(),
            "$schema",
        ),
    ];
    for (content, names) in &refused {
        let err = c.put_schema(put(content, "1")).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{content:.80}: {err:?}");
        assert!(
            err.message().contains("draft-07") && err.message().contains(names),
            "{content:.80}: {err:?}"
        );
        assert!(err.message().len() < 400, "bounded: {err:?}");
        assert!(!err.message().contains(&secret[..200]), "not echoed");
        assert!(!err.message().contains('\u{7}'), "no control characters");
    }
    for version in ["01", "1.02", "007", "1.0.00"] {
        let err = c
            .put_schema(put(r#"{"type": "object"}"#, version))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{version}: {err:?}");
        assert!(err.message().contains("leading zero"), "{version}: {err:?}");
    }
    // What a person writes: annotations and unknown keywords beside draft-07 ones (Azure's own
    // example names its schema with `name`), the empty schema, `0`, `1.0`, words.
    for (content, version) in [
        (
            r#"{"$schema": "http://json-schema.org/draft-07/schema#", "name": "n", "type": "object", "required": ["a"]}"#,
            "1",
        ),
        ("{}", "0"),
        (r#"{"type": ["integer", "null"], "minimum": 0}"#, "1.0"),
        (
            r#"{"$schema": "http://json-schema.org/draft-07/schema"}"#,
            "10.2-beta_01",
        ),
    ] {
        c.put_schema(put(content, version))
            .await
            .unwrap_or_else(|e| panic!("{content} {version}: {e:?}"));
    }
    let listed = c
        .list_schemas(ListSchemasRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.schemas.len(), 4, "only what was accepted is stored");
    schema.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn process_tags_relays_and_resumes_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, schema, paddr) = relaying(dir.path()).await;

    let mut s = Stream::open(&schema).await;
    s.send(vec![
        dataset(1, r#"{"station":"ws-01","temperature":21.5}"#),
        // Same shape, other key order and values (an integer where a number was seen).
        dataset(2, r#"{"temperature":22,"station":"ws-02"}"#),
    ])
    .await;
    s.send(vec![
        dataset(3, "plain text, not JSON"),
        dataset(4, r#"{"station":"ws-01","temperature":20,"ok":true}"#),
        event(5, RouteKind::Event, "alerts", "overheat", r#"{"t":1}"#),
    ])
    .await;
    let acks = s.acks(5).await;
    let seqs: Vec<u64> = acks.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert!(
        acks.iter()
            .all(|a| a.stream_key == "dev/ep http://x/readings")
    );
    // Each relayed ack says which schema its event got, or why none.
    let refs: Vec<Option<(String, String)>> = acks
        .iter()
        .map(|a| {
            a.schema
                .as_ref()
                .map(|r| (r.namespace.clone(), r.version.clone()))
        })
        .collect();
    let v = |n: &str| Some(("test-ns".to_string(), n.to_string()));
    assert_eq!(refs, vec![v("1"), v("1"), None, v("2"), v("1")]);
    assert_eq!(acks[2].no_schema_reason(), NoSchemaReason::NotJson);
    assert_eq!(acks[0].no_schema_reason(), NoSchemaReason::Unspecified);
    // Ingest ends its stream: the relay ends it cleanly after the acks.
    drop(s.tx);
    let end = tokio::time::timeout(DEADLINE, s.rx.message())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None)), "{end:?}");

    let events = publisher.events();
    assert_eq!(events.len(), 5);
    let ds: Vec<&str> = events.iter().map(|e| e.dataschema.as_str()).collect();
    assert!(ds[0].starts_with("aio-sr://test-ns/"), "{}", ds[0]);
    assert_eq!(version(ds[0]), "1");
    assert_eq!(ds[1], ds[0]);
    assert_eq!(ds[2], "", "non-JSON passes through without a schema");
    assert_eq!(events[2].data.as_ref(), b"plain text, not JSON");
    assert_eq!(version(ds[3]), "2");
    assert_ne!(ds[3], ds[0]);
    assert_eq!(version(ds[4]), "1", "each subject numbers its own versions");
    // The event's trace continues (no exporter here: the incoming context is kept).
    assert!(
        events[0]
            .traceparent
            .starts_with("00-0af7651916cd43dd8448eb211c80319c-")
    );

    let mut c = schema.client().await;
    let list = c
        .list_schemas(ListSchemasRequest::default())
        .await
        .unwrap()
        .into_inner()
        .schemas;
    assert_eq!(list.len(), 3);
    let name = ds[3]
        .strip_prefix("aio-sr://test-ns/")
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    let got = c
        .get_schema(GetSchemaRequest {
            name: name.into(),
            version: "2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .schema
        .unwrap();
    assert_eq!(got.subject, "asset/readings");
    let content: serde_json::Value = serde_json::from_str(&got.content).unwrap();
    assert_eq!(content["properties"]["temperature"]["type"], "number");
    assert_eq!(
        content["required"],
        serde_json::json!(["station", "temperature"])
    );
    drop(c);
    let v2 = ds[3].to_string();
    schema.stop().await;

    // Restart on the same data dir: known shapes keep their version, numbering resumes.
    let schema = Schema::start(dir.path(), paddr).await;
    let mut s = Stream::open(&schema).await;
    s.send(vec![
        dataset(6, r#"{"ok":false,"temperature":1.25,"station":"x"}"#),
        dataset(
            7,
            r#"{"station":"x","temperature":1,"ok":true,"extra":[1]}"#,
        ),
    ])
    .await;
    s.acks(2).await;
    let events = publisher.events();
    assert_eq!(events[5].dataschema, v2);
    assert_eq!(version(&events[6].dataschema), "3");
    schema.stop().await;
    publisher.stop().await;
}

/// An event whose route kind is unspecified is refused the one way every service refuses it
/// (sse-contract's `RouteKind::from_wire`): the schema service registers no schema for it, not
/// even when its event name would make it look like an event, and relays it untagged.
#[tokio::test]
async fn an_unspecified_route_kind_gets_no_schema() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, schema, _) = relaying(dir.path()).await;

    let mut s = Stream::open(&schema).await;
    s.send(vec![
        event(
            1,
            RouteKind::Unspecified,
            "alerts",
            "overheat",
            r#"{"t":1}"#,
        ),
        event(2, RouteKind::Event, "alerts", "overheat", r#"{"t":1}"#),
    ])
    .await;
    let acks = s.acks(2).await;
    assert_eq!(acks[0].seq, 1);
    assert_eq!(acks[0].schema, None);
    assert_eq!(acks[0].no_schema_reason(), NoSchemaReason::NoRoute);
    assert!(acks[1].schema.is_some(), "{:?}", acks[1]);

    let events = publisher.events();
    assert_eq!(
        events[0].dataschema, "",
        "no schema guessed for an unspecified kind"
    );
    assert_ne!(events[1].dataschema, "");
    let mut c = schema.client().await;
    let list = c
        .list_schemas(ListSchemasRequest::default())
        .await
        .unwrap()
        .into_inner()
        .schemas;
    assert_eq!(list.len(), 1, "only the event's subject: {list:?}");
    drop(c);
    drop(s);
    schema.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn waits_for_a_late_publisher_and_fails_the_stream_when_it_breaks() {
    let dir = tempfile::tempdir().unwrap();
    // Reserve a port for the publisher, which starts later.
    let paddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let schema = Schema::start(dir.path(), paddr).await;
    assert_eq!(schema.health("").await, Some(ServingStatus::NotServing));
    let mut s = Stream::open(&schema).await;
    s.send(vec![dataset(1, r#"{"a":1}"#)]).await;
    assert_eq!(
        schema.health("sseconnector.v1.SchemaService").await,
        Some(ServingStatus::NotServing)
    );

    let publisher = Publisher::start(TcpListener::bind(paddr).await.unwrap()).await;
    let acks = s.acks(1).await;
    assert_eq!(acks[0].seq, 1);
    schema.wait_serving().await;

    // The publisher breaks the stream: ingest's stream ends with UNAVAILABLE.
    s.send(vec![dataset(2, "BREAK")]).await;
    let end = tokio::time::timeout(DEADLINE, async {
        loop {
            match s.rx.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(end.unwrap_err().code(), Code::Unavailable);
    assert_eq!(publisher.events().len(), 1);

    schema.stop().await;
    publisher.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let dir = tempfile::tempdir().unwrap();
    let (publisher, paddr) = Publisher::on_free_port().await;
    let schema = Schema::start(dir.path(), paddr).await;
    let mut s = Stream::open(&schema).await;
    s.send(vec![dataset(1, r#"{"a":1}"#)]).await;
    s.acks(1).await;
    schema.shutdown.token.cancel();
    let end = tokio::time::timeout(DEADLINE, s.rx.message())
        .await
        .unwrap();
    assert_eq!(end.unwrap_err().code(), Code::Unavailable);
    schema.stop().await;
    publisher.stop().await;
}

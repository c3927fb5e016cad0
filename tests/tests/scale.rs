//! Scale-out with the real binaries and a real Mosquitto: ingest replicas split 30 SSE streams by
//! rendezvous hashing (each stream read by exactly one replica, before and after going from 3
//! replicas to 2, and only the streams of the removed replica move), and schema spreads the
//! streams over two publishers behind one address (each event reaches the broker once, each
//! stream on one publisher).

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use sse_e2e::broker::{Mosquitto, free_port};
use sse_e2e::grpcurl;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::otlp::OtlpReceiver;
use sse_e2e::procs::Service;
use sse_e2e::source::{Feed, Reply, SseSource, block, blocks_then_hold};

/// Per path `/s/<i>`: a numbered event every 100 ms, from after `Last-Event-ID`.
fn ticking() -> Feed {
    std::sync::Arc::new(|req| {
        let Some(i) = req.path.strip_prefix("/s/").map(str::to_string) else {
            return Reply::not_found();
        };
        let from: u64 = req
            .header("last-event-id")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let events = futures::stream::unfold(from, move |n| {
            let i = i.clone();
            async move {
                // the source's pace, not a synchronisation
                tokio::time::sleep(Duration::from_millis(100)).await;
                let n = n + 1;
                let b = block(
                    Some(&n.to_string()),
                    None,
                    &format!(r#"{{"stream":{i},"n":{n}}}"#),
                );
                Some((bytes::Bytes::from(b), n))
            }
        });
        Reply::Sse(Box::pin(events))
    })
}

const STREAMS: usize = 30;

/// Per path `/s/<i>`: `events` numbered events, then the stream stays open.
fn feed(events: usize) -> Feed {
    std::sync::Arc::new(move |req| {
        let Some(i) = req.path.strip_prefix("/s/") else {
            return Reply::not_found();
        };
        let blocks = (1..=events)
            .map(|n| {
                block(
                    Some(&n.to_string()),
                    None,
                    &format!(r#"{{"stream":{i},"n":{n}}}"#),
                )
            })
            .collect();
        Reply::Sse(blocks_then_hold(blocks))
    })
}

/// Two publishers on one port, on 127.0.0.1 and 127.0.0.2 (`publisher-a`, `publisher-b`), with
/// the environment `env` gives for each name.
async fn two_publishers(
    broker: &Mosquitto,
    env: impl Fn(&str) -> Vec<(String, String)>,
) -> (Service, Service) {
    loop {
        let port = free_port().unwrap();
        let on = |ip: [u8; 4]| SocketAddr::from((ip, port));
        let args = ["--mqtt-url".to_string(), broker.url()];
        let Ok(a) = Service::start_on(
            "sse-publisher",
            on([127, 0, 0, 1]),
            &args,
            &env("publisher-a"),
        )
        .await
        else {
            continue;
        };
        // The port may have been taken on 127.0.0.2 meanwhile: try another.
        if let Ok(b) = Service::start_on(
            "sse-publisher",
            on([127, 0, 0, 2]),
            &args,
            &env("publisher-b"),
        )
        .await
        {
            return (a, b);
        }
    }
}

/// The sum of `eventsAcknowledged` over the streams `ingest` lists, if it lists `STREAMS`.
async fn acknowledged(ingest: &Service) -> Option<usize> {
    let v = grpcurl::call_json(
        &ingest.addr.to_string(),
        None,
        &["sseconnector.v1.IngestService/ListStreams"],
    )
    .await
    .ok()?;
    let streams = v["streams"].as_array()?.clone();
    let acked: usize = streams
        .iter()
        .map(|s| {
            s["eventsAcknowledged"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .sum();
    (streams.len() == STREAMS).then_some(acked)
}

/// One device whose endpoint serves 30 paths, and one asset with a dataset per path: 30 streams.
fn resources(base: &str) -> String {
    let mut datasets = String::new();
    for i in 0..STREAMS {
        datasets.push_str(&format!("    - {{ name: s{i}, dataSource: /{i} }}\n"));
    }
    format!(
        r#"apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: {{ name: plant }}
spec:
  endpoints:
    inbound:
      sse-0:
        endpointType: Microsoft.SSEHttp
        address: {base}/s
        authentication: {{ method: Anonymous }}
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: {{ name: line }}
spec:
  deviceRef: {{ deviceName: plant, endpointName: sse-0 }}
  defaultDatasetsDestinations:
    - {{ target: Mqtt, configuration: {{ topic: scale/readings, qos: Qos1, retain: Never }} }}
  datasets:
{datasets}"#
    )
}

/// The test's files: resources written for `source`.
struct Dirs {
    dir: tempfile::TempDir,
}

impl Dirs {
    fn new(source: &SseSource) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("resources")).unwrap();
        std::fs::write(
            dir.path().join("resources/resources.yaml"),
            resources(&source.base_url()),
        )
        .unwrap();
        Self { dir }
    }

    fn ingest_args(&self, schema: &str, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--schema".into(),
            schema.into(),
            "--resources".into(),
            self.dir.path().join("resources").display().to_string(),
            "--status-topic".into(),
            String::new(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    }
}

/// The streams one ingest lists, by key, with whether each is connected.
async fn list_streams(ingest: &Service) -> Option<BTreeMap<String, bool>> {
    let v = grpcurl::call_json(
        &ingest.addr.to_string(),
        None,
        &["sseconnector.v1.IngestService/ListStreams"],
    )
    .await
    .ok()?;
    let mut out = BTreeMap::new();
    for s in v["streams"].as_array().cloned().unwrap_or_default() {
        out.insert(
            s["key"].as_str()?.to_string(),
            s["connected"].as_bool().unwrap_or(false),
        );
    }
    Some(out)
}

/// Waits until the ingests together have all 30 streams connected; returns, per ingest, the
/// keys it lists.
async fn owned(ingests: &[Service]) -> Vec<BTreeSet<String>> {
    sse_e2e::eventually("every stream connected on some replica", || async {
        let mut per = Vec::new();
        let mut connected = 0;
        for i in ingests {
            let l = list_streams(i).await?;
            connected += l.values().filter(|c| **c).count();
            per.push(l.into_keys().collect::<BTreeSet<_>>());
        }
        (connected >= STREAMS).then_some(per)
    })
    .await
    .unwrap()
}

/// Requests the source has seen per path.
fn requests_per_path(source: &SseSource) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in source.seen() {
        *m.entry(r.path).or_default() += 1;
    }
    m
}

fn check_split(per: &[BTreeSet<String>]) -> BTreeMap<String, usize> {
    let mut owner = BTreeMap::new();
    for (ordinal, keys) in per.iter().enumerate() {
        assert!(!keys.is_empty(), "replica {ordinal} reads nothing: {per:?}");
        for k in keys {
            if let Some(other) = owner.insert(k.clone(), ordinal) {
                panic!("{k} listed by replicas {other} and {ordinal}");
            }
        }
    }
    assert_eq!(owner.len(), STREAMS, "{per:?}");
    owner
}

async fn start_ingests(
    dirs: &Dirs,
    schema: &str,
    replicas: usize,
    by_pod_name: bool,
) -> Vec<Service> {
    let mut v = Vec::new();
    for o in 0..replicas {
        let (r, o) = (replicas.to_string(), o.to_string());
        let pod = format!("sse-ingest-{o}");
        let extra: Vec<&str> = if by_pod_name {
            vec!["--replicas", &r, "--pod-name", &pod]
        } else {
            vec!["--replicas", &r, "--ordinal", &o]
        };
        v.push(
            Service::start("sse-ingest", &dirs.ingest_args(schema, &extra), &[])
                .await
                .unwrap(),
        );
    }
    v
}

#[tokio::test]
async fn ingest_replicas_read_each_stream_once_and_rebalance_only_what_they_must() {
    let broker = Mosquitto::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, feed(1)).unwrap();
    let dirs = Dirs::new(&source);
    let sub = Subscriber::connect(broker.port, "scale/#").await.unwrap();
    let publisher = Service::start("sse-publisher", &["--mqtt-url".into(), broker.url()], &[])
        .await
        .unwrap();
    let data = dirs.dir.path().join("schemas").display().to_string();
    let schema = Service::start(
        "sse-schema",
        &[
            "--publisher".into(),
            publisher.url(),
            "--data-dir".into(),
            data,
        ],
        &[],
    )
    .await
    .unwrap();

    // Three replicas, ordinals from --ordinal.
    let mut three = start_ingests(&dirs, &schema.url(), 3, false).await;
    let per3 = owned(&three).await;
    let owner3 = check_split(&per3);
    let reqs = requests_per_path(&source);
    assert_eq!(reqs.len(), STREAMS, "{reqs:?}");
    assert!(
        reqs.values().all(|n| *n == 1),
        "a stream read twice: {reqs:?}"
    );
    let msgs = sub
        .wait_until("one event per stream", |m| m.len() >= STREAMS)
        .await
        .unwrap();
    let subjects: BTreeSet<&str> = msgs.iter().filter_map(|m| m.user("subject")).collect();
    assert_eq!(subjects.len(), STREAMS);
    eprintln!(
        "3 replicas: {:?} streams each",
        per3.iter().map(BTreeSet::len).collect::<Vec<_>>()
    );

    for i in &mut three {
        let st = i.terminate(Duration::from_secs(20)).await.unwrap();
        assert!(st.success(), "{st:?}\n{}", i.log_text());
    }
    drop(three);
    let before = requests_per_path(&source);

    // Two replicas, ordinals from the StatefulSet pod name.
    let two = start_ingests(&dirs, &schema.url(), 2, true).await;
    let per2 = owned(&two).await;
    let owner2 = check_split(&per2);
    let after = requests_per_path(&source);
    for (path, n) in &after {
        assert_eq!(
            n - before.get(path).copied().unwrap_or(0),
            1,
            "{path} after the restart"
        );
    }
    let mut moved = 0;
    for (k, o3) in &owner3 {
        if *o3 < 2 {
            assert_eq!(owner2[k], *o3, "{k} moved from a replica that stayed");
        } else {
            moved += 1;
        }
    }
    assert_eq!(moved, per3[2].len());
    eprintln!(
        "2 replicas: {:?} streams each; {moved} moved",
        per2.iter().map(BTreeSet::len).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn two_publishers_behind_one_address_each_get_streams_and_every_event_arrives_once() {
    const EVENTS: usize = 3;
    let broker = Mosquitto::start().await.unwrap();
    let otlp = OtlpReceiver::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, feed(EVENTS)).unwrap();
    let dirs = Dirs::new(&source);
    let sub = Subscriber::connect(broker.port, "scale/#").await.unwrap();
    let otel = |name: &str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), otlp.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "100".to_string()),
            ("OTEL_SERVICE_NAME".to_string(), name.to_string()),
        ]
    };
    let (a, b) = two_publishers(&broker, |n| otel(n)).await;
    let port = a.addr.port();
    let data = dirs.dir.path().join("schemas").display().to_string();
    let schema = Service::start(
        "sse-schema",
        &[
            "--publisher".into(),
            format!("http://127.0.0.1,127.0.0.2:{port}"),
            "--data-dir".into(),
            data,
        ],
        &otel("sse-schema"),
    )
    .await
    .unwrap();
    let ingest = Service::start(
        "sse-ingest",
        &dirs.ingest_args(&schema.url(), &[]),
        &otel("sse-ingest"),
    )
    .await
    .unwrap();

    // Every event acknowledged: nothing is left to re-send.
    sse_e2e::eventually("every event acknowledged", || async {
        (acknowledged(&ingest).await? == STREAMS * EVENTS).then_some(())
    })
    .await
    .unwrap();
    let msgs = sub
        .wait_until("every event on the broker", |m| m.len() >= STREAMS * EVENTS)
        .await
        .unwrap();
    let ids: BTreeSet<&str> = msgs.iter().filter_map(|m| m.user("id")).collect();
    assert_eq!(msgs.len(), STREAMS * EVENTS, "duplicates on the broker");
    assert_eq!(ids.len(), STREAMS * EVENTS);

    // Which publisher published each event: the service of the `send <topic>` span in the
    // event's trace.
    let trace_of = |m: &sse_e2e::mqtt::Received| {
        m.user("traceparent")
            .and_then(|t| t.split('-').nth(1))
            .unwrap_or_default()
            .to_string()
    };
    let traces: BTreeSet<String> = msgs.iter().map(trace_of).collect();
    let by_trace = sse_e2e::eventually("a publish span for every event", || {
        let spans = otlp.spans();
        let traces = traces.clone();
        async move {
            let m: BTreeMap<String, String> = spans
                .into_iter()
                .filter(|s| s.name.starts_with("send ") && traces.contains(&s.trace_id))
                .map(|s| (s.trace_id, s.service))
                .collect();
            (m.len() == traces.len()).then_some(m)
        }
    })
    .await
    .unwrap();
    let mut per_subject: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut per_publisher: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &msgs {
        let publisher = by_trace[&trace_of(m)].as_str();
        per_subject
            .entry(m.user("subject").unwrap_or_default())
            .or_default()
            .insert(publisher);
        *per_publisher.entry(publisher).or_default() += 1;
    }
    eprintln!("events per publisher: {per_publisher:?}");
    assert_eq!(
        per_publisher.len(),
        2,
        "both publishers get traffic: {per_publisher:?}"
    );
    for (subject, pubs) in &per_subject {
        assert_eq!(pubs.len(), 1, "{subject} went to {pubs:?}");
    }
    drop((a, b, schema, ingest));
}

#[tokio::test]
async fn a_listed_publisher_that_is_gone_is_left_out_and_the_other_takes_every_stream() {
    const EVENTS: usize = 2;
    let broker = Mosquitto::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, feed(EVENTS)).unwrap();
    let dirs = Dirs::new(&source);
    let sub = Subscriber::connect(broker.port, "scale/#").await.unwrap();
    let (a, mut b) = two_publishers(&broker, |_| Vec::new()).await;
    let port = a.addr.port();
    let data = dirs.dir.path().join("schemas").display().to_string();
    let schema = Service::start(
        "sse-schema",
        &[
            "--publisher".into(),
            format!("http://127.0.0.1,127.0.0.2:{port}"),
            "--data-dir".into(),
            data,
        ],
        &[],
    )
    .await
    .unwrap();
    // 127.0.0.2 stays listed but is gone (a host down, or a pod DNS still lists).
    b.kill().await.unwrap();
    let ingest = Service::start("sse-ingest", &dirs.ingest_args(&schema.url(), &[]), &[])
        .await
        .unwrap();
    sse_e2e::eventually("every event acknowledged", || async {
        (acknowledged(&ingest).await? == STREAMS * EVENTS).then_some(())
    })
    .await
    .unwrap();
    let msgs = sub
        .wait_until("every event on the broker", |m| m.len() >= STREAMS * EVENTS)
        .await
        .unwrap();
    let ids: BTreeSet<&str> = msgs.iter().filter_map(|m| m.user("id")).collect();
    assert_eq!(ids.len(), STREAMS * EVENTS, "every event at least once");
    eprintln!(
        "{} messages for {} events with one of two publishers gone",
        msgs.len(),
        ids.len()
    );
    drop((a, schema, ingest));
}

#[tokio::test]
async fn a_publisher_that_comes_back_gets_streams_again_and_no_event_is_lost() {
    let broker = Mosquitto::start().await.unwrap();
    let otlp = OtlpReceiver::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let source = SseSource::start(listener, ticking()).unwrap();
    let dirs = Dirs::new(&source);
    let sub = Subscriber::connect(broker.port, "scale/#").await.unwrap();
    let otel = |name: &str| {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), otlp.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "100".to_string()),
            ("OTEL_SERVICE_NAME".to_string(), name.to_string()),
        ]
    };
    let (a, mut b) = two_publishers(&broker, |n| otel(n)).await;
    let port = a.addr.port();
    let data = dirs.dir.path().join("schemas").display().to_string();
    let schema = Service::start(
        "sse-schema",
        &[
            "--publisher".into(),
            format!("http://127.0.0.1,127.0.0.2:{port}"),
            "--data-dir".into(),
            data,
        ],
        &[],
    )
    .await
    .unwrap();
    let ingest = Service::start("sse-ingest", &dirs.ingest_args(&schema.url(), &[]), &[])
        .await
        .unwrap();
    let published_by = |name: &str| {
        otlp.spans()
            .iter()
            .filter(|s| s.name.starts_with("send ") && s.service == name)
            .count()
    };
    sse_e2e::eventually("both publishers publish", || async {
        (published_by("publisher-a") > 0 && published_by("publisher-b") > 0).then_some(())
    })
    .await
    .unwrap();

    b.kill().await.unwrap();
    let on_a = published_by("publisher-a");
    sse_e2e::eventually("publisher-a takes over", || async {
        (published_by("publisher-a") > on_a + 2 * STREAMS).then_some(())
    })
    .await
    .unwrap();
    let on_b = published_by("publisher-b");
    b.restart().await.unwrap();
    // Left out for a while, then probed and given its streams again.
    sse_e2e::eventually("publisher-b publishes again", || async {
        (published_by("publisher-b") > on_b + STREAMS).then_some(())
    })
    .await
    .unwrap();

    // No gap in any stream: every number up to the highest seen reached the broker.
    let msgs = sub.all();
    let mut seen: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for m in &msgs {
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        seen.entry(v["stream"].as_u64().unwrap())
            .or_default()
            .insert(v["n"].as_u64().unwrap());
    }
    assert_eq!(seen.len(), STREAMS);
    for (stream, ns) in &seen {
        let max = *ns.iter().next_back().unwrap();
        assert_eq!(ns.len() as u64, max, "stream {stream} has a gap: {ns:?}");
    }
    let events: usize = seen.values().map(BTreeSet::len).sum();
    eprintln!(
        "{} messages for {events} events across a publisher kill and restart",
        msgs.len()
    );
    drop((a, b, schema, ingest));
}

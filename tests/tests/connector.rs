//! `sse-connector`, the three services in one process: every event of a source that drops its
//! connection now and then reaches the broker once, in order, with its CloudEvents properties;
//! acks come back (ingest counts every event acknowledged); each service answers grpcurl on its
//! own port; each event is one trace across the three; SIGTERM stops it cleanly; a broker outage
//! and a kill -9 with a restart lose nothing; a bad command line exits 64 naming the problem;
//! every MQTT connection it opens sends each packet at once (`TCP_NODELAY`).

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use sse_e2e::broker::Mosquitto;
use sse_e2e::grpcurl;
use sse_e2e::numbered::{NumberedSource, Numbering, number_of};
use sse_e2e::otlp::OtlpReceiver;
use sse_e2e::procs::{
    CONNECTOR_PUBLISHER_PRINTS, CONNECTOR_SCHEMA_PRINTS, Service, bin_dir, connector_args,
    run_into_closed_pipe,
};

const TOPIC: &str = "e2e/connector";

/// What a test's connector runs on: resources for the numbered source, a directory for schemas
/// and checkpoints.
struct Setup {
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// With checkpoints in a file of the test's directory, flushed every 100 ms.
    fn new(source: &NumberedSource, broker: &Mosquitto, extra: &[&str]) -> Self {
        let mut setup = Self::defaults(source, broker, extra);
        let store = setup._dir.path().join("checkpoints.json");
        setup.args.extend([
            "--checkpoint-store".to_string(),
            store.display().to_string(),
            "--checkpoint-interval=100ms".to_string(),
        ]);
        setup
    }

    /// With the connector's own checkpoint default (no `--checkpoint-store`).
    fn defaults(source: &NumberedSource, broker: &Mosquitto, extra: &[&str]) -> Self {
        let dir = sse_e2e::numbered::resources_dir(&source.base_url(), TOPIC).unwrap();
        let (res, data) = (dir.path().join("resources"), dir.path().join("schemas"));
        let mut args = connector_args(&broker.url(), &res, &data);
        args.extend(extra.iter().map(|a| a.to_string()));
        Self { args, _dir: dir }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_delivers_every_event_serves_every_api_and_stops_cleanly() {
    let total = 300;
    let broker = Mosquitto::start().await.unwrap();
    let source = NumberedSource::start(Numbering {
        total,
        interval: Duration::from_millis(2),
        drop_every: Some(70),
    })
    .await
    .unwrap();
    let sub = sse_e2e::mqtt::Subscriber::connect(broker.port, TOPIC)
        .await
        .unwrap();
    let setup = Setup::new(&source, &broker, &[]);
    let args = &setup.args;
    let otlp = OtlpReceiver::start().await.unwrap();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), otlp.endpoint())];
    let mut connector = Service::start("sse-connector", args, &env).await.unwrap();

    // Every event once, in order, as the three separate services would publish it.
    let msgs = sub
        .wait_until("every numbered event", |m| m.len() >= total as usize)
        .await
        .unwrap();
    let numbers: Vec<u64> = msgs
        .iter()
        .map(|m| number_of(&m.payload).unwrap())
        .collect();
    assert_eq!(
        numbers,
        (1..=total).collect::<Vec<_>>(),
        "once each, in order"
    );
    let ids: BTreeSet<&str> = msgs.iter().map(|m| m.user("id").unwrap()).collect();
    assert_eq!(ids.len(), total as usize, "one CloudEvents id per event");
    for m in &msgs {
        assert_eq!(m.qos, 1);
        assert_eq!(m.user("specversion"), Some("1.0"));
        assert!(m.user("traceparent").is_some_and(|t| t.len() == 55));
        assert!(
            m.user("dataschema")
                .is_some_and(|d| d.starts_with("aio-sr://")),
            "{:?}",
            m.props
        );
    }
    assert!(
        source.resumed_from().iter().any(|r| r.is_some()),
        "the source dropped the stream and ingest resumed it with Last-Event-ID"
    );

    // One trace per event, through the three services of the process: ingest's span is the root,
    // schema's and the publisher's are below it, and the MQTT traceparent names the publisher's.
    // Schema's and the publisher's follow the messaging conventions: `process` (consumer) and
    // `send <topic>` (producer).
    let send = format!("send {TOPIC}");
    let tp = msgs[0].user("traceparent").unwrap().to_string();
    let (trace_id, span_id) = (tp[3..35].to_string(), &tp[36..52]);
    let spans = sse_e2e::eventually("the first event's spans of all three stages", || {
        let mine: Vec<_> = otlp
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect();
        let names: BTreeSet<String> = mine.iter().map(|s| s.name.clone()).collect();
        // Ingest's span is named after the messaging conventions: `receive <device>/<endpoint>`.
        let all = ["receive counter/sse-0", "process", send.as_str()];
        let found = all.iter().all(|n| names.contains(*n));
        async move { found.then_some(mine) }
    })
    .await
    .unwrap();
    assert!(
        spans.iter().all(|s| s.service == "sse-connector"),
        "{spans:?}"
    );
    let roots: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "{spans:?}");
    assert_eq!(roots[0].name, "receive counter/sse-0");
    let publish = spans.iter().find(|s| s.span_id == span_id).unwrap();
    assert_eq!(publish.name, send);
    const PRODUCER: i32 = 4;
    const CONSUMER: i32 = 5;
    assert_eq!(publish.kind, PRODUCER, "{publish:?}");
    let id = msgs[0].user("id").unwrap();
    for (k, v) in [
        ("messaging.system", "mqtt"),
        ("messaging.operation.name", "send"),
        ("messaging.operation.type", "send"),
        ("messaging.destination.name", TOPIC),
        ("messaging.message.id", id),
    ] {
        assert_eq!(
            publish.attributes.get(k).map(String::as_str),
            Some(v),
            "{publish:?}"
        );
    }
    let process = spans.iter().find(|s| s.name == "process").unwrap();
    assert_eq!(process.kind, CONSUMER, "{process:?}");
    for (k, v) in [
        ("messaging.system", "sse"),
        ("messaging.operation.name", "process"),
        ("messaging.operation.type", "process"),
    ] {
        assert_eq!(
            process.attributes.get(k).map(String::as_str),
            Some(v),
            "{process:?}"
        );
    }

    // Each service on its own port, as grpcurl sees it.
    let front = connector.addr.to_string();
    let schema = connector
        .printed_addr(CONNECTOR_SCHEMA_PRINTS)
        .await
        .unwrap();
    let publisher = connector
        .printed_addr(CONNECTOR_PUBLISHER_PRINTS)
        .await
        .unwrap();
    let (schema, publisher) = (schema.to_string(), publisher.to_string());
    for (addr, own) in [
        (&front, "sseconnector.v1.IngestService"),
        (&schema, "sseconnector.v1.SchemaService"),
        (&publisher, "sseconnector.v1.PublisherService"),
    ] {
        let list = grpcurl::call(addr, None, &["list"]).await.unwrap();
        assert!(list.contains(own), "{addr} lists {list}");
        // Only what this port serves: a call to another service here is Unimplemented.
        let ours = |l: &&str| l.starts_with("sseconnector.");
        let listed: Vec<&str> = list.lines().map(str::trim).filter(ours).collect();
        assert_eq!(listed, [own], "{addr} lists {list}");
        assert!(list.contains("grpc.health.v1.Health"), "{list}");
        let health = grpcurl::call_json(addr, None, &["grpc.health.v1.Health/Check"])
            .await
            .unwrap();
        assert_eq!(health["status"], "SERVING", "{own}: {health}");
    }

    // Acks travel back through the process: ingest counts every event acknowledged.
    let streams = sse_e2e::eventually("every event acknowledged", || {
        let front = front.clone();
        async move {
            let v =
                grpcurl::call_json(&front, None, &["sseconnector.v1.IngestService/ListStreams"])
                    .await
                    .ok()?;
            let acked: u64 = v["streams"][0]["eventsAcknowledged"]
                .as_str()?
                .parse()
                .ok()?;
            (acked >= total).then_some(v)
        }
    })
    .await
    .unwrap();
    assert_eq!(
        streams["streams"][0]["lastEventId"],
        total.to_string(),
        "{streams}"
    );
    let dataschema = msgs[0].user("dataschema").unwrap();
    let name = dataschema
        .rsplit('/')
        .next()
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    let schemas = grpcurl::call_json(
        &schema,
        None,
        &["sseconnector.v1.SchemaService/ListSchemas"],
    )
    .await
    .unwrap();
    assert!(schemas.to_string().contains(name), "{schemas}");

    // SIGTERM: ingest, then schema, then the publisher stop, and the process exits 0.
    let status = connector.terminate(Duration::from_secs(40)).await.unwrap();
    assert!(status.success(), "{status:?}\n{}", connector.log_text());
    let logs = connector.log_text();
    assert!(
        logs.contains("stopping: ingest, then schema, then publisher"),
        "{logs}"
    );
    assert!(!logs.contains("stopped with an error"), "{logs}");

    // Both event streams were called in-process (messages unencoded), never over loopback gRPC:
    // each service started only once the one it calls served in-process.
    let opened = |what: &str| -> Vec<&str> { logs.lines().filter(|l| l.contains(what)).collect() };
    let process = opened("Process stream to schema open");
    assert!(!process.is_empty(), "{logs}");
    for line in process {
        assert!(line.contains("link=\"in-process\""), "{line}");
    }
    let publish = opened("Publish streams open");
    assert!(!publish.is_empty(), "{logs}");
    for line in publish {
        assert!(line.contains("in_process=1"), "{line}");
    }
}

/// Runs `sse-connector` with `args` and returns its exit code and stderr.
async fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(bin_dir().join("sse-connector"))
        .args(args)
        .env_remove("RESOURCES_DIR")
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_bad_command_line_exits_64_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().display().to_string();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let any = "127.0.0.1:0";
    let listen = ["--listen", any, "--publisher-listen", any];
    for (args, expected) in [
        (vec!["--nope"], "unknown flag --nope"),
        (
            vec!["--schema", "http://127.0.0.1:1"],
            "--schema (ingest's schema address)",
        ),
        (vec!["--publisher=http://127.0.0.1:1"], "--publisher"),
        (vec!["--resources"], "flag --resources needs a value"),
        (vec!["--resources", "/no/such/dir"], "/no/such/dir"),
        (
            vec!["--resources", &res, "--max-in-flight", "0"],
            "sse-ingest",
        ),
        (
            vec!["--resources", &res, "--mqtt-url", "ftp://x"],
            "sse-publisher",
        ),
        (
            vec![
                "--resources",
                &res,
                "--mqtt-url",
                "mqtt://127.0.0.1:1",
                "--schema-listen",
                &busy,
            ],
            "sse-schema: cannot listen on",
        ),
    ] {
        let mut all = listen.to_vec();
        if !args.contains(&"--schema-listen") {
            all.extend(["--schema-listen", any]);
        }
        all.extend(args.iter().copied());
        let (code, _, err) = run(&all).await;
        assert_eq!(code, Some(64), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in {err}"
        );
    }
    let (code, help, _) = run(&["--help"]).await;
    assert_eq!(code, Some(0));
    for flag in [
        "--schema-listen",
        "--publisher-listen",
        "--mqtt-url",
        "--resources",
        "--data-dir",
    ] {
        assert!(help.contains(flag), "help names {flag}: {help}");
    }
}

/// `sse-connector --help | head`: the help printed into a pipe whose reader has gone ends
/// quietly with 0, as it does for every service, not with a panic.
#[tokio::test]
async fn help_and_version_into_a_closed_pipe_exit_quietly() {
    for bin in [
        "sse-connector",
        "sse-ingest",
        "sse-schema",
        "sse-publisher",
        "sse-console",
        "sse-demo-source",
    ] {
        for flag in ["--help", "-h", "--version"] {
            let e = run_into_closed_pipe(bin, &[flag]).await.unwrap();
            assert_eq!(e.code, Some(0), "{bin} {flag}: {}", e.stderr);
            assert!(e.stderr.is_empty(), "{bin} {flag}: {}", e.stderr);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_and_a_kill_lose_nothing() {
    let total = 3000;
    let broker = Mosquitto::start_persistent().await.unwrap();
    let sub = sse_e2e::mqtt::Subscriber::connect_persistent(broker.port, TOPIC, "connector-sub")
        .await
        .unwrap();
    let mut broker = broker;
    let source = NumberedSource::start(Numbering {
        total,
        interval: Duration::from_millis(1),
        drop_every: None,
    })
    .await
    .unwrap();
    let setup = Setup::new(&source, &broker, &["--client-id", "connector-faults"]);
    let mut connector = Service::start("sse-connector", &setup.args, &[])
        .await
        .unwrap();
    let distinct = |n: usize| {
        move |m: &[sse_e2e::mqtt::Received]| {
            m.iter()
                .filter_map(|r| number_of(&r.payload))
                .collect::<BTreeSet<_>>()
                .len()
                >= n
        }
    };

    // The broker goes away for a while and comes back: the publisher holds, ingest stops reading.
    sub.wait_until("200 events", distinct(200)).await.unwrap();
    broker.terminate().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.restart().await.unwrap();
    sub.wait_until("1500 events", distinct(1500)).await.unwrap();

    // Killed without a goodbye and started again: it resumes from its checkpoint.
    connector.kill().await.unwrap();
    connector.restart().await.unwrap();
    let msgs = sub
        .wait_until("every event", distinct(total as usize))
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", connector.log_text()));
    let mut ids: std::collections::BTreeMap<u64, BTreeSet<String>> = Default::default();
    for m in &msgs {
        let n = number_of(&m.payload).unwrap();
        ids.entry(n)
            .or_default()
            .insert(m.user("id").unwrap().to_string());
    }
    assert_eq!(ids.len(), total as usize, "every event arrived");
    for (n, set) in &ids {
        assert_eq!(
            set.len(),
            1,
            "event {n} arrived again under another id: {set:?}"
        );
    }
    assert!(
        source.resumed_from().iter().flatten().any(|id| id != "0"),
        "the restarted connector resumed with Last-Event-ID: {:?}",
        source.resumed_from()
    );
}

/// #19 point 8: without `--checkpoint-store` the connector keeps its checkpoints on its broker,
/// so after a kill -9 it resumes with Last-Event-ID instead of re-reading every stream from the
/// server's start (on c5b1955: 1,804 of 3,000 events came twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_checkpoint_store_a_killed_connector_resumes_from_the_broker() {
    let total = 3000;
    let broker = Mosquitto::start().await.unwrap();
    let sub = sse_e2e::mqtt::Subscriber::connect(broker.port, TOPIC)
        .await
        .unwrap();
    let source = NumberedSource::start(Numbering {
        total,
        interval: Duration::from_millis(1),
        drop_every: None,
    })
    .await
    .unwrap();
    let setup = Setup::defaults(&source, &broker, &["--checkpoint-interval=100ms"]);
    let mut connector = Service::start("sse-connector", &setup.args, &[])
        .await
        .unwrap();
    let distinct = |m: &[sse_e2e::mqtt::Received]| -> BTreeSet<u64> {
        m.iter().filter_map(|r| number_of(&r.payload)).collect()
    };
    sub.wait_until("1000 events", |m| distinct(m).len() >= 1000)
        .await
        .unwrap();
    connector.kill().await.unwrap();
    let before = distinct(&sub.all()).last().copied().unwrap_or(0);
    connector.restart().await.unwrap();
    let msgs = sub
        .wait_until("every event", |m| distinct(m).len() >= total as usize)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", connector.log_text()));
    let dups = msgs.len() - distinct(&msgs).len();
    let from = source.resumed_from();
    eprintln!(
        "kill -9 sse-connector without --checkpoint-store: {total} events, {dups} came twice, resumed after {:?}",
        from.last()
    );
    let resumed: u64 = from
        .last()
        .cloned()
        .flatten()
        .unwrap_or_else(|| {
            panic!(
                "the restart sent no Last-Event-ID\n{}",
                connector.log_text()
            )
        })
        .parse()
        .unwrap();
    assert!(
        resumed >= 1 && resumed <= before,
        "resumed after {resumed}, but the broker had only up to {before}"
    );
}

/// #25: rumqttc leaves Nagle's algorithm on, and the services never turned it off, so a publish
/// written before the broker acknowledged the previous small segment waited in the kernel for
/// that ACK (up to the broker's delayed-ACK timer when it had nothing to send back). Every MQTT
/// connection the connector opens, its messages' and its checkpoints', sets `TCP_NODELAY`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mqtt_connection_sends_its_packets_at_once() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = sse_e2e::mqtt::Subscriber::connect(broker.port, TOPIC)
        .await
        .unwrap();
    let source = NumberedSource::start(Numbering {
        total: 50,
        interval: Duration::from_millis(2),
        drop_every: None,
    })
    .await
    .unwrap();
    let setup = Setup::defaults(&source, &broker, &["--checkpoint-interval=100ms"]);
    let connector = Service::start("sse-connector", &setup.args, &[])
        .await
        .unwrap();
    sub.wait_until("every event", |m| m.len() >= 50)
        .await
        .unwrap();
    let pid = connector.pid().unwrap();
    // The messages' client and the checkpoints' client (which connects on its first save).
    let conns = sse_e2e::eventually("two connections to the broker", || async move {
        let c = sse_e2e::sockets::connections_to(pid, broker.port).unwrap();
        (c.len() >= 2).then_some(c)
    })
    .await
    .unwrap();
    let nagle: Vec<_> = conns.iter().filter(|c| !c.nodelay).collect();
    assert!(
        nagle.is_empty(),
        "Nagle's algorithm on for {} of {} connections to the broker: {nagle:?}",
        nagle.len(),
        conns.len()
    );
}

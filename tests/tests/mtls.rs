//! Only the connector's own services get in: the three real binaries joined over mTLS (rcgen
//! certificates, grpcurl as the outside caller), the per-method access table, certificate
//! rotation without a restart, the plaintext health-only port, and admin writes turned off
//! where a plaintext server is reachable from outside loopback.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::Subscriber;
use sse_e2e::mtls::{Client, Identity, Outcome, grpcurl, health_check, service_leaf};
use sse_e2e::numbered::{self, NumberedSource, Numbering};
use sse_e2e::pki::Pki;
use sse_e2e::procs::{Service, connector_args};

const TOTAL: u64 = 300;
const INFER: &str = r#"{"payload":"{\"a\":1}"}"#;

/// The three services over mTLS, and the identities a test calls them with.
struct Secured {
    publisher: Service,
    schema: Service,
    ingest: Service,
    ids: [Identity; 3],
    console: Identity,
    pki: Pki,
    _dir: tempfile::TempDir,
}

impl Secured {
    async fn start(broker: &Mosquitto, base: &str) -> anyhow::Result<Self> {
        let pki = Pki::new()?;
        let dir = numbered::resources_dir(base, "e2e/n")?;
        let tls = dir.path().join("tls");
        let id = |name: &str| Identity::issue(&tls, &pki, name, &pki.ca_pem);
        let ids = [id("sse-publisher")?, id("sse-schema")?, id("sse-ingest")?];
        let console = id("sse-console")?;
        let args = |id: &Identity, extra: Vec<String>| {
            let mut a = id.flags();
            a.extend(["--health-listen".into(), "127.0.0.1:0".into()]);
            a.extend(extra);
            a
        };
        let s = |x: &str| x.to_string();
        let publisher = Service::start(
            "sse-publisher",
            &args(&ids[0], vec![s("--mqtt-url"), broker.url()]),
            &[],
        )
        .await?;
        let https = |svc: &Service| format!("https://{}", svc.addr);
        let data = dir.path().join("schemas").display().to_string();
        let schema_args = vec![s("--publisher"), https(&publisher), s("--data-dir"), data];
        let schema = Service::start("sse-schema", &args(&ids[1], schema_args), &[]).await?;
        let res = dir.path().join("resources").display().to_string();
        let ingest_args = vec![s("--schema"), https(&schema), s("--resources"), res];
        let ingest = Service::start("sse-ingest", &args(&ids[2], ingest_args), &[]).await?;
        Ok(Self {
            publisher,
            schema,
            ingest,
            ids,
            console,
            pki,
            _dir: dir,
        })
    }

    fn services(&self) -> [&Service; 3] {
        [&self.publisher, &self.schema, &self.ingest]
    }
}

async fn source() -> anyhow::Result<NumberedSource> {
    NumberedSource::start(Numbering {
        total: TOTAL,
        interval: Duration::from_millis(10),
        drop_every: None,
    })
    .await
}

fn numbers(sub: &Subscriber) -> BTreeSet<u64> {
    sub.all()
        .iter()
        .filter_map(|m| numbered::number_of(&m.payload))
        .collect()
}

fn denied(o: &Outcome, rule: &str) {
    assert!(!o.ok, "call succeeded: {}", o.stdout);
    assert!(o.stderr.contains("Code: PermissionDenied"), "{}", o.stderr);
    assert!(o.stderr.contains(rule), "{}", o.stderr);
}

/// No TLS session came up: grpcurl could not dial, and no gRPC status was ever returned.
fn handshake_failed(o: &Outcome) {
    assert!(!o.ok, "call succeeded: {}", o.stdout);
    assert!(
        o.stderr.contains("Failed to dial target host"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("Code:"), "{}", o.stderr);
}

/// A broker with a subscriber on `e2e/#`, a numbered source and the three services over mTLS.
async fn secured_pipeline() -> (Mosquitto, Subscriber, NumberedSource, Secured) {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/#").await.unwrap();
    let src = source().await.unwrap();
    let base = src.source.base_url();
    let s = Secured::start(&broker, &base).await.unwrap();
    (broker, sub, src, s)
}

/// The address of a service's plaintext health-only listener.
async fn health_addr(svc: &Service) -> String {
    let prefix = format!("{} health listening on ", svc.name);
    svc.printed_addr(&prefix).await.unwrap().to_string()
}

#[tokio::test]
async fn services_joined_over_mtls_deliver_and_refuse_every_stranger() {
    let (_broker, sub, _src, s) = secured_pipeline().await;
    sub.wait_until("every event over mTLS", |_| {
        (1..=TOTAL).all(|n| numbers(&sub).contains(&n))
    })
    .await
    .unwrap();

    let schema = s.schema.addr.to_string();
    let console = Client::As(&s.console);
    // The console reads every service, and calls the admin writes.
    let ok = grpcurl(
        &schema,
        console.clone(),
        None,
        &["sseconnector.v1.SchemaService/ListSchemas"],
    );
    let ok = ok.await.unwrap();
    assert!(ok.ok && ok.stdout.contains("schemas"), "{ok:?}");
    let ingest = s.ingest.addr.to_string();
    let streams = grpcurl(
        &ingest,
        console.clone(),
        None,
        &["sseconnector.v1.IngestService/ListStreams"],
    );
    let streams = streams.await.unwrap();
    assert!(
        streams.ok && streams.stdout.contains("numbers"),
        "{streams:?}"
    );
    let infer = grpcurl(
        &schema,
        console.clone(),
        Some(INFER),
        &["sseconnector.v1.SchemaService/InferSchema"],
    );
    let infer = infer.await.unwrap();
    assert!(infer.ok, "{infer:?}");
    // ... but cannot open the pipeline streams.
    let process = "sseconnector.v1.SchemaService/Process";
    let o = grpcurl(&schema, console.clone(), Some("{}"), &[process])
        .await
        .unwrap();
    denied(&o, "only the ingest identity (ingest=sse-ingest)");
    let publish = "sseconnector.v1.PublisherService/Publish";
    let publisher = s.publisher.addr.to_string();
    let o = grpcurl(&publisher, console.clone(), Some("{}"), &[publish])
        .await
        .unwrap();
    denied(&o, "only the schema identity (schema=sse-schema)");
    // A peer service is no admin: ingest's certificate cannot write.
    let as_ingest = Client::As(&s.ids[2]);
    let o = grpcurl(
        &schema,
        as_ingest.clone(),
        Some(INFER),
        &["sseconnector.v1.SchemaService/InferSchema"],
    );
    denied(
        &o.await.unwrap(),
        "an admin write: only the console identity",
    );
    let msg = r#"{"topic":"e2e/forged","payload":"eA=="}"#;
    let o = grpcurl(
        &publisher,
        as_ingest,
        Some(msg),
        &["sseconnector.v1.PublisherService/PublishMessage"],
    );
    denied(
        &o.await.unwrap(),
        "the caller's certificate names [\"sse-ingest\"]",
    );

    // Without a certificate, with one of another CA, or in plaintext: no TLS session at all.
    let list = ["sseconnector.v1.SchemaService/ListSchemas"];
    let o = grpcurl(&schema, Client::NoCert { ca: &s.console.ca }, None, &list);
    handshake_failed(&o.await.unwrap());
    let stranger_pki = Pki::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let stranger = stranger_identity(tmp.path(), &stranger_pki, &s.pki.ca_pem);
    let o = grpcurl(&schema, Client::As(&stranger), None, &list);
    handshake_failed(&o.await.unwrap());
    let o = grpcurl(&schema, Client::Plain, None, &list).await.unwrap();
    assert!(!o.ok && !o.stdout.contains("schemas"), "{o:?}");
    assert!(
        s.schema.log_text().contains("gRPC TLS handshake refused"),
        "{}",
        s.schema.log_text()
    );

    // Probes answer on each plaintext health port, which serves nothing else.
    for (svc, name) in s
        .services()
        .into_iter()
        .zip(["Publisher", "Schema", "Ingest"])
    {
        let at = health_addr(svc).await;
        let o = health_check(&at, &format!("sseconnector.v1.{name}Service"))
            .await
            .unwrap();
        assert!(o.ok && o.stdout.contains("SERVING"), "{}: {o:?}", svc.name);
        let o = grpcurl(&at, Client::Plain, None, &list).await.unwrap();
        assert!(!o.ok, "{}: the health port served {o:?}", svc.name);
    }
    assert!(sub.all().iter().all(|m| m.topic != "e2e/forged"));
}

/// A console certificate (the right name) issued by a CA the services do not trust.
fn stranger_identity(dir: &Path, pki: &Pki, trusted_ca: &str) -> Identity {
    Identity::issue(dir, pki, "sse-console", trusted_ca).unwrap()
}

#[tokio::test]
async fn certificates_rotate_mid_stream_without_a_restart_or_a_lost_event() {
    let (_broker, sub, _src, s) = secured_pipeline().await;
    sub.wait_until("events flowing", |_| numbers(&sub).len() >= 20)
        .await
        .unwrap();
    let schema = s.schema.addr.to_string();
    let list = ["sseconnector.v1.SchemaService/ListSchemas"];

    // A new CA: until the services trust it, its console certificate is a stranger's.
    let next = Pki::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let next_console = Identity::issue(tmp.path(), &next, "sse-console", &next.ca_pem).unwrap();
    let o = grpcurl(&schema, Client::As(&next_console), None, &list)
        .await
        .unwrap();
    handshake_failed(&o);

    // cert-manager rotates every service onto the new CA, the bundle trusting both meanwhile.
    let both = format!("{}{}", s.pki.ca_pem, next.ca_pem);
    for id in &s.ids {
        let name = id
            .cert
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        id.rotate(&service_leaf(&next, name).unwrap(), &both)
            .unwrap();
    }
    // The next handshakes use the new files: the new CA's console gets in, and schema now
    // presents a certificate only the new CA vouches for.
    let o = grpcurl(&schema, Client::As(&next_console), None, &list)
        .await
        .unwrap();
    assert!(o.ok, "{o:?}");
    assert!(
        s.schema
            .log_text()
            .contains("gRPC TLS certificates reloaded")
    );

    sub.wait_until("every event, through the rotation", |_| {
        (1..=TOTAL).all(|n| numbers(&sub).contains(&n))
    })
    .await
    .unwrap();
    for svc in s.services() {
        assert!(svc.pid().is_some(), "{} restarted or died", svc.name);
        let at = health_addr(svc).await;
        let o = health_check(&at, "liveness").await.unwrap();
        assert!(o.ok && o.stdout.contains("SERVING"), "{}: {o:?}", svc.name);
    }
}

#[tokio::test]
async fn without_mtls_admin_writes_stay_on_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("schemas").display().to_string();
    let args = ["--data-dir".to_string(), data];
    let infer = ["sseconnector.v1.SchemaService/InferSchema"];

    let exposed = Service::start_on("sse-schema", "0.0.0.0:0".parse().unwrap(), &args, &[]);
    let exposed = exposed.await.unwrap();
    let at = format!("127.0.0.1:{}", exposed.addr.port());
    let o = grpcurl(&at, Client::Plain, Some(INFER), &infer)
        .await
        .unwrap();
    denied(
        &o,
        "admin writes and payload reads are off: this server listens on 0.0.0.0:",
    );
    let read = ["sseconnector.v1.SchemaService/ListSchemas"];
    let o = grpcurl(&at, Client::Plain, None, &read).await.unwrap();
    assert!(o.ok, "reads stay open: {o:?}");
    let log = exposed.log_text();
    assert!(log.contains("WITHOUT mTLS"), "{log}");
    // It names its own admin writes, not another service's.
    assert!(
        log.contains("PutSchema, DeleteSchema, InferSchema are OFF"),
        "{log}"
    );
    assert!(!log.contains("PublishMessage"), "{log}");

    let local = Service::start("sse-schema", &args, &[]).await.unwrap();
    let at = local.addr.to_string();
    let o = grpcurl(&at, Client::Plain, Some(INFER), &infer);
    let o = o.await.unwrap();
    assert!(o.ok, "loopback stays open for local development: {o:?}");
}

#[tokio::test]
async fn half_configured_or_mismatched_tls_exits_64_naming_the_flag() {
    let pki = Pki::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let id = Identity::issue(tmp.path(), &pki, "sse-schema", &pki.ca_pem).unwrap();
    let flags = id.flags();
    let data = tmp.path().join("d").display().to_string();
    let cases: [(Vec<String>, &str); 4] = [
        (flags[..2].to_vec(), "--grpc-tls-cert"),
        (
            vec!["--publisher".into(), "https://127.0.0.1:1".into()],
            "https:// needs --grpc-tls-ca",
        ),
        (
            [
                flags.clone(),
                vec!["--publisher".into(), "http://127.0.0.1:1".into()],
            ]
            .concat(),
            "the peer must be https://",
        ),
        (
            [
                flags[..4].to_vec(),
                vec!["--grpc-tls-key".into(), id.cert.display().to_string()],
            ]
            .concat(),
            "private key",
        ),
    ];
    for (args, says) in cases {
        let out = tokio::process::Command::new(sse_e2e::procs::bin_dir().join("sse-schema"))
            .args(["--listen", "127.0.0.1:0", "--data-dir", &data])
            .args(&args)
            .output()
            .await
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("BEGIN"), "key material in the error: {err}");
    }
}

#[tokio::test]
async fn the_one_process_form_takes_the_same_flags_and_joins_itself_in_process() {
    let broker = Mosquitto::start().await.unwrap();
    let sub = Subscriber::connect(broker.port, "e2e/#").await.unwrap();
    let src = source().await.unwrap();
    let dir = numbered::resources_dir(&src.source.base_url(), "e2e/n").unwrap();
    let pki = Pki::new().unwrap();
    let tls = dir.path().join("tls");
    let id = |name: &str| Identity::issue(&tls, &pki, name, &pki.ca_pem).unwrap();
    let (me, console, schema_id) = (id("sse-ingest"), id("sse-console"), id("sse-schema"));
    // Every port is picked by the kernel: the defaults (50052, 50053) lie in the ephemeral range,
    // where a parallel test's listener can hold them.
    let (res, data) = (dir.path().join("resources"), dir.path().join("schemas"));
    let mut args = connector_args(&broker.url(), &res, &data);
    args.extend(me.flags());
    args.extend(
        [
            "--health-listen",
            "127.0.0.1:0",
            "--checkpoint-store",
            "none",
        ]
        .map(String::from),
    );
    let connector = Service::start("sse-connector", &args, &[]).await.unwrap();
    sub.wait_until("every event through the one process", |_| {
        (1..=TOTAL).all(|n| numbers(&sub).contains(&n))
    })
    .await
    .unwrap();
    let front = connector.addr.to_string();
    let list = ["sseconnector.v1.IngestService/ListStreams"];
    let o = grpcurl(&front, Client::As(&console), None, &list)
        .await
        .unwrap();
    assert!(o.ok && o.stdout.contains("numbers"), "{o:?}");
    // Its front door is guarded like sse-ingest's: a peer's certificate reads, no certificate
    // gets no session.
    let o = grpcurl(&front, Client::As(&schema_id), None, &list)
        .await
        .unwrap();
    assert!(o.ok, "{o:?}");
    let o = grpcurl(&front, Client::NoCert { ca: &console.ca }, None, &list);
    handshake_failed(&o.await.unwrap());
    let at = connector
        .printed_addr("sse-ingest health listening on ")
        .await
        .unwrap()
        .to_string();
    let o = health_check(&at, "sseconnector.v1.IngestService")
        .await
        .unwrap();
    assert!(o.ok && o.stdout.contains("SERVING"), "{o:?}");
}

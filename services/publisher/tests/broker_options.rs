//! Broker connection options against a real Mosquitto and the real `sse-publisher` binary:
//! TLS with a custom CA, a client certificate (mTLS) and a password file; a wrong password, an
//! untrusted broker certificate and a rejected client certificate each keep health NOT_SERVING
//! with a logged reason naming the problem (and never the secret); Azure's
//! `MQTT_CONNECTION_CONFIGURATION` as the configuration source; and the `K8S-SAT` token, read
//! afresh at each connect, against a mock of Azure IoT Operations' broker authentication.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::BytesMut;
use rumqttc::v5::mqttbytes::v5::{ConnAck, ConnectReturnCode, Packet};
use sse_e2e::broker::Mosquitto;
use sse_e2e::eventually;
use sse_e2e::pki::Pki;
use sse_e2e::procs::Service;
use sse_proto::v1 as pb;
use sse_proto::v1::publisher_service_client::PublisherServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const PASSWORD: &str = "s3cret-broker-password";

fn s(x: &str) -> String {
    x.to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> Result<String> {
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p.display().to_string())
}

async fn health(addr: &str) -> Result<i32> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "sseconnector.v1.PublisherService".into(),
        })
        .await?
        .into_inner()
        .status;
    Ok(status)
}

async fn wait_serving(p: &Service) -> Result<()> {
    let addr = p.addr.to_string();
    eventually("publisher SERVING", || {
        let addr = addr.clone();
        async move {
            (health(&addr).await.ok() == Some(ServingStatus::Serving as i32)).then_some(())
        }
    })
    .await
    .with_context(|| p.log_text())
}

async fn wait_log(p: &Service, needle: &str) -> Result<()> {
    eventually(&format!("log line containing {needle:?}"), || async {
        p.log_text().contains(needle).then_some(())
    })
    .await
    .with_context(|| p.log_text())
}

async fn publish_one(p: &Service, topic: &str) -> Result<(), tonic::Status> {
    let mut client = PublisherServiceClient::connect(p.url())
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    client
        .publish_message(pb::PublishMessageRequest {
            topic: topic.into(),
            payload: "hello".into(),
            qos: pb::Qos::AtLeastOnce as i32,
            ..Default::default()
        })
        .await
        .map(|_| ())
}

/// A TLS Mosquitto requiring a client certificate of `pki` and a user name + password.
async fn tls_broker(dir: &Path, pki: &Pki) -> Result<Mosquitto> {
    let server = pki.server(&["localhost", "127.0.0.1"])?;
    let ca = write(dir, "broker-ca.pem", &pki.ca_pem)?;
    let cert = write(
        dir,
        "broker.pem",
        &format!("{}{}", server.cert_pem, server.chain_pem),
    )?;
    let key = write(dir, "broker.key", &server.key_pem)?;
    let passwd = dir.join("passwd");
    let st = std::process::Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwd)
        .args(["publisher", PASSWORD])
        .status()
        .context("mosquitto_passwd")?;
    anyhow::ensure!(st.success(), "mosquitto_passwd failed");
    let lines = [
        format!("cafile {ca}"),
        format!("certfile {cert}"),
        format!("keyfile {key}"),
        s("require_certificate true"),
        s("allow_anonymous false"),
        format!("password_file {}", passwd.display()),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    Mosquitto::start_with(&refs).await
}

struct Files {
    ca: String,
    cert: String,
    key: String,
    password: String,
}

fn client_files(dir: &Path, tag: &str, pki: &Pki, password: &str) -> Result<Files> {
    let client = pki.client("sse-publisher")?;
    Ok(Files {
        ca: write(dir, &format!("{tag}-ca.pem"), &pki.ca_pem)?,
        cert: write(
            dir,
            &format!("{tag}-client.pem"),
            &format!("{}{}", client.cert_pem, client.chain_pem),
        )?,
        key: write(dir, &format!("{tag}-client.key"), &client.key_pem)?,
        password: write(dir, &format!("{tag}-password"), &format!("{password}\n"))?,
    })
}

async fn tls_publisher(port: u16, f: &Files, client_id: &str) -> Result<Service> {
    Service::start(
        "sse-publisher",
        &[
            s("--mqtt-url"),
            format!("mqtts://127.0.0.1:{port}"),
            s("--mqtt-ca-file"),
            f.ca.clone(),
            s("--mqtt-cert-file"),
            f.cert.clone(),
            s("--mqtt-key-file"),
            f.key.clone(),
            s("--mqtt-username"),
            s("publisher"),
            s("--mqtt-password-file"),
            f.password.clone(),
            s("--client-id"),
            s(client_id),
        ],
        &[],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificate_and_password_file() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::new()?;
    let broker = tls_broker(dir.path(), &pki).await?;
    let files = client_files(dir.path(), "good", &pki, PASSWORD)?;
    let p = tls_publisher(broker.port, &files, "pub-tls").await?;
    wait_serving(&p).await?;
    publish_one(&p, "options/tls").await?;
    assert!(!p.log_text().contains(PASSWORD));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_ca_and_client_certificate_are_named() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let pki = Pki::new()?;
    let other = Pki::new()?;
    let broker = tls_broker(dir.path(), &pki).await?;

    // A wrong password.
    let wrong_pw = client_files(dir.path(), "pw", &pki, "not-the-password")?;
    // A CA that did not issue the broker's certificate.
    let mut bad_ca = client_files(dir.path(), "ca", &pki, PASSWORD)?;
    bad_ca.ca = write(dir.path(), "other-ca.pem", &other.ca_pem)?;
    // A client certificate the broker does not trust.
    let mut bad_cert = client_files(dir.path(), "cert", &other, PASSWORD)?;
    bad_cert.ca = write(dir.path(), "right-ca.pem", &pki.ca_pem)?;

    let cases = [
        (&wrong_pw, "not authorized", "not-the-password"),
        (&bad_ca, "broker's certificate is not trusted", PASSWORD),
        (&bad_cert, "client certificate", PASSWORD),
    ];
    for (i, (files, reason, secret)) in cases.into_iter().enumerate() {
        // Mosquitto answers a wrong MQTT 5 password with NotAuthorized.
        let p = tls_publisher(broker.port, files, &format!("pub-bad-{i}")).await?;
        wait_log(&p, reason).await?;
        assert_eq!(
            health(&p.addr.to_string()).await?,
            ServingStatus::NotServing as i32,
            "{reason}"
        );
        let err = publish_one(&p, "options/never").await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{reason}");
        assert!(
            !p.log_text().contains(secret),
            "secret in logs for {reason}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_connection_configuration_is_a_source_and_flags_win() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let broker = Mosquitto::start().await?;
    let conf = write(
        dir.path(),
        "MQTT_CONNECTION_CONFIGURATION",
        &format!(
            r#"{{"host":"127.0.0.1:{}","keepAliveSeconds":10,"maxInflightMessages":5,"protocol":"mqtt","sessionExpirySeconds":60,"tls":{{"mode":"Disabled"}}}}"#,
            broker.port
        ),
    )?;
    // From the file, through the environment, as Azure IoT Operations sets it.
    let p = Service::start(
        "sse-publisher",
        &[],
        &[
            (s("MQTT_CONNECTION_CONFIGURATION"), conf.clone()),
            (s("CONNECTOR_ID"), s("aio-connector-0")),
        ],
    )
    .await?;
    wait_serving(&p).await?;
    publish_one(&p, "options/aio").await?;
    // An explicit URL wins over the file's host.
    let other = Mosquitto::start().await?;
    let q = Service::start(
        "sse-publisher",
        &[s("--mqtt-url"), other.url()],
        &[(s("MQTT_CONNECTION_CONFIGURATION"), conf)],
    )
    .await?;
    wait_serving(&q).await?;
    broker.stop().await;
    publish_one(&q, "options/flag-wins").await?;
    Ok(())
}

/// One CONNECT as the mock saw it.
#[derive(Debug, Clone)]
struct SeenConnect {
    client_id: String,
    method: Option<String>,
    data: Option<Vec<u8>>,
}

/// A mock of Azure IoT Operations' MQTT broker authentication, which Mosquitto does not have:
/// it reads the MQTT 5 CONNECT and checks the `K8S-SAT` enhanced authentication exactly as the
/// published contract describes it (authentication method `K8S-SAT`, the service account token
/// as authentication data, no AUTH exchange before CONNACK), answers CONNACK (success, or
/// `NotAuthorized` for any other token), then closes the connection so that the client
/// reconnects and shows the token it read for the new connection.
async fn sat_broker(
    listener: TcpListener,
    accepted_token: &'static str,
    seen: Arc<Mutex<Vec<SeenConnect>>>,
) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let mut buf = BytesMut::new();
        let connect = loop {
            match Packet::read(&mut buf, None) {
                Ok(p) => break Some(p),
                Err(_) => {
                    let mut chunk = [0u8; 4096];
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break None,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            }
        };
        let Some(Packet::Connect(c, _, _)) = connect else {
            continue;
        };
        let props = c.properties.clone().unwrap_or_default();
        let s = SeenConnect {
            client_id: c.client_id.clone(),
            method: props.authentication_method.clone(),
            data: props.authentication_data.as_ref().map(|d| d.to_vec()),
        };
        let ok = s.method.as_deref() == Some("K8S-SAT")
            && s.data.as_deref() == Some(accepted_token.as_bytes());
        seen.lock().unwrap().push(s);
        let ack = Packet::ConnAck(ConnAck {
            session_present: false,
            code: if ok {
                ConnectReturnCode::Success
            } else {
                ConnectReturnCode::NotAuthorized
            },
            properties: None,
        });
        let mut out = BytesMut::new();
        if ack.write(&mut out, None).is_ok() {
            let _ = sock.write_all(&out).await;
        }
        let _ = sock.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_token_is_read_at_every_connect() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let token: PathBuf = dir.path().join("broker-sat");
    std::fs::write(&token, "expired-token\n")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn(sat_broker(listener, "fresh-token", seen.clone()));
    let p = Service::start(
        "sse-publisher",
        &[
            s("--mqtt-url"),
            format!("mqtt://127.0.0.1:{port}"),
            s("--mqtt-sat-file"),
            token.display().to_string(),
        ],
        &[(s("POD_NAME"), s("sse-publisher-7f9c"))],
    )
    .await?;
    // The first token is refused, with a reason in the log.
    wait_log(&p, "not authorized").await?;
    // The rotated token is used on the next connect.
    std::fs::write(&token, "fresh-token\n")?;
    let all = eventually("a CONNECT with the rotated token", || {
        let all = seen.lock().unwrap().clone();
        async move {
            all.iter()
                .any(|c| c.data.as_deref() == Some(b"fresh-token".as_slice()))
                .then_some(all)
        }
    })
    .await?;
    let first = &all[0];
    assert_eq!(first.method.as_deref(), Some("K8S-SAT"));
    assert_eq!(first.data.as_deref(), Some(b"expired-token".as_slice()));
    assert!(all.iter().all(|c| c.client_id == "sse-publisher-7f9c"));
    assert!(!p.log_text().contains("fresh-token"));
    assert!(!p.log_text().contains("expired-token"));
    task.abort();
    Ok(())
}

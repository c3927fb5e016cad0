//! Delivery faults at the publisher, with the real `sse-publisher` binary and a real Mosquitto:
//! the state store's `+OK` / `-ERR` / silence (against a mock of the Azure-only state store),
//! a topic the broker's ACL denies (an error ack on that destination while others flow), and a
//! lost PUBACK (a proxy in front of Mosquitto swallows the broker's packets on the first
//! connection: the publisher recycles the connection and re-sends).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use sse_e2e::broker::Mosquitto;
use sse_e2e::mqtt::{StateStoreMock, StoreReply, Subscriber, valid_hlc};
use sse_e2e::procs::Service;
use sse_proto::v1 as pb;
use sse_proto::v1::publisher_service_client::PublisherServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn s(x: &str) -> String {
    x.to_string()
}

fn route(destination: pb::destination::Target) -> pb::Route {
    pb::Route {
        device: "dev".into(),
        endpoint: "sse-0".into(),
        asset: "asset".into(),
        kind: pb::RouteKind::Dataset as i32,
        group: "readings".into(),
        data_source: "/readings".into(),
        destination: Some(pb::Destination {
            target: Some(destination),
        }),
        ..Default::default()
    }
}

fn to_topic(seq: u64, topic: &str) -> pb::Event {
    pb::Event {
        id: format!("ev-{seq}"),
        seq,
        stream_key: "dev/sse-0".into(),
        data: bytes::Bytes::from(format!("{{\"n\":{seq}}}")),
        route: Some(route(pb::destination::Target::Mqtt(pb::MqttDestination {
            topic: topic.into(),
            qos: pb::Qos::AtLeastOnce as i32,
            retain: false,
            ttl_seconds: None,
        }))),
        ..Default::default()
    }
}

fn to_key(seq: u64, key: &str) -> pb::Event {
    let mut ev = to_topic(seq, "unused");
    ev.route = Some(route(pb::destination::Target::StateStore(
        pb::StateStoreDestination { key: key.into() },
    )));
    ev
}

/// Sends `events` on one Publish stream and returns every ack's error by seq.
async fn publish(p: &Service, events: Vec<pb::Event>) -> Result<HashMap<u64, String>> {
    let mut client = PublisherServiceClient::connect(p.url()).await?;
    let n = events.len();
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::PublishRequest {
        events,
        ack_now: false,
    })
    .await?;
    let mut acks = client.publish(ReceiverStream::new(rx)).await?.into_inner();
    let mut out = HashMap::new();
    while out.len() < n {
        let resp = tokio::time::timeout(sse_e2e::DEADLINE, acks.message())
            .await
            .with_context(|| format!("acks in time; logs:\n{}", p.log_text()))??
            .context("ack stream ended early")?;
        for a in resp.acks {
            out.insert(a.seq, a.error);
        }
    }
    drop(tx);
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_store_ok_error_and_silence() -> Result<()> {
    let broker = Mosquitto::start().await?;
    let store = StateStoreMock::start(
        broker.port,
        Arc::new(|req| match req.command.get(1).map(|k| k.as_ref()) {
            Some(b"err-key") => StoreReply::Error("ERR the quota has been exceeded".into()),
            Some(b"silent-key") => StoreReply::Silent,
            _ => StoreReply::Apply,
        }),
    )
    .await?;
    let p = Service::start(
        "sse-publisher",
        &[
            s("--mqtt-url"),
            broker.url(),
            s("--client-id"),
            s("pub-store"),
            s("--state-store-timeout"),
            s("2s"),
            s("--state-store-attempts"),
            s("2"),
        ],
        &[],
    )
    .await?;
    let acks = publish(
        &p,
        vec![
            to_key(1, "ok-key"),
            to_key(2, "err-key"),
            to_key(3, "silent-key"),
        ],
    )
    .await?;
    assert_eq!(acks[&1], "", "{acks:?}");
    assert!(
        acks[&2].contains("ERR the quota has been exceeded") && acks[&2].contains("2 attempts"),
        "{acks:?}"
    );
    assert!(acks[&3].contains("no state store response"), "{acks:?}");
    assert_eq!(store.get("ok-key").as_deref(), Some(&b"{\"n\":1}"[..]));
    assert_eq!(store.get("err-key"), None);

    // Every request follows the protocol; a retry carries a later __ts and the same key.
    let seen = store.seen();
    let response_topic = "clients/pub-store/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke/response";
    for r in &seen {
        assert_eq!(r.response_topic.as_deref(), Some(response_topic));
        assert!(r.correlation.as_ref().is_some_and(|c| !c.is_empty()));
        assert!(r.ts.as_deref().is_some_and(valid_hlc), "{:?}", r.ts);
        assert_eq!(r.command[0].as_ref(), b"SET");
    }
    let err_ts: Vec<String> = seen
        .iter()
        .filter(|r| r.command[1].as_ref() == b"err-key")
        .filter_map(|r| r.ts.clone())
        .collect();
    assert_eq!(err_ts.len(), 2, "bounded attempts");
    assert!(err_ts[0] < err_ts[1], "{err_ts:?}");
    let silent = seen
        .iter()
        .filter(|r| r.command[1].as_ref() == b"silent-key")
        .count();
    assert_eq!(silent, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_topic_fails_while_others_flow() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        "topic readwrite allowed/#\ntopic readwrite clients/#\ntopic readwrite statestore/#\n",
    )?;
    let line = format!("acl_file {}", acl.display());
    let broker = Mosquitto::start_with(&[&line]).await?;
    let sub = Subscriber::connect(broker.port, "allowed/#").await?;
    let p = Service::start("sse-publisher", &[s("--mqtt-url"), broker.url()], &[]).await?;
    let events = (1..=6)
        .map(|i| {
            let topic = if i % 2 == 0 {
                "denied/topic"
            } else {
                "allowed/topic"
            };
            to_topic(i, topic)
        })
        .collect();
    let acks = publish(&p, events).await?;
    for i in 1..=6u64 {
        if i % 2 == 0 {
            assert!(acks[&i].contains("NotAuthorized"), "{i}: {acks:?}");
        } else {
            assert_eq!(acks[&i], "", "{i}: {acks:?}");
        }
    }
    let got = sub
        .wait_until("the allowed events", |m| m.len() >= 3)
        .await?;
    let mut ids: Vec<String> = got
        .iter()
        .filter_map(|m| m.user("id").map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, ["ev-1", "ev-3", "ev-5"]);
    // The connection stayed up: a later event to the allowed topic flows.
    let acks = publish(&p, vec![to_topic(7, "allowed/topic")]).await?;
    assert_eq!(acks[&7], "");
    Ok(())
}

/// A TCP proxy in front of the broker that, on its first connection, passes the CONNACK and
/// then swallows everything the broker sends (PUBACKs lost on the way); later connections
/// pass everything.
async fn lossy_proxy(listener: TcpListener, upstream: u16, connections: Arc<AtomicUsize>) {
    while let Ok((client, _)) = listener.accept().await {
        let n = connections.fetch_add(1, Ordering::SeqCst);
        let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
            continue;
        };
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
        });
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut first = true;
            while let Ok(k) = sr.read(&mut buf).await {
                if k == 0 {
                    break;
                }
                if n == 0 && !first {
                    continue; // swallowed
                }
                first = false;
                if cw.write_all(&buf[..k]).await.is_err() {
                    break;
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_puback_recycles_the_connection() -> Result<()> {
    let broker = Mosquitto::start().await?;
    let sub = Subscriber::connect(broker.port, "lossy/#").await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy_port = listener.local_addr()?.port();
    let connections = Arc::new(AtomicUsize::new(0));
    let proxy = tokio::spawn(lossy_proxy(listener, broker.port, connections.clone()));
    let p = Service::start(
        "sse-publisher",
        &[
            s("--mqtt-url"),
            format!("mqtt://127.0.0.1:{proxy_port}"),
            s("--puback-timeout"),
            s("2s"),
        ],
        &[],
    )
    .await?;
    let acks = publish(&p, vec![to_topic(1, "lossy/a"), to_topic(2, "lossy/b")]).await?;
    assert_eq!(acks[&1], "");
    assert_eq!(acks[&2], "");
    assert!(connections.load(Ordering::SeqCst) >= 2);
    assert!(
        p.log_text().contains("no PUBACK in time"),
        "{}",
        p.log_text()
    );
    // Both reached the broker (once, or twice with the same id).
    let got = sub.wait_until("both events", |m| m.len() >= 2).await?;
    let mut ids: Vec<String> = got
        .iter()
        .filter_map(|m| m.user("id").map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, ["ev-1", "ev-2"]);
    proxy.abort();
    Ok(())
}

/// #19 point 3: a message on the publisher's own state store response topic that is larger than
/// rumqttc's default 10 KiB limit (any broker client can publish one) used to end the connection
/// at every reconnect: the kept session re-delivered it. Now the publisher announces
/// MQTT_CONTROL_PACKET_BYTES_MAX in CONNECT: Mosquitto drops the larger message for it, a 20 KiB
/// one is read and ignored, and the connection stays up while events flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_message_on_the_response_topic_does_not_break_the_connection() -> Result<()> {
    use rumqttc::v5::mqttbytes::QoS;
    let broker = Mosquitto::start().await?;
    let sub = Subscriber::connect(broker.port, "big/#").await?;
    let p = Service::start(
        "sse-publisher",
        &[
            s("--mqtt-url"),
            broker.url(),
            s("--client-id"),
            s("pub-big"),
        ],
        &[],
    )
    .await?;
    // Acked: connected, and the response subscription (sent before any publish) is in place.
    assert_eq!(publish(&p, vec![to_topic(1, "big/a")]).await?[&1], "");
    let response = format!(
        "clients/pub-big/{}/response",
        sse_e2e::mqtt::STATE_STORE_TOPIC
    );
    let limit = sse_contract::limits::MQTT_CONTROL_PACKET_BYTES_MAX;
    for size in [limit + 1024, 20 * 1024] {
        sub.client()
            .publish(response.clone(), QoS::AtLeastOnce, false, vec![b'x'; size])
            .await?;
    }
    // QoS 1 to one subscriber keeps order: once the 20 KiB one is read, the larger one was
    // dropped by the broker (or it would have been read first).
    eventually_log(&p, "bytes=20480").await?;
    assert_eq!(publish(&p, vec![to_topic(2, "big/b")]).await?[&2], "");
    sub.wait_until("both events", |m| m.len() >= 2).await?;
    let logs = p.log_text();
    assert!(!logs.contains("lost; reconnecting"), "{logs}");
    assert_eq!(
        logs.matches("connected to the mqtt broker").count(),
        1,
        "{logs}"
    );
    Ok(())
}

async fn eventually_log(p: &Service, needle: &str) -> Result<()> {
    sse_e2e::eventually(&format!("log line containing {needle:?}"), || async {
        p.log_text().contains(needle).then_some(())
    })
    .await
    .with_context(|| p.log_text())
}

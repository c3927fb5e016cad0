use std::sync::Mutex;

use super::*;
use crate::mqtt::Delivery;
use crate::state_store::Hlc;
use bytes::Bytes;
use clap::Parser;
use rumqttc::v5::mqttbytes::v5::{
    ConnAckProperties, ConnectReturnCode, PubAckReason, PublishProperties,
};

fn message(qos: Qos) -> Message {
    Message {
        topic: "t".into(),
        qos,
        retain: false,
        payload: Bytes::from_static(b"x"),
        properties: PublishProperties::default(),
    }
}

fn job(book: &mut Book, qos: Qos) -> Delivery {
    let (reply, rx) = oneshot::channel();
    book.track(
        Job {
            message: message(qos),
            reply,
            attempts: 0,
            meter: None,
        },
        None,
    );
    rx
}

fn connack(session_present: bool) -> ConnAck {
    ConnAck {
        session_present,
        code: ConnectReturnCode::Success,
        properties: None,
    }
}

fn puback(pkid: u16, reason: PubAckReason) -> Event {
    let mut a = PubAck::new(pkid, None);
    a.reason = reason;
    Event::Incoming(Incoming::PubAck(a))
}

fn sent(pkid: u16) -> Event {
    Event::Outgoing(Outgoing::Publish(pkid))
}

fn settings(max_inflight: u16) -> MqttSettings {
    let mut s = crate::Config::try_parse_from(["sse-publisher", "--client-id", "c1"])
        .unwrap()
        .mqtt_settings()
        .unwrap();
    s.max_inflight = max_inflight;
    s
}

fn book(max_inflight: u16) -> Book {
    let s = settings(max_inflight);
    let stamper = Arc::new(Stamper {
        client_id: s.client.client_id.clone().into(),
        hlc: Mutex::new(Hlc::default()),
    });
    Book::new(&s, stamper)
}

fn connected() -> Book {
    let mut b = book(10);
    assert!(b.on_connack(&connack(false), 10).is_empty());
    b
}

#[test]
fn qos1_resolves_on_its_own_puback() {
    let mut b = connected();
    let mut d1 = job(&mut b, Qos::AtLeastOnce);
    let mut d2 = job(&mut b, Qos::AtLeastOnce);
    b.on_event(&sent(1));
    b.on_event(&sent(2));
    assert!(d1.try_recv().is_err());
    b.on_event(&puback(2, PubAckReason::Success));
    assert_eq!(d2.try_recv().unwrap(), Ok(()));
    assert!(d1.try_recv().is_err());
    b.on_event(&puback(1, PubAckReason::NoMatchingSubscribers));
    assert_eq!(d1.try_recv().unwrap(), Ok(()));
    assert!(b.items.is_empty());
}

#[test]
fn qos0_resolves_when_written() {
    let mut b = connected();
    let mut d = job(&mut b, Qos::AtMostOnce);
    b.on_event(&sent(0));
    assert_eq!(d.try_recv().unwrap(), Ok(()));
}

#[test]
fn rejected_puback_is_a_permanent_error() {
    let mut b = connected();
    let mut d = job(&mut b, Qos::AtLeastOnce);
    b.on_event(&sent(3));
    b.on_event(&puback(3, PubAckReason::NotAuthorized));
    let e = d.try_recv().unwrap().unwrap_err();
    assert!(e.is_permanent());
    assert!(e.to_string().contains("NotAuthorized"), "{e}");
}

#[test]
fn reconnect_with_session_resends_with_same_pkid_in_order() {
    let mut b = connected();
    let mut d1 = job(&mut b, Qos::AtLeastOnce);
    let mut d2 = job(&mut b, Qos::AtLeastOnce);
    let mut d3 = job(&mut b, Qos::AtLeastOnce);
    b.on_event(&sent(1));
    b.on_event(&sent(2));
    // d3 still in rumqttc's channel when the connection drops
    b.on_disconnect();
    // a stale Outgoing event before CONNACK is ignored, a stale PUBACK counts
    b.on_event(&sent(3));
    b.on_event(&puback(1, PubAckReason::Success));
    assert_eq!(d1.try_recv().unwrap(), Ok(()));
    let replay = b.on_connack(&connack(true), 10);
    assert_eq!(replay.len(), 2);
    assert_eq!((replay[0].pkid, replay[0].dup), (2, true));
    assert_eq!((replay[1].pkid, replay[1].dup), (0, false));
    b.on_event(&sent(2));
    b.on_event(&sent(3));
    assert!(d2.try_recv().is_err());
    b.on_event(&puback(2, PubAckReason::Success));
    b.on_event(&puback(3, PubAckReason::Success));
    assert_eq!(d2.try_recv().unwrap(), Ok(()));
    assert_eq!(d3.try_recv().unwrap(), Ok(()));
}

#[test]
fn reconnect_without_session_resends_as_new() {
    let mut b = connected();
    let mut d = job(&mut b, Qos::AtLeastOnce);
    b.on_event(&sent(1));
    b.on_disconnect();
    let replay = b.on_connack(&connack(false), 10);
    assert_eq!(replay[0].pkid, 0);
    // an old PUBACK for pkid 1 after the new CONNACK does not resolve it
    b.on_event(&puback(1, PubAckReason::Success));
    assert!(d.try_recv().is_err());
    b.on_event(&sent(4));
    b.on_event(&puback(4, PubAckReason::Success));
    assert_eq!(d.try_recv().unwrap(), Ok(()));
}

#[test]
fn collision_resolves_after_the_colliding_ack() {
    let mut b = connected();
    let mut d1 = job(&mut b, Qos::AtLeastOnce);
    let mut d2 = job(&mut b, Qos::AtLeastOnce);
    b.on_event(&sent(1));
    b.on_event(&Event::Outgoing(Outgoing::AwaitAck(1)));
    b.on_event(&puback(1, PubAckReason::Success));
    b.on_event(&sent(1));
    assert_eq!(d1.try_recv().unwrap(), Ok(()));
    b.on_event(&puback(1, PubAckReason::Success));
    assert_eq!(d2.try_recv().unwrap(), Ok(()));
    assert!(!b.needs_reset);
}

fn store_message(correlation: &'static [u8]) -> Message {
    Message {
        topic: state_store::REQUEST_TOPIC.into(),
        qos: Qos::AtLeastOnce,
        retain: false,
        payload: Bytes::from_static(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"),
        properties: PublishProperties {
            response_topic: Some(state_store::response_topic("c1")),
            correlation_data: Some(Bytes::from_static(correlation)),
            user_properties: vec![("__ts".into(), "000000000000001:00000:c1".into())],
            ..Default::default()
        },
    }
}

fn store_job(book: &mut Book, correlation: &'static [u8]) -> Delivery {
    let (reply, rx) = oneshot::channel();
    book.track(
        Job {
            message: store_message(correlation),
            reply,
            attempts: 0,
            meter: None,
        },
        None,
    );
    rx
}

fn response(correlation: &'static [u8], payload: &'static [u8]) -> Event {
    let mut p = Publish::new(
        state_store::response_topic("c1"),
        QoS::AtLeastOnce,
        Bytes::from_static(payload),
        Some(PublishProperties {
            correlation_data: Some(Bytes::from_static(correlation)),
            ..Default::default()
        }),
    );
    p.pkid = 9;
    Event::Incoming(Incoming::Publish(p))
}

/// Re-admits what the book queued for another attempt, as the connection task does.
fn readmit(b: &mut Book) -> usize {
    let mut n = 0;
    while let Some(job) = b.retry.pop_front() {
        b.track(job, None);
        n += 1;
    }
    n
}

#[test]
fn store_request_resolves_on_ok_not_on_puback() {
    let mut b = connected();
    let mut d = store_job(&mut b, b"c-1");
    b.on_event(&sent(1));
    b.on_event(&puback(1, PubAckReason::Success));
    assert!(d.try_recv().is_err());
    assert!(!b.idle());
    b.on_event(&response(b"other", b"+OK\r\n"));
    assert!(d.try_recv().is_err());
    b.on_event(&response(b"c-1", b"+OK\r\n"));
    assert_eq!(d.try_recv().unwrap(), Ok(()));
    assert!(b.idle());
}

#[test]
fn store_response_may_overtake_the_puback() {
    let mut b = connected();
    let mut d = store_job(&mut b, b"c-2");
    b.on_event(&sent(1));
    b.on_event(&response(b"c-2", b"+OK\r\n"));
    assert!(d.try_recv().is_err());
    b.on_event(&puback(1, PubAckReason::Success));
    assert_eq!(d.try_recv().unwrap(), Ok(()));
}

#[test]
fn store_error_is_retried_with_a_fresh_ts_then_fails() {
    let mut b = connected();
    let mut d = store_job(&mut b, b"c-3");
    for attempt in 1..=3u16 {
        let pkid = attempt;
        b.on_event(&sent(pkid));
        b.on_event(&puback(pkid, PubAckReason::Success));
        b.on_event(&response(b"c-3", b"-ERR the quota has been exceeded\r\n"));
        if attempt < 3 {
            assert!(d.try_recv().is_err());
            let job = b.retry.front().unwrap();
            let ts = &job.message.properties.user_properties[0];
            assert_eq!(ts.0, "__ts");
            assert_ne!(ts.1, "000000000000001:00000:c1");
            assert_eq!(readmit(&mut b), 1);
        }
    }
    let e = d.try_recv().unwrap().unwrap_err();
    assert!(e.is_permanent());
    let text = e.to_string();
    assert!(text.contains("ERR the quota has been exceeded"), "{text}");
    assert!(text.contains("3 attempts"), "{text}");
    assert!(b.idle());
}

#[test]
fn store_timeout_is_retried_then_fails() {
    let mut b = connected();
    b.store_attempts = 2;
    let mut d = store_job(&mut b, b"c-4");
    b.on_event(&sent(1));
    b.on_event(&puback(1, PubAckReason::Success));
    let due = b.next_store_deadline().unwrap();
    b.expire_store(due - Duration::from_millis(1));
    assert!(b.retry.is_empty());
    b.expire_store(due);
    assert_eq!(readmit(&mut b), 1);
    b.on_event(&sent(2));
    b.on_event(&puback(2, PubAckReason::Success));
    b.expire_store(b.next_store_deadline().unwrap());
    let e = d.try_recv().unwrap().unwrap_err();
    assert!(e.to_string().contains("no state store response"), "{e}");
}

#[test]
fn puback_clock_starts_when_written_and_stops_on_disconnect() {
    let mut b = connected();
    let _d = job(&mut b, Qos::AtLeastOnce);
    assert!(b.oldest_unacked().is_none());
    b.on_event(&sent(1));
    assert!(b.oldest_unacked().is_some());
    b.on_disconnect();
    assert!(b.oldest_unacked().is_none());
}

#[test]
fn connack_limits() {
    let mut b = book(100);
    let ack = ConnAck {
        session_present: false,
        code: ConnectReturnCode::Success,
        properties: Some(ConnAckProperties {
            receive_max: Some(5),
            max_packet_size: Some(20),
            retain_available: Some(0),
            session_expiry_interval: None,
            max_qos: None,
            assigned_client_identifier: None,
            topic_alias_max: None,
            reason_string: None,
            user_properties: Vec::new(),
            wildcard_subscription_available: None,
            subscription_identifiers_available: None,
            shared_subscription_available: None,
            server_keep_alive: None,
            response_information: None,
            server_reference: None,
            authentication_method: None,
            authentication_data: None,
        }),
    };
    b.on_connack(&ack, 100);
    assert_eq!(b.limit, 5);
    let mut m = message(Qos::AtLeastOnce);
    m.retain = true;
    assert!(matches!(b.check(&m), Err(Error::Unsupported(_))));
    let mut m = message(Qos::AtLeastOnce);
    m.payload = Bytes::from(vec![0u8; 100]);
    assert!(matches!(b.check(&m), Err(Error::TooLarge(_))));
    assert!(b.check(&message(Qos::AtLeastOnce)).is_ok());
    // The limit counts the packet id: 20 bytes with it pass, 22 do not (20 without it).
    let sized = |n: usize| Message {
        payload: Bytes::from(vec![b'x'; n]),
        ..message(Qos::AtLeastOnce)
    };
    assert_eq!(sized(12).packet_size(), 20);
    assert!(b.check(&sized(12)).is_ok());
    assert!(matches!(b.check(&sized(14)), Err(Error::TooLarge(_))));
}

/// A tab in a content type (or a control character in an SSE event's type) made Mosquitto close
/// the connection as malformed; the message, re-sent after every reconnect, closed each one, and
/// every stream stopped. Such a message is now refused before it is written.
#[test]
fn a_string_brokers_refuse_is_refused_before_it_is_written() {
    let b = connected();
    let with = |content_type: Option<&str>, property: (&str, &str)| Message {
        properties: PublishProperties {
            content_type: content_type.map(Into::into),
            user_properties: vec![(property.0.into(), property.1.into())],
            ..Default::default()
        },
        ..message(Qos::AtLeastOnce)
    };
    let refusal = |m: &Message| match b.check(m) {
        Err(e @ Error::Invalid(_)) => e.to_string(),
        other => panic!("{other:?}"),
    };
    let e = refusal(&with(Some("a\tb"), ("sseevent", "ok")));
    assert!(e.contains("the content type holds U+0009"), "{e}");
    let e = refusal(&with(None, ("sseevent", "x\u{1}")));
    assert!(
        e.contains(r#"user property "sseevent" holds U+0001"#),
        "{e}"
    );
    let e = refusal(&with(Some(&"c".repeat(70_000)), ("k", "v")));
    assert!(e.contains("the content type is 70000 bytes"), "{e}");
    assert!(
        b.check(&with(Some("application/json"), ("sseevent", "温度 ok")))
            .is_ok()
    );
}

/// rumqttc gets a message's user properties and the book keeps them packed: a reconnect sends
/// them again as they were.
#[tokio::test]
async fn a_message_sent_again_after_a_reconnect_keeps_its_user_properties() {
    let mut b = connected();
    let options = rumqttc::v5::MqttOptions::new("c1", "127.0.0.1", 1);
    let (client, _eventloop) = AsyncClient::new(options, 10);
    let mut m = message(Qos::AtLeastOnce);
    m.properties.user_properties = [("specversion", "1.0"), ("id", "ev-1"), ("sseid", "")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.properties.content_type = Some("application/json".into());
    let (reply, _rx) = oneshot::channel();
    let job = Job {
        message: m.clone(),
        reply,
        attempts: 0,
        meter: None,
    };
    b.admit(job, &client);
    b.on_disconnect();
    let replay = b.on_connack(&connack(false), 10);
    assert_eq!(replay.len(), 1);
    assert_eq!(replay[0].properties.as_ref(), Some(&m.properties));
}

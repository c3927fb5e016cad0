use super::session::batches;
use super::*;
use futures::StreamExt;
use opentelemetry::metrics::MeterProvider as _;
use sse_contract::limits::GRPC_MESSAGE_BYTES_MAX;
use sse_contract::metrics::{self as catalogue, attr};
use sse_runtime::link::{Local, Locals, Messages, Streams};
use sse_runtime::peers::Dialer;

#[test]
fn in_flight_is_bounded_acked_by_key_and_resent_in_order() {
    let mut w = InFlight::new(3);
    w.push("a", 1, "a1", 2);
    w.push("b", 1, "b1", 2);
    w.push("a", 2, "a2", 2);
    assert!(!w.has_room());
    assert_eq!(w.ack("b", 1), Some("b1"));
    assert_eq!(w.ack("b", 1), None);
    assert_eq!(w.ack("c", 9), None);
    assert!(w.has_room());
    w.push("a", 3, "a3", 2);
    assert_eq!(w.iter().copied().collect::<Vec<_>>(), ["a1", "a2", "a3"]);
    assert_eq!(w.ack("a", 1), Some("a1"));
    assert_eq!(w.len(), 2);
    w.push("a", 2, "a2 again", 2);
    assert_eq!(w.iter().copied().collect::<Vec<_>>(), ["a3", "a2 again"]);
    assert_eq!(w.len(), 2);
    // An older seq sent again after its ack, then acks out of order.
    w.push("a", 1, "a1 again", 2);
    assert_eq!(w.ack("a", 2), Some("a2 again"));
    assert_eq!(w.ack("a", 3), Some("a3"));
    assert_eq!(w.ack("a", 3), None);
    assert_eq!(w.ack("a", 1), Some("a1 again"));
    assert!(w.is_empty());
}

#[test]
fn in_flight_is_bounded_in_bytes_but_always_takes_one() {
    let mut w = InFlight::new(100).with_max_bytes(10);
    assert!(w.has_room());
    w.push("a", 1, (), 25);
    assert!(!w.has_room(), "over the byte bound");
    assert_eq!(w.bytes(), 25);
    w.ack("a", 1);
    assert!(w.has_room());
    w.push("a", 2, (), 4);
    w.push("a", 3, (), 4);
    assert!(w.has_room());
    w.push("a", 3, (), 8); // a re-send replaces the older copy
    assert_eq!(w.bytes(), 12);
    assert!(!w.has_room());
    w.ack("a", 2);
    w.ack("a", 3);
    assert_eq!((w.len(), w.bytes()), (0, 0));
}

fn ev(n: usize) -> pb::Event {
    pb::Event {
        data: bytes::Bytes::from(vec![b'x'; n]),
        ..Default::default()
    }
}

#[test]
fn batches_respect_the_byte_bound_but_always_take_one() {
    let b = batches([ev(10), ev(20), ev(GRPC_BATCH_BYTES - 10), ev(1), ev(1)]);
    let sizes: Vec<usize> = b.iter().map(|r| r.events.len()).collect();
    assert_eq!(sizes, [2, 1, 2]);
    assert!(batches(Vec::new()).is_empty());
}

#[test]
fn an_event_at_the_limit_on_a_long_route_is_dropped_not_sent() {
    let at_limit = |topic_len: usize| pb::Event {
        data: bytes::Bytes::from(vec![b'x'; sse_contract::limits::EVENT_BYTES_MAX]),
        sse_id: "i".repeat(sse_contract::limits::EVENT_ID_BYTES_MAX),
        route: Some(pb::Route {
            destination: Some(pb::Destination {
                target: Some(pb::destination::Target::Mqtt(pb::MqttDestination {
                    topic: "t".repeat(topic_len),
                    ..Default::default()
                })),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(oversized(at_limit(1000).encoded_len()), None);
    let reason = oversized(at_limit(65_535).encoded_len()).unwrap();
    assert!(reason.starts_with(drops::ENVELOPE_TOO_LARGE), "{reason}");
}

#[test]
fn batches_are_bounded_by_their_encoded_size() {
    // Events whose data fits a batch but whose envelopes take it over: counting data alone
    // would put all of them in one message over the limit.
    let event = |i: usize| pb::Event {
        data: bytes::Bytes::from(vec![b'x'; 1000]),
        stream_key: "k".repeat(2000),
        sse_id: format!("{i}"),
        ..Default::default()
    };
    let b = batches((0..2000).map(event));
    assert!(b.len() > 1);
    assert_eq!(b.iter().map(|r| r.events.len()).sum::<usize>(), 2000);
    for r in &b {
        assert!(r.encoded_len() <= GRPC_BATCH_BYTES, "{}", r.encoded_len());
    }
    // The largest event ingest forwards, with a full envelope, fits one message.
    let max = pb::Event {
        data: bytes::Bytes::from(vec![b'x'; sse_contract::limits::EVENT_BYTES_MAX]),
        stream_key: "k".repeat(2000),
        ..Default::default()
    };
    let b = batches([ev(1), max, ev(1)]);
    assert_eq!(b.len(), 3);
    assert!(b.iter().all(|r| r.encoded_len() <= GRPC_MESSAGE_BYTES_MAX));
}

/// Where the fake schema services are (documentation addresses: only ever reached in-process).
const A: &str = "192.0.2.1:50052";
const B: &str = "192.0.2.2:50052";

fn peer(addr: &str) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        uri: tonic::transport::Uri::from_static("http://schema:50052"),
    }
}

fn key(i: usize) -> String {
    format!("device-{i}/sse-0|http://10.1.0.{}:8080/events/{i}", i % 5)
}

#[test]
fn router_keeps_each_stream_on_one_address_and_moves_only_those_of_a_removed_one() {
    let (a, b, c) = (
        peer("10.0.0.1:50052"),
        peer("10.0.0.2:50052"),
        peer("10.0.0.3:50052"),
    );
    let mut r = Router::new(vec![a.clone(), b.clone(), c.clone()]);
    let before: Vec<SocketAddr> = (0..300).map(|i| r.owner(&key(i)).unwrap()).collect();
    // stable: asking again (cached or not) gives the same address
    for (i, owner) in before.iter().enumerate() {
        assert_eq!(r.owner(&key(i)), Some(*owner));
        assert_eq!(
            peers::owner(&key(i), r.peers()).map(|p| p.addr),
            Some(*owner)
        );
    }
    for p in [&a, &b, &c] {
        let n = before.iter().filter(|o| **o == p.addr).count();
        assert!((60..=140).contains(&n), "{} has {n} of 300", p.addr);
    }
    let old = r.replace(vec![a.clone(), c.clone()]);
    assert_eq!(old.len(), 3);
    for (i, owner) in before.iter().enumerate() {
        let now = r.owner(&key(i)).unwrap();
        if *owner == b.addr {
            assert!(now == a.addr || now == c.addr);
        } else {
            assert_eq!(now, *owner, "{} moved though its address stayed", key(i));
        }
    }
    r.replace(Vec::new());
    assert_eq!(r.owner(&key(1)), None);
}

type Seen = Arc<std::sync::Mutex<Vec<(&'static str, pb::Event)>>>;

/// A schema service at `addr`, called in-process: its Process stream records what it received
/// and acks it (or not). Its counter counts acks sent, or events received when it does not ack.
fn fake(
    addr: &str,
    name: &'static str,
    ack: bool,
    seen: Seen,
    locals: Locals,
) -> (Peer, watch::Receiver<usize>, Locals) {
    let (acked, acked_rx) = watch::channel(0);
    let mut streams = Streams::default();
    streams.add(
        sse_proto::paths::SCHEMA_PROCESS,
        move |requests: Messages<pb::ProcessRequest>| -> Messages<pb::ProcessResponse> {
            let (seen, acked) = (seen.clone(), acked.clone());
            Box::pin(requests.filter_map(move |req| {
                let events = req.map(|r| r.events).unwrap_or_default();
                let mut seen = seen.lock().unwrap();
                seen.extend(events.iter().map(|e| (name, e.clone())));
                acked.send_modify(|a| *a += events.len());
                let acks = events.iter().map(|e| pb::Ack {
                    stream_key: e.stream_key.clone(),
                    seq: e.seq,
                    ..Default::default()
                });
                let response = pb::ProcessResponse {
                    acks: acks.collect(),
                };
                futures::future::ready(ack.then_some(Ok(response)))
            }))
        },
    );
    let peer = peer(addr);
    let locals = locals.with(peer.addr, Local::streams(streams));
    (peer, acked_rx, locals)
}

fn routed(key: &str, seq: u64) -> RoutedEvent {
    use crate::resources::{Destination, MqttDestination, Qos};
    use crate::routing::{Route, RouteKind};
    RoutedEvent {
        id: format!("{key}#{seq}"),
        seq,
        stream_key: key.into(),
        data: format!("{{\"n\":{seq}}}").into(),
        sse_event: "message".into(),
        sse_id: String::new(),
        received_unix_nanos: 1,
        route: Arc::new(Route {
            device: "d".into(),
            endpoint: "e".into(),
            asset: "a".into(),
            kind: RouteKind::Dataset,
            group: "g".into(),
            event: String::new(),
            data_source: "/x".into(),
            type_ref: String::new(),
            ids: Default::default(),
            dead_letter: None,
            destination: Destination::Mqtt(MqttDestination {
                topic: "t".into(),
                qos: Qos::AtLeastOnce,
                retain: false,
                ttl_seconds: None,
            }),
        }),
        traceparent: String::new(),
        tracestate: String::new(),
        held: crate::budget::Held::none(),
        dead_letter: None,
    }
}

fn forwarder(locals: Locals) -> (Forwarder, watch::Receiver<bool>) {
    let (open, open_rx) = watch::channel(false);
    let f = Forwarder {
        dialer: Dialer::new(None, locals),
        endpoint: tonic::transport::Endpoint::from_static("http://schema:50052"),
        max_in_flight: 1000,
        max_in_flight_bytes: usize::MAX,
        budget: crate::budget::Budget::new(usize::MAX),
        drain_timeout: Duration::from_secs(30),
        status: Arc::new(Status::default()),
        checkpoints: Arc::new(Checkpoints::in_memory()),
        open,
        meters: crate::metrics::ForwardMeters::default(),
    };
    (f, open_rx)
}

/// Per stream key: the addresses (fake names) it was seen on, and its seqs per name.
fn by_key(seen: &Seen) -> BTreeMap<String, BTreeMap<&'static str, Vec<u64>>> {
    let mut out: BTreeMap<String, BTreeMap<&'static str, Vec<u64>>> = BTreeMap::new();
    for (name, e) in seen.lock().unwrap().iter() {
        out.entry(e.stream_key.clone())
            .or_default()
            .entry(name)
            .or_default()
            .push(e.seq);
    }
    out
}

#[tokio::test]
async fn each_stream_goes_in_order_to_one_of_several_schema_addresses() {
    let seen: Seen = Arc::default();
    let (a, mut a_acked, locals) = fake(A, "a", true, seen.clone(), Locals::default());
    let (b, mut b_acked, locals) = fake(B, "b", true, seen.clone(), locals);
    let (_set, peers) = Peers::manual(vec![a.clone(), b.clone()]);
    let (f, _open) = forwarder(locals);
    let (tx, rx) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let run = tokio::spawn(f.run_with(peers, rx, stop.clone()));
    for seq in 1..=5 {
        for i in 0..20 {
            tx.send(routed(&key(i), seq)).await.unwrap();
        }
    }
    let mut total = 0;
    while total < 100 {
        tokio::select! {
            r = a_acked.changed() => r.unwrap(),
            r = b_acked.changed() => r.unwrap(),
        }
        total = *a_acked.borrow() + *b_acked.borrow();
    }
    assert_eq!(total, 100);
    let mut router = Router::new(vec![a.clone(), b]);
    let keys = by_key(&seen);
    assert_eq!(keys.len(), 20);
    let mut names = std::collections::BTreeSet::new();
    for (k, on) in &keys {
        assert_eq!(on.len(), 1, "{k} went to {:?}", on.keys());
        let (name, seqs) = on.iter().next().unwrap();
        assert_eq!(seqs, &[1, 2, 3, 4, 5], "{k} out of order");
        let expected = if router.owner(k) == Some(a.addr) {
            "a"
        } else {
            "b"
        };
        assert_eq!(*name, expected);
        names.insert(*name);
    }
    assert_eq!(names.len(), 2, "both addresses carry streams");
    drop(tx);
    stop.cancel();
    run.await.unwrap();
}

#[tokio::test]
async fn streams_of_a_removed_address_move_and_their_unacked_events_are_resent() {
    let seen: Seen = Arc::default();
    let (a, mut a_acked, locals) = fake(A, "a", true, seen.clone(), Locals::default());
    // b takes events but never acknowledges them (a replica about to go away)
    let (b, mut b_seen, locals) = fake(B, "b", false, seen.clone(), locals);
    let (set, peers) = Peers::manual(vec![a.clone(), b.clone()]);
    let (mut f, _open) = forwarder(locals);
    let (provider, reader) = crate::metrics::tests::provider();
    f.meters = crate::metrics::ForwardMeters::new(&provider.meter("test"));
    let status = f.status.clone();
    let (tx, rx) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let run = tokio::spawn(f.run_with(peers, rx, stop.clone()));
    let mut router = Router::new(vec![a.clone(), b.clone()]);
    let on_b: Vec<String> = (0..20)
        .map(key)
        .filter(|k| router.owner(k) == Some(b.addr))
        .collect();
    assert!(!on_b.is_empty() && on_b.len() < 20);
    for seq in 1..=3 {
        for i in 0..20 {
            tx.send(routed(&key(i), seq)).await.unwrap();
        }
    }
    let on_a = (20 - on_b.len()) * 3;
    a_acked.wait_for(|n| *n >= on_a).await.unwrap();
    // every event of b's streams reached b (unacked) before b goes
    b_seen.wait_for(|n| *n >= on_b.len() * 3).await.unwrap();
    set.send_replace(vec![a.clone()]);
    a_acked.wait_for(|n| *n >= 60).await.unwrap();
    let keys = by_key(&seen);
    for k in &on_b {
        assert_eq!(keys[k].get("b"), Some(&vec![1, 2, 3]));
        assert_eq!(
            keys[k].get("a"),
            Some(&vec![1, 2, 3]),
            "{k} re-sent in order"
        );
    }
    // re-sent with the same ids
    let ids = |name: &str| -> std::collections::BTreeSet<String> {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(n, e)| *n == name && on_b.contains(&e.stream_key))
            .map(|(_, e)| e.id.clone())
            .collect()
    };
    assert_eq!(ids("a"), ids("b"));
    drop(tx);
    stop.cancel();
    run.await.unwrap();
    // The events of b's streams went to schema again, and each dataset counts its events once.
    let p = crate::metrics::tests::Points::collect(&reader);
    let link = [(attr::LINK, crate::metrics::LINK)];
    assert_eq!(
        p.value(catalogue::GRPC_RESENDS, &link),
        (on_b.len() * 3) as f64
    );
    let mut routes = Vec::new();
    status.for_each_route(|k, r| routes.push((k.to_string(), r.forwarded, r.acknowledged)));
    assert_eq!(routes, vec![("a/g".to_string(), 60, 60)]);
}

#[tokio::test]
async fn streams_of_an_address_that_cannot_be_reached_go_to_the_others() {
    let seen: Seen = Arc::default();
    let (a, mut a_acked, locals) = fake(A, "a", true, seen.clone(), Locals::default());
    // not in this process, and nothing listens there: bind, learn the port, close
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
        peer(&l.local_addr().unwrap().to_string())
    };
    let (_set, peers) = Peers::manual(vec![a.clone(), dead.clone()]);
    let mut router = Router::new(vec![a.clone(), dead.clone()]);
    assert!((0..20).any(|i| router.owner(&key(i)) == Some(dead.addr)));
    let (f, _open) = forwarder(locals);
    let (tx, rx) = mpsc::channel(64);
    let stop = CancellationToken::new();
    let run = tokio::spawn(f.run_with(peers, rx, stop.clone()));
    for seq in 1..=2 {
        for i in 0..20 {
            tx.send(routed(&key(i), seq)).await.unwrap();
        }
    }
    a_acked.wait_for(|n| *n >= 40).await.unwrap();
    let keys = by_key(&seen);
    assert_eq!(keys.len(), 20);
    assert!(keys.values().all(|on| on.get("a") == Some(&vec![1, 2])));
    drop(tx);
    stop.cancel();
    run.await.unwrap();
}

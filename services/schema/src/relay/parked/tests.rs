use std::sync::{Arc, Mutex};

use super::*;

/// Events of stream `key`, numbered by `seq`.
fn ev(key: &str, seq: u64) -> Event {
    Event {
        stream_key: key.into(),
        seq,
        ..Default::default()
    }
}

fn order(events: &[Event]) -> Vec<(String, u64)> {
    events
        .iter()
        .map(|e| (e.stream_key.clone(), e.seq))
        .collect()
}

#[tokio::test]
async fn a_waiting_event_holds_its_stream_only_and_its_stream_keeps_its_order() {
    // Events of stream "slow" with an odd seq wait until the gate opens; the rest are ready.
    let gate = Arc::new(tokio::sync::Notify::new());
    let open = Arc::new(Mutex::new(false));
    let prepare = |e: Event| -> BoxFuture<'static, Event> {
        let (gate, open) = (gate.clone(), open.clone());
        async move {
            if e.stream_key == "slow" && e.seq % 2 == 1 {
                while !*open.lock().unwrap() {
                    gate.notified().await;
                }
            }
            e
        }
        .boxed()
    };
    let mut parked = Parked::default();
    let mut out = Vec::new();
    for e in [
        ev("slow", 1),
        ev("fast", 1),
        ev("slow", 2),
        ev("slow", 3),
        ev("fast", 2),
    ] {
        out.extend(parked.offer(e, Now::Wait, &prepare));
    }
    assert_eq!(order(&out), [("fast".into(), 1), ("fast".into(), 2)]);
    assert_eq!(parked.held, 3);
    assert!(!parked.is_empty() && parked.has_room());
    *open.lock().unwrap() = true;
    gate.notify_waiters();
    let mut rest = Vec::new();
    while !parked.is_empty() {
        rest.extend(parked.next(&prepare).await.unwrap());
    }
    assert_eq!(
        order(&rest),
        [("slow".into(), 1), ("slow".into(), 2), ("slow".into(), 3)]
    );
    assert!(parked.behind.is_empty() && parked.waiting.is_empty());
    // Nothing held: the stream's events are ready at once again.
    assert!(parked.offer(ev("slow", 4), Now::Wait, &prepare).is_some());
    assert!(parked.next(&prepare).await.is_none());
}

#[tokio::test]
async fn reading_stops_at_the_bound() {
    let prepare = |e: Event| -> BoxFuture<'static, Event> {
        async move {
            futures::future::pending::<()>().await;
            e
        }
        .boxed()
    };
    let mut parked = Parked::default();
    for i in 0..PARKED_EVENTS_MAX {
        assert!(parked.has_room());
        assert!(
            parked
                .offer(ev(&format!("k{}", i % 7), i as u64), Now::Wait, &prepare)
                .is_none()
        );
    }
    assert!(!parked.has_room());
    assert_eq!(parked.waiting.len(), 7, "one waiting per stream");
}

#[tokio::test]
async fn an_event_prepared_now_skips_its_future_but_not_its_streams_queue() {
    let futures = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(tokio::sync::Notify::new());
    let prepare = |e: Event| -> BoxFuture<'static, Event> {
        futures.lock().unwrap().push(e.seq);
        let gate = gate.clone();
        async move {
            if e.seq == 1 {
                gate.notified().await;
            }
            e
        }
        .boxed()
    };
    let mut parked = Parked::default();
    // Waits on its future: the stream's next event goes behind it, though ready now.
    assert!(parked.offer(ev("slow", 1), Now::Wait, &prepare).is_none());
    let mut asked = false;
    let behind = parked.offer(
        ev("slow", 2),
        |e| {
            asked = true;
            Now::Ready(e)
        },
        &prepare,
    );
    assert!(
        behind.is_none() && !asked,
        "kept behind its stream's waiting event"
    );
    // Another stream's event ready now is forwarded without a future.
    let ready = parked.offer(ev("fast", 3), Now::Ready, &prepare);
    assert_eq!(ready.map(|e| e.seq), Some(3));
    assert_eq!(*futures.lock().unwrap(), [1]);
    gate.notify_one();
    let rest = parked.next(&prepare).await.unwrap();
    assert_eq!(order(&rest), [("slow".into(), 1), ("slow".into(), 2)]);
}

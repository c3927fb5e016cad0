//! Issue #24: the tail's hook on the publish path allocates nothing when nobody tails, and
//! nothing when the only tail wants other messages. Counted with dhat's heap statistics (its
//! allocator, in testing mode), so the claim is measured, not argued. Its own binary without
//! the libtest harness (`harness = false`): the harness's threads allocate now and then, and
//! dhat counts every thread's allocations, so under load a count could include theirs.

#![allow(clippy::unwrap_used, missing_docs)]

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use sse_publisher::event::Qos;
use sse_publisher::properties::Message;
use sse_publisher::tail::{Filter, Tail};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn allocations() -> u64 {
    dhat::HeapStats::get().total_blocks
}

/// The hook as `publish_one` and `outcome` run it, 1000 times; the allocations it made.
fn hook(tail: &Tail, message: &Message) -> u64 {
    let before = allocations();
    for _ in 0..1000 {
        let tapped = tail.tap("dev", "line", message);
        let kept = tail.active().then(|| tail.clone());
        if let Some(t) = tapped {
            t.deliver();
        }
        drop(kept);
    }
    allocations() - before
}

fn main() {
    the_hook_allocates_nothing_unless_a_tail_wants_the_message();
    println!("tail_alloc: the hook allocates nothing unless a tail wants the message: ok");
}

fn the_hook_allocates_nothing_unless_a_tail_wants_the_message() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let message = Message {
        topic: "plant/line".into(),
        qos: Qos::AtLeastOnce,
        retain: false,
        payload: Bytes::from(vec![b'x'; 1024]),
        properties: PublishProperties {
            user_properties: vec![("specversion".into(), "1.0".into())],
            ..Default::default()
        },
    };
    let tail = Tail::default();
    assert_eq!(hook(&tail, &message), 0, "allocations with nobody tailing");
    let stop = CancellationToken::new();
    let other = Filter {
        asset: Some("another".into()),
        ..Filter::default()
    };
    let filtered = tail.open(other, 0, stop.clone()).unwrap();
    assert_eq!(
        hook(&tail, &message),
        0,
        "allocations for a tail of another asset"
    );
    drop(filtered);
    // The count is real: a tail that wants the messages takes a copy of each.
    let _wanted = tail.open(Filter::default(), 0, stop).unwrap();
    assert!(hook(&tail, &message) >= 1000);
}

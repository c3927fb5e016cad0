//! An unrouted event of a type already discovered costs no allocation on the reader's path:
//! routing it (no route) and recording it (a hash lookup and a counter) allocate nothing, and
//! neither does counting a type past the cap as `other`. Counted with dhat's heap statistics
//! (its allocator, in testing mode), so the claim is measured, not argued. One test in its own
//! binary: nothing else allocates meanwhile.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use sse_ingest::discovery::{Discovery, Limits};
use sse_ingest::resources::load_texts;
use sse_ingest::routing::plan;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const RESOURCES: &str = r#"
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Device
metadata: { name: dev }
spec:
  endpoints:
    inbound:
      sse-0: { endpointType: Microsoft.SSEHttp, address: "http://h/base" }
---
apiVersion: namespaces.deviceregistry.microsoft.com/v1
kind: Asset
metadata: { name: a }
spec:
  deviceRef: { deviceName: dev, endpointName: sse-0 }
  defaultEventsDestinations: [ { target: Mqtt, configuration: { topic: ev } } ]
  eventGroups:
    - name: g
      dataSource: /alerts
      events:
        - { name: r, dataSource: routed }
"#;

fn allocations() -> u64 {
    dhat::HeapStats::get().total_blocks
}

#[test]
fn a_known_unrouted_type_is_routed_and_counted_without_allocating() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let r = load_texts([("r.yaml", RESOURCES)]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let plans = plan(&r);
    let discovery = Discovery::new(Limits {
        max_types: 2,
        ..Limits::default()
    });
    discovery.retain(&plans, &r);
    let ep = discovery.endpoint("dev", "sse-0");
    let source: Arc<str> = ep.source_of(&plans[0].url);
    let data = br#"{"rh":40}"#;
    // First sightings allocate (the name and the sample); the cap then takes the rest.
    assert_eq!(ep.record("humidity", data, &source), Some(1));
    assert_eq!(ep.record("wind", data, &source), Some(2));
    let before = allocations();
    for _ in 0..1000 {
        for t in ["humidity", "wind", "past-the-cap"] {
            let d = plans[0].dispatch(t);
            assert!(d.routes.is_empty());
            assert_eq!(ep.record(t, data, &source), None);
        }
    }
    assert_eq!(allocations() - before, 0, "allocations on the hot path");
    // The count is real: a new type under a fresh cap allocates.
    let fresh = Discovery::default().endpoint("d", "e");
    let before = allocations();
    fresh.record("new", data, &source);
    assert!(allocations() > before, "a first sighting allocates");
    assert_eq!(ep.lock().by_type["humidity"].seen.count, 1001);
    assert_eq!(ep.lock().other.map(|o| o.count), Some(1000));
}

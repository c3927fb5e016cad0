//! What discovery adds to the reader's path for an event no dataset or event routes: the path
//! before discovery (route it, count it in the stream's status) against the same path with the
//! type recorded (a lock of its endpoint, a hash lookup, a counter and a clock read), for a
//! known type and for one past the cap (counted as `other`).
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use sse_ingest::discovery::{Discovery, Limits};
use sse_ingest::resources::load_texts;
use sse_ingest::routing::plan;
use sse_ingest::status::Status;

/// The binaries' allocator, so the figure is what the service pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        - { name: s, dataSource: also-routed }
"#;

fn bench(c: &mut Criterion) {
    let res = load_texts([("r.yaml", RESOURCES)]);
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    let plans = plan(&res);
    let status = Arc::new(
        Status::default().with_discovery(Arc::new(Discovery::new(Limits {
            max_types: 64,
            ..Limits::default()
        }))),
    );
    status.reconcile(&plans, &res);
    let p = &plans[0];
    let key = p.key.clone();
    let ep = status.discovery().endpoint(&p.device, &p.endpoint);
    let source = ep.source_of(&p.url);
    let data = br#"{"station":"ws-01","seq":1,"humidity":48.2}"#;
    // 64 known types fill the cap: "unrouted-7" is known, "past-the-cap" is not.
    for i in 0..64 {
        ep.record(&format!("unrouted-{i}"), data, &source);
    }
    let mut group = c.benchmark_group("unrouted event");
    group.bench_function("before: route + status", |b| {
        b.iter(|| {
            let d = p.dispatch(black_box("unrouted-7"));
            status.update(&key, |s| {
                s.received += 1;
                s.unmatched += d.unmatched;
            });
        })
    });
    for t in ["unrouted-7", "past-the-cap"] {
        group.bench_function(format!("after: route + record + status ({t})"), |b| {
            b.iter(|| {
                let d = p.dispatch(black_box(t));
                let new = if d.routes.is_empty() {
                    ep.record(t, data, &source)
                } else {
                    None
                };
                status.update(&key, |s| {
                    s.received += 1;
                    s.unmatched += d.unmatched;
                    if let Some(n) = new {
                        s.discovered_types = n;
                    }
                });
            })
        });
    }
    group.bench_function("record only (known type)", |b| {
        b.iter(|| black_box(ep.record(black_box("unrouted-7"), data, &source)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! What a status pass costs the ingest thread at scale (1,000 assets of 10 datasets each, 10,000
//! streams): every device's and asset's ADR-shaped JSON built at once, against one part of the
//! pass as the reporter builds it (the longest it holds the thread before giving it back).
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use sse_ingest::report::messages;
use sse_ingest::resources::load_texts;
use sse_ingest::routing::plan;
use sse_ingest::status::{Scope, Status};

/// The binaries' allocator, so the figure is what the service pays.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ASSETS: usize = 1_000;
const DATASETS: usize = 10;

fn resources_yaml() -> String {
    let mut y = String::from(
        "apiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Device\nmetadata: { name: d }\n\
         spec: { endpoints: { inbound: { e: { endpointType: Microsoft.SSE, address: \"http://h/x\" } } } }\n",
    );
    for a in 0..ASSETS {
        y.push_str(&format!(
            "---\napiVersion: namespaces.deviceregistry.microsoft.com/v1\nkind: Asset\n\
             metadata: {{ name: a{a} }}\nspec:\n  deviceRef: {{ deviceName: d, endpointName: e }}\n  \
             defaultDatasetsDestinations: [ {{ target: Mqtt, configuration: {{ topic: t/a{a} }} }} ]\n  datasets:\n"
        ));
        for s in 0..DATASETS {
            y.push_str(&format!("    - {{ name: s{s}, dataSource: /a{a}/s{s} }}\n"));
        }
    }
    y
}

fn bench(c: &mut Criterion) {
    let yaml = resources_yaml();
    let res = load_texts([("r.yaml", yaml.as_str())]);
    assert_eq!(res.assets.len(), ASSETS, "{:?}", res.errors.first());
    let status = Arc::new(Status::default());
    status.reconcile(&plan(&res), &res);
    let mut group = c.benchmark_group("status");
    group.bench_function("whole pass at once, 1000 assets x 10 datasets", |b| {
        b.iter(|| black_box(messages(&status, "sse-connector/status").len()))
    });
    // What the reporter holds the thread for at most: one part of a pass.
    let (_, assets) = status.resource_names();
    let none: &[String] = &[];
    group.bench_function("one part (64 assets) of that pass", |b| {
        b.iter(|| {
            let part = status.report_of(Scope {
                unserved: false,
                devices: Some(none),
                assets: Some(&assets[..64]),
            });
            let json = part
                .assets
                .values()
                .map(|a| serde_json::to_string(a).map(|j| j.len()));
            black_box(json.sum::<Result<usize, _>>().ok())
        })
    });
    let (devices, _) = status.resource_names();
    group.bench_function(
        "the device part (one device of those 10,000 streams)",
        |b| {
            b.iter(|| {
                let part = status.report_of(Scope {
                    unserved: false,
                    devices: Some(&devices),
                    assets: Some(none),
                });
                black_box(serde_json::to_string(&part.devices).map(|j| j.len()).ok())
            })
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

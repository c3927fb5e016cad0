//! Cost per event of schema inference for a shape already known (the fast path: one parse that
//! checks shape and limits and builds nothing), next to the cost of only parsing the same
//! ~200-byte payloads with serde_json (into a `Value`, and validating only), the old path (parse
//! into a `Value`, then `Shape::covers`), and a payload whose shape changes (merge + render).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use sse_schema::infer::Shape;
use sse_schema::pipeline::{Limits, Pipeline};
use sse_schema::registry::FileRegistry;

/// 256 distinct payloads of one shape, ~200 bytes each, members in two different orders.
fn payloads() -> Vec<Vec<u8>> {
    (0..256u64)
        .map(|i| {
            let (station, t, h, p) = (i % 17, 15 + i % 13, 40 + i % 50, 1000 + i % 30);
            let (speed, dir, ts) = (i % 20, i % 4, 1_700_000_000_000u64 + i);
            let text = if i % 2 == 0 {
                format!(
                    r#"{{"station":"ws-{station:02}","site":"north-yard","unit":"celsius","temperature":{t}.5,"humidity":{h},"pressure":{p}.25,"wind":{{"speed":{speed}.5,"direction":"N{dir}"}},"status":"ok","tags":["roof","north"],"ts":{ts}}}"#
                )
            } else {
                format!(
                    r#"{{"ts":{ts},"tags":["roof","north"],"status":"ok","wind":{{"direction":"N{dir}","speed":{speed}.5}},"pressure":{p}.25,"humidity":{h},"temperature":{t}.5,"unit":"celsius","site":"north-yard","station":"ws-{station:02}"}}"#
                )
            };
            text.into_bytes()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let payloads = payloads();
    let avg = payloads.iter().map(Vec::len).sum::<usize>() / payloads.len();
    eprintln!("{} payloads, {avg} bytes on average", payloads.len());
    for p in &payloads {
        serde_json::from_slice::<Value>(p).unwrap();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::new(
        Arc::new(FileRegistry::open(dir.path(), "bench").unwrap()),
        "bench",
        Limits::default(),
    );
    // Warm up: the shape is registered once, then known.
    for p in &payloads {
        rt.block_on(pipeline.process("asset/dataset", p))
            .unwrap()
            .unwrap();
    }
    let known = Shape::of(&serde_json::from_slice(&payloads[0]).unwrap());
    let known = payloads
        .iter()
        .fold(known, |s, p| s.merged(&serde_json::from_slice(p).unwrap()));

    assert!(payloads.iter().all(|p| known.covers_json(p, 32, 1000)));
    let mut group = c.benchmark_group("schema");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function("serde_json parse to Value", |b| {
        b.iter(|| {
            i = (i + 1) % payloads.len();
            black_box(serde_json::from_slice::<Value>(black_box(&payloads[i])).unwrap())
        })
    });
    group.bench_function("serde_json validate only (IgnoredAny)", |b| {
        b.iter(|| {
            i = (i + 1) % payloads.len();
            black_box(
                serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&payloads[i])).unwrap(),
            )
        })
    });
    group.bench_function("Shape::covers_json (fast path alone)", |b| {
        b.iter(|| {
            i = (i + 1) % payloads.len();
            black_box(known.covers_json(black_box(&payloads[i]), 32, 1000))
        })
    });
    group.bench_function("parse to Value + Shape::covers", |b| {
        b.iter(|| {
            i = (i + 1) % payloads.len();
            let v: Value = serde_json::from_slice(black_box(&payloads[i])).unwrap();
            black_box(known.covers(&v))
        })
    });
    group.bench_function("pipeline, known shape", |b| {
        b.iter(|| {
            i = (i + 1) % payloads.len();
            black_box(rt.block_on(pipeline.tag("asset/dataset", black_box(&payloads[i]))))
        })
    });
    group.bench_function("merge + render, shape changes", |b| {
        b.iter(|| {
            i = (i + 1) % payloads.len();
            let v: Value = serde_json::from_slice(black_box(&payloads[i])).unwrap();
            black_box(Shape::default().merged(&v).to_schema())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

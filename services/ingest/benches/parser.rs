//! Parser throughput on ~100-byte events delivered in 1460-byte (one TCP segment) chunks.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sse_ingest::sse::Parser;

/// About 1 MiB of events, each ~100 bytes on the wire, the shape of a telemetry feed.
fn stream() -> Vec<u8> {
    let mut text = String::new();
    let mut i = 0u64;
    while text.len() < 1024 * 1024 {
        text.push_str(&format!(
            "id: {i}\nevent: reading\ndata: {{\"sensor\":\"t-{:03}\",\"value\":{}.{},\"unit\":\"C\",\"ts\":{}}}\n\n",
            i % 997,
            20 + i % 7,
            i % 10,
            1_700_000_000_000 + i
        ));
        i += 1;
    }
    text.into_bytes()
}

fn bench(c: &mut Criterion) {
    let input = stream();
    let mut group = c.benchmark_group("parser");
    let events = input.windows(2).filter(|w| w == b"\n\n").count();
    eprintln!(
        "{} bytes, {events} events, {} bytes per event",
        input.len(),
        input.len() / events
    );
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("100B events, 1460B chunks", |b| {
        let mut parser = Parser::new(16 * 1024 * 1024);
        let (mut events, mut notices) = (Vec::with_capacity(16), Vec::new());
        b.iter(|| {
            let mut count = 0usize;
            for chunk in input.chunks(1460) {
                parser.feed(black_box(chunk), &mut events, &mut notices);
                count += events.len();
                events.clear();
            }
            black_box(count)
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

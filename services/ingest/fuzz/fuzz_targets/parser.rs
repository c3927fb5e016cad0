//! Fuzzes the SSE parser: any bytes, split at fuzzer-chosen points, never panic, respect the
//! event size limit, and give exactly the events, notices and last event ID of the same bytes
//! fed in one chunk or one byte at a time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_ingest::sse::{Parser, ParserNotice, SseEvent};

const LIMIT: usize = 4096;

fn run<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<SseEvent>, Vec<ParserNotice>, String) {
    let mut p = Parser::new(LIMIT);
    let (mut events, mut notices) = (Vec::new(), Vec::new());
    for c in chunks {
        p.feed(c, &mut events, &mut notices);
    }
    (events, notices, p.last_event_id().to_string())
}

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (data, cuts) = input;
    let whole = run([data.as_slice()]);
    // Chunk boundaries chosen by the fuzzer.
    let mut chunks = Vec::new();
    let mut rest = data.as_slice();
    for c in cuts {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(usize::from(c) % (rest.len() + 1));
        chunks.push(a);
        rest = b;
    }
    chunks.push(rest);
    assert_eq!(whole, run(chunks));
    assert_eq!(whole, run(data.chunks(1)));
    for e in &whole.0 {
        assert!(e.data.len() <= LIMIT);
    }
});

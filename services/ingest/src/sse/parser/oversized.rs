//! A parser that keeps oversized events (for a stream with a dead-letter destination):
//! they are dispatched truncated to their first bytes and marked with their size.

use super::*;
use sse_contract::dead_letter::HEAD_BYTES;

fn parse(parser: &mut Parser, stream: &[u8], chunk: usize) -> (Vec<SseEvent>, Vec<ParserNotice>) {
    let (mut events, mut notices) = (Vec::new(), Vec::new());
    for c in stream.chunks(chunk) {
        parser.feed(c, &mut events, &mut notices);
    }
    (events, notices)
}

#[test]
fn an_oversized_event_is_dispatched_truncated_and_marked_whatever_the_chunking() {
    let max = 4096;
    let big: String = (0..10_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let stream =
        format!("data: small\n\nevent: huge\nid: 9\ndata: {big}\ndata: more\n\ndata: next\n\n");
    for chunk in [1, 7, 1460, stream.len()] {
        let mut parser = Parser::new(max).keep_oversized(true);
        let (events, notices) = parse(&mut parser, stream.as_bytes(), chunk);
        let kinds: Vec<(&str, Option<usize>)> = events
            .iter()
            .map(|e| (e.event_type.as_str(), e.truncated_from))
            .collect();
        assert_eq!(
            kinds,
            [
                ("message", None),
                // A line over the limit is measured up to the limit: "at least limit + 1".
                ("huge", Some(max + 1)),
                ("message", None)
            ],
            "chunk {chunk}"
        );
        assert_eq!(events[1].data, big[..HEAD_BYTES], "chunk {chunk}");
        assert_eq!(events[1].last_event_id, "9");
        assert_eq!(events[2].data, "next");
        assert_eq!(notices, [ParserNotice::EventTooLarge { bytes: max + 1 }]);
        assert!(parser.data.capacity() <= KEEP_CAPACITY);
    }
}

#[test]
fn the_head_spans_data_lines_and_stops_at_its_limit() {
    let line = "y".repeat(700);
    // Two lines fit (1401 bytes with the LF between), the third passes a 2000-byte limit.
    let stream = format!("data: {line}\ndata: {line}\ndata: {line}\n\n");
    let mut parser = Parser::new(2000).keep_oversized(true);
    let (events, _) = parse(&mut parser, stream.as_bytes(), 64);
    assert_eq!(events.len(), 1);
    let want = format!("{line}\n{line}");
    assert_eq!(events[0].data, want[..HEAD_BYTES]);
    assert_eq!(events[0].truncated_from, Some(2 * 701 + 700));
}

#[test]
fn without_keeping_an_oversized_event_is_discarded_as_before() {
    let stream = format!("data: {}\n\ndata: ok\n\n", "z".repeat(5000));
    let mut parser = Parser::new(4096);
    let (events, notices) = parse(&mut parser, stream.as_bytes(), 100);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data, "ok");
    assert_eq!(notices.len(), 1);
}

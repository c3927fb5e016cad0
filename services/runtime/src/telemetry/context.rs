//! Trace context helpers: the W3C context carried inside stream messages, per-event spans
//! (made only when spans are exported) and the context a log about one event is written in.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Whether spans are exported (set by `telemetry::init`): per-event spans are made only then.
pub(super) static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: a service that makes an event's span only around work it may
/// skip asks first, so the exported span still covers that work.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// W3C trace context of a span, as carried in an event: (`traceparent`, `tracestate`).
pub fn trace_context(span: &tracing::Span) -> (String, String) {
    let cx = span.context();
    let mut out = Carrying::default();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut out));
    (out.traceparent, out.tracestate)
}

/// Makes `span` a child of the trace context carried by an event or a request header.
pub fn set_parent(span: &tracing::Span, traceparent: &str, tracestate: &str) {
    if traceparent.is_empty() {
        return;
    }
    let cx = global::get_text_map_propagator(|p| {
        p.extract(&Carried {
            traceparent,
            tracestate,
        })
    });
    let _ = span.set_parent(cx);
}

/// Makes the event whose W3C context this is the current one until the guard drops, so a log
/// record written meanwhile (a warning about that event) carries its trace and span ids. Hold
/// it around the log call only: the guard must not live across an `.await`.
pub fn event_context(traceparent: &str, tracestate: &str) -> opentelemetry::ContextGuard {
    let cx = global::get_text_map_propagator(|p| {
        p.extract(&Carried {
            traceparent,
            tracestate,
        })
    });
    cx.attach()
}

/// The trace of one event through one service: the span (exported when traces are) and the W3C
/// context the event carries on. A tracing span per event costs each service ~15-20 µs of CPU at
/// 1,000 events/s (docs/performance.md), so without an exporter only the ids are made.
#[derive(Debug)]
pub struct EventTrace {
    /// The event's span in this service; `Span::none()` when traces are not exported.
    pub span: tracing::Span,
    /// `traceparent` to carry on: this service's span, a child of the one the event came with.
    pub traceparent: String,
    /// `tracestate` to carry on.
    pub tracestate: String,
}

impl EventTrace {
    /// Starts the event's trace here, as a child of `traceparent`/`tracestate` when the event
    /// has them, else as a new trace; `span` makes the span and is called only when exporting.
    pub fn start(
        span: impl FnOnce() -> tracing::Span,
        traceparent: &str,
        tracestate: &str,
    ) -> Self {
        if EXPORTING.load(Ordering::Relaxed) {
            let span = span();
            if !span.is_disabled() {
                set_parent(&span, traceparent, tracestate);
                let (traceparent, tracestate) = trace_context(&span);
                return Self {
                    span,
                    traceparent,
                    tracestate,
                };
            }
        }
        let (traceparent, tracestate) = child_context(traceparent, tracestate);
        Self {
            span: tracing::Span::none(),
            traceparent,
            tracestate,
        }
    }
}

/// A W3C context one step below the given one (same trace, new span id), or a new sampled trace.
fn child_context(traceparent: &str, tracestate: &str) -> (String, String) {
    let ids = RandomIdGenerator::default();
    if tracestate.is_empty() {
        if traceparent.is_empty() {
            return (new_traceparent(&ids), String::new());
        }
        if let Some(child) = canonical_child(traceparent, &ids) {
            return (child, String::new());
        }
    }
    let propagator = TraceContextPropagator::new();
    let parent = propagator.extract(&Carried {
        traceparent,
        tracestate,
    });
    let parent = parent.span().span_context().clone();
    if !parent.is_valid() {
        return (new_traceparent(&ids), String::new());
    }
    let context = SpanContext::new(
        parent.trace_id(),
        ids.new_span_id(),
        parent.trace_flags(),
        false,
        parent.trace_state().clone(),
    );
    (write_traceparent(&context), context.trace_state().header())
}

/// `00-<trace id>-<span id>-<flags>`, the header the SDK's `TraceContextPropagator` writes for
/// `cx`, made without `format!`: through the propagator it was 4-5 % of each service's CPU at
/// full speed (docs/performance.md).
fn write_traceparent(cx: &SpanContext) -> String {
    let mut out = [0u8; 55];
    out[..3].copy_from_slice(b"00-");
    out[35] = b'-';
    out[52] = b'-';
    let flags = [(cx.trace_flags() & TraceFlags::SAMPLED).to_u8()];
    // The slices are exactly twice their input's length, so encoding cannot fail.
    let _ = hex::encode_to_slice(cx.trace_id().to_bytes(), &mut out[3..35]);
    let _ = hex::encode_to_slice(cx.span_id().to_bytes(), &mut out[36..52]);
    let _ = hex::encode_to_slice(flags, &mut out[53..55]);
    // Hex digits and dashes only: always UTF-8, one allocation of exactly 55 bytes.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

/// A new sampled trace's `traceparent`, for an event that came without a valid one.
fn new_traceparent(ids: &RandomIdGenerator) -> String {
    let cx = SpanContext::new(
        ids.new_trace_id(),
        ids.new_span_id(),
        TraceFlags::SAMPLED,
        false,
        Default::default(),
    );
    write_traceparent(&cx)
}

/// The child of a `traceparent` in the canonical form every service writes (version 00,
/// lowercase hex, non-zero ids): the same bytes with a new span id and only the sampled flag
/// kept, which is what the propagator makes of it. `None` sends anything else through the
/// propagator. Extracting through the SDK's `Context` was about 3 % of each service's CPU per
/// event at 1,000 events/s (docs/performance.md).
fn canonical_child(traceparent: &str, ids: &RandomIdGenerator) -> Option<String> {
    let b = traceparent.as_bytes();
    if b.len() != 55 || !b.starts_with(b"00-") || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    // One pass over the 52 hex digits without an early exit (so it compiles to a few branchless
    // instructions per digit), then the all-zero ids, each one comparison.
    let lower_hex = b[3..35]
        .iter()
        .chain(&b[36..52])
        .chain(&b[53..55])
        .fold(true, |ok, &c| {
            ok & (c.is_ascii_digit() | (c.wrapping_sub(b'a') < 6))
        });
    if !lower_hex || b[3..35] == [b'0'; 32] || b[36..52] == [b'0'; 16] {
        return None;
    }
    let mut span = [0u8; 16];
    let _ = hex::encode_to_slice(ids.new_span_id().to_bytes(), &mut span);
    // The low bit of the last hex digit is the sampled flag; the other flags are dropped.
    let sampled = (b[54] as char).to_digit(16).is_some_and(|d| d & 1 == 1);
    let mut out = String::with_capacity(55);
    out.push_str(&traceparent[..36]);
    out.push_str(std::str::from_utf8(&span).ok()?);
    out.push_str(if sampled { "-01" } else { "-00" });
    Some(out)
}

/// W3C headers carried by an event or a request, read by the propagator.
struct Carried<'a> {
    traceparent: &'a str,
    tracestate: &'a str,
}

impl Extractor for Carried<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = match key {
            "traceparent" => self.traceparent,
            "tracestate" => self.tracestate,
            _ => "",
        };
        (!value.is_empty()).then_some(value)
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// W3C headers written by the propagator, to carry on.
#[derive(Default)]
struct Carrying {
    traceparent: String,
    tracestate: String,
}

impl Injector for Carrying {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "traceparent" => self.traceparent = value,
            "tracestate" => self.tracestate = value,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::Context;

    /// (trace id, span id, flags) of a well-formed `traceparent`.
    fn parts(tp: &str) -> (&str, &str, &str) {
        let p: Vec<&str> = tp.split('-').collect();
        assert_eq!(p.len(), 4, "{tp}");
        assert_eq!(p[0], "00", "{tp}");
        assert_eq!((p[1].len(), p[2].len(), p[3].len()), (32, 16, 2), "{tp}");
        (p[1], p[2], p[3])
    }

    #[test]
    fn without_exporter_an_event_still_gets_a_trace() {
        let a = EventTrace::start(|| panic!("no span without an exporter"), "", "");
        let b = EventTrace::start(|| panic!("no span without an exporter"), "", "");
        let (ta, sa, fa) = parts(&a.traceparent);
        let (tb, _, _) = parts(&b.traceparent);
        assert_ne!(ta, tb, "each event its own trace");
        assert_ne!(ta, "0".repeat(32));
        assert_ne!(sa, "0".repeat(16));
        assert_eq!(fa, "01");
        assert!(a.tracestate.is_empty());
        assert!(a.span.is_none());
    }

    #[test]
    fn without_exporter_a_child_keeps_trace_flags_and_state() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
        let child = EventTrace::start(tracing::Span::none, parent, "vendor=x");
        let (t, s, f) = parts(&child.traceparent);
        assert_eq!(t, "0af7651916cd43dd8448eb211c80319c");
        assert_ne!(s, "b7ad6b7169203331", "a span of its own");
        assert_eq!(f, "00", "the parent's sampling decision");
        assert_eq!(child.tracestate, "vendor=x");
    }

    #[test]
    fn traceparent_is_written_as_the_sdk_propagator_writes_it() {
        let ids = RandomIdGenerator::default();
        for flags in [
            TraceFlags::SAMPLED,
            TraceFlags::default(),
            TraceFlags::new(0xff),
        ] {
            for _ in 0..100 {
                let cx = SpanContext::new(
                    ids.new_trace_id(),
                    ids.new_span_id(),
                    flags,
                    false,
                    Default::default(),
                );
                let mut sdk = Carrying::default();
                TraceContextPropagator::new().inject_context(
                    &Context::new().with_remote_span_context(cx.clone()),
                    &mut sdk,
                );
                assert_eq!(write_traceparent(&cx), sdk.traceparent);
            }
        }
    }

    /// The child the propagator path makes of `parent` (no tracestate).
    fn through_propagator(parent: &str) -> String {
        let propagator = TraceContextPropagator::new();
        let cx = propagator.extract(&Carried {
            traceparent: parent,
            tracestate: "",
        });
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid(), "{parent}");
        let child = SpanContext::new(
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags(),
            false,
            Default::default(),
        );
        write_traceparent(&child)
    }

    #[test]
    fn a_canonical_parent_gets_the_child_the_propagator_would_make() {
        let ids = RandomIdGenerator::default();
        let mut parents = vec![
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-ff".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0e".to_owned(),
            "00-0000000000000000000000000000000a-000000000000000b-09".to_owned(),
        ];
        parents.extend(
            (0..200).map(|i| format!("00-{}-{}-{i:02x}", ids.new_trace_id(), ids.new_span_id())),
        );
        for parent in parents {
            let fast = canonical_child(&parent, &ids).expect(&parent);
            let sdk = through_propagator(&parent);
            // Same trace and flags; the span id is new in both, so compare around it.
            assert_eq!(
                (&fast[..36], &fast[52..]),
                (&sdk[..36], &sdk[52..]),
                "{parent}"
            );
            assert_ne!(&fast[36..52], &parent[36..52], "a span of its own");
            assert_ne!(&fast[36..52], "0".repeat(16));
        }
    }

    #[test]
    fn anything_but_the_canonical_form_goes_through_the_propagator() {
        let ids = RandomIdGenerator::default();
        for odd in [
            "",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0g",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333é-1",
        ] {
            assert_eq!(canonical_child(odd, &ids), None, "{odd}");
        }
    }

    #[test]
    fn a_malformed_parent_starts_a_new_trace() {
        let child = EventTrace::start(tracing::Span::none, "00-not-a-trace-01", "");
        let (t, _, f) = parts(&child.traceparent);
        assert_ne!(t, "0".repeat(32));
        assert_eq!(f, "01");
    }
}

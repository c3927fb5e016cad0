//! The warning about an event the broker refuses names its topic and the broker's reason, and
//! is written in that event's trace context, so the OTLP log record carries its trace id.
//! `sse_publisher::run` runs in this test's single-threaded runtime, so every task of it logs
//! through the subscriber this test sets for its thread.
#![allow(clippy::unwrap_used, missing_docs)]

mod harness;

use std::sync::{Arc, Mutex};

use anyhow::Result;
use harness::*;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use sse_proto::v1 as pb;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// A log record as the test sees it: its fields, and the trace id current when it was written.
#[derive(Debug, Default, Clone)]
struct Seen {
    fields: Vec<(String, String)>,
    trace_id: String,
}

impl Seen {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Visit for Seen {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.fields
            .push((field.name().to_string(), format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields
            .push((field.name().to_string(), value.to_string()));
    }
}

/// Keeps every warning with the OpenTelemetry context current when it was written (what the
/// OTLP log appender reads the trace id from).
struct Capture(Arc<Mutex<Vec<Seen>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() != tracing::Level::WARN {
            return;
        }
        let mut seen = Seen::default();
        event.record(&mut seen);
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            seen.trace_id = sc.trace_id().to_string();
        }
        self.0.lock().unwrap().push(seen);
    }
}

#[tokio::test]
async fn a_refused_event_is_logged_with_its_topic_reason_and_trace_id() -> Result<()> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Capture(warnings.clone()));
    let _default = tracing::subscriber::set_default(subscriber);
    let (broker, _acl) = acl_broker().await?;
    let p = publisher(&broker).await?;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut ev = event(1, "dev-log", "denied/log", pb::Qos::AtLeastOnce, 0);
    ev.traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    // And one the publisher cannot even convert (a route kind the contract does not know).
    let other_trace = "0af7651916cd43dd8448eb211c80319c";
    let mut bad = event(2, "dev-log", "allowed/log", pb::Qos::AtLeastOnce, 0);
    bad.traceparent = format!("00-{other_trace}-b7ad6b7169203331-01");
    bad.route.as_mut().unwrap().kind = 77;
    let acks = publish(&p.url, vec![ev, bad]).await?;
    assert!(acks[&1].contains("NotAuthorized"), "{acks:?}");
    assert!(!acks[&2].is_empty(), "{acks:?}");

    let warnings = warnings.lock().unwrap().clone();
    let refused: Vec<&Seen> = warnings
        .iter()
        .filter(|w| w.get("topic") == Some("denied/log"))
        .collect();
    assert_eq!(refused.len(), 1, "{warnings:?}");
    let w = refused[0];
    assert!(
        w.get("reason").is_some_and(|r| r.contains("NotAuthorized")),
        "{w:?}"
    );
    assert_eq!(w.get("id"), Some("ev-1"), "{w:?}");
    assert_eq!(w.trace_id, trace_id, "{w:?}");
    let unconvertible: Vec<&Seen> = warnings
        .iter()
        .filter(|w| w.get("id") == Some("ev-2"))
        .collect();
    assert_eq!(unconvertible.len(), 1, "{warnings:?}");
    assert_eq!(unconvertible[0].trace_id, other_trace, "{warnings:?}");
    assert!(unconvertible[0].get("reason").is_some(), "{warnings:?}");
    p.shutdown.token.cancel();
    Ok(())
}

//! Telemetry in one place: logs to stderr, OpenTelemetry traces over OTLP gRPC when the standard
//! `OTEL_EXPORTER_OTLP_*` variables ask for it, the W3C propagator, and trace-context helpers for
//! the per-event context carried inside stream messages.

use std::collections::HashMap;

use opentelemetry::global;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::runtime;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// Keeps the tracer provider alive; [`Guard::shutdown`] flushes the spans still queued.
#[must_use = "dropping the guard stops trace export"]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Guard {
    /// Flushes and stops trace export. Call before the runtime stops.
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.force_flush();
        }
    }
}

fn otlp_configured() -> bool {
    let set = |k: &str| std::env::var(k).map(|v| !v.is_empty()).unwrap_or(false);
    let exporter_off = std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v == "none");
    !exporter_off
        && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Starts logging and tracing for `service` (the default `service.name`; `OTEL_SERVICE_NAME`
/// wins). Must be called inside the Tokio runtime. Spans always get W3C ids, so every event
/// carries a `traceparent`; they are exported only when an OTLP endpoint is configured.
pub fn init(service: &'static str) -> Guard {
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![Box::new(
        TraceContextPropagator::new(),
    )]));
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| service.to_string());
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(name).build());
    let mut export_error = None;
    if otlp_configured() {
        match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => {
                builder = builder.with_span_processor(
                    BatchSpanProcessor::builder(exporter, runtime::Tokio).build(),
                )
            }
            Err(e) => export_error = Some(e.to_string()),
        }
    }
    let provider = builder.build();
    global::set_tracer_provider(provider.clone());
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(service))
        // Only our own spans: no telemetry about the gRPC and HTTP plumbing (or about telemetry).
        .with_filter(filter_fn(|meta| meta.target().starts_with("sse_")));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr))
        .with(otel)
        .try_init();
    if let Some(e) = export_error {
        tracing::error!(error = %e, "OTLP trace exporter could not be built; traces are not exported");
    }
    Guard {
        provider: Some(provider),
    }
}

/// W3C trace context of a span, as carried in an event: (`traceparent`, `tracestate`).
pub fn trace_context(span: &tracing::Span) -> (String, String) {
    let cx = span.context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    (
        carrier.remove("traceparent").unwrap_or_default(),
        carrier.remove("tracestate").unwrap_or_default(),
    )
}

/// Makes `span` a child of the trace context carried by an event or a request header.
pub fn set_parent(span: &tracing::Span, traceparent: &str, tracestate: &str) {
    if traceparent.is_empty() {
        return;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    carrier.insert("traceparent".into(), traceparent.into());
    if !tracestate.is_empty() {
        carrier.insert("tracestate".into(), tracestate.into());
    }
    let cx = global::get_text_map_propagator(|p| p.extract(&carrier));
    let _ = span.set_parent(cx);
}

//! Logs over OTLP when a log endpoint is configured: the tracing events that reach stderr also
//! become OpenTelemetry log records, carrying the trace and span ids of the context current
//! when they were written: the one `event_context` attached (a log about one event), else the
//! exported tracing span the log is written in.

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::logs::log_processor_with_async_runtime::BatchLogProcessor;
use opentelemetry_sdk::runtime;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::registry::LookupSpan;

use super::TelemetryError;
use super::otlp_env::Target;

/// The logger provider exporting to `target`.
pub fn provider(resource: &Resource, target: &Target) -> Result<SdkLoggerProvider, TelemetryError> {
    let exporter = super::exporters::logs(target)?;
    Ok(SdkLoggerProvider::builder()
        .with_resource(resource.clone())
        .with_log_processor(BatchLogProcessor::builder(exporter, runtime::Tokio).build())
        .build())
}

/// Whether a log of `target` (a tracing target, i.e. a module path) may be exported: not the
/// exporter's own plumbing, whose logs would be exported by the exporter, and so on.
pub fn exported(target: &str) -> bool {
    const PLUMBING: [&str; 6] = ["opentelemetry", "tonic", "hyper", "h2", "tower", "rustls"];
    !PLUMBING.iter().any(|p| target.starts_with(p))
}

/// The tracing layer turning events into log records of `provider`.
pub fn layer<S>(provider: &SdkLoggerProvider) -> impl Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    InSpan(OpenTelemetryTracingBridge::new(provider))
        .with_filter(filter_fn(|meta| exported(meta.target())))
}

/// Writes each log record in the OpenTelemetry context of the exported span it is logged in,
/// when no context is attached already. The trace layer does not activate span contexts on
/// entry (a cost on every poll of every stream, see `telemetry::init`); this does the same only
/// for the few log lines that are exported, when they are written.
struct InSpan<L>(L);

impl<S, L> Layer<S> for InSpan<L>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        let attached = Context::map_current(|cx| cx.span().span_context().is_valid());
        if attached || !super::context::EXPORTING.load(std::sync::atomic::Ordering::Relaxed) {
            return self.0.on_event(event, ctx);
        }
        let span = tracing::Span::current();
        let cx = (!span.is_none()).then(|| span.context());
        let _guard = cx
            .filter(|cx| cx.span().span_context().is_valid())
            .map(Context::attach);
        self.0.on_event(event, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exporters_own_logs_are_not_exported() {
        for t in [
            "opentelemetry_sdk",
            "opentelemetry-otlp",
            "tonic::transport",
            "hyper_util",
            "h2::proto",
            "tower::buffer",
            "rustls::conn",
        ] {
            assert!(!exported(t), "{t}");
        }
        for t in ["sse_publisher::grpc", "sse_runtime::process", "rumqttc"] {
            assert!(exported(t), "{t}");
        }
    }
}

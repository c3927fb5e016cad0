//! The tracer provider: W3C ids for every event always, spans exported only when a traces
//! endpoint is configured.

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;

use super::TelemetryError;
use super::otlp_env::Target;

/// The tracer provider, exporting to `target` when given.
pub fn provider(
    resource: &Resource,
    target: Option<&Target>,
) -> Result<SdkTracerProvider, TelemetryError> {
    let mut builder = SdkTracerProvider::builder().with_resource(resource.clone());
    if let Some(target) = target {
        let exporter = super::exporters::spans(target)?;
        builder = builder
            .with_span_processor(BatchSpanProcessor::builder(exporter, runtime::Tokio).build());
    }
    Ok(builder.build())
}

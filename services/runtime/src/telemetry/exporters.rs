//! The OTLP exporter of each signal for a resolved [`Target`]: gRPC over our tonic channel or
//! HTTP/protobuf over our hyper client (see `collector`), never the SDK's own transports.

use opentelemetry_otlp::{
    LogExporter, MetricExporter, Protocol as OtlpProtocol, SpanExporter, WithExportConfig,
    WithHttpConfig, WithTonicConfig,
};

use super::TelemetryError;
use super::collector::{grpc_channel, http_client};
use super::otlp_env::{Protocol, Signal, Target};

fn built(signal: Signal, e: impl std::fmt::Display) -> TelemetryError {
    TelemetryError::Exporter {
        signal,
        reason: e.to_string(),
    }
}

/// Builds `$exporter` for `$target` over gRPC (our channel) or HTTP/protobuf (our hyper client):
/// the three signals' builders are distinct types with the same steps.
macro_rules! exporter {
    ($exporter:ty, $signal:expr, $target:expr) => {{
        let (s, target) = ($signal, $target);
        let exporter = match target.protocol {
            Protocol::Grpc => <$exporter>::builder()
                .with_tonic()
                .with_channel(grpc_channel(s, target)?)
                .build(),
            Protocol::HttpProtobuf => <$exporter>::builder()
                .with_http()
                .with_http_client(http_client(s, target)?)
                .with_protocol(OtlpProtocol::HttpBinary)
                .with_endpoint(target.url.to_string())
                .build(),
        };
        exporter.map_err(|e| built(s, e))
    }};
}

/// The span exporter for `target`.
pub fn spans(target: &Target) -> Result<SpanExporter, TelemetryError> {
    exporter!(SpanExporter, Signal::Traces, target)
}

/// The metric exporter for `target`.
pub fn metrics(target: &Target) -> Result<MetricExporter, TelemetryError> {
    exporter!(MetricExporter, Signal::Metrics, target)
}

/// The log exporter for `target`.
pub fn logs(target: &Target) -> Result<LogExporter, TelemetryError> {
    exporter!(LogExporter, Signal::Logs, target)
}

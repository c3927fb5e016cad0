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

/// The span exporter for `target`.
pub fn spans(target: &Target) -> Result<SpanExporter, TelemetryError> {
    let s = Signal::Traces;
    let exporter = match target.protocol {
        Protocol::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_channel(grpc_channel(s, target)?)
            .build(),
        Protocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_http_client(http_client(s, target)?)
            .with_protocol(OtlpProtocol::HttpBinary)
            .with_endpoint(target.url.to_string())
            .build(),
    };
    exporter.map_err(|e| built(s, e))
}

/// The metric exporter for `target`.
pub fn metrics(target: &Target) -> Result<MetricExporter, TelemetryError> {
    let s = Signal::Metrics;
    let exporter = match target.protocol {
        Protocol::Grpc => MetricExporter::builder()
            .with_tonic()
            .with_channel(grpc_channel(s, target)?)
            .build(),
        Protocol::HttpProtobuf => MetricExporter::builder()
            .with_http()
            .with_http_client(http_client(s, target)?)
            .with_protocol(OtlpProtocol::HttpBinary)
            .with_endpoint(target.url.to_string())
            .build(),
    };
    exporter.map_err(|e| built(s, e))
}

/// The log exporter for `target`.
pub fn logs(target: &Target) -> Result<LogExporter, TelemetryError> {
    let s = Signal::Logs;
    let exporter = match target.protocol {
        Protocol::Grpc => LogExporter::builder()
            .with_tonic()
            .with_channel(grpc_channel(s, target)?)
            .build(),
        Protocol::HttpProtobuf => LogExporter::builder()
            .with_http()
            .with_http_client(http_client(s, target)?)
            .with_protocol(OtlpProtocol::HttpBinary)
            .with_endpoint(target.url.to_string())
            .build(),
    };
    exporter.map_err(|e| built(s, e))
}

//! The meter provider: installed globally only when metrics are wanted (an OTLP metrics
//! endpoint, or the admin port's `/metrics`), so that otherwise every instrument stays the
//! global no-op and costs nothing per event.

use opentelemetry::global;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::runtime;

use super::TelemetryError;
use super::otlp_env::{Signal, Target};

/// What [`install`] made: the provider to flush at exit and the registry `/metrics` serves.
pub struct Installed {
    /// The provider, shut down (flushed) at exit.
    pub provider: SdkMeterProvider,
    /// The Prometheus registry of the admin port, when it is on.
    pub registry: Option<prometheus::Registry>,
}

/// Installs the global meter provider with an OTLP periodic reader for `otlp` (interval from
/// `OTEL_METRIC_EXPORT_INTERVAL`, else the SDK's 60 s) and a Prometheus reader when
/// `prometheus` is asked for; `None` when neither is.
pub fn install(
    resource: &Resource,
    otlp: Option<&Target>,
    prometheus: bool,
) -> Result<Option<Installed>, TelemetryError> {
    if otlp.is_none() && !prometheus {
        return Ok(None);
    }
    let mut builder = SdkMeterProvider::builder().with_resource(resource.clone());
    if let Some(target) = otlp {
        let exporter = super::exporters::metrics(target)?;
        builder = builder.with_reader(PeriodicReader::builder(exporter, runtime::Tokio).build());
    }
    let mut registry = None;
    if prometheus {
        let r = prometheus::Registry::new();
        let reader = opentelemetry_prometheus::exporter()
            .with_registry(r.clone())
            .build()
            .map_err(|e| TelemetryError::Exporter {
                signal: Signal::Metrics,
                reason: e.to_string(),
            })?;
        builder = builder.with_reader(reader);
        registry = Some(r);
    }
    let provider = builder.build();
    global::set_meter_provider(provider.clone());
    // Before any service starts: they read it once to decide whether to do per-event metric
    // work at all.
    crate::metrics::set_enabled(true);
    crate::metrics::announce();
    Ok(Some(Installed { provider, registry }))
}

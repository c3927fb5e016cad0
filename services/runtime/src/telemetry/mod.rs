//! Telemetry in one place: logs to stderr, and OpenTelemetry traces, metrics and logs over OTLP
//! (gRPC or HTTP/protobuf) when the environment asks for them (`otlp_env` says how), the
//! Prometheus registry the admin port serves, the W3C propagator, and the trace-context
//! helpers for the per-event context carried inside stream messages.

mod collector;
mod context;
mod exporters;
mod logs;
mod metrics_export;
pub mod otlp_env;
mod traces;

use std::io::IsTerminal;
use std::sync::atomic::Ordering;

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{KeyValue, global};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

pub use collector::CollectorError;
pub use context::{EventTrace, event_context, exporting, set_parent, trace_context};
pub use otlp_env::{OtlpEnvError, Signal};

/// Why telemetry could not start as configured: always the operator's configuration (exit 64).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An OTLP variable is unusable.
    #[error("telemetry: {0}")]
    Env(#[from] OtlpEnvError),
    /// A collector's TLS settings are unusable.
    #[error("telemetry: {0}")]
    Collector(#[from] CollectorError),
    /// The SDK refused to build a signal's exporter.
    #[error("telemetry: cannot export {signal}: {reason}")]
    Exporter {
        /// The signal.
        signal: Signal,
        /// The SDK's reason.
        reason: String,
    },
}

/// Keeps the providers alive; [`Guard::shutdown`] flushes what is still queued.
#[must_use = "dropping the guard stops telemetry export"]
pub struct Guard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    logger: Option<SdkLoggerProvider>,
    registry: Option<prometheus::Registry>,
}

impl Guard {
    /// The Prometheus registry the admin port's `/metrics` serves (when it was asked for).
    pub fn registry(&self) -> Option<prometheus::Registry> {
        self.registry.clone()
    }

    /// Flushes and stops every export. Call before the runtime stops: the providers' batches
    /// are sent by tasks of this runtime, so the blocking shutdown runs beside it.
    pub async fn shutdown(mut self) {
        let (tracer, meter, logger) = (self.tracer.take(), self.meter.take(), self.logger.take());
        let _ = tokio::task::spawn_blocking(move || {
            if let Some(m) = meter {
                let _ = m.shutdown();
            }
            if let Some(l) = logger {
                let _ = l.shutdown();
            }
            if let Some(t) = tracer {
                let _ = t.shutdown();
            }
        })
        .await;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer.take() {
            let _ = provider.force_flush();
        }
    }
}

/// `service.name` (`OTEL_SERVICE_NAME` wins over `service`) and a `service.instance.id` of this
/// process, so two replicas' series stay apart.
fn resource(service: &'static str) -> Resource {
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| service.to_string());
    let instance = format!("{:032x}", rand::random::<u128>());
    Resource::builder()
        .with_service_name(name)
        .with_attribute(KeyValue::new("service.instance.id", instance))
        .build()
}

/// Starts logging and telemetry for `service`; `prometheus`: the admin port serves `/metrics`.
/// Must be called inside the Tokio runtime. Spans always get W3C ids, so every event carries a
/// `traceparent`; they are exported only when a traces endpoint is configured. A meter provider
/// is installed only when metrics go somewhere, so instruments are no-ops otherwise.
pub fn init(service: &'static str, prometheus: bool) -> Result<Guard, TelemetryError> {
    let endpoints = otlp_env::resolve(&|k| std::env::var(k).ok())?;
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![Box::new(
        TraceContextPropagator::new(),
    )]));
    let resource = resource(service);
    let tracer = traces::provider(&resource, endpoints.traces.as_ref())?;
    let exporting = endpoints.traces.is_some();
    context::EXPORTING.store(exporting, Ordering::Relaxed);
    global::set_tracer_provider(tracer.clone());
    let metrics = metrics_export::install(&resource, endpoints.metrics.as_ref(), prometheus)?;
    let logger = match &endpoints.logs {
        Some(target) => Some(logs::provider(&resource, target)?),
        None => None,
    };
    subscribe(service, exporting.then_some(&tracer), logger.as_ref());
    for (signal, target) in [
        (Signal::Traces, &endpoints.traces),
        (Signal::Metrics, &endpoints.metrics),
        (Signal::Logs, &endpoints.logs),
    ] {
        if let Some(t) = target {
            // The variable, not the URL: an endpoint may carry credentials.
            tracing::info!(%signal, from = t.from, tls = t.is_tls(), "exporting over OTLP");
        }
    }
    let (meter, registry) = match metrics {
        Some(m) => (Some(m.provider), m.registry),
        None => (None, None),
    };
    Ok(Guard {
        tracer: Some(tracer),
        meter,
        logger,
        registry,
    })
}

/// Installs the global subscriber: stderr as always, the OpenTelemetry span layer when `tracer`
/// exports, the OTLP log layer when `logger` is given.
fn subscribe(
    service: &'static str,
    tracer: Option<&SdkTracerProvider>,
    logger: Option<&SdkLoggerProvider>,
) {
    // A long-lived span (a stream's, a connection's) is entered at every poll, i.e. for every
    // event: activating its OpenTelemetry context there (nothing reads it: every event carries
    // its context explicitly), timing busy and idle periods and naming the thread (always the
    // same: the services run on one) cost 2-3 % of the CPU per event (A/B in docs/performance.md).
    // Without an exporter there is no OpenTelemetry layer at all: it would keep a span builder
    // per open span (every stream has one) and act on every entry, for spans nobody receives.
    let otel = tracer.map(|tracer| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer.tracer(service))
            .with_context_activation(false)
            .with_tracked_inactivity(false)
            .with_threads(false)
            // Only our own spans: no telemetry about the gRPC and HTTP plumbing (or about
            // telemetry).
            .with_filter(filter_fn(|meta| meta.target().starts_with("sse_")))
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        // Colours only for a person at a terminal, not in files, journald or `kubectl logs`.
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(otel)
        .with(logger.map(logs::layer))
        .try_init();
}

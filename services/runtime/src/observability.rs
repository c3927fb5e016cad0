//! The observability flags every binary takes (flattened into each service's configuration, so
//! `sse-connector`'s composed command shows each once): the admin HTTP port and the cap on
//! metric label values.

use std::net::SocketAddr;

use sse_contract::metrics::LABEL_VALUES_DEFAULT;

/// The most distinct values a capped metric label may keep, so a misconfiguration cannot make
/// cardinality unbounded after all.
pub const LABEL_VALUES_MAX: u64 = 10_000;

/// Flags of the admin port and of the metrics.
#[derive(Debug, Clone, clap::Args)]
pub struct Observability {
    /// Address of the admin HTTP port (`/metrics` for Prometheus, `/healthz`, `/readyz`);
    /// off when unset. Serves no secret, but bind it where only the scraper reaches it.
    #[arg(long, env = "ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Distinct values each capped metric label (device, asset, destination) keeps per process;
    /// later values are counted as `other` (1 to 10000).
    #[arg(
        long,
        env = "METRICS_LABEL_VALUES",
        default_value_t = LABEL_VALUES_DEFAULT as u64,
        value_parser = clap::value_parser!(u64).range(1..=LABEL_VALUES_MAX)
    )]
    pub metrics_label_values: u64,
}

impl Default for Observability {
    fn default() -> Self {
        Self {
            admin_listen: None,
            metrics_label_values: LABEL_VALUES_DEFAULT as u64,
        }
    }
}

impl Observability {
    /// Applies the process-wide settings (the label cap) before any instrument is made.
    pub fn apply(&self) {
        let limit = usize::try_from(self.metrics_label_values).unwrap_or(usize::MAX);
        crate::metrics::set_label_limit(limit);
    }
}

//! Metrics for every service: the one meter (scope [`sse_contract::metrics::SCOPE`]), instruments
//! made from the catalogue in `sse_contract::metrics`, and the per-process cap on label values
//! that keeps cardinality bounded whatever the resources say.
//!
//! Instruments come from the global meter provider that `telemetry::init` installs; made before
//! it (or in unit tests) they are no-ops. Make them when a service starts, not in statics.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::{KeyValue, StringValue, global};
use sse_contract::metrics::{self as catalogue, Instrument, Kind, attr};

/// The meter every service records with, so one process's services share instruments.
pub fn meter() -> Meter {
    global::meter(catalogue::SCOPE)
}

/// Whether a meter provider that collects is installed: see [`set_enabled`].
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Says whether a collecting meter provider is installed: whoever installs one (telemetry, a
/// test) sets it first, so services skip their per-event metric work (label caches, clock
/// reads) when nothing collects, not only the no-op record calls.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether metrics are collected (see [`set_enabled`]); read when a service starts.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A counter from the catalogue.
pub fn counter(i: Instrument) -> Counter<u64> {
    counter_in(&meter(), i)
}

/// A counter from the catalogue, made by `meter` (a test's or a bench's own provider).
pub fn counter_in(meter: &Meter, i: Instrument) -> Counter<u64> {
    debug_assert_eq!(i.kind, Kind::Counter, "{}", i.name);
    let c = meter
        .u64_counter(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .build();
    // Exported at 0 from the first collection: a counter of rare events (re-sends, broker
    // reconnects, inference failures) would otherwise be absent until the first one, leaving
    // its dashboard panel empty and an alert on its rate nothing to watch.
    c.add(0, &[]);
    c
}

/// A duration histogram (seconds) from the catalogue, with the catalogue's buckets.
pub fn histogram(i: Instrument) -> Histogram<f64> {
    histogram_in(&meter(), i)
}

/// A duration histogram from the catalogue, made by `meter` (a test's or a bench's own provider).
pub fn histogram_in(meter: &Meter, i: Instrument) -> Histogram<f64> {
    debug_assert_eq!(i.kind, Kind::Histogram, "{}", i.name);
    meter
        .f64_histogram(i.name)
        .with_unit(i.unit)
        .with_description(i.description)
        .with_boundaries(catalogue::LATENCY_BUCKETS.to_vec())
        .build()
}

/// The cap on distinct values of the capped labels (device, asset, destination), per process.
static LIMIT: AtomicUsize = AtomicUsize::new(catalogue::LABEL_VALUES_DEFAULT);

/// Sets the cap (`--metrics-label-values`); values already kept stay kept.
pub fn set_label_limit(limit: usize) {
    LIMIT.store(limit, Ordering::Relaxed);
}

/// Values kept so far, per capped label; past the cap a new value folds into `other`.
#[derive(Default)]
struct Kept {
    values: HashMap<&'static str, HashSet<Arc<str>>>,
}

fn kept() -> &'static Mutex<Kept> {
    static KEPT: OnceLock<Mutex<Kept>> = OnceLock::new();
    KEPT.get_or_init(Default::default)
}

fn folded() -> &'static Counter<u64> {
    static FOLDED: OnceLock<Counter<u64>> = OnceLock::new();
    FOLDED.get_or_init(|| counter(catalogue::LABELS_FOLDED))
}

/// Records a zero fold when metrics start, so `sse_connector.labels.folded` is scraped (at 0)
/// from the first collection on and an alert on its rate has a series to watch.
pub fn announce() {
    folded().add(0, &[]);
}

/// The value to record for `value` of the capped label `label` (`"device"`, `"asset"`,
/// `"destination"`): itself while fewer than the cap's distinct values were seen (or it is one
/// of them), else [`catalogue::OTHER`], counted in `sse_connector.labels.folded`. Takes a lock:
/// call it when a stream or route is set up and keep the result, not per event.
pub fn capped(label: &'static str, value: &str) -> StringValue {
    let value = &*label_value(value);
    let limit = LIMIT.load(Ordering::Relaxed);
    let mut kept = kept().lock().unwrap_or_else(|e| e.into_inner());
    let set = kept.values.entry(label).or_default();
    if let Some(v) = set.get(value) {
        return StringValue::from(v.clone());
    }
    if set.len() < limit {
        let v: Arc<str> = Arc::from(value);
        set.insert(v.clone());
        return StringValue::from(v);
    }
    drop(kept);
    folded().add(1, &[KeyValue::new(attr::LABEL, label)]);
    StringValue::from(catalogue::OTHER)
}

/// `value` as a label records it: whole up to [`catalogue::LABEL_VALUE_BYTES_MAX`] bytes, else
/// cut there at a character boundary and ended with `…` (values that differ only past the cut
/// share a series).
pub fn label_value(value: &str) -> Cow<'_, str> {
    let max = catalogue::LABEL_VALUE_BYTES_MAX;
    if value.len() <= max {
        return Cow::Borrowed(value);
    }
    let keep = crate::echo::prefix(value, max - '…'.len_utf8());
    Cow::Owned(format!("{keep}…"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_cap_fold_into_other() {
        set_label_limit(2);
        assert_eq!(capped("test-a", "one").as_str(), "one");
        assert_eq!(capped("test-a", "two").as_str(), "two");
        assert_eq!(capped("test-a", "three").as_str(), "other");
        assert_eq!(capped("test-a", "one").as_str(), "one", "kept values stay");
        assert_eq!(
            capped("test-b", "x").as_str(),
            "x",
            "each label its own cap"
        );
        set_label_limit(catalogue::LABEL_VALUES_DEFAULT);
    }

    #[test]
    fn a_long_value_is_cut_to_the_label_limit() {
        let max = catalogue::LABEL_VALUE_BYTES_MAX;
        let topic = format!("f/1{}", "a".repeat(65_500));
        let v = capped("test-long", &topic);
        assert!(v.as_str().len() <= max, "{} bytes", v.as_str().len());
        assert!(v.as_str().starts_with("f/1aaa") && v.as_str().ends_with('…'));
        // A multi-byte character straddling the cut is not split.
        let wide = "é".repeat(max);
        let cut = label_value(&wide);
        assert!(cut.len() <= max && cut.ends_with('…'), "{cut}");
        assert_eq!(label_value("short"), "short");
        let exact = "x".repeat(max);
        assert_eq!(label_value(&exact), exact.as_str());
    }
}

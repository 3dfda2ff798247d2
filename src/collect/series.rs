//! How a collector describes the series it produces: each family is a `const` in the file of
//! the collector (or check) that fills it, so a series is found, and renamed, in one place.
//! The metrics layer turns what is written to a [`Series`] sink into the exposition format.

use crate::config::{Detail, Settings};

/// A gauge family.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Gauge {
    /// Metric name.
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// Label names, `database` first for per-database series.
    pub labels: &'static [&'static str],
}

/// A histogram family whose observations accumulate across scrapes.
#[derive(Debug, PartialEq)]
pub struct Histogram {
    /// Metric name (without `_bucket`, `_sum`, `_count`).
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// Label names.
    pub labels: &'static [&'static str],
    /// Upper bounds of the buckets.
    pub buckets: &'static [f64],
}

/// A counter family (its name ends in `_total`).
#[derive(Debug, PartialEq, Eq)]
pub struct Counter {
    /// Metric name.
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// Label names.
    pub labels: &'static [&'static str],
}

/// Latency buckets of the probes at full detail: 100 µs to 10 s, with the default thresholds (20 ms slow
/// write, 50 ms slow query, 1 s unhealthy) as bucket edges so alerts can be exact.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// The probe latency buckets of a database. Full detail: [`LATENCY_BUCKETS`]. Basic detail:
/// three edges, because every bucket is a series per database — the database's own
/// `slow_write`, `slow_query` and `unhealthy_latency` thresholds (20 ms, 50 ms and 1 s by
/// default), so that "is the 95th percentile above the threshold" is exact at the edge. Both
/// kinds always contain the thresholds.
pub fn probe_buckets(settings: &Settings) -> Vec<f64> {
    let t = &settings.thresholds;
    let thresholds = [t.slow_write, t.slow_query, t.unhealthy_latency].map(|d| d.0.as_secs_f64());
    let mut edges: Vec<f64> = match settings.metrics.detail {
        Detail::Full => LATENCY_BUCKETS.to_vec(),
        Detail::Basic => Vec::new(),
    };
    edges.extend(thresholds);
    edges.retain(|e| e.is_finite() && *e > 0.0);
    edges.sort_by(f64::total_cmp);
    edges.dedup();
    edges
}

/// A family whose name is known only at run time (a custom query's), of type `kind`
/// (`gauge` or `counter`). Name and help are interned ([`intern`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// Metric name.
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// `gauge` or `counter`.
    pub kind: &'static str,
}

/// `text` as a `&'static str`, kept once per distinct text for the life of the process: the
/// names and help texts of custom queries, which change only with the configuration.
pub fn intern(text: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static TEXTS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut texts = TEXTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(t) = texts.get(text) {
        return t;
    }
    let t: &'static str = Box::leak(text.to_string().into_boxed_str());
    texts.insert(t);
    t
}

/// Where rendered gauge values go.
pub trait Series {
    /// Sets `gauge{labels} = value`; `labels` are the values of `gauge.labels`, in order.
    fn set(&mut self, gauge: &'static Gauge, labels: &[&str], value: f64);

    /// Sets `family{labels} = value` for a family declared at run time; `labels` are
    /// (name, value) pairs.
    fn set_family(&mut self, family: Family, labels: &[(&str, &str)], value: f64);
}

/// 1 for true, 0 for false.
pub fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// A series sink that keeps text lines, for tests of what a collector renders.
#[derive(Debug, Default)]
pub struct Lines(pub Vec<String>);

impl Series for Lines {
    fn set(&mut self, gauge: &'static Gauge, labels: &[&str], value: f64) {
        let pairs: Vec<String> = gauge
            .labels
            .iter()
            .zip(labels)
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        self.0
            .push(format!("{}{{{}}} {value}", gauge.name, pairs.join(",")));
    }

    fn set_family(&mut self, family: Family, labels: &[(&str, &str)], value: f64) {
        let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        self.0
            .push(format!("{}{{{}}} {value}", family.name, pairs.join(",")));
    }
}

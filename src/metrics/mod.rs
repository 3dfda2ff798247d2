//! The exposition: turns a [`Snapshot`] and the accumulated events into the Prometheus text
//! format, and keeps the histograms and counters that accumulate across scrapes.
//!
//! Series are not named here. Each collector, check and action declares its families in its
//! own file (`collect::size::PAGES`, `checks::INTEGRITY_SUCCESS`, `actions::checkpoint::COUNTERS`,
//! …) and writes its values to a [`Series`] sink; this module only encodes. The exporter's own
//! series (`sqlite_up`, per-collector success and duration, build info, reload state) are the
//! exception, declared below.
//!
//! Two kinds of series exist. Gauges describe the state at this scrape and are rebuilt from the
//! snapshot every time (so a database that disappears from the config disappears from
//! `/metrics`). Histograms and counters accumulate across scrapes and live in [`EventMetrics`]
//! — the [`Events`] sink the fleet and the actions report to — labelled by database and
//! forgotten when the database is.
//!
//! Uses every layer up to `actions`; used by `http`.

use std::collections::HashMap;

use prometheus::proto::MetricFamily;
use prometheus::{CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, Opts, Registry};

use crate::actions::checkpoint::Mode as CheckpointMode;
use crate::actions::{ACTIONS, ACTION_DURATION};
use crate::collect::series::{flag, Counter, Gauge, Histogram, Series};
use crate::collect::{query::QUERY_DURATION, write::WRITE_DURATION};
use crate::collect::{CollectorSet, Database, PerformanceFacts};
use crate::fleet::events::{Events, ExporterStatus};
use crate::fleet::Snapshot;

/// Content-Type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const DB: &[&str] = &["database"];
const DB_COLLECTOR: &[&str] = &["database", "collector"];

/// `sqlite_up`.
pub const UP: Gauge = Gauge {
    name: "sqlite_up",
    help: "1 if the database could be opened and read at this scrape.",
    labels: DB,
};
/// `sqlite_scrape_collector_success{collector}`.
pub const COLLECTOR_SUCCESS: Gauge = Gauge {
    name: "sqlite_scrape_collector_success",
    help: "1 if the collector succeeded at this scrape.",
    labels: DB_COLLECTOR,
};
/// `sqlite_scrape_collector_duration_seconds{collector}`.
pub const COLLECTOR_DURATION: Gauge = Gauge {
    name: "sqlite_scrape_collector_duration_seconds",
    help: "Time the collector took at this scrape.",
    labels: DB_COLLECTOR,
};
/// `sqlite_exporter_build_info`.
pub const BUILD_INFO: Gauge = Gauge {
    name: "sqlite_exporter_build_info",
    help: "Build information of the exporter; always 1.",
    labels: &["version", "revision", "sqlite_version"],
};
/// `sqlite_exporter_databases`.
pub const DATABASES: Gauge = Gauge {
    name: "sqlite_exporter_databases",
    help: "Databases currently monitored.",
    labels: &[],
};
/// `sqlite_exporter_config_last_reload_successful`.
pub const RELOAD_SUCCESSFUL: Gauge = Gauge {
    name: "sqlite_exporter_config_last_reload_successful",
    help: "1 if the last configuration reload succeeded.",
    labels: &[],
};
/// `sqlite_exporter_config_last_reload_success_timestamp_seconds`.
pub const RELOAD_TIMESTAMP: Gauge = Gauge {
    name: "sqlite_exporter_config_last_reload_success_timestamp_seconds",
    help: "Unix time of the last successful configuration reload.",
    labels: &[],
};

/// Accumulating metrics: probe and action histograms, action counters; one registry for the
/// process lifetime.
pub struct EventMetrics {
    registry: Registry,
    query_duration: HistogramVec,
    write_duration: HistogramVec,
    action_duration: HistogramVec,
    /// (action name, runs, failures), from the actions' own counter families.
    actions: Vec<(&'static str, CounterVec, CounterVec)>,
}

impl Default for EventMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl EventMetrics {
    /// Creates and registers the accumulating metrics.
    pub fn new() -> Self {
        let registry = Registry::new();
        let histogram = |h: &Histogram| {
            let v = HistogramVec::new(
                HistogramOpts::new(h.name, h.help).buckets(h.buckets.to_vec()),
                h.labels,
            )
            .expect("static histogram definition");
            registry
                .register(Box::new(v.clone()))
                .expect("unique metric name");
            v
        };
        let counter = |c: &Counter| {
            let v = CounterVec::new(Opts::new(c.name, c.help), c.labels)
                .expect("static counter definition");
            registry
                .register(Box::new(v.clone()))
                .expect("unique metric name");
            v
        };
        let actions = ACTIONS
            .iter()
            .filter_map(|s| s.counters.map(|(t, f)| (s.name, counter(t), counter(f))))
            .collect();
        EventMetrics {
            query_duration: histogram(&QUERY_DURATION),
            write_duration: histogram(&WRITE_DURATION),
            action_duration: histogram(&ACTION_DURATION),
            actions,
            registry,
        }
    }

    /// The label sets of a database's counters: one per checkpoint mode for checkpoints.
    fn label_sets<'a>(database: &'a str, action: &str) -> Vec<Vec<&'a str>> {
        match action {
            "checkpoint" => CheckpointMode::ALL
                .iter()
                .map(|m| vec![database, m.as_str()])
                .collect(),
            _ => vec![vec![database]],
        }
    }

    fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }
}

impl Events for EventMetrics {
    /// Creates a new database's counters at 0, so `rate()` and `increase()` see its first
    /// action.
    fn database_added(&self, database: &str) {
        for (action, total, failures) in &self.actions {
            for labels in Self::label_sets(database, action) {
                total.with_label_values(&labels);
                failures.with_label_values(&labels);
            }
        }
    }

    /// Drops every series of a database that is no longer monitored.
    fn database_removed(&self, database: &str) {
        for h in [&self.query_duration, &self.write_duration] {
            let _ = h.remove_label_values(&[database]);
        }
        for (action, total, failures) in &self.actions {
            for labels in Self::label_sets(database, action) {
                let _ = total.remove_label_values(&labels);
                let _ = failures.remove_label_values(&labels);
            }
        }
        for spec in ACTIONS {
            let _ = self
                .action_duration
                .remove_label_values(&[database, spec.name]);
        }
    }

    fn probes(&self, database: &str, p: &PerformanceFacts) {
        if let Some(q) = p.query_seconds {
            self.query_duration
                .with_label_values(&[database])
                .observe(q);
        }
        if let Some(w) = p.write_seconds {
            self.write_duration
                .with_label_values(&[database])
                .observe(w);
        }
    }

    fn action(&self, database: &str, action: &str, mode: Option<&str>, ok: bool, seconds: f64) {
        self.action_duration
            .with_label_values(&[database, action])
            .observe(seconds);
        let Some((_, total, failures)) = self.actions.iter().find(|(a, _, _)| *a == action) else {
            return;
        };
        let labels: Vec<&str> = match (action, mode) {
            ("checkpoint", Some(mode)) => vec![database, mode],
            ("checkpoint", None) => return,
            _ => vec![database],
        };
        total.with_label_values(&labels).inc();
        if !ok {
            failures.with_label_values(&labels).inc();
        }
    }
}

/// A [`Series`] sink building one gauge family per name, registered on first use.
struct Gauges {
    registry: Registry,
    families: HashMap<&'static str, GaugeVec>,
}

impl Series for Gauges {
    fn set(&mut self, gauge: &'static Gauge, labels: &[&str], value: f64) {
        let registry = &self.registry;
        let vec = self.families.entry(gauge.name).or_insert_with(|| {
            let g = GaugeVec::new(Opts::new(gauge.name, gauge.help), gauge.labels)
                .expect("static gauge definition");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric name");
            g
        });
        vec.with_label_values(labels).set(value);
    }
}

/// Renders a snapshot, the accumulating metrics and the exporter status as Prometheus text.
pub fn render(
    snapshot: &Snapshot,
    collectors: &CollectorSet,
    events: &EventMetrics,
    exporter: &ExporterStatus,
) -> Vec<u8> {
    let mut g = Gauges {
        registry: Registry::new(),
        families: HashMap::new(),
    };
    for r in &snapshot.databases {
        let name = r.name.as_str();
        g.set(&UP, &[name], flag(r.up));
        r.health.series(name, r.up, &mut g);
        r.checks.series(name, &mut g);
        for (collector, run) in &r.checks.runs {
            g.set(&COLLECTOR_SUCCESS, &[name, collector], flag(run.success));
            g.set(
                &COLLECTOR_DURATION,
                &[name, collector],
                run.duration_seconds,
            );
        }
        for c in &r.collectors {
            g.set(&COLLECTOR_SUCCESS, &[name, c.collector], flag(c.success));
            g.set(
                &COLLECTOR_DURATION,
                &[name, c.collector],
                c.duration_seconds,
            );
        }
        if !r.up {
            continue;
        }
        let db = Database {
            name,
            path: &r.path,
        };
        for c in collectors.iter() {
            c.series(&db, &r.facts, &mut g);
        }
    }
    g.set(
        &BUILD_INFO,
        &[crate::VERSION, crate::REVISION, rusqlite::version()],
        1.0,
    );
    g.set(&DATABASES, &[], snapshot.databases.len() as f64);
    g.set(&RELOAD_SUCCESSFUL, &[], flag(exporter.reload_successful()));
    g.set(&RELOAD_TIMESTAMP, &[], exporter.reload_success_timestamp());

    let mut families = g.registry.gather();
    families.extend(events.gather());
    families.retain(|f| !f.get_metric().is_empty());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::with_capacity(4096 + snapshot.databases.len() * 4096);
    prometheus::TextEncoder::new()
        .encode(&families, &mut out)
        .expect("encoding to a Vec cannot fail");
    out
}

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

pub mod openmetrics;
mod text;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::actions::checkpoint::Mode as CheckpointMode;
use crate::actions::{ACTIONS, ACTION_DURATION};
use crate::collect::series::{flag, probe_buckets, Gauge, Histogram, Series};
use crate::collect::{query::QUERY_DURATION, write::WRITE_DURATION};
use crate::collect::{CollectorSet, Database, PerformanceFacts};
use crate::config::{Detail, Settings, EXPORTED_THRESHOLDS, EXPORTED_THRESHOLD_COUNT};
use crate::fleet::events::{Events, ExporterStatus};
use crate::fleet::monitor::DatabaseReport;
use crate::fleet::Snapshot;
use text::{DatabaseText, GaugeText, Meta};

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
    help: "1 if the collector's last run succeeded. Scrape-time collectors run when the database's files changed, the probes every probes.interval, background collectors on their own schedule.",
    labels: DB_COLLECTOR,
};
/// `sqlite_scrape_collector_duration_seconds{collector}`.
pub const COLLECTOR_DURATION: Gauge = Gauge {
    name: "sqlite_scrape_collector_duration_seconds",
    help: "Seconds the collector's last run took. Scrape-time collectors run when the database's files changed, the probes every probes.interval, background collectors on their own schedule.",
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

/// `sqlite_exporter_scrape_duration_seconds`.
pub const SCRAPE_DURATION: Gauge = Gauge {
    name: "sqlite_exporter_scrape_duration_seconds",
    help: "Seconds this scrape took to collect every database (overlapping scrapes share one collection; rendering the body comes after).",
    labels: &[],
};
/// `sqlite_exporter_scrape_errors_total`.
const SCRAPE_ERRORS: Meta = Meta {
    name: "sqlite_exporter_scrape_errors_total",
    help: "Requests for the metrics that could not be answered (the collection or the rendering failed) since the exporter started.",
    kind: "counter",
    database_first: false,
};

/// The process series every Prometheus client library exports (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_open_fds`, `process_start_time_seconds`, …), read
/// from `/proc/self` at each scrape by the `prometheus` crate's collector.
fn process_text(out: &mut Vec<u8>) {
    use prometheus::core::Collector as _;
    use prometheus::Encoder as _;
    static PROCESS: std::sync::OnceLock<prometheus::process_collector::ProcessCollector> =
        std::sync::OnceLock::new();
    let families = PROCESS
        .get_or_init(prometheus::process_collector::ProcessCollector::for_self)
        .collect();
    if let Err(e) = prometheus::TextEncoder::new().encode(&families, out) {
        tracing::warn!(error = %e, "process metrics");
    }
}

/// A histogram's observations: per bucket (each in the first that holds it), sum, count.
#[derive(Debug, Clone, Default)]
struct Observed {
    /// Upper bounds of the buckets.
    bounds: Vec<f64>,
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
    /// Unix time the histogram started from zero (OpenMetrics `_created`).
    created: f64,
}

impl Observed {
    fn new(bounds: &[f64]) -> Self {
        Observed {
            bounds: bounds.to_vec(),
            buckets: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
            created: crate::unix_now(),
        }
    }

    fn observe(&mut self, bounds: &[f64], v: f64) {
        if self.bounds != bounds {
            // New edges (a reload changed the detail or a threshold): the histogram starts
            // again, which Prometheus reads as a counter reset.
            *self = Observed::new(bounds);
        }
        if let Some(i) = bounds.iter().position(|b| v <= *b) {
            self.buckets[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }
}

/// An action's counters on one database.
#[derive(Debug, Clone, Copy)]
struct Runs {
    runs: u64,
    failures: u64,
    /// Unix time both started from zero (OpenMetrics `_created`).
    created: f64,
}

impl Default for Runs {
    fn default() -> Self {
        Runs {
            runs: 0,
            failures: 0,
            created: crate::unix_now(),
        }
    }
}

/// One database's accumulated events and their rendered text.
#[derive(Debug, Default)]
struct DatabaseEvents {
    /// Bucket edges of the probe histograms, from the database's settings.
    probe_buckets: Vec<f64>,
    query: Option<Observed>,
    write: Option<Observed>,
    /// Duration of each action, by action name.
    actions: BTreeMap<&'static str, Observed>,
    /// Runs and failures by action name and checkpoint mode.
    counters: BTreeMap<(&'static str, Option<&'static str>), Runs>,
    /// Whether the last checkpoint we ran came back busy.
    checkpoint_busy: Option<bool>,
    /// Bumped at every change, so the text is made again only then.
    version: u64,
    text: Option<(u64, Arc<DatabaseText>)>,
    /// The same in OpenMetrics, which also has each counter's and histogram's `_created`;
    /// made only for scrapers that ask for OpenMetrics.
    openmetrics_text: Option<(u64, Arc<DatabaseText>)>,
}

/// A database's last report and the text of its gauges rendered from it.
type RenderedGauges = (Arc<DatabaseReport>, Arc<DatabaseText>);

/// Accumulating metrics — probe and action histograms, action counters — kept per database,
/// and the rendered text of every database's gauges, kept until its report changes.
#[derive(Default)]
pub struct EventMetrics {
    databases: Mutex<HashMap<String, DatabaseEvents>>,
    /// Each database's last report and its gauges' text.
    gauges: Mutex<HashMap<String, RenderedGauges>>,
    /// The text of each database's own thresholds, for those that differ from the defaults,
    /// with the (own, default) values it was made from.
    thresholds: Mutex<HashMap<String, RenderedThresholds>>,
}

/// A database's thresholds, the defaults', its static labels, and the text of those that
/// differ.
type RenderedThresholds = (
    Thresholds,
    Thresholds,
    Vec<(String, String)>,
    Arc<DatabaseText>,
);

/// Values of the exported thresholds, in `EXPORTED_THRESHOLDS` order.
type Thresholds = [f64; EXPORTED_THRESHOLD_COUNT];

/// The metadata of threshold family `i`. `database` is its only label when it has one: the
/// defaults are one series without labels.
fn threshold_meta(i: usize) -> Meta {
    Meta {
        name: EXPORTED_THRESHOLDS[i].0,
        help: EXPORTED_THRESHOLDS[i].1,
        kind: "gauge",
        database_first: true,
    }
}

impl EventMetrics {
    /// No events yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn update(&self, database: &str, f: impl FnOnce(&mut DatabaseEvents)) {
        let mut all = self.databases.lock().unwrap_or_else(|e| e.into_inner());
        let events = all.entry(database.to_string()).or_default();
        f(events);
        events.version += 1;
    }

    /// The text of a database's events, made again only when they changed (a change of its
    /// static labels comes with a new monitor, whose addition counts as a change).
    fn text(
        &self,
        database: &str,
        labels: &[(String, String)],
        format: Format,
    ) -> Option<Arc<DatabaseText>> {
        let mut all = self.databases.lock().unwrap_or_else(|e| e.into_inner());
        let e = all.get_mut(database)?;
        let cached = match format {
            Format::Text => &e.text,
            Format::OpenMetrics => &e.openmetrics_text,
        };
        if let Some((v, t)) = cached {
            if *v == e.version {
                return Some(t.clone());
            }
        }
        let text = Arc::new(render_events(database, e, labels, format));
        let slot = match format {
            Format::Text => &mut e.text,
            Format::OpenMetrics => &mut e.openmetrics_text,
        };
        *slot = Some((e.version, text.clone()));
        Some(text)
    }

    /// The text of a database's gauges for `report`, made again only when it changed.
    fn gauges(&self, report: &Arc<DatabaseReport>, collectors: &CollectorSet) -> Arc<DatabaseText> {
        let mut cache = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((old, text)) = cache.get(&report.name) {
            if Arc::ptr_eq(old, report) || old == report {
                return text.clone();
            }
        }
        let text = Arc::new(render_gauges(report, collectors));
        cache.insert(report.name.clone(), (report.clone(), text.clone()));
        text
    }

    /// The series of a database's thresholds that differ from the defaults; `None` when none
    /// does (then the defaults' series stand for it). Made again only when either changed.
    fn thresholds(
        &self,
        report: &DatabaseReport,
        defaults: &Thresholds,
    ) -> Option<Arc<DatabaseText>> {
        let mut cache = self.thresholds.lock().unwrap_or_else(|e| e.into_inner());
        if report.thresholds == *defaults {
            cache.remove(&report.name);
            return None;
        }
        if let Some((own, default, labels, text)) = cache.get(&report.name) {
            if own == &report.thresholds && default == defaults && *labels == report.labels {
                return Some(text.clone());
            }
        }
        let mut t = DatabaseText::with_labels(&report.labels);
        let db = [("database", report.name.as_str())];
        for (i, (own, default)) in report.thresholds.iter().zip(defaults).enumerate() {
            if own != default {
                t.sample(threshold_meta(i), &db, "", *own);
            }
        }
        let text = Arc::new(t.finish());
        cache.insert(
            report.name.clone(),
            (
                report.thresholds,
                *defaults,
                report.labels.clone(),
                text.clone(),
            ),
        );
        Some(text)
    }

    /// Forgets the gauges of databases not in `names`.
    fn keep_only(&self, names: &[&str]) {
        let mut cache = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > names.len() {
            cache.retain(|k, _| names.contains(&k.as_str()));
        }
        let mut cache = self.thresholds.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > names.len() {
            cache.retain(|k, _| names.contains(&k.as_str()));
        }
    }
}

impl Events for EventMetrics {
    /// Takes the database's probe buckets from its settings, and creates at 0 the counters
    /// of the actions a policy runs on it (all of them at full detail), so `rate()` and
    /// `increase()` see their first run. The counters of other actions appear at their first
    /// run: most databases of a fleet never see a manual restore, and each counter is a series.
    fn database_added(&self, database: &str, settings: &Settings) {
        let full = settings.metrics.detail == Detail::Full;
        let auto = &settings.auto;
        let policy = |action: &str| match action {
            "checkpoint" => auto.checkpoint,
            "backup" => auto.backup,
            "recovery" => auto.recover,
            "vacuum" => auto.vacuum,
            _ => false,
        };
        self.update(database, |e| {
            e.probe_buckets = probe_buckets(settings);
            for spec in ACTIONS.iter().filter(|s| s.counters.is_some()) {
                if !full && !policy(spec.name) {
                    continue;
                }
                for mode in modes(spec.name, full) {
                    e.counters.entry((spec.name, mode)).or_default();
                }
            }
        });
    }

    /// Drops every series of a database that is no longer monitored.
    fn database_removed(&self, database: &str) {
        self.databases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(database);
    }

    fn probes(&self, database: &str, p: &PerformanceFacts) {
        if p.query_seconds.is_none() && p.write_seconds.is_none() {
            return;
        }
        self.update(database, |e| {
            if e.probe_buckets.is_empty() {
                e.probe_buckets = QUERY_DURATION.buckets.to_vec();
            }
            let bounds = &e.probe_buckets;
            if let Some(q) = p.query_seconds {
                e.query
                    .get_or_insert_with(|| Observed::new(bounds))
                    .observe(bounds, q);
            }
            if let Some(w) = p.write_seconds {
                e.write
                    .get_or_insert_with(|| Observed::new(bounds))
                    .observe(bounds, w);
            }
        });
    }

    fn action(&self, database: &str, action: &str, mode: Option<&str>, ok: bool, seconds: f64) {
        let Some(spec) = ACTIONS.iter().find(|s| s.name == action) else {
            return;
        };
        let mode = mode.and_then(|m| {
            CheckpointMode::ALL
                .iter()
                .map(|x| x.as_str())
                .find(|x| *x == m)
        });
        self.update(database, |e| {
            e.actions
                .entry(spec.name)
                .or_default()
                .observe(ACTION_DURATION.buckets, seconds);
            if spec.counters.is_none() || (spec.name == "checkpoint" && mode.is_none()) {
                return;
            }
            let c = e.counters.entry((spec.name, mode)).or_default();
            c.runs += 1;
            if !ok {
                c.failures += 1;
            }
        });
    }

    fn checkpoint_answered(&self, database: &str, busy: bool) {
        self.update(database, |e| e.checkpoint_busy = Some(busy));
    }
}

/// The label values of an action's counters created up front: one per checkpoint mode at full
/// detail, else the TRUNCATE checkpoint the policy runs.
fn modes(action: &str, full: bool) -> Vec<Option<&'static str>> {
    match action {
        "checkpoint" if full => CheckpointMode::ALL
            .iter()
            .map(|m| Some(m.as_str()))
            .collect(),
        "checkpoint" => vec![Some(CheckpointMode::Truncate.as_str())],
        _ => vec![None],
    }
}

fn histogram_meta(h: &'static Histogram) -> Meta {
    Meta {
        name: h.name,
        help: h.help,
        kind: "histogram",
        database_first: text::database_first(h.labels),
    }
}

fn render_events(
    database: &str,
    e: &DatabaseEvents,
    labels: &[(String, String)],
    format: Format,
) -> DatabaseText {
    let mut t = DatabaseText::with_labels(labels);
    let openmetrics = format == Format::OpenMetrics;
    let db = [("database", database)];
    for (h, o) in [(&QUERY_DURATION, &e.query), (&WRITE_DURATION, &e.write)] {
        if let Some(o) = o {
            let meta = histogram_meta(h);
            t.histogram(meta, &db, &o.bounds, &o.buckets, o.sum, o.count);
            if openmetrics {
                t.created(meta, &db, o.created);
            }
        }
    }
    for (action, o) in &e.actions {
        let labels = [("database", database), ("action", *action)];
        let h = &ACTION_DURATION;
        let meta = histogram_meta(h);
        t.histogram(meta, &labels, h.buckets, &o.buckets, o.sum, o.count);
        if openmetrics {
            t.created(meta, &labels, o.created);
        }
    }
    for ((action, mode), runs) in &e.counters {
        let Some((total, failed)) = ACTIONS
            .iter()
            .find(|s| s.name == *action)
            .and_then(|s| s.counters)
        else {
            continue;
        };
        let mut labels = vec![("database", database)];
        if let Some(m) = mode {
            labels.push(("mode", m));
        }
        for (c, v) in [(total, runs.runs), (failed, runs.failures)] {
            let meta = Meta {
                name: c.name,
                help: c.help,
                kind: "counter",
                database_first: text::database_first(c.labels),
            };
            t.sample(meta, &labels, "", v as f64);
            if openmetrics {
                t.created(meta, &labels, runs.created);
            }
        }
    }
    if let Some(busy) = e.checkpoint_busy {
        let g = &crate::actions::checkpoint::LAST_BUSY;
        let meta = Meta {
            name: g.name,
            help: g.help,
            kind: "gauge",
            database_first: true,
        };
        t.sample(meta, &db, "", flag(busy));
    }
    t.finish()
}

fn render_gauges(r: &DatabaseReport, collectors: &CollectorSet) -> DatabaseText {
    let mut text = DatabaseText::with_labels(&r.labels);
    let mut g = GaugeText(&mut text);
    let name = r.name.as_str();
    let full = r.detail == Detail::Full;
    g.set(&UP, &[name], flag(r.up));
    r.health.series(name, r.up, full, &mut g);
    r.checks.series(name, &mut g);
    // Per-collector series: at basic detail only a failing collector is shown (its success at
    // 0 is what the alert watches); durations and successes of every collector at full detail.
    let runs = r
        .checks
        .runs
        .iter()
        .map(|(c, run)| (*c, run.success, run.duration_seconds));
    let outcomes = r
        .collectors
        .iter()
        .map(|c| (c.collector, c.success, c.duration_seconds));
    for (collector, success, seconds) in runs.chain(outcomes) {
        if full || !success {
            g.set(&COLLECTOR_SUCCESS, &[name, collector], flag(success));
        }
        if full {
            g.set(&COLLECTOR_DURATION, &[name, collector], seconds);
        }
    }
    if r.up {
        let db = Database {
            name,
            path: &r.path,
            detail: r.detail,
        };
        // Probes render the facts of their latest run (the latency ones render nothing: their
        // histograms accumulate in the events).
        for c in collectors.iter().chain(collectors.probes()) {
            c.series(&db, &r.facts, &mut g);
        }
    }
    text.finish()
}

/// The exposition format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format.
    Text,
    /// OpenMetrics 1.0 (see [`openmetrics`]).
    OpenMetrics,
}

/// Renders a snapshot, the accumulated events and the exporter status in `format`. Each
/// database's part is made again only when its report or its events changed.
pub fn render(
    snapshot: &Snapshot,
    collectors: &CollectorSet,
    events: &EventMetrics,
    exporter: &ExporterStatus,
    format: Format,
) -> Vec<u8> {
    let mut parts = Vec::with_capacity(snapshot.databases.len() * 2);
    for r in &snapshot.databases {
        parts.push(events.gauges(r, collectors));
        parts.extend(events.text(&r.name, &r.labels, format));
        parts.extend(events.thresholds(r, &snapshot.default_thresholds));
    }
    let names: Vec<&str> = snapshot.databases.iter().map(|r| r.name.as_str()).collect();
    events.keep_only(&names);
    let mut extra = DatabaseText::default();
    let mut g = GaugeText(&mut extra);
    g.set(
        &BUILD_INFO,
        &[crate::VERSION, crate::REVISION, rusqlite::version()],
        1.0,
    );
    g.set(&DATABASES, &[], snapshot.databases.len() as f64);
    g.set(&RELOAD_SUCCESSFUL, &[], flag(exporter.reload_successful()));
    g.set(&RELOAD_TIMESTAMP, &[], exporter.reload_success_timestamp());
    g.set(&SCRAPE_DURATION, &[], exporter.scrape_seconds());
    extra.sample(SCRAPE_ERRORS, &[], "", exporter.scrape_errors() as f64);
    if format == Format::OpenMetrics {
        extra.created(SCRAPE_ERRORS, &[], exporter.started_unix());
    }
    // The defaults' thresholds once, without labels: a database has its own series only for
    // a threshold it sets differently, so alert rules fall back to these (a fleet of ten
    // thousand databases on the defaults costs fifteen series, not 150,000).
    for (i, v) in snapshot.default_thresholds.iter().enumerate() {
        extra.sample(threshold_meta(i), &[], "", *v);
    }
    let mut body = text::assemble(&parts, &extra.finish());
    process_text(&mut body);
    match format {
        Format::Text => body,
        Format::OpenMetrics => openmetrics::from_text(&body),
    }
}

//! Every metric name, help text and label lives here, and this is the only module that builds
//! Prometheus types: collectors produce [`Facts`], the scheduler produces check results, and
//! [`render`] turns a [`Snapshot`] into the text exposition format. A rename is one edit.
//!
//! Two kinds of series exist. Gauges describe the state at this scrape and are rebuilt from the
//! snapshot every time (so a database that disappears from the config disappears from
//! `/metrics`). Histograms and counters accumulate across scrapes and live in [`EventMetrics`],
//! labelled by database and forgotten when the database is.

use prometheus::proto::MetricFamily;
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, Opts, Registry, TextEncoder,
};

use crate::checks::Checks;
use crate::collect::{Facts, PerformanceFacts};
use crate::fleet::events::{Events, ExporterStatus};
use crate::fleet::health::{Recommendation, Status};
use crate::fleet::Snapshot;

/// Histogram buckets for probe and action latencies: 100 µs to 10 s, with the SPEC §6
/// thresholds (20 ms, 50 ms, 1 s) as bucket edges so alerts can be exact.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// Histogram buckets for actions (checkpoint to a long backup): 10 ms to 1 h.
pub const ACTION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    3600.0,
];

/// The actions counted in `/metrics`, with the names of their counters (SPEC §4:
/// `sqlite_<action>s_total`, `sqlite_<action>_failures_total`). Checkpoints are counted by mode
/// separately.
const COUNTED_ACTIONS: &[(&str, &str, &str, &str)] = &[
    (
        "backup",
        "Backups",
        "sqlite_backups_total",
        "sqlite_backup_failures_total",
    ),
    (
        "restore",
        "Restores",
        "sqlite_restores_total",
        "sqlite_restore_failures_total",
    ),
    (
        "recovery",
        "Recoveries",
        "sqlite_recoveries_total",
        "sqlite_recovery_failures_total",
    ),
    (
        "vacuum",
        "VACUUMs",
        "sqlite_vacuums_total",
        "sqlite_vacuum_failures_total",
    ),
];

/// Content-Type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Accumulating metrics: probe histograms now, action counters later; one registry for the
/// process lifetime.
pub struct EventMetrics {
    registry: Registry,
    query_duration: HistogramVec,
    write_duration: HistogramVec,
    checkpoints: CounterVec,
    checkpoint_failures: CounterVec,
    /// (action, attempts, failures) for the actions of [`COUNTED_ACTIONS`].
    actions: Vec<(&'static str, CounterVec, CounterVec)>,
    action_duration: HistogramVec,
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
        let histogram = |name: &str, help: &str| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                &["database"],
            )
            .expect("static histogram definition");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric name");
            h
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c =
                CounterVec::new(Opts::new(name, help), labels).expect("static counter definition");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric name");
            c
        };
        let action_duration = HistogramVec::new(
            HistogramOpts::new(
                "sqlite_action_duration_seconds",
                "Duration of each action (manual or by policy), successful or not.",
            )
            .buckets(ACTION_BUCKETS.to_vec()),
            &["database", "action"],
        )
        .expect("static histogram definition");
        registry
            .register(Box::new(action_duration.clone()))
            .expect("unique metric name");
        EventMetrics {
            query_duration: histogram("sqlite_query_duration_seconds", "Latency of the read probe (probes.query) at each scrape."),
            write_duration: histogram("sqlite_write_duration_seconds", "Latency of the write probe (probes.write: lock = BEGIN IMMEDIATE…ROLLBACK, table = a committed write to _sqlite_exporter_probe)."),
            checkpoints: counter("sqlite_checkpoints_total", "Checkpoints run (manual or by policy), by mode.", &["database", "mode"]),
            checkpoint_failures: counter("sqlite_checkpoint_failures_total", "Checkpoints that failed or were blocked (busy), by mode.", &["database", "mode"]),
            actions: COUNTED_ACTIONS
                .iter()
                .map(|(action, what, total, failures)| {
                    (
                        *action,
                        counter(total, &format!("{what} run (manual or by policy; a dry run is not counted)."), &["database"]),
                        counter(failures, &format!("{what} that failed."), &["database"]),
                    )
                })
                .collect(),
            action_duration,
            registry,
        }
    }

    /// Records one scrape's probe latencies.
    pub fn observe_probes(&self, database: &str, p: &PerformanceFacts) {
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

    /// Creates a new database's counters at 0, so `rate()` and `increase()` see the first
    /// action.
    pub fn init(&self, database: &str) {
        for mode in crate::actions::checkpoint::Mode::ALL {
            self.checkpoints
                .with_label_values(&[database, mode.as_str()]);
            self.checkpoint_failures
                .with_label_values(&[database, mode.as_str()]);
        }
        for (_, total, failures) in &self.actions {
            total.with_label_values(&[database]);
            failures.with_label_values(&[database]);
        }
    }

    /// Counts one action and records its duration. `mode` is the checkpoint mode.
    pub fn record_action(
        &self,
        database: &str,
        action: &str,
        mode: Option<&str>,
        ok: bool,
        seconds: f64,
    ) {
        self.action_duration
            .with_label_values(&[database, action])
            .observe(seconds);
        if let Some(mode) = mode.filter(|_| action == "checkpoint") {
            self.checkpoints.with_label_values(&[database, mode]).inc();
            if !ok {
                self.checkpoint_failures
                    .with_label_values(&[database, mode])
                    .inc();
            }
            return;
        }
        if let Some((_, total, failures)) = self.actions.iter().find(|(a, _, _)| *a == action) {
            total.with_label_values(&[database]).inc();
            if !ok {
                failures.with_label_values(&[database]).inc();
            }
        }
    }

    /// Drops every series of a database that is no longer monitored.
    pub fn forget(&self, database: &str) {
        for h in [&self.query_duration, &self.write_duration] {
            let _ = h.remove_label_values(&[database]);
        }
        for mode in crate::actions::checkpoint::Mode::ALL {
            let _ = self
                .checkpoints
                .remove_label_values(&[database, mode.as_str()]);
            let _ = self
                .checkpoint_failures
                .remove_label_values(&[database, mode.as_str()]);
        }
        for (action, total, failures) in &self.actions {
            let _ = total.remove_label_values(&[database]);
            let _ = failures.remove_label_values(&[database]);
            let _ = self
                .action_duration
                .remove_label_values(&[database, action]);
        }
        for action in ["checkpoint", "integrity_check"] {
            let _ = self
                .action_duration
                .remove_label_values(&[database, action]);
        }
    }

    fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }
}

impl Events for EventMetrics {
    fn database_added(&self, database: &str) {
        self.init(database);
    }

    fn database_removed(&self, database: &str) {
        self.forget(database);
    }

    fn probes(&self, database: &str, probes: &PerformanceFacts) {
        self.observe_probes(database, probes);
    }

    fn action(&self, database: &str, action: &str, mode: Option<&str>, ok: bool, seconds: f64) {
        self.record_action(database, action, mode, ok, seconds);
    }
}

/// Gauges rebuilt at each scrape.
struct Gauges {
    registry: Registry,
}

impl Gauges {
    fn vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        let g = GaugeVec::new(Opts::new(name, help), labels).expect("static gauge definition");
        self.registry
            .register(Box::new(g.clone()))
            .expect("unique metric name");
        g
    }
}

/// Renders a snapshot, the accumulating metrics and the exporter status as Prometheus text.
pub fn render(snapshot: &Snapshot, events: &EventMetrics, exporter: &ExporterStatus) -> Vec<u8> {
    let g = Gauges {
        registry: Registry::new(),
    };
    let db = &["database"];
    let up = g.vec(
        "sqlite_up",
        "1 if the database could be opened and read at this scrape.",
        db,
    );
    let info = g.vec(
        "sqlite_database_info",
        "Static facts about the database; always 1.",
        &[
            "database",
            "path",
            "journal_mode",
            "auto_vacuum",
            "encoding",
            "sqlite_version",
        ],
    );
    let size = g.vec(
        "sqlite_database_size_bytes",
        "Size of the main database file.",
        db,
    );
    let wal = g.vec(
        "sqlite_wal_size_bytes",
        "Size of the -wal file, 0 when absent.",
        db,
    );
    let shm = g.vec(
        "sqlite_shm_size_bytes",
        "Size of the -shm file, 0 when absent.",
        db,
    );
    let frames = g.vec(
        "sqlite_wal_frames",
        "Frames of the current WAL generation, read from the -wal file.",
        db,
    );
    let page_size = g.vec("sqlite_page_size_bytes", "PRAGMA page_size.", db);
    let pages = g.vec("sqlite_pages", "PRAGMA page_count.", db);
    let freelist = g.vec("sqlite_freelist_pages", "PRAGMA freelist_count.", db);
    let util = g.vec(
        "sqlite_page_utilization_ratio",
        "(pages - freelist pages) / pages.",
        db,
    );
    let schema_version = g.vec("sqlite_schema_version", "PRAGMA user_version.", db);
    let objects = g.vec(
        "sqlite_schema_objects",
        "Objects in sqlite_schema by type.",
        &["database", "type"],
    );
    let status = g.vec(
        "sqlite_health_status",
        "Health status of the database; the current status is 1, the others 0.",
        &["database", "status"],
    );
    let rec = g.vec(
        "sqlite_recommendation",
        "1 while the recommendation is active, else 0.",
        &["database", "recommendation"],
    );
    let c_ok = g.vec(
        "sqlite_scrape_collector_success",
        "1 if the collector succeeded at this scrape.",
        &["database", "collector"],
    );
    let c_dur = g.vec(
        "sqlite_scrape_collector_duration_seconds",
        "Time the collector took at this scrape.",
        &["database", "collector"],
    );
    let checks = CheckGauges::new(&g);

    for r in &snapshot.databases {
        let name = r.name.as_str();
        up.with_label_values(&[name])
            .set(if r.up { 1.0 } else { 0.0 });
        for s in Status::ALL {
            status
                .with_label_values(&[name, s.as_str()])
                .set(if r.health.status == s { 1.0 } else { 0.0 });
        }
        checks.set(name, &r.checks);
        for (collector, run) in &r.checks.runs {
            c_ok.with_label_values(&[name, collector])
                .set(if run.success { 1.0 } else { 0.0 });
            c_dur
                .with_label_values(&[name, collector])
                .set(run.duration_seconds);
        }
        for c in &r.collectors {
            c_ok.with_label_values(&[name, c.collector])
                .set(if c.success { 1.0 } else { 0.0 });
            c_dur
                .with_label_values(&[name, c.collector])
                .set(c.duration_seconds);
        }
        if !r.up {
            continue;
        }
        for rr in Recommendation::ALL {
            rec.with_label_values(&[name, rr.as_str()])
                .set(if r.health.recommends(rr) { 1.0 } else { 0.0 });
        }
        let f: &Facts = &r.facts;
        if let Some(i) = &f.info {
            let path = r.path.to_string_lossy();
            info.with_label_values(&[
                name,
                &path,
                &i.journal_mode,
                &i.auto_vacuum,
                &i.encoding,
                &i.sqlite_version,
            ])
            .set(1.0);
        }
        let set = |v: &GaugeVec, x: Option<f64>| {
            if let Some(x) = x {
                v.with_label_values(&[name]).set(x);
            }
        };
        let n = |x: Option<u64>| x.map(|x| x as f64);
        set(&size, n(f.size.database_bytes));
        set(&page_size, n(f.size.page_size_bytes));
        set(&pages, n(f.size.pages));
        set(&freelist, n(f.size.freelist_pages));
        set(&util, f.size.utilization_ratio());
        set(&wal, n(f.wal.wal_bytes));
        set(&shm, n(f.wal.shm_bytes));
        set(&frames, n(f.wal.frames));
        set(&schema_version, f.schema.user_version.map(|v| v as f64));
        if let Some(o) = f.schema.objects {
            for (t, count) in [
                ("table", o.tables),
                ("index", o.indexes),
                ("view", o.views),
                ("trigger", o.triggers),
            ] {
                objects.with_label_values(&[name, t]).set(count as f64);
            }
        }
    }

    let build = g.vec(
        "sqlite_exporter_build_info",
        "Build information of the exporter; always 1.",
        &["version", "revision", "sqlite_version"],
    );
    build
        .with_label_values(&[crate::VERSION, crate::REVISION, rusqlite::version()])
        .set(1.0);
    g.vec(
        "sqlite_exporter_databases",
        "Databases currently monitored.",
        &[],
    )
    .with_label_values::<&str>(&[])
    .set(snapshot.databases.len() as f64);
    g.vec(
        "sqlite_exporter_config_last_reload_successful",
        "1 if the last configuration reload succeeded.",
        &[],
    )
    .with_label_values::<&str>(&[])
    .set(if exporter.reload_successful() {
        1.0
    } else {
        0.0
    });
    g.vec(
        "sqlite_exporter_config_last_reload_success_timestamp_seconds",
        "Unix time of the last successful configuration reload.",
        &[],
    )
    .with_label_values::<&str>(&[])
    .set(exporter.reload_success_timestamp());

    let mut families = g.registry.gather();
    families.extend(events.gather());
    families.retain(|f| !f.get_metric().is_empty());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::with_capacity(4096 + snapshot.databases.len() * 4096);
    TextEncoder::new()
        .encode(&families, &mut out)
        .expect("encoding to a Vec cannot fail");
    out
}

/// Gauges of the background checks; their HELP says the value is cached.
struct CheckGauges {
    success: GaugeVec,
    errors: GaugeVec,
    last_run: GaugeVec,
    duration: GaugeVec,
    foreign_keys: GaugeVec,
    unused: GaugeVec,
    table_rows: GaugeVec,
    table_size: GaugeVec,
    migrations_applied: GaugeVec,
    migrations_failed: GaugeVec,
    migration_last: GaugeVec,
    backup_last: GaugeVec,
    backup_size: GaugeVec,
    backups: GaugeVec,
}

impl CheckGauges {
    fn new(g: &Gauges) -> Self {
        let db = &["database"];
        let table = &["database", "table"];
        CheckGauges {
            success: g.vec("sqlite_integrity_check_success", "1 if the last integrity check found no problems (cached from the last background check).", db),
            errors: g.vec("sqlite_integrity_check_errors", "Problem rows reported by the last integrity check, capped at 100 (cached from the last background check).", db),
            last_run: g.vec("sqlite_integrity_check_last_run_timestamp_seconds", "Unix time the last completed integrity check finished (cached from the last background check).", db),
            duration: g.vec("sqlite_integrity_check_duration_seconds", "Duration of the last completed integrity check (cached from the last background check).", db),
            foreign_keys: g.vec("sqlite_foreign_key_violations", "Rows reported by PRAGMA foreign_key_check (cached from the last background check).", db),
            unused: g.vec("sqlite_unused_bytes", "Free bytes inside pages, SELECT sum(unused) FROM dbstat (cached from the last background dbstat scan).", db),
            table_rows: g.vec("sqlite_table_rows", "Rows in the table, count(*) (cached from the last background tables scan).", table),
            table_size: g.vec("sqlite_table_size_bytes", "Bytes of the table's b-tree pages, from dbstat (cached from the last background tables scan).", table),
            migrations_applied: g.vec("sqlite_migrations_applied", "Applied migrations in the migrations table (cached from the last background read).", db),
            migrations_failed: g.vec("sqlite_migrations_failed", "Migrations recorded as failed in the migrations table (cached from the last background read).", db),
            migration_last: g.vec("sqlite_migration_last_applied_timestamp_seconds", "Unix time of the newest applied migration (cached from the last background read).", db),
            backup_last: g.vec("sqlite_backup_last_success_timestamp_seconds", "Unix time of the newest verified backup in the backup directory, made by the exporter or found there (cached from the last scan).", db),
            backup_size: g.vec("sqlite_backup_last_size_bytes", "Size of the newest verified backup (cached from the last scan).", db),
            backups: g.vec("sqlite_backups", "Backups retained in the backup directory (cached from the last scan).", db),
        }
    }

    fn set(&self, name: &str, c: &Checks) {
        let one = |v: &GaugeVec, x: f64| v.with_label_values(&[name]).set(x);
        if let Some(i) = &c.integrity {
            one(&self.success, if i.ok { 1.0 } else { 0.0 });
            one(&self.errors, i.errors as f64);
            one(&self.last_run, i.finished_at);
            one(&self.duration, i.duration_seconds);
            if let Some(n) = i.foreign_key_violations {
                one(&self.foreign_keys, n as f64);
            }
        }
        if let Some(n) = c.unused_bytes {
            one(&self.unused, n as f64);
        }
        for t in c.tables.iter().flatten() {
            self.table_rows
                .with_label_values(&[name, &t.table])
                .set(t.rows as f64);
            self.table_size
                .with_label_values(&[name, &t.table])
                .set(t.size_bytes as f64);
        }
        if let Some(b) = &c.backups {
            one(&self.backups, b.count as f64);
            if let Some(t) = b.newest_created_at {
                one(&self.backup_last, t);
            }
            if let Some(n) = b.newest_size_bytes {
                one(&self.backup_size, n as f64);
            }
        }
        if let Some(m) = &c.migrations {
            one(&self.migrations_applied, m.applied as f64);
            if let Some(f) = m.failed {
                one(&self.migrations_failed, f as f64);
            }
            if let Some(t) = m.last_applied {
                one(&self.migration_last, t);
            }
        }
    }
}

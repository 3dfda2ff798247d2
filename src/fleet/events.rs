//! How the fleet and the actions report what happened — probe latencies, actions run, databases
//! added and dropped — without knowing who listens. The metrics layer implements [`Events`]
//! and turns the reports into histograms and counters; the CLI's one-off actions pass
//! [`NoEvents`]. Keeping the trait here lets the layers below the metrics report to them
//! without depending on them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::collect::PerformanceFacts;
use crate::config::Settings;

/// Receives what the fleet and the actions did.
pub trait Events: Send + Sync {
    /// A database is now monitored, or its settings changed.
    fn database_added(&self, database: &str, settings: &Settings);
    /// A database is no longer monitored (its series go).
    fn database_removed(&self, database: &str);
    /// One run of a database's probes.
    fn probes(&self, database: &str, probes: &PerformanceFacts);
    /// One action ran: `mode` is the checkpoint mode; `ok` false when it failed or stayed busy.
    fn action(&self, database: &str, action: &str, mode: Option<&str>, ok: bool, seconds: f64);
    /// One of our checkpoints answered; `busy` when a reader or writer kept it from finishing.
    fn checkpoint_answered(&self, _database: &str, _busy: bool) {}
}

/// Reports that go nowhere, for one-off actions of the CLI.
pub struct NoEvents;

impl Events for NoEvents {
    fn database_added(&self, _: &str, _: &Settings) {}
    fn database_removed(&self, _: &str) {}
    fn probes(&self, _: &str, _: &PerformanceFacts) {}
    fn action(&self, _: &str, _: &str, _: Option<&str>, _: bool, _: f64) {}
}

/// Exporter-level state shown in `/metrics`: build info and the config reload gauges.
pub struct ExporterStatus {
    reload_successful: AtomicBool,
    reload_success_timestamp: AtomicU64,
    /// Seconds the last `/metrics` collection took (`f64` bits).
    scrape_seconds: AtomicU64,
    /// `/metrics` requests that failed.
    scrape_errors: AtomicU64,
    /// Unix time the status was made: when the exporter's own counters started from zero.
    started_unix: f64,
}

impl Default for ExporterStatus {
    fn default() -> Self {
        let s = ExporterStatus {
            reload_successful: AtomicBool::new(true),
            reload_success_timestamp: AtomicU64::new(0),
            scrape_seconds: AtomicU64::new(0f64.to_bits()),
            scrape_errors: AtomicU64::new(0),
            started_unix: crate::unix_now(),
        };
        s.record_reload(true);
        s
    }
}

impl ExporterStatus {
    /// Records the outcome of a config (re)load.
    pub fn record_reload(&self, ok: bool) {
        self.reload_successful.store(ok, Ordering::Relaxed);
        if ok {
            self.reload_success_timestamp
                .store(crate::unix_now().to_bits(), Ordering::Relaxed);
        }
    }

    /// Whether the last reload succeeded.
    pub fn reload_successful(&self) -> bool {
        self.reload_successful.load(Ordering::Relaxed)
    }

    /// Unix time of the last successful (re)load.
    pub fn reload_success_timestamp(&self) -> f64 {
        f64::from_bits(self.reload_success_timestamp.load(Ordering::Relaxed))
    }

    /// Records how long a `/metrics` collection took.
    pub fn record_scrape(&self, seconds: f64) {
        self.scrape_seconds
            .store(seconds.to_bits(), Ordering::Relaxed);
    }

    /// Counts a `/metrics` request that could not be answered.
    pub fn record_scrape_error(&self) {
        self.scrape_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Seconds the last `/metrics` collection took.
    pub fn scrape_seconds(&self) -> f64 {
        f64::from_bits(self.scrape_seconds.load(Ordering::Relaxed))
    }

    /// Unix time the exporter's own counters started from zero.
    pub fn started_unix(&self) -> f64 {
        self.started_unix
    }

    /// `/metrics` requests that failed since start.
    pub fn scrape_errors(&self) -> u64 {
        self.scrape_errors.load(Ordering::Relaxed)
    }
}

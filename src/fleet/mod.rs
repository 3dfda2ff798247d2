//! The fleet: every monitored database, and the scrape that reads them all.
//!
//! A scrape fans out over a small pool of threads started with the fleet (SQLite work is
//! blocking; it never runs on the async runtime's workers, and no scrape spawns threads) and returns a [`Snapshot`]. Concurrent requests for `/metrics`,
//! `/health` or the landing page share the collection in flight instead of starting their own:
//! a burst of 100 scrapes costs the databases one collection, not 100.

pub mod files;

pub mod events;

pub mod background;

pub mod health;
pub mod monitor;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tracing::info;

use crate::collect::CollectorSet;
use crate::config::{DatabaseConfig, Settings};
use crate::fleet::events::{Events, ExporterStatus, NoEvents};
use crate::fleet::health::Status;
use crate::fleet::monitor::{DatabaseReport, Monitor};

/// How old a collection the landing page, `/health` and the control API's listing show
/// before they ask for a fresh one.
pub const SHOWN_MAX_AGE: Duration = Duration::from_secs(10);

/// What one collection found, for every database, in name order.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Worst status over all databases (healthy when there are none).
    pub status: Status,
    /// One report per database, shared with the monitor that made it (a database whose report
    /// did not change since the last collection costs the snapshot a pointer).
    pub databases: Vec<Arc<DatabaseReport>>,
    /// The exported thresholds of the configuration's defaults, which every database without
    /// its own shares.
    #[serde(skip)]
    pub default_thresholds: [f64; crate::config::EXPORTED_THRESHOLD_COUNT],
}

/// The collection in flight: its result, once published.
type InFlight = watch::Receiver<Option<Result<Arc<Snapshot>, String>>>;

/// Every monitored database and the machinery to scrape them.
pub struct Fleet {
    monitors: RwLock<Arc<BTreeMap<String, Arc<Monitor>>>>,
    collectors: CollectorSet,
    /// Where probe latencies, actions and database changes are reported (the metrics).
    pub events: Arc<dyn Events>,
    /// Build info and reload gauges.
    pub exporter: ExporterStatus,
    in_flight: Mutex<Option<InFlight>>,
    /// The last collection and when it finished, for the pages that show it.
    last: Mutex<Option<(Instant, Arc<Snapshot>)>>,
    /// The scrape threads, started once; `None` with one worker: the calling thread scrapes.
    pool: Option<rayon::ThreadPool>,
    /// The configuration's `defaults:` (the built-in ones until set).
    defaults: RwLock<Arc<Settings>>,
}

impl Fleet {
    /// A fleet scraping with `collectors`, using up to `workers` threads per scrape, reporting
    /// nowhere.
    pub fn new(collectors: CollectorSet, workers: usize) -> Self {
        Self::with_events(collectors, workers, Arc::new(NoEvents))
    }

    /// A fleet that reports probes, actions and database changes to `events`.
    pub fn with_events(collectors: CollectorSet, workers: usize, events: Arc<dyn Events>) -> Self {
        Fleet {
            monitors: RwLock::new(Arc::new(BTreeMap::new())),
            collectors,
            events,
            exporter: ExporterStatus::default(),
            in_flight: Mutex::new(None),
            last: Mutex::new(None),
            defaults: RwLock::new(Arc::new(Settings::default())),
            pool: (workers > 1).then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(workers)
                    .thread_name(|i| format!("scrape-{i}"))
                    .build()
                    .expect("starting the scrape threads")
            }),
        }
    }

    /// The enabled collectors.
    pub fn collectors(&self) -> &CollectorSet {
        &self.collectors
    }

    /// The monitors, in name order.
    pub fn monitors(&self) -> Arc<BTreeMap<String, Arc<Monitor>>> {
        self.monitors
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// One monitor by name.
    pub fn monitor(&self, name: &str) -> Option<Arc<Monitor>> {
        self.monitors().get(name).cloned()
    }

    /// Sets the configuration's `defaults:`, against which each database's thresholds are
    /// told apart in the exposition.
    pub fn set_defaults(&self, defaults: Arc<Settings>) {
        *self.defaults.write().unwrap_or_else(|e| e.into_inner()) = defaults;
    }

    /// Makes the fleet monitor exactly `databases`. A database whose name, path and settings
    /// are unchanged keeps its monitor (and so its cached checks and histograms); the others
    /// are created or dropped.
    pub fn apply(&self, databases: Vec<DatabaseConfig>) {
        let mut guard = self.monitors.write().unwrap_or_else(|e| e.into_inner());
        let old = guard.clone();
        let mut next = BTreeMap::new();
        let added = databases
            .iter()
            .filter(|d| old.get(&d.name).is_none_or(|m| m.config != **d))
            .count();
        let mut position = 0;
        for db in databases {
            let monitor = match old.get(&db.name) {
                Some(m) if m.config == db => m.clone(),
                _ => {
                    info!(database = %db.name, path = %db.path.display(), "monitoring database");
                    let stagger = position as f64 / added.max(1) as f64;
                    self.events.database_added(&db.name, &db.settings);
                    position += 1;
                    Arc::new(Monitor::in_batch(db, stagger, added))
                }
            };
            next.insert(monitor.config.name.clone(), monitor);
        }
        for name in old.keys().filter(|n| !next.contains_key(*n)) {
            info!(database = %name, "no longer monitoring database");
            self.events.database_removed(name);
        }
        *guard = Arc::new(next);
    }

    /// Scrapes every database now, on the fleet's scrape threads. Blocking.
    pub fn collect_blocking(&self) -> Snapshot {
        use rayon::prelude::*;
        let monitors: Vec<Arc<Monitor>> = self.monitors().values().cloned().collect();
        let scrape = |m: &Arc<Monitor>| m.scrape(&self.collectors);
        let databases: Vec<Arc<DatabaseReport>> = match &self.pool {
            Some(pool) => pool.install(|| monitors.par_iter().map(scrape).collect()),
            None => monitors.iter().map(scrape).collect(),
        };
        let status = databases
            .iter()
            .map(|r| r.health.status)
            .max()
            .unwrap_or(Status::Healthy);
        let default_thresholds = self
            .defaults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .exported_thresholds();
        Snapshot {
            status,
            databases,
            default_thresholds,
        }
    }

    /// The last collection if it finished less than `max_age` ago, else a fresh one. The
    /// landing page, `/health` and the control API's listing use it, so loading them while
    /// Prometheus scrapes costs the databases nothing.
    pub async fn latest(self: &Arc<Self>, max_age: Duration) -> Result<Arc<Snapshot>, String> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match last {
            Some((at, snap)) if at.elapsed() < max_age => Ok(snap),
            _ => self.snapshot().await,
        }
    }

    /// Runs the probes of every database whose probes are due at `now`, one after another on
    /// the calling thread. Blocking.
    pub fn probe_due(&self, now: Instant) {
        for m in self.monitors().values() {
            if m.schedule().probe_due(&m.config.settings, now) {
                m.probe_unless_idle(&self.collectors, self.events.as_ref(), now);
            }
        }
    }

    /// A fresh snapshot, sharing a collection already in flight if there is one.
    ///
    /// The collection runs as a task of its own and publishes its result to every waiter, so a
    /// waiter that gives up (Prometheus timing out and closing the connection) neither aborts
    /// it nor makes the next request start another one while it still runs.
    pub async fn snapshot(self: &Arc<Self>) -> Result<Arc<Snapshot>, String> {
        let mut rx = {
            let mut slot = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            match slot.as_ref() {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    *slot = Some(rx.clone());
                    let fleet = self.clone();
                    tokio::spawn(async move {
                        let f = fleet.clone();
                        let result =
                            tokio::task::spawn_blocking(move || Arc::new(f.collect_blocking()))
                                .await
                                .map_err(|e| format!("collection failed: {e}"));
                        if let Ok(snap) = &result {
                            *fleet.last.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some((Instant::now(), snap.clone()));
                        }
                        // Clear the slot before publishing: a request arriving after the
                        // result exists starts a fresh collection.
                        *fleet.in_flight.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        let _ = tx.send(Some(result));
                    });
                    rx
                }
            }
        };
        let published = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| "collection abandoned".to_string())?;
        published
            .clone()
            .unwrap_or_else(|| Err("collection abandoned".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// Concurrent snapshots while one collection is in flight get that collection's result.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlapping_requests_share_one_collection() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("slow.db");
        let holder = rusqlite::Connection::open(&db).unwrap();
        // A write in progress under an exclusive lock leaves a rollback journal: the files
        // cannot answer, and the scrape's SQLite read waits its full 1 s busy timeout for the
        // lock — a slow collection.
        holder
            .execute_batch(
                "CREATE TABLE t(x); PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE;
                 INSERT INTO t VALUES (1);",
            )
            .unwrap();
        let fleet = Arc::new(Fleet::new(CollectorSet::defaults(), 1));
        fleet.apply(
            Config::from_files(std::slice::from_ref(&db))
                .unwrap()
                .databases()
                .0,
        );
        let waiters: Vec<_> = (0..10)
            .map(|_| {
                let f = fleet.clone();
                tokio::spawn(async move { f.snapshot().await.unwrap() })
            })
            .collect();
        let mut snaps = Vec::new();
        for w in waiters {
            snaps.push(w.await.unwrap());
        }
        assert!(
            snaps.iter().all(|s| Arc::ptr_eq(s, &snaps[0])),
            "every request got the same collection"
        );
        // And the next request starts a new one.
        holder.execute_batch("ROLLBACK;").unwrap();
        let next = fleet.snapshot().await.unwrap();
        assert!(!Arc::ptr_eq(&next, &snaps[0]));
    }
}

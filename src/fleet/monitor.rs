//! A per-database monitor: one database's configuration, what the last scrape and the last
//! background checks found, and the log state that keeps a broken database from flooding logs.
//!
//! A scrape opens one read-only connection, runs the enabled collectors through it and drops it
//! before returning, so no snapshot, lock or file descriptor outlives the scrape (a lingering
//! reader would keep checkpoints from resetting the WAL). That
//! costs an `open` per scrape, which we measured to be small next to the probes themselves (see
//! README, benchmarks), and it follows a file replaced underneath us (restore, recovery) with no
//! special case.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Instant;

use serde::Serialize;
use tracing::{info, warn};

use crate::checks::timetable::Schedule;
use crate::checks::{BackupSummary, Checks, RunOutcome};
use crate::collect::{CollectorSet, Facts, Scrape};
use crate::config::DatabaseConfig;
use crate::fleet::events::Events;
use crate::fleet::health::{self, Assessment};
use crate::sqlite::connection::{self, OpenError};
use crate::sqlite::PROBE_BUSY_TIMEOUT;

/// One monitored database.
pub struct Monitor {
    /// Name, path and settings.
    pub config: DatabaseConfig,
    /// Results of the background checks, read by every scrape.
    checks: Mutex<Checks>,
    /// When the background checks run next.
    schedule: Mutex<Schedule>,
    /// The action slot and file gate of this database file, shared with every other monitor of
    /// the same file (a reload that changed its settings, two entries for one path).
    file: Arc<DatabaseFile>,
    /// Last logged problem per source ("open", a collector name, "write_note"), so each problem
    /// is logged when it appears and when it clears, not at every scrape.
    logged: Mutex<HashMap<&'static str, String>>,
}

/// What the exporter coordinates per database *file*, whatever monitors point at it.
#[derive(Default)]
struct DatabaseFile {
    /// The action running on this database, if any: one at a time (409 otherwise).
    action: Mutex<Option<&'static str>>,
    /// Held (shared) by every background job while its connections are open, and exclusively
    /// by recovery while it copies or rewrites the raw database files: closing those
    /// descriptors would release the POSIX locks our own connections hold (a check losing its
    /// snapshot could report corruption that is not there).
    files: RwLock<()>,
    /// True while [`Monitor::files_exclusive`] is held. Scrapes skip the database then rather
    /// than wait behind the gate: a recovery waiting for a long background check must not make
    /// every scrape in the meantime report the database unreadable.
    copying: AtomicBool,
}

/// Every database file in use, by canonical path.
static DATABASE_FILES: Mutex<Option<HashMap<PathBuf, Weak<DatabaseFile>>>> = Mutex::new(None);

/// The shared state of the file at `path` (canonical when it exists).
fn database_file(path: &std::path::Path) -> Arc<DatabaseFile> {
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut all = DATABASE_FILES.lock().unwrap_or_else(|e| e.into_inner());
    let all = all.get_or_insert_with(HashMap::new);
    all.retain(|_, w| w.strong_count() > 0);
    if let Some(f) = all.get(&key).and_then(Weak::upgrade) {
        return f;
    }
    let f = Arc::new(DatabaseFile::default());
    all.insert(key, Arc::downgrade(&f));
    f
}

/// Actions running in this process, over every monitor (a reload may have dropped the monitor
/// whose action still runs). Graceful shutdown waits for this to reach zero.
static RUNNING_ACTIONS: AtomicUsize = AtomicUsize::new(0);

/// How many actions are running now, in the whole process.
pub fn running_actions() -> usize {
    RUNNING_ACTIONS.load(Ordering::SeqCst)
}

/// Exclusive access to a database's files (see [`Monitor::files_exclusive`]).
pub struct FilesExclusive<'a> {
    _guard: RwLockWriteGuard<'a, ()>,
    copying: &'a AtomicBool,
}

impl Drop for FilesExclusive<'_> {
    fn drop(&mut self) {
        self.copying.store(false, Ordering::SeqCst);
    }
}

/// This database is claimed by an action until the guard is dropped.
pub struct ActionGuard {
    monitor: Arc<Monitor>,
}

impl ActionGuard {
    /// The claimed database.
    pub fn monitor(&self) -> &Arc<Monitor> {
        &self.monitor
    }
}

impl Drop for ActionGuard {
    fn drop(&mut self) {
        RUNNING_ACTIONS.fetch_sub(1, Ordering::SeqCst);
        *self
            .monitor
            .file
            .action
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// How one collector did at one scrape.
#[derive(Debug, Clone, Serialize)]
pub struct CollectorOutcome {
    /// Collector name.
    pub collector: &'static str,
    /// Whether it succeeded.
    pub success: bool,
    /// How long it took.
    pub duration_seconds: f64,
    /// Its error, when it failed.
    pub error: Option<String>,
}

/// Everything one scrape learned about one database.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseReport {
    /// The `database` label.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Whether the database could be opened and read.
    pub up: bool,
    /// Why not, when it could not.
    #[serde(serialize_with = "serialize_error")]
    pub error: Option<OpenError>,
    /// Scrape-time facts.
    pub facts: Facts,
    /// Background check results as of this scrape.
    pub checks: Checks,
    /// Per-collector outcome.
    pub collectors: Vec<CollectorOutcome>,
    /// The verdict.
    pub health: Assessment,
}

fn serialize_error<S: serde::Serializer>(e: &Option<OpenError>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_str(&e.to_string()),
        None => s.serialize_none(),
    }
}

impl Monitor {
    /// A monitor for one configured database; `stagger` (0..1) places its first background
    /// runs in their stagger windows.
    pub fn new(config: DatabaseConfig, stagger: f64) -> Self {
        let schedule = Schedule::staggered(&config.settings, stagger, Instant::now());
        let file = database_file(&config.path);
        Monitor {
            config,
            checks: Mutex::new(Checks::default()),
            schedule: Mutex::new(schedule),
            file,
            logged: Mutex::new(HashMap::new()),
        }
    }

    /// The background check results.
    pub fn checks(&self) -> Checks {
        self.checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Changes the background check results.
    pub fn update_checks<T>(&self, f: impl FnOnce(&mut Checks) -> T) -> T {
        f(&mut self.checks.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The background timetable.
    pub fn schedule(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims this database for `action`; `Err(running)` names the action already running.
    /// The claim ends when the guard is dropped.
    pub fn begin_action(
        self: &Arc<Self>,
        action: &'static str,
    ) -> Result<ActionGuard, &'static str> {
        let mut slot = self.file.action.lock().unwrap_or_else(|e| e.into_inner());
        match *slot {
            Some(running) => Err(running),
            None => {
                *slot = Some(action);
                RUNNING_ACTIONS.fetch_add(1, Ordering::SeqCst);
                Ok(ActionGuard {
                    monitor: self.clone(),
                })
            }
        }
    }

    /// Shared access for connections to the database (scrapes, background jobs).
    pub fn files_shared(&self) -> RwLockReadGuard<'_, ()> {
        self.file.files.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Exclusive access: no background connection of ours to the database is open while it is
    /// held, and scrapes skip the database.
    pub fn files_exclusive(&self) -> FilesExclusive<'_> {
        let guard = self.file.files.write().unwrap_or_else(|e| e.into_inner());
        self.file.copying.store(true, Ordering::SeqCst);
        FilesExclusive {
            _guard: guard,
            copying: &self.file.copying,
        }
    }

    /// The action running now, if any.
    pub fn running_action(&self) -> Option<&'static str> {
        *self.file.action.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-reads this database's backups from the backup directory (when it exists, or when
    /// scheduled backups are on) for the backup metrics and the `backup` recommendation.
    pub fn refresh_backups(&self) {
        let dir = &self.config.settings.backup.dir;
        let names = crate::backup_dir::file_names(dir);
        self.refresh_backups_among(names.as_deref().map_err(|e| e.to_string()));
    }

    /// [`Self::refresh_backups`] over a listing of the backup directory already read (the
    /// scheduler reads a directory shared by many databases once per scan).
    pub fn refresh_backups_among(&self, names: Result<&[String], String>) {
        let b = &self.config.settings.backup;
        let summary = match names {
            _ if !b.dir.is_dir() => self
                .config
                .settings
                .auto
                .backup
                .then(BackupSummary::default),
            Ok(names) => {
                self.log_change("backups", None, "cannot list backups");
                Some(BackupSummary::from_list(&crate::backup_dir::list_among(
                    &self.config.name,
                    &b.dir,
                    names,
                )))
            }
            Err(e) => {
                self.log_change("backups", Some(&e), "cannot list backups");
                return;
            }
        };
        self.update_checks(|c| c.backups = summary);
    }

    /// Records a background collector's run, logging a failure when it starts and when it
    /// clears.
    pub fn record_run(&self, collector: &'static str, run: RunOutcome) {
        self.log_change(
            collector,
            run.error.as_deref(),
            "background collector failed",
        );
        self.update_checks(|c| c.runs.insert(collector, run));
    }

    /// Scrapes this database once with `collectors`, recording probe latencies in `events`.
    pub fn scrape(&self, collectors: &CollectorSet, events: &dyn Events) -> DatabaseReport {
        let cfg = &self.config;
        let mut facts = Facts::default();
        let mut outcomes = Vec::new();
        let opened = if self.file.copying.load(Ordering::SeqCst) {
            Err(OpenError::Other(
                "recovery is copying the database files; not read at this scrape".into(),
            ))
        } else {
            connection::open_read_only(&cfg.path, PROBE_BUSY_TIMEOUT)
        };
        let opened = opened.and_then(|conn| {
            // SQLite opens lazily: the first read is what finds a bad header or a lock.
            conn.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
            Ok(conn)
        });
        let error = match opened {
            Ok(conn) => {
                for c in collectors.iter() {
                    let start = Instant::now();
                    let mut scrape = Scrape {
                        path: &cfg.path,
                        settings: &cfg.settings,
                        conn: &conn,
                        facts: &mut facts,
                    };
                    let result = c.update(&mut scrape);
                    let error = result.err().map(|e| e.to_string());
                    self.log_change(c.name(), error.as_deref(), "collector failed");
                    outcomes.push(CollectorOutcome {
                        collector: c.name(),
                        success: error.is_none(),
                        duration_seconds: start.elapsed().as_secs_f64(),
                        error,
                    });
                }
                None
            }
            Err(e) => Some(e),
        };
        self.log_change(
            "open",
            error.as_ref().map(|e| e.to_string()).as_deref(),
            "cannot read database",
        );
        self.log_change(
            "write_note",
            facts.performance.write_note.as_deref(),
            "write probe",
        );
        events.probes(&cfg.name, &facts.performance);
        let checks = self.checks();
        let health = health::assess(error.as_ref(), &facts, &checks, &cfg.settings.thresholds);
        DatabaseReport {
            name: cfg.name.clone(),
            path: cfg.path.clone(),
            up: error.is_none(),
            error,
            facts,
            checks,
            collectors: outcomes,
            health,
        }
    }

    /// Logs `problem` for `source` when it differs from the last one logged, and logs the
    /// recovery when it clears.
    fn log_change(&self, source: &'static str, problem: Option<&str>, what: &str) {
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let db = &self.config.name;
        let path = self.config.path.display();
        match (problem, logged.get(source)) {
            (Some(p), Some(old)) if p == old => {}
            (Some(p), _) => {
                warn!(database = %db, path = %path, source, error = %p, "{what}");
                logged.insert(source, p.to_string());
            }
            (None, Some(_)) => {
                info!(database = %db, path = %path, source, "{what}: cleared");
                logged.remove(source);
            }
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(name: &str, path: &std::path::Path) -> Arc<Monitor> {
        let config = DatabaseConfig {
            name: name.into(),
            path: path.to_path_buf(),
            settings: Arc::default(),
        };
        Arc::new(Monitor::new(config, 0.0))
    }

    #[test]
    fn monitors_of_one_file_share_its_action_slot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"x").unwrap();
        let (old, new) = (
            monitor("a", &path),
            monitor("a", &dir.path().join(".").join("a.db")),
        );
        let other = monitor("b", &dir.path().join("b.db"));
        let guard = old.begin_action("recovery").unwrap();
        assert_eq!(
            new.begin_action("backup").err(),
            Some("recovery"),
            "a reloaded monitor of the same file waits"
        );
        assert!(
            other.begin_action("backup").is_ok(),
            "another file is independent"
        );
        drop(guard);
        assert!(new.begin_action("backup").is_ok());
    }
}

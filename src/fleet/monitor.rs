//! A per-database monitor: one database's configuration, what the last scrape, the last probes
//! and the last background checks found, and the log state that keeps a broken database from
//! flooding logs.
//!
//! A scrape of a database whose files did not change since the last one costs four `stat`s and
//! serves the last facts ([`crate::fleet::files`]). One whose files changed is read from the
//! files themselves — page 1 and the WAL's frame headers — and only where they cannot answer
//! (a rollback journal present, page 1 out of reach) through a read-only SQLite connection,
//! dropped before the scrape returns. Either way no lock, snapshot or descriptor outlives the
//! scrape, nothing is written, and a file replaced underneath us (restore, recovery) is
//! followed by its new identity. The read and write probes run on their own schedule
//! ([`Monitor::probe`]); a scrape shows their latest results.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::Instant;

use serde::Serialize;
use tracing::{info, warn};

use crate::backup_dir::BackupInfo;
use crate::checks::backups::{Verdict, Verdicts};
use crate::checks::timetable::Schedule;
use crate::checks::{BackupSummary, Checks, RunOutcome};
use crate::collect::wal_index::CheckpointStall;
use crate::collect::{CollectError, Collector, CollectorSet, Facts, FileFacts, LazyConnection};
use crate::collect::{PerformanceFacts, Scrape};
use crate::config::{DatabaseConfig, Detail};
use crate::fleet::events::Events;
use crate::fleet::files::{self, Stamp, Unread};
use crate::fleet::health::{self, Assessment};
use crate::sqlite::connection::OpenError;
use crate::sqlite::header::WalCursor;
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
    /// What the last scrape read, served again while the files do not change.
    last: Mutex<LastScrape>,
    /// What the probes found at their last run.
    probes: Mutex<Probes>,
    /// The last scrape's report, handed out again while nothing in it changed, so the
    /// snapshots and the metrics' change detection share one copy.
    report: Mutex<Option<Arc<DatabaseReport>>>,
    /// The verdict on each backup file, kept while the file does not change, so a backup is
    /// hashed or checked once, in the background, and never at a scrape.
    backup_verdicts: Mutex<Verdicts>,
    /// The files' `stat`s before the last probe and the last passing check: what lets a
    /// database that nobody touched since skip them ([`Monitor::probe_unless_idle`],
    /// [`Monitor::verdict_still_holds`]).
    idle: Mutex<IdleStamps>,
}

/// A quiet database whose files have not changed since its last probe is probed once every
/// this many probe intervals instead of every interval.
///
/// On a fleet of mostly idle per-tenant files, probes are most of the exporter's background
/// cost: each opens the database, and when the application does not hold it open, SQLite
/// rebuilds the WAL index from the whole `-wal` and rewrites the `-shm` to do it. A database
/// that nobody wrote to and whose last probe found no contention has little new to say; one
/// that changed, or whose last probe was slow, busy or failed, is probed at every interval.
/// A lock held for a long time without any write (the one case the skipped probes would have
/// caught sooner) is still seen within this many intervals.
pub const IDLE_PROBE_EVERY: u32 = 10;

/// See [`Monitor::idle`].
#[derive(Default)]
struct IdleStamps {
    /// The `stat`s taken right before the last probe ran, when it ran, and whether it was
    /// quiet (every probe succeeded under its threshold, nothing busy).
    probe: Option<(Stamp, Instant, bool)>,
    /// The `stat`s taken right before the last integrity check that passed.
    check: Option<Stamp>,
}

/// What the last scrape read.
#[derive(Default)]
struct LastScrape {
    /// The files' `stat`s at that scrape; `None` before the first and after a failure.
    stamp: Option<Stamp>,
    /// The facts read then (the probes' part aside).
    facts: Facts,
    /// Why the database could not be read, if it could not.
    error: Option<OpenError>,
    /// The scrape-time collectors' outcomes.
    outcomes: Vec<CollectorOutcome>,
    /// Where the WAL scan resumes.
    cursor: Option<WalCursor>,
    /// Reads of the files (or SQLite) so far: an unchanged database adds none.
    reads: u64,
}

/// The probes' latest results.
#[derive(Default)]
struct Probes {
    performance: PerformanceFacts,
    outcomes: Vec<CollectorOutcome>,
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
    /// A descriptor of the database file that scrapes read page 1 through, kept open for as
    /// long as the file is monitored: closing any descriptor of a file drops every POSIX lock
    /// this process holds on it (an action's write lock, a probe's read lock, the demo's
    /// writer), so scrapes never open and close one. Replaced when the path names a new
    /// file, dropped when the path is gone.
    main: Mutex<Option<MainFd>>,
}

/// A kept descriptor of a database file and the file it is.
struct MainFd {
    file: std::fs::File,
    dev: u64,
    ino: u64,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// How much of it `/metrics` shows.
    #[serde(skip)]
    pub detail: Detail,
    /// Static labels on every series of the database, in name order.
    #[serde(skip)]
    pub labels: Vec<(String, String)>,
    /// Its settings' exported thresholds (`Settings::exported_thresholds`).
    #[serde(skip)]
    pub thresholds: [f64; crate::config::EXPORTED_THRESHOLD_COUNT],
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
        Self::in_batch(config, stagger, 1)
    }

    /// A monitor that is one of `batch` databases added together; `stagger` (0..1) is its
    /// place among them.
    pub fn in_batch(config: DatabaseConfig, stagger: f64, batch: usize) -> Self {
        let schedule = Schedule::staggered(&config.settings, stagger, batch, Instant::now());
        let file = database_file(&config.path);
        Monitor {
            config,
            checks: Mutex::new(Checks::default()),
            schedule: Mutex::new(schedule),
            file,
            logged: Mutex::new(HashMap::new()),
            last: Mutex::new(LastScrape::default()),
            probes: Mutex::new(Probes::default()),
            report: Mutex::new(None),
            backup_verdicts: Mutex::new(Verdicts::default()),
            idle: Mutex::new(IdleStamps::default()),
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
    /// scheduled backups are on), verifying new or changed files, for the backup metrics and
    /// the `backup` recommendation. Background and actions only: O(size) for a new file.
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
                let list = crate::backup_dir::list_among(&self.config.name, &b.dir, names);
                let verdicts = self.judge_backups(&list);
                Some(BackupSummary::from_list(&list, &verdicts))
            }
            Err(e) => {
                self.log_change("backups", Some(&e), "cannot list backups");
                return;
            }
        };
        self.update_checks(|c| c.backups = summary);
    }

    /// The verdict on each backup of `list` (a listing of this database's backups): cached
    /// for unchanged files, examined now (O(size)) for new or changed ones. Background work and
    /// listings only, never a scrape.
    pub fn judge_backups(&self, list: &[BackupInfo]) -> Vec<Verdict> {
        static NEVER: AtomicBool = AtomicBool::new(false);
        let timeout = self.config.settings.integrity_check.timeout.0;
        self.backup_verdicts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .judge(list, timeout, &NEVER)
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

    /// Scrapes this database with `collectors`: four `stat`s when its files did not change,
    /// a read of the files (or SQLite) when they did. The probes' latest results are added.
    pub fn scrape(&self, collectors: &CollectorSet) -> Arc<DatabaseReport> {
        let cfg = &self.config;
        let (facts, error, mut outcomes) = {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let stamp = if self.file.copying.load(Ordering::SeqCst) {
                Err(OpenError::Other(
                    "recovery is copying the database files; not read at this scrape".into(),
                ))
            } else {
                Stamp::read(&cfg.path)
            };
            match stamp {
                Ok(stamp) => {
                    let unchanged = last.error.is_none()
                        && last.stamp.is_some_and(|old| stamp.unchanged_since(&old));
                    if !unchanged {
                        self.read(collectors, &stamp, &mut last);
                    }
                    last.stamp = last.error.is_none().then_some(stamp);
                }
                Err(e) => {
                    if matches!(e, OpenError::Missing | OpenError::Directory) {
                        self.forget_file();
                    }
                    *last = LastScrape {
                        error: Some(e),
                        reads: last.reads,
                        ..Default::default()
                    };
                }
            }
            (
                last.facts.clone(),
                last.error.clone(),
                last.outcomes.clone(),
            )
        };
        self.log_change(
            "open",
            error.as_ref().map(|e| e.to_string()).as_deref(),
            "cannot read database",
        );
        let mut facts = facts;
        {
            let probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
            facts.performance = probes.performance.clone();
            if error.is_none() {
                outcomes.extend(probes.outcomes.iter().cloned());
            }
        }
        let checks = self.checks();
        let health = health::assess(error.as_ref(), &facts, &checks, &cfg.settings.thresholds);
        let report = DatabaseReport {
            name: cfg.name.clone(),
            path: cfg.path.clone(),
            up: error.is_none(),
            error,
            facts,
            checks,
            collectors: outcomes,
            health,
            detail: cfg.settings.metrics.detail,
            labels: cfg.settings.labels.0.clone(),
            thresholds: cfg.settings.exported_thresholds(),
        };
        let mut kept = self.report.lock().unwrap_or_else(|e| e.into_inner());
        match kept.as_ref() {
            Some(old) if **old == report => old.clone(),
            _ => {
                let report = Arc::new(report);
                *kept = Some(report.clone());
                report
            }
        }
    }

    /// How many times the scrapes so far had to read the database (its files or SQLite): a
    /// scrape of an unchanged database reads nothing.
    pub fn reads(&self) -> u64 {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).reads
    }

    /// Reads a changed database into `last`: from its files when no SQLite connection of ours
    /// to it is open (see [`Monitor::direct`]), else, or when the files cannot answer, through
    /// a read-only connection.
    fn read(&self, collectors: &CollectorSet, stamp: &Stamp, last: &mut LastScrape) {
        let cfg = &self.config;
        last.reads += 1;
        let cookie = last.facts.schema.cookie;
        let direct = self.direct(stamp, |main| {
            files::read(&cfg.path, main, stamp, last.cursor.as_ref(), |c| {
                cookie != Some(c)
            })
        });
        let file_facts: Option<FileFacts> = match direct {
            Some(Ok((f, cursor))) => {
                last.cursor = Some(cursor);
                Some(f)
            }
            Some(Err(Unread::Failed(e))) => {
                last.error = Some(e);
                last.facts = Facts::default();
                last.outcomes.clear();
                return;
            }
            Some(Err(Unread::AskSqlite(why))) => {
                tracing::debug!(database = %cfg.name, reason = %why, "reading through SQLite");
                None
            }
            None => None,
        };
        // Our own SQLite connections to this file are coordinated by SQLite; while this one is
        // open no direct read of the file may close a descriptor under it.
        let _files = file_facts.is_none().then(|| self.files_shared());
        let conn = LazyConnection::new(&cfg.path, PROBE_BUSY_TIMEOUT);
        if file_facts.is_none() {
            if let Err(CollectError::Open(e)) = conn.get() {
                last.error = Some(e);
                last.facts = Facts::default();
                last.outcomes.clear();
                return;
            }
        }
        let mut facts = Facts::default();
        let outcomes = collectors
            .iter()
            .map(|c| {
                let mut scrape = Scrape {
                    path: &cfg.path,
                    settings: &cfg.settings,
                    files: file_facts.as_ref(),
                    conn: &conn,
                    previous: &last.facts,
                    facts: &mut facts,
                };
                self.run_collector(c, &mut scrape)
            })
            .collect();
        last.facts = facts;
        last.outcomes = outcomes;
        last.error = None;
    }

    /// Runs `f` on the kept descriptor of the database file, opening one the first time and
    /// whenever the path names a new file (`stamp`'s identity). `None` while recovery copies
    /// the files, or when no descriptor can be had (out of descriptors: SQLite answers then).
    fn direct<T>(&self, stamp: &Stamp, f: impl FnOnce(&std::fs::File) -> T) -> Option<T> {
        if self.file.copying.load(Ordering::SeqCst) {
            return None;
        }
        let mut main = self.file.main.lock().unwrap_or_else(|e| e.into_inner());
        let (dev, ino) = stamp.identity();
        if !main.as_ref().is_some_and(|m| m.dev == dev && m.ino == ino) {
            // The old descriptor is of a file no longer at this path; our connections, if
            // any, are to the new one.
            *main = None;
            let file = std::fs::File::open(&self.config.path).ok()?;
            let meta = file.metadata().ok()?;
            use std::os::unix::fs::MetadataExt;
            if (meta.dev(), meta.ino()) != (dev, ino) {
                return None; // replaced between the stat and the open: next scrape
            }
            *main = Some(MainFd { file, dev, ino });
        }
        main.as_ref().map(|m| f(&m.file))
    }

    /// Lets go of the kept descriptor (the database is gone from its path).
    fn forget_file(&self) {
        *self.file.main.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Runs one collector, logging a failure when it starts and when it clears.
    fn run_collector(&self, c: &dyn Collector, scrape: &mut Scrape<'_>) -> CollectorOutcome {
        let start = Instant::now();
        let error = c.update(scrape).err().map(|e| e.to_string());
        self.log_change(c.name(), error.as_deref(), "collector failed");
        CollectorOutcome {
            collector: c.name(),
            success: error.is_none(),
            duration_seconds: start.elapsed().as_secs_f64(),
            error,
        }
    }

    /// Runs the probes, as [`Monitor::probe`] does, unless the database is idle: its files have
    /// not changed (same identity, size and modification time, and settled: see
    /// [`crate::fleet::files`]) since the last probe, that probe was quiet, and it ran less
    /// than [`IDLE_PROBE_EVERY`] intervals ago. Returns whether the probes ran.
    pub fn probe_unless_idle(
        &self,
        collectors: &CollectorSet,
        events: &dyn Events,
        now: Instant,
    ) -> bool {
        let stamp = Stamp::read(&self.config.path).ok();
        let every = self.config.settings.probes.interval.0 * IDLE_PROBE_EVERY;
        {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if let (Some(now_stamp), Some((then, at, true))) = (&stamp, &idle.probe) {
                if now_stamp.unchanged_since(then) && now.saturating_duration_since(*at) < every {
                    return false;
                }
            }
        }
        self.probe(collectors, events);
        let quiet = self.last_probe_quiet();
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).probe = stamp.map(|s| (s, now, quiet));
        true
    }

    /// Whether the last probes all succeeded, got their locks and stayed under the database's
    /// slow-query and slow-write thresholds.
    fn last_probe_quiet(&self) -> bool {
        let t = &self.config.settings.thresholds;
        let probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        let p = &probes.performance;
        probes.outcomes.iter().all(|o| o.success)
            && p.write_note.is_none()
            && p.query_seconds
                .is_none_or(|s| s <= t.slow_query.0.as_secs_f64())
            && p.write_seconds
                .is_none_or(|s| s <= t.slow_write.0.as_secs_f64())
    }

    /// The `stat`s of the database's files now, to be given to
    /// [`Monitor::record_passing_check`] if the check about to run passes.
    pub fn stamp_before_check(&self) -> Option<Stamp> {
        Stamp::read(&self.config.path).ok()
    }

    /// Whether the last passing integrity check still speaks for the files: they have not
    /// changed since the `stat`s taken before it (`now`, from [`Monitor::stamp_before_check`]).
    pub fn verdict_still_holds(&self, now: &Option<Stamp>) -> bool {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        matches!((now, &idle.check), (Some(now), Some(then)) if now.unchanged_since(then))
    }

    /// Records the `stat`s taken before an integrity check that passed (`None`: it did not
    /// pass, so the next regular check runs in full).
    pub fn record_passing_check(&self, stamp: Option<Stamp>) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).check = stamp;
    }

    /// Runs the probes (the read and write probes, as configured) now, reports their latencies
    /// to `events`, and keeps their results for the scrapes. Never while recovery copies.
    pub fn probe(&self, collectors: &CollectorSet, events: &dyn Events) {
        if self.file.copying.load(Ordering::SeqCst) || collectors.probes().next().is_none() {
            return;
        }
        let cfg = &self.config;
        let _files = self.files_shared();
        let conn = LazyConnection::new(&cfg.path, PROBE_BUSY_TIMEOUT);
        let previous = Facts::default();
        let mut facts = Facts::default();
        let outcomes: Vec<CollectorOutcome> = collectors
            .probes()
            .map(|c| {
                let mut scrape = Scrape {
                    path: &cfg.path,
                    settings: &cfg.settings,
                    files: None,
                    conn: &conn,
                    previous: &previous,
                    facts: &mut facts,
                };
                self.run_collector(c, &mut scrape)
            })
            .collect();
        drop(conn);
        let before = self
            .probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .performance
            .checkpoint_stall;
        facts.performance.checkpoint_stall =
            CheckpointStall::track(before, facts.performance.wal_index, crate::unix_now());
        self.log_change(
            "write_note",
            facts.performance.write_note.as_deref(),
            "write probe",
        );
        events.probes(&cfg.name, &facts.performance);
        *self.probes.lock().unwrap_or_else(|e| e.into_inner()) = Probes {
            performance: facts.performance,
            outcomes,
        };
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

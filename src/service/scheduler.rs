//! The background scheduler: integrity checks, the migrations read and the dbstat scans, apart
//! from the scrape path.
//!
//! Every database has its own schedule ([`Schedule`]): the configured check every
//! `integrity_check.interval`, a full `integrity_check` every `full_interval`, and the dbstat
//! scans every `dbstat.interval`. First runs are staggered: databases added together have their
//! first regular check spread over the first minute and their first full check spread over the
//! first `full_interval`, so 1,000 databases never start their O(size) checks together. A
//! global semaphore bounds how many checks run at once (`--checks.concurrency`, default 1),
//! and a database runs one background job at a time. Checks are bounded by their `timeout`
//! and cancelled on shutdown; an interrupted check is recorded as unknown, never as success.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tracing::{debug, error, info, warn};

use crate::checks::integrity::{self, IntegrityOutcome, Mode};
use crate::checks::RunOutcome;
use crate::collect::{CollectorSet, DBSTAT, INTEGRITY, MIGRATIONS, TABLES};
use crate::fleet::monitor::Monitor;
use crate::fleet::Fleet;
use crate::sqlite::connection::{self, OpenError};

/// How long a background job waits for a lock held by the application.
pub const BACKGROUND_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the scheduler looks for due work.
const TICK: Duration = Duration::from_millis(500);

/// One database's background timetable.
#[derive(Debug, Clone)]
pub struct Schedule {
    next_check: Instant,
    next_full: Instant,
    next_dbstat: Instant,
    next_backup_scan: Instant,
    running: bool,
}

/// How often each database's backups are re-read from the backup directory (and right after
/// each backup, restore and recovery).
const BACKUP_SCAN_INTERVAL: Duration = Duration::from_secs(60);

impl Schedule {
    /// A timetable whose first runs sit at `position` (0..1) of their stagger windows.
    pub fn staggered(settings: &crate::config::Settings, position: f64) -> Schedule {
        let now = Instant::now();
        let ic = &settings.integrity_check;
        let window = ic.interval.0.min(Duration::from_secs(60));
        Schedule {
            next_check: now + window.mul_f64(position),
            next_full: now + ic.full_interval.0.mul_f64(position),
            next_dbstat: now + window.mul_f64(position),
            next_backup_scan: now,
            running: false,
        }
    }
}

/// A unit of background work on one database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// An integrity check of this mode (plus the migrations read).
    Integrity(Mode),
    /// The dbstat scans.
    Dbstat,
}

/// Re-reads the backup directory for databases due (cheap; no concurrency permit needed).
fn scan_backups_if_due(m: &Monitor, now: Instant) -> bool {
    let mut s = m.schedule();
    if now < s.next_backup_scan {
        return false;
    }
    s.next_backup_scan = now + BACKUP_SCAN_INTERVAL;
    true
}

/// Picks the job due on `m` now, if any, and marks the database busy.
fn due(m: &Monitor, collectors: &CollectorSet, now: Instant) -> Option<Job> {
    let settings = &m.config.settings;
    let ic = &settings.integrity_check;
    let mut s = m.schedule();
    if s.running || m.running_action().is_some() {
        return None;
    }
    let checks = collectors.background(INTEGRITY) || collectors.background(MIGRATIONS);
    let stats = collectors.background(DBSTAT) || collectors.background(TABLES);
    let job = if checks && now >= s.next_full {
        s.next_full = now + ic.full_interval.0;
        s.next_check = now + ic.interval.0;
        Job::Integrity(Mode::Full)
    } else if checks && now >= s.next_check {
        s.next_check = now + ic.interval.0;
        Job::Integrity(ic.mode)
    } else if stats && now >= s.next_dbstat {
        s.next_dbstat = now + settings.dbstat.interval.0;
        Job::Dbstat
    } else {
        return None;
    };
    s.running = true;
    Some(job)
}

/// Runs the scheduler until `stop` fires. `cancel` interrupts running checks on shutdown.
pub async fn run(
    fleet: Arc<Fleet>,
    concurrency: usize,
    cancel: Arc<AtomicBool>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    // Set while a pass over the policies runs (on a blocking thread; it stats files and may
    // read page counts), so passes never pile up.
    let policy_pass = Arc::new(AtomicBool::new(false));
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let now = Instant::now();
        let monitors = fleet.monitors();
        // Backup scans due now run one after another on one blocking thread: a fleet of
        // thousands must not start thousands of threads at once.
        let scans: Vec<Arc<Monitor>> = monitors
            .values()
            .filter(|m| scan_backups_if_due(m, now))
            .cloned()
            .collect();
        if !scans.is_empty() {
            tokio::task::spawn_blocking(move || scan_backups(&scans));
        }
        let with_policies: Vec<Arc<Monitor>> = monitors
            .values()
            .filter(|m| m.config.settings.auto.any())
            .cloned()
            .collect();
        if !with_policies.is_empty() && !policy_pass.swap(true, Ordering::AcqRel) {
            let (fleet, cancel, pass) = (fleet.clone(), cancel.clone(), policy_pass.clone());
            tokio::task::spawn_blocking(move || {
                // Cleared on the way out, even if a policy panics, so policies never stop.
                struct Done(Arc<AtomicBool>);
                impl Drop for Done {
                    fn drop(&mut self) {
                        self.0.store(false, Ordering::Release);
                    }
                }
                let _done = Done(pass);
                with_policies
                    .iter()
                    .for_each(|m| start_policy(&fleet, m, &cancel, now));
            });
        }
        for m in monitors.values() {
            let Some(job) = due(m, fleet.collectors(), now) else {
                continue;
            };
            let (m, fleet, permits, cancel) =
                (m.clone(), fleet.clone(), permits.clone(), cancel.clone());
            tokio::spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                let m2 = m.clone();
                let result = tokio::task::spawn_blocking(move || {
                    run_job(&m2, job, fleet.collectors(), &cancel)
                })
                .await;
                if let Err(e) = result {
                    error!(database = %m.config.name, error = %e, "background job panicked");
                }
                m.schedule().running = false;
            });
        }
    }
}

/// Refreshes the backups of `monitors`, reading each backup directory once however many
/// databases share it.
fn scan_backups(monitors: &[Arc<Monitor>]) {
    let mut listings: std::collections::HashMap<std::path::PathBuf, Result<Vec<String>, String>> =
        std::collections::HashMap::new();
    for m in monitors {
        let dir = &m.config.settings.backup.dir;
        let names = listings
            .entry(dir.clone())
            .or_insert_with(|| crate::actions::backup::file_names(dir).map_err(|e| e.to_string()));
        m.refresh_backups_among(names.as_deref().map_err(Clone::clone));
    }
}

/// Starts the policy action due on `m`, if any, on a low-priority thread.
fn start_policy(fleet: &Arc<Fleet>, m: &Arc<Monitor>, cancel: &Arc<AtomicBool>, now: Instant) {
    let Some((policy, action, reason)) = crate::actions::policy::due(m, now) else {
        return;
    };
    let Ok(guard) = m.begin_action(action.name()) else {
        return;
    };
    let (fleet, cancel) = (fleet.clone(), cancel.clone());
    let name = format!("auto-{}", m.config.name);
    let spawned = low_priority_thread(&name, move || {
        let m = guard.monitor();
        let _ = crate::actions::policy::run(&fleet, m, policy, action, &reason, &cancel);
    });
    if let Err(e) = spawned {
        error!(database = %m.config.name, error = %e, "cannot start a policy thread");
    }
}

/// Every backup directory of the fleet.
pub fn backup_dirs(fleet: &Fleet) -> BTreeSet<PathBuf> {
    fleet
        .monitors()
        .values()
        .map(|m| m.config.settings.backup.dir.clone())
        .collect()
}

/// Removes temp files left by a killed backup in `dirs` (at start: every backup directory of
/// the fleet; after a reload: the ones new to it). Files of a backup in progress are locked and
/// kept.
pub fn remove_backup_leftovers<'a>(dirs: impl IntoIterator<Item = &'a PathBuf>) {
    for dir in dirs.into_iter().filter(|d| d.is_dir()) {
        match crate::actions::backup::remove_leftovers(dir) {
            Ok(removed) if !removed.is_empty() => {
                info!(dir = %dir.display(), removed = removed.len(), "removed temp files of an interrupted backup")
            }
            Ok(_) => {}
            Err(e) => warn!(dir = %dir.display(), error = %e, "cannot clean the backup directory"),
        }
    }
}

/// Runs `f` on a new thread with lowered CPU priority (nice +10), so O(size) work yields the CPU
/// to the application and to scrapes on a busy machine. A thread of its own, not one from the
/// blocking pool: a thread's priority cannot be raised again without privileges, and pool
/// threads later serve scrapes.
pub fn low_priority_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<T>> {
    std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(move || {
            // SAFETY: plain syscalls on the calling thread; failure only leaves the priority as is.
            unsafe {
                let tid = libc::gettid();
                libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
            }
            f()
        })
}

/// Runs `job` on `m` now, on the calling thread, and records its results. Used by the
/// scheduler and by `sqlite_exporter check`.
pub fn run_job(m: &Monitor, job: Job, collectors: &CollectorSet, cancel: &AtomicBool) {
    let _files = m.files_shared();
    match job {
        Job::Integrity(mode) => {
            if collectors.background(INTEGRITY) {
                run_integrity(m, mode, cancel);
            }
            if collectors.background(MIGRATIONS) {
                run_migrations(m);
            }
        }
        Job::Dbstat => run_dbstat(m, collectors, cancel),
    }
}

/// Runs an integrity check of `mode` on `m` and records it.
pub fn run_integrity(m: &Monitor, mode: Mode, cancel: &AtomicBool) -> IntegrityOutcome {
    let cfg = &m.config;
    let start = Instant::now();
    let timeout = cfg.settings.integrity_check.timeout.0;
    let outcome = integrity::run(&cfg.path, mode, timeout, BACKGROUND_BUSY_TIMEOUT, cancel);
    let elapsed = start.elapsed().as_secs_f64();
    let run = m.update_checks(|c| c.record_integrity(&outcome, elapsed));
    match &outcome {
        IntegrityOutcome::Completed(r) if r.ok => {
            info!(database = %cfg.name, mode = mode.as_str(), duration_seconds = elapsed, foreign_key_violations = ?r.foreign_key_violations, "integrity check passed")
        }
        IntegrityOutcome::Completed(r) => {
            error!(database = %cfg.name, mode = mode.as_str(), errors = r.errors, first = ?r.messages.first(), "integrity check FAILED")
        }
        IntegrityOutcome::Failed(e @ (OpenError::NotADatabase | OpenError::Corrupt(_))) => {
            error!(database = %cfg.name, mode = mode.as_str(), error = %e, "integrity check FAILED")
        }
        _ => {
            warn!(database = %cfg.name, mode = mode.as_str(), error = ?run.error, "integrity check did not complete")
        }
    }
    m.record_run(INTEGRITY, run);
    outcome
}

fn run_migrations(m: &Monitor) {
    let cfg = &m.config;
    let start = Instant::now();
    let result = connection::open_read_only(&cfg.path, BACKGROUND_BUSY_TIMEOUT)
        .map_err(|e| e.to_string())
        .and_then(|conn| {
            crate::checks::migrations::read(&conn, &cfg.settings.migrations.table)
                .map_err(|e| e.to_string())
        });
    let error = match result {
        Ok(stats) => {
            m.update_checks(|c| c.migrations = stats.as_ref().map(Into::into));
            None
        }
        Err(e) => {
            debug!(database = %cfg.name, error = %e, "migrations table not read");
            Some(e)
        }
    };
    m.record_run(
        MIGRATIONS,
        RunOutcome {
            success: error.is_none(),
            duration_seconds: start.elapsed().as_secs_f64(),
            error,
        },
    );
}

fn run_dbstat(m: &Monitor, collectors: &CollectorSet, cancel: &AtomicBool) {
    let cfg = &m.config;
    let timeout = cfg.settings.dbstat.timeout.0;
    let conn = match connection::open_read_only(&cfg.path, BACKGROUND_BUSY_TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            for name in [DBSTAT, TABLES]
                .into_iter()
                .filter(|n| collectors.background(n))
            {
                m.record_run(
                    name,
                    RunOutcome {
                        success: false,
                        duration_seconds: 0.0,
                        error: Some(e.to_string()),
                    },
                );
            }
            return;
        }
    };
    if collectors.background(DBSTAT) {
        let start = Instant::now();
        let r = crate::checks::dbstat::unused_bytes(&conn, timeout, cancel);
        let error = match r {
            Ok(n) => {
                m.update_checks(|c| c.unused_bytes = Some(n));
                None
            }
            Err(e) => Some(e.to_string()),
        };
        m.record_run(
            DBSTAT,
            RunOutcome {
                success: error.is_none(),
                duration_seconds: start.elapsed().as_secs_f64(),
                error,
            },
        );
    }
    if collectors.background(TABLES) {
        let start = Instant::now();
        let r = crate::checks::dbstat::tables(&conn, timeout, cancel);
        let error = match r {
            Ok(t) => {
                m.update_checks(|c| c.tables = Some(t.iter().map(Into::into).collect()));
                None
            }
            Err(e) => Some(e.to_string()),
        };
        m.record_run(
            TABLES,
            RunOutcome {
                success: error.is_none(),
                duration_seconds: start.elapsed().as_secs_f64(),
                error,
            },
        );
    }
}

//! Background work on one database, run on the calling (blocking) thread: the integrity check,
//! the migrations read, the dbstat scans, the custom queries and the re-read of the backup
//! directory (verifying each new or changed backup file, `checks::backups`). Each records
//! its result in the database's [`Monitor`], where the next scrape finds it. The service
//! layer decides *when* these run; actions (an integrity check on request, recovery) call them
//! directly.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info, warn};

use crate::checks::custom_queries;
use crate::checks::dbstat::DbstatError;
use crate::checks::integrity::{self, IntegrityOutcome, Mode};
use crate::checks::migrations;
use crate::checks::timetable::Job;
use crate::checks::RunOutcome;
use crate::collect::{CollectorSet, DBSTAT, INTEGRITY, MIGRATIONS, TABLES};
use crate::fleet::monitor::Monitor;
use crate::sqlite::connection::{self, OpenError};
use crate::sqlite::BACKGROUND_BUSY_TIMEOUT;

/// Runs `job` on `m` now, on the calling thread, and records its results. Used by the
/// scheduler and by `sqlite_exporter check`.
pub fn run_job(m: &Monitor, job: Job, collectors: &CollectorSet, cancel: &AtomicBool) {
    let _files = m.files_shared();
    match job {
        Job::Integrity(mode) => {
            // A quick check of bytes that have not changed since a check passed would read
            // the same pages (from the page cache, most likely) and find the same; on a fleet
            // of idle files such checks are most of the background work. The verdict is
            // renewed instead. The full check, whose schedule exists to catch what happens
            // to unchanged files, always runs.
            let stamp = m.stamp_before_check();
            if mode == Mode::Quick
                && m.verdict_still_holds(&stamp)
                && m.update_checks(|c| c.confirm_integrity(crate::unix_now()))
            {
                debug!(database = %m.config.name, "files unchanged since the last passing check: its verdict stands");
                // The migration files can change while the database does not.
                if collectors.background(MIGRATIONS) && m.config.settings.migrations.dir.is_some() {
                    run_migrations(m);
                }
                return;
            }
            let mut passed = false;
            if collectors.background(INTEGRITY) {
                let outcome = run_integrity(m, mode, cancel);
                passed = matches!(&outcome, IntegrityOutcome::Completed(r) if r.ok);
            }
            if collectors.background(MIGRATIONS) {
                run_migrations(m);
            }
            m.record_passing_check(if passed { stamp } else { None });
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
    // A monitored database found corrupt is a problem of that database, not of the exporter:
    // `warn`, as `--log.level` documents (`error` is for the exporter's own failures).
    match &outcome {
        IntegrityOutcome::Completed(r) if r.ok => match r.foreign_key_violations {
            Some(n) => {
                info!(database = %cfg.name, mode = mode.as_str(), duration_seconds = elapsed, foreign_key_violations = n, "integrity check passed")
            }
            None => {
                info!(database = %cfg.name, mode = mode.as_str(), duration_seconds = elapsed, "integrity check passed")
            }
        },
        IntegrityOutcome::Completed(r) => {
            let first = r.messages.first().map(String::as_str).unwrap_or_default();
            warn!(database = %cfg.name, mode = mode.as_str(), errors = r.errors, first, "integrity check FAILED")
        }
        IntegrityOutcome::Failed(e @ (OpenError::NotADatabase | OpenError::Corrupt(_))) => {
            warn!(database = %cfg.name, mode = mode.as_str(), error = %e, "integrity check FAILED")
        }
        _ => {
            let error = run.error.as_deref().unwrap_or_default();
            warn!(database = %cfg.name, mode = mode.as_str(), error, "integrity check did not complete")
        }
    }
    m.record_run(INTEGRITY, run);
    outcome
}

fn run_migrations(m: &Monitor) {
    let cfg = &m.config;
    let start = Instant::now();
    let error = match connection::open_read_only(&cfg.path, BACKGROUND_BUSY_TIMEOUT) {
        Ok(conn) => {
            let known = m.update_checks(|c| c.migration_tables.clone());
            let survey = migrations::survey(&conn, &cfg.settings.migrations, known);
            m.update_checks(|c| {
                c.migrations = survey.figures;
                c.migration_tables = survey.tables;
            });
            survey.error
        }
        Err(e) => Some(e.to_string()),
    };
    if let Some(e) = &error {
        debug!(database = %cfg.name, error = %e, "migrations not read");
    }
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
        timed(m, DBSTAT, || -> Result<(), DbstatError> {
            let n = crate::checks::dbstat::unused_bytes(&conn, timeout, cancel)?;
            m.update_checks(|c| c.unused_bytes = Some(n));
            Ok(())
        });
    }
    if collectors.background(TABLES) {
        timed(m, TABLES, || -> Result<(), DbstatError> {
            let t = crate::checks::dbstat::tables(&conn, timeout, cancel)?;
            m.update_checks(|c| c.tables = Some(t.iter().map(Into::into).collect()));
            Ok(())
        });
    }
}

/// Runs the custom queries `due` (indexes into the database's `queries:`) on one read-only
/// connection, one after another, each bounded by its timeout, and records each result. A
/// failure is logged once per change of its error, not at every run.
pub fn run_queries(m: &Monitor, due: &[usize], cancel: &AtomicBool) {
    let _files = m.files_shared();
    let cfg = &m.config;
    let conn = connection::open_read_only(&cfg.path, BACKGROUND_BUSY_TIMEOUT);
    for q in due.iter().filter_map(|&i| cfg.settings.queries.0.get(i)) {
        let start = Instant::now();
        let outcome = match &conn {
            Ok(c) => custom_queries::run(c, q, cancel),
            Err(e) => Err(custom_queries::QueryError::Open(e.to_string())),
        };
        let result = custom_queries::QueryResult::new(q, &outcome, start.elapsed());
        let before = m.update_checks(|c| {
            c.custom_queries
                .insert(q.name.clone(), result)
                .map(|old| old.error)
        });
        match (&outcome, before) {
            (Err(e), before)
                if before.as_ref().and_then(Option::as_deref) != Some(&e.to_string()) =>
            {
                warn!(database = %cfg.name, query = %q.name, error = %e, "custom query failed")
            }
            (Ok(_), Some(Some(_))) => {
                info!(database = %cfg.name, query = %q.name, "custom query succeeds again")
            }
            _ => {}
        }
    }
}

/// Refreshes the backups of `monitors`, reading each backup directory once however many
/// databases share it.
pub fn scan_backups(monitors: &[Arc<Monitor>]) {
    let mut listings: std::collections::HashMap<std::path::PathBuf, Result<Vec<String>, String>> =
        std::collections::HashMap::new();
    for m in monitors {
        let dir = &m.config.settings.backup.dir;
        let names = listings
            .entry(dir.clone())
            .or_insert_with(|| crate::backup_dir::file_names(dir).map_err(|e| e.to_string()));
        m.refresh_backups_among(names.as_deref().map_err(Clone::clone));
    }
}

/// Runs one background collector's `work` and records how it went under `name`.
fn timed<E: std::fmt::Display>(
    m: &Monitor,
    name: &'static str,
    work: impl FnOnce() -> Result<(), E>,
) {
    let start = Instant::now();
    let error = work().err().map(|e| e.to_string());
    m.record_run(
        name,
        RunOutcome {
            success: error.is_none(),
            duration_seconds: start.elapsed().as_secs_f64(),
            error,
        },
    );
}

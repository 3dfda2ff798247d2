//! The integrity check: `PRAGMA quick_check` or `PRAGMA integrity_check`, then
//! `PRAGMA foreign_key_check`, on a read-only connection, bounded by a timeout and a cancel
//! flag.
//!
//! Both checks read every page of the database (O(size)), so [`run`] is for the background
//! scheduler and the `integrity-check` action, never for a scrape (a scrape must cost O(1)).
//!
//! # Effect on the monitored database
//!
//! [`run`] opens its own connection through [`connection::open_read_only`] and drops it when it
//! returns, so nothing outlives the run. Each of the two checks is one autocommit statement:
//! its read snapshot (WAL) or SHARED lock (rollback journal) lasts exactly as long as that
//! statement and is released between the two.
//!
//! - **WAL mode**: readers never block writers. The application keeps committing throughout
//!   (a test asserts this). The one cost is that a checkpoint cannot copy frames committed
//!   after our snapshot began, so the WAL cannot be reset while a check runs; the `timeout`
//!   bounds how long that can last.
//! - **Rollback-journal mode** (`DELETE`, `TRUNCATE`, `PERSIST`): a reader holds a SHARED
//!   lock, and a writer needs EXCLUSIVE to commit. For the length of the statement the
//!   application's writers wait on their busy timeout, and fail with `SQLITE_BUSY` if the check
//!   outlasts it. SQLite offers no way around this short of checking a copy. The trade-off we
//!   take: the check is worth running, so it runs, but it is bounded by `timeout`, scheduled
//!   rarely (`full_interval` 24 h), and operators of busy rollback-journal databases should
//!   prefer `quick` mode and a short `timeout` (or switch the database to WAL). The `busy_timeout`
//!   given here only bounds how long *we* wait for a writer; it never makes a writer wait.
//!
//! # What counts as what
//!
//! - [`IntegrityOutcome::Failed`]: the check could not *start* — the file is missing, not a
//!   database, unreadable, or locked past `busy_timeout` — or it stopped on an I/O or locking
//!   error that says nothing about the content. The scheduler maps `NotADatabase`/`Corrupt` to
//!   status critical (a file that is unreadable or not a database needs a person now) and the
//!   rest to unknown.
//! - [`IntegrityOutcome::Completed`] with `ok == false`: the check ran and found problems. This
//!   includes a check that SQLite aborts with `SQLITE_CORRUPT` (or `SQLITE_NOTADB` after the
//!   file's header has already been read successfully): a database so damaged that
//!   `integrity_check` cannot finish is corrupt, not "unknown", and reporting it as unknown
//!   would hide exactly the case that should page someone.
//! - [`IntegrityOutcome::Interrupted`]: the timeout passed or the caller cancelled. Whatever
//!   the check had seen so far is discarded; a partial check is never reported as a success,
//!   nor as a failure.
//!
//! The integrity check is asked for at most [`MAX_PROBLEM_ROWS`] problem rows (SQLite stops
//! looking after that many), so [`IntegrityReport::errors`] saturates there; a database with
//! a hundred problems needs restoring whatever the exact count. The first [`MAX_MESSAGES`]
//! are kept verbatim for logs and the health report.
//!
//! Foreign keys are checked table by table (`pragma_foreign_key_check(?1)`), so that one table
//! whose foreign key cannot be checked at all ("foreign key mismatch": the parent key is not
//! unique, or the parent table is missing a column) counts as one violation with its message
//! instead of aborting the whole check. Foreign-key violations do not make `ok` false: they are
//! their own metric (`sqlite_foreign_key_violations`) and their own status input.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant, SystemTime};

use rusqlite::{Connection, ErrorCode};

use crate::sqlite::connection::{self, OpenError};
use crate::sqlite::interrupt::{self, Guard, Stop};

/// The most problem rows asked of `quick_check`/`integrity_check`.
pub const MAX_PROBLEM_ROWS: u32 = 100;

/// How many problem messages a report keeps.
pub const MAX_MESSAGES: usize = 10;

pub use crate::config::IntegrityMode as Mode;

/// The pragma that runs a check of `mode`.
fn pragma(mode: Mode) -> &'static str {
    match mode {
        Mode::Quick => "quick_check",
        Mode::Full => "integrity_check",
    }
}

/// The result of a check that ran to the end.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrityReport {
    /// Which check ran.
    pub mode: Mode,
    /// True when the integrity check reported no problem (`sqlite_integrity_check_success`).
    /// Foreign-key violations do not affect it.
    pub ok: bool,
    /// Problem rows reported, capped at [`MAX_PROBLEM_ROWS`]; 1 when SQLite aborted the check
    /// as corrupt (`sqlite_integrity_check_errors`).
    pub errors: u64,
    /// The first [`MAX_MESSAGES`] problems, verbatim from SQLite; empty when `ok`.
    pub messages: Vec<String>,
    /// Rows from `PRAGMA foreign_key_check`, plus one per table whose foreign keys cannot be
    /// checked (`sqlite_foreign_key_violations`). `None` when the database is too corrupt for
    /// the foreign-key check to run: the metric is then absent rather than a made-up 0.
    pub foreign_key_violations: Option<u64>,
    /// Wall time of the whole run, opening included (`sqlite_integrity_check_duration_seconds`).
    pub duration: Duration,
    /// When the run finished (`sqlite_integrity_check_last_run_timestamp_seconds`).
    pub finished_at: SystemTime,
}

/// Everything [`run`] can end with.
#[derive(Debug, Clone, PartialEq)]
pub enum IntegrityOutcome {
    /// The check ran to the end; the report says whether the database is sound.
    Completed(IntegrityReport),
    /// The check was stopped before the end; nothing is known about the database.
    Interrupted {
        mode: Mode,
        /// Time from the start of the run to the moment it stopped.
        after: Duration,
        /// Timeout or cancellation.
        reason: Stop,
    },
    /// The check could not run: the database could not be opened or read.
    Failed(OpenError),
}

impl std::fmt::Display for IntegrityOutcome {
    /// One sentence for logs and reports.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntegrityOutcome::Completed(r) if r.ok => write!(f, "{} check passed", pragma(r.mode)),
            IntegrityOutcome::Completed(r) => write!(
                f,
                "{} found {} problems: {}",
                pragma(r.mode),
                r.errors,
                r.messages.first().map(String::as_str).unwrap_or_default()
            ),
            IntegrityOutcome::Interrupted {
                mode,
                after,
                reason,
            } => write!(
                f,
                "{} check interrupted after {:.1}s ({reason})",
                mode.as_str(),
                after.as_secs_f64()
            ),
            IntegrityOutcome::Failed(e) => write!(f, "integrity check could not run: {e}"),
        }
    }
}

/// Runs the `mode` check and the foreign-key check on the database at `path`, read-only.
///
/// `timeout` bounds the whole run, opening included; `cancel` stops it early (checked every
/// few milliseconds); `busy_timeout` is how long to wait for a lock held by a writer.
pub fn run(
    path: &Path,
    mode: Mode,
    timeout: Duration,
    busy_timeout: Duration,
    cancel: &AtomicBool,
) -> IntegrityOutcome {
    let started = Instant::now();
    let conn = match connection::open_read_only(path, busy_timeout) {
        Ok(conn) => conn,
        Err(e) => return IntegrityOutcome::Failed(e),
    };
    // The first read of the header: a file that fails here was never a readable database.
    if let Err(e) = conn.query_row("PRAGMA schema_version", [], |r| r.get::<_, i64>(0)) {
        return IntegrityOutcome::Failed(e.into());
    }
    let (checked, stop) = interrupt::bounded(&conn, started, timeout, cancel, |conn, guard| {
        check(conn, mode, guard)
    });
    if let Some(reason) = stop {
        return IntegrityOutcome::Interrupted {
            mode,
            after: started.elapsed(),
            reason,
        };
    }
    match checked {
        Ok(findings) => IntegrityOutcome::Completed(IntegrityReport {
            mode,
            ok: findings.errors == 0,
            errors: findings.errors,
            messages: findings.messages,
            foreign_key_violations: findings.foreign_key_violations,
            duration: started.elapsed(),
            finished_at: SystemTime::now(),
        }),
        Err(e) => IntegrityOutcome::Failed(e.into()),
    }
}

#[derive(Default)]
struct Findings {
    errors: u64,
    messages: Vec<String>,
    foreign_key_violations: Option<u64>,
}

impl Findings {
    fn problem(&mut self, message: String) {
        self.errors += 1;
        self.note(message);
    }

    fn note(&mut self, message: String) {
        if self.messages.len() < MAX_MESSAGES {
            self.messages.push(message);
        }
    }
}

/// True for errors that mean the content is damaged, as opposed to "could not read".
fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

fn check(conn: &Connection, mode: Mode, guard: &Guard) -> rusqlite::Result<Findings> {
    let mut findings = Findings::default();
    match integrity_problems(conn, mode, &mut findings) {
        Ok(()) => {}
        Err(e) if is_corruption(&e) => findings.problem(format!("{}: {e}", pragma(mode))),
        Err(e) => return Err(e),
    }
    if guard.stopped().is_some() {
        return Ok(findings);
    }
    match foreign_key_violations(conn, guard, &mut findings) {
        Ok(n) => findings.foreign_key_violations = Some(n),
        Err(e) if is_corruption(&e) => findings.note(format!("foreign_key_check: {e}")),
        Err(e) => return Err(e),
    }
    Ok(findings)
}

/// Records every problem row of the integrity check; a single `ok` row means none.
fn integrity_problems(
    conn: &Connection,
    mode: Mode,
    findings: &mut Findings,
) -> rusqlite::Result<()> {
    let sql = format!("PRAGMA {}({MAX_PROBLEM_ROWS})", pragma(mode));
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let message: String = row.get(0)?;
        if message != "ok" {
            findings.problem(message);
        }
    }
    Ok(())
}

fn foreign_key_violations(
    conn: &Connection,
    guard: &Guard,
    findings: &mut Findings,
) -> rusqlite::Result<u64> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut count = conn.prepare("SELECT count(*) FROM pragma_foreign_key_check(?1)")?;
    let mut violations = 0u64;
    for table in &tables {
        if guard.stopped().is_some() {
            break;
        }
        match count.query_row([table], |r| r.get::<_, i64>(0)) {
            Ok(n) => violations += u64::try_from(n).unwrap_or(0),
            Err(e) if is_fk_mismatch(&e) => {
                violations += 1;
                findings.note(format!("foreign_key_check({table}): {e}"));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(violations)
}

/// "foreign key mismatch": a foreign key that cannot be enforced at all (its parent key is not
/// a PRIMARY KEY or UNIQUE column set), which SQLite reports as an error, not a row.
fn is_fk_mismatch(e: &rusqlite::Error) -> bool {
    e.to_string().contains("foreign key mismatch")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_from_sql(dir: &Path, sql: &str) -> std::path::PathBuf {
        let path = dir.join("t.db");
        Connection::open(&path).unwrap().execute_batch(sql).unwrap();
        path
    }

    fn completed(outcome: IntegrityOutcome) -> IntegrityReport {
        match outcome {
            IntegrityOutcome::Completed(report) => report,
            other => panic!("expected a completed check, got {other:?}"),
        }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn missing_and_junk_files_fail_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let never = AtomicBool::new(false);
        let missing = run(
            &dir.path().join("nope.db"),
            Mode::Quick,
            SECOND,
            SECOND,
            &never,
        );
        assert_eq!(missing, IntegrityOutcome::Failed(OpenError::Missing));
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![b'j'; 8192]).unwrap();
        let outcome = run(&junk, Mode::Full, SECOND, SECOND, &never);
        assert_eq!(outcome, IntegrityOutcome::Failed(OpenError::NotADatabase));
    }

    #[test]
    fn mismatched_foreign_key_counts_as_one_violation_without_hiding_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_from_sql(
            dir.path(),
            "PRAGMA foreign_keys = OFF;               -- bundled SQLite defaults it to ON
             CREATE TABLE p(a);                       -- not unique: FK cannot be checked
             CREATE TABLE c(x REFERENCES p(a));
             INSERT INTO c VALUES (1);
             CREATE TABLE q(id INTEGER PRIMARY KEY);
             CREATE TABLE d(y REFERENCES q(id));
             INSERT INTO d VALUES (7), (8);",
        );
        let never = AtomicBool::new(false);
        let report = completed(run(&path, Mode::Quick, SECOND * 10, SECOND, &never));
        assert!(report.ok);
        assert_eq!(report.foreign_key_violations, Some(3));
        assert!(
            report
                .messages
                .iter()
                .any(|m| m.contains("foreign key mismatch")),
            "{:?}",
            report.messages
        );
    }

    #[test]
    fn check_does_not_create_or_modify_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_from_sql(dir.path(), "CREATE TABLE t(a); INSERT INTO t VALUES (1);");
        let before = std::fs::read(&path).unwrap();
        let never = AtomicBool::new(false);
        assert!(completed(run(&path, Mode::Full, SECOND * 10, SECOND, &never)).ok);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 1, "no journal or WAL left behind");
    }
}
